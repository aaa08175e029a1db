/*
 * simdnorm_mpi: batch normalisation synchronised across the processes of an MPI communicator -- the C API of the
 * optional component simdnorm::mpi (library simdnorm_mpi; find_package(simdnorm COMPONENTS mpi)).
 *
 * Data parallelism: each rank holds a slice of the batch along n, and the batch statistics are those of the whole
 * batch, the concatenation of the ranks' slices in rank order. Both functions are built on the split-phase API of
 * simdnorm.h and are collective: every rank of `comm` calls them, in the same order as its other collectives on comm.
 *
 * What a step costs on the wire. Each call makes two collectives on a private duplicate of comm (made by the first
 * call on a communicator, one MPI_Comm_dup, and freed with comm):
 *   1. the agreement: one MPI_Allreduce of 17 uint64 (136 bytes), whatever the shape;
 *   2. the exchange: one MPI_Allgather of a record of 2 + 2c doubles per rank -- forward (count, status, mean[c],
 *      M2[c]), backward (count, status, sum_dy[c], sum_dy_xhat[c]).
 * So a rank sends 16c + 152 bytes per call and receives (ranks - 1) times 16c + 16 bytes besides the agreement:
 * O(ranks x c) doubles, independent of n and spatial. The records are merged (Chan's formula) or added in rank order
 * on every rank, which takes O(ranks x c) time and about (4 x ranks + 5) x c doubles of scratch a call. An
 * all-gather, not an all-reduce: MPI may sum in any order it likes, and the results would then differ between runs
 * and ranks.
 *
 * Agreement before exchange: bad input never hangs a job. Each rank first checks its own arguments, then all ranks
 * agree on the outcome before any data moves. If any rank's arguments are invalid, or a rank cannot allocate its
 * scratch, or c, spatial, layout, flags, eps, momentum or the choice of NULL for gamma, beta and the running statistics
 * differ between ranks (compared bit for bit), or the ranks' n*spatial sum to less than 2, every rank returns the same
 * status -- SIMDNORM_INVALID_ARGUMENT, or SIMDNORM_OUT_OF_MEMORY for scratch -- and has written nothing, and
 * simdnorm_mpi_last_error() names the lowest failing rank and its argument, e.g.
 *   "simdnorm_mpi_forward_training: rank 2 of 4: x is NULL"
 *   "simdnorm_mpi_forward_training: c differs between ranks: 16 on rank 0, 17 on rank 3"
 * Not checked (not worth a second exchange): that gamma, beta (and in backward batch_mean, batch_invstd) hold the same
 * values on every rank, as a data-parallel replica's do.
 *
 * Checked locally, before any collective (so these are the only failures that leave the other ranks waiting):
 * comm must not be MPI_COMM_NULL nor an intercommunicator, and MPI must be initialised and not finalised; otherwise
 * SIMDNORM_INVALID_ARGUMENT on the rank that called it.
 *
 * MPI errors never abort the process: the private communicator has MPI_ERRORS_RETURN. A collective that fails returns
 * SIMDNORM_UNSUPPORTED (distinct from SIMDNORM_INVALID_ARGUMENT: the arguments were fine, the communication was not)
 * with a message naming the MPI call and MPI's error string; nothing was written on that rank. What the other ranks
 * see then is MPI's business (most implementations cannot continue after a failed collective).
 *
 * After the exchange every rank has the same inputs, so the merge, the finish and the sums give every rank the same
 * result and the same status, SIMDNORM_NON_FINITE included. The steps after the exchange can still fail with
 * SIMDNORM_OUT_OF_MEMORY when the core cannot allocate its scratch on this rank: that rank then writes nothing, and
 * the others may have succeeded.
 *
 * Bitwise promises hold between ranks that run the same kernel path (simdnorm_isa()); on a cluster of different CPUs,
 * cap every rank at the common path (SIMDNORM_MAX_ISA).
 *
 * Messages: simdnorm_mpi_last_error() describes the last failure of a simdnorm_mpi_* call on the calling thread
 * (simdnorm_last_error() is the core's: it says nothing reliable about these calls).
 */
#ifndef SIMDNORM_SIMDNORM_MPI_H_
#define SIMDNORM_SIMDNORM_MPI_H_

#include <mpi.h>
#include <simdnorm/simdnorm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Collective over comm: every rank calls it with the same c, spatial, layout, flags, eps, momentum and the same
 * choice of NULL for gamma, beta and the running statistics. n may differ between ranks and may be 0 (that rank
 * contributes no values; x and y may then be NULL). Batch statistics are those of the concatenation of all ranks'
 * batches in rank order: the result equals simdnorm_forward_training over that concatenation within the usual
 * tolerances. batch_mean, batch_invstd and the running statistics come out bitwise identical on every rank, and
 * identical from run to run: moments are exchanged with an all-gather and merged in rank order, never with a
 * reduction whose order the MPI library may choose.
 *
 * Arguments as simdnorm_forward_training's (y may equal x; batch_mean, batch_invstd may be NULL; running_mean and
 * running_var both or neither), except that n may be 0 and that the count that must reach 2 is the sum of n*spatial
 * over the ranks. The per-channel outputs (batch_mean, batch_invstd, running_mean, running_var) must not overlap each
 * other, as in simdnorm_finish_moments. With one rank, or when only one rank has n > 0, every output is bit for bit
 * that of simdnorm_forward_training over the whole batch. SIMDNORM_NON_FINITE as there, on every rank alike. */
simdnorm_status simdnorm_mpi_forward_training(MPI_Comm comm, const simdnorm_shape* shape, const float* x, float* y,
                                              const float* gamma, const float* beta, float eps, float* batch_mean,
                                              float* batch_invstd, float* running_mean, float* running_var,
                                              float momentum, unsigned flags);

/* Collective likewise. dx as simdnorm_backward over the concatenated batch, for this rank's slice; dgamma and dbeta
 * are the sums over the whole concatenated batch, bitwise identical on every rank (a data-parallel framework must not
 * sum them again across ranks).
 *
 * Arguments as simdnorm_backward's (dx may equal dy; dx, dgamma, dbeta may each be NULL, on each rank as it likes),
 * with batch_mean and batch_invstd those simdnorm_mpi_forward_training wrote (the same on every rank). n may be 0:
 * x, dy and dx may then be NULL; batch_mean and batch_invstd are still required. The sums are added in rank order in
 * double, skipping ranks with n = 0; dgamma = (float)sum(dy'*xhat), dbeta = (float)sum(dy'), as simdnorm_backward
 * rounds them. With one rank, or when only one rank has n > 0, every output is bit for bit simdnorm_backward's. */
simdnorm_status simdnorm_mpi_backward(MPI_Comm comm, const simdnorm_shape* shape, const float* x, const float* dy,
                                      const float* gamma, const float* beta, const float* batch_mean,
                                      const float* batch_invstd, float* dx, float* dgamma, float* dbeta,
                                      unsigned flags);

/* Message describing the last failure of a simdnorm_mpi_* call on the calling thread, or "" if there was none.
 * Valid until the next simdnorm_mpi_* call on this thread. Never NULL. */
const char* simdnorm_mpi_last_error(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SIMDNORM_SIMDNORM_MPI_H_ */
