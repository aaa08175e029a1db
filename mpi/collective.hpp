// The collective plumbing of simdnorm::mpi, shared by its two drivers (sync_batch_norm.cpp): the private
// communicator, the agreement round, the exchange of records, and the messages behind simdnorm_mpi_last_error().
#ifndef SIMDNORM_MPI_COLLECTIVE_HPP_
#define SIMDNORM_MPI_COLLECTIVE_HPP_

#include <simdnorm/simdnorm_mpi.h>

#include <cstddef>
#include <cstdint>

namespace simdnorm_mpi {

constexpr std::size_t kMessageBytes = 512;

// Records a formatted message for simdnorm_mpi_last_error() on this thread and returns `status`.
simdnorm_status fail(simdnorm_status status, const char* format, ...) __attribute__((format(printf, 2, 3)));
// A failure of a core function, with the core's message (simdnorm_last_error()).
simdnorm_status core_failure(const char* fn, simdnorm_status status);

// One collective call as this rank sees it.
struct Call {
  const char* fn;
  MPI_Comm comm;  // the private duplicate of the caller's communicator
  int rank, size;
};

// Checks comm, locally (these are the only failures that leave the other ranks waiting), and finds or makes its
// private duplicate: a collective on the first call with that communicator.
simdnorm_status open_call(const char* fn, MPI_Comm comm, Call* call);

// What every rank must pass alike, in the order in which a difference is reported.
enum Field { kFunction, kChannels, kSpatial, kLayout, kFlags, kEps, kMomentum, kNulls, kFields };
constexpr std::uint64_t kForward = 1, kBackward = 2;                         // values of kFunction
constexpr std::uint64_t kGammaGiven = 1, kBetaGiven = 2, kRunningGiven = 4;  // bits of kNulls

// This rank's side of the agreement: its fields, and the outcome of its own checks and scratch allocation.
struct Local {
  std::uint64_t fields[kFields] = {};
  simdnorm_status status = SIMDNORM_SUCCESS;
  char reason[256] = "";  // why, when status is not SIMDNORM_SUCCESS
};

// One MPI_Allreduce: SIMDNORM_SUCCESS on every rank, or the same failure on every rank, naming the lowest failing
// rank and its reason, or the first field that differs with two ranks' values.
simdnorm_status agree(const Call& call, const Local& local);

// One MPI_Allgather of every rank's record of 2 + 2c doubles (count, status of its local step, then 2c values) into
// `table`, rank after rank. Fails on every rank alike when some rank's local step failed or when the counts sum to
// less than 2; otherwise `total` is their sum.
simdnorm_status exchange(const Call& call, const double* record, std::size_t c, double* table, double* total);

}  // namespace simdnorm_mpi

#endif  // SIMDNORM_MPI_COLLECTIVE_HPP_
