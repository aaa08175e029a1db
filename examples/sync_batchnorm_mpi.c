/*
 * Data-parallel training of one batch-norm layer across MPI ranks, with simdnorm::mpi.
 *
 *   mpirun -np 2 ./sync_batchnorm_mpi
 *
 * Each rank holds a slice of the batch (of different sizes here: 3, 2, 3, 2, ... images). The batch statistics are
 * those of the whole batch; backward gives every rank the same dgamma and dbeta, the sums over the whole batch, so each
 * rank takes the same gradient step on its copy of gamma and beta without a further all-reduce. The toy loss is
 * L = mean over the whole batch of (y - target)^2 / 2, whose gradient dy = (y - target) / (values in the batch).
 * Exits non-zero if a call fails, if the loss does not go down, or if the ranks' parameters ever differ.
 */
#include <math.h>
#include <simdnorm/simdnorm_mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kChannels = 16, kSpatial = 8 * 8, kSteps = 5 };

/* Deterministic values in [-1, 1) from a seed (a linear congruential generator). */
static float next_value(unsigned long long* state) {
  *state = *state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static int check(simdnorm_status status, const char* what, int rank) {
  if (status == SIMDNORM_SUCCESS) return 1;
  fprintf(stderr, "rank %d: %s: %s\n", rank, what, simdnorm_mpi_last_error());
  return 0;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);

  /* This rank's slice: 3 or 2 images of kChannels x 8 x 8, NCHW. */
  const simdnorm_shape shape = {rank % 2 == 0 ? 3u : 2u, kChannels, kSpatial, SIMDNORM_NCHW};
  const size_t count = shape.n * shape.c * shape.spatial;
  long long local_values = (long long)count, batch_values = 0;
  MPI_Allreduce(&local_values, &batch_values, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);

  float* x = malloc(count * sizeof(float));
  float* target = malloc(count * sizeof(float));
  float* y = malloc(count * sizeof(float));
  float* dy = malloc(count * sizeof(float));
  float gamma[kChannels], beta[kChannels], mean[kChannels], invstd[kChannels];
  float running_mean[kChannels], running_var[kChannels], dgamma[kChannels], dbeta[kChannels];
  if (!x || !target || !y || !dy) MPI_Abort(MPI_COMM_WORLD, 1);
  unsigned long long state = 1234567u + (unsigned long long)rank;
  for (size_t i = 0; i < count; ++i) {
    const size_t c = (i / shape.spatial) % shape.c;
    x[i] = 3.0f * next_value(&state) + (float)c;                    /* channel c has mean about c */
    target[i] = 0.5f * (float)(c % 3) + 0.25f * next_value(&state); /* the layer should learn a scale and shift */
  }
  for (int c = 0; c < kChannels; ++c) {
    gamma[c] = 1.0f;
    beta[c] = 0.0f;
    running_mean[c] = 0.0f;
    running_var[c] = 1.0f;
  }

  const float learning_rate = 0.5f;
  double first_loss = 0.0, loss = 0.0;
  int ok = 1;
  for (int step = 0; step < kSteps && ok; ++step) {
    /* Forward over the whole batch: every rank gets the same mean, invstd and running statistics. */
    ok = check(simdnorm_mpi_forward_training(MPI_COMM_WORLD, &shape, x, y, gamma, beta, 1e-5f, mean, invstd,
                                             running_mean, running_var, 0.1f, 0),
               "simdnorm_mpi_forward_training", rank);
    if (!ok) break;
    double local_loss = 0.0;
    for (size_t i = 0; i < count; ++i) {
      const float d = y[i] - target[i];
      local_loss += 0.5 * (double)d * d;
      dy[i] = d / (float)batch_values;
    }
    MPI_Allreduce(&local_loss, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    loss /= (double)batch_values;
    if (step == 0) first_loss = loss;
    /* Backward: dx in place over dy (it would go on to the layer below); dgamma and dbeta already summed over the
     * whole batch, the same on every rank. */
    ok = check(simdnorm_mpi_backward(MPI_COMM_WORLD, &shape, x, dy, gamma, beta, mean, invstd, dy, dgamma, dbeta, 0),
               "simdnorm_mpi_backward", rank);
    if (!ok) break;
    for (int c = 0; c < kChannels; ++c) {
      gamma[c] -= learning_rate * dgamma[c];
      beta[c] -= learning_rate * dbeta[c];
    }
    if (rank == 0) printf("step %d: loss %.6f (%d ranks, %lld values in the batch)\n", step, loss, ranks, batch_values);
  }

  /* Every replica must hold the same parameters: compare each rank's with rank 0's, bit for bit. */
  float params[2 * kChannels], first[2 * kChannels];
  memcpy(params, gamma, sizeof gamma);
  memcpy(params + kChannels, beta, sizeof beta);
  memcpy(first, params, sizeof params);
  MPI_Bcast(first, 2 * kChannels, MPI_FLOAT, 0, MPI_COMM_WORLD);
  int mine = ok && memcmp(first, params, sizeof params) == 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  const int learned = loss < first_loss;
  if (rank == 0) {
    printf("%s; loss %.6f -> %.6f%s\n", all ? "gamma and beta agree on every rank" : "FAILED: the ranks differ",
           first_loss, loss, learned ? "" : " (FAILED: it did not go down)");
  }
  free(x);
  free(target);
  free(y);
  free(dy);
  MPI_Finalize();
  return all && learned ? 0 : 1;
}
