// Batch norm synchronised over MPI, built on the split phases of simdnorm.h (the contract, with the traffic and the
// failure rules, is include/simdnorm/simdnorm_mpi.h). Each call is a driver of named steps:
//   open      the private communicator (collective.cpp);
//   check     this rank's own arguments, and its scratch allocated, before any collective;
//   agree     one MPI_Allreduce: every rank valid and every rank alike, or all return the same failure;
//   reduce    the local part: simdnorm_moments or simdnorm_backward_reduce into this rank's record;
//   exchange  one MPI_Allgather of the records (double), then the same combination in rank order on every rank;
//   apply     the local part again: simdnorm_normalize or simdnorm_backward_apply; then publish the statistics.
// Nothing the caller passed is written before the last step that can fail on every rank alike (the exchange).
#include <simdnorm/simdnorm_mpi.h>

#include <cfloat>
#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "collective.hpp"

namespace simdnorm_mpi {
namespace {

// ---- check: this rank's arguments, with the core's rules and wording, except that n may be 0 (the tensors may then
// be NULL) and that the count that must reach 2 is the sum over the ranks (checked by the exchange).

__attribute__((format(printf, 2, 3))) bool refuse(Local& local, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(local.reason, sizeof local.reason, format, args);
  va_end(args);
  local.status = SIMDNORM_INVALID_ARGUMENT;
  return false;
}

std::uint64_t float_bits(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

bool overlap(const void* a, const void* b, std::size_t bytes) {
  if (a == nullptr || b == nullptr) return false;
  const auto pa = reinterpret_cast<std::uintptr_t>(a), pb = reinterpret_cast<std::uintptr_t>(b);
  return pa < pb + bytes && pb < pa + bytes;
}

// The shape, and the record of 2 + 2c doubles that the exchange sends as one MPI message (an int count).
bool check_shape(Local& local, const simdnorm_shape* s, std::size_t* elements) {
  if (s == nullptr) return refuse(local, "shape is NULL");
  if (s->c == 0) return refuse(local, "shape->c is 0");
  if (s->spatial == 0) return refuse(local, "shape->spatial is 0");
  int layout;
  static_assert(sizeof layout == sizeof s->layout, "layout field size");
  std::memcpy(&layout, &s->layout, sizeof layout);
  if (layout != SIMDNORM_NCHW && layout != SIMDNORM_NHWC) {
    return refuse(local, "shape->layout %d is neither SIMDNORM_NCHW nor SIMDNORM_NHWC", layout);
  }
  std::size_t nc = 0;
  if (__builtin_mul_overflow(s->n, s->c, &nc) || __builtin_mul_overflow(nc, s->spatial, elements) ||
      *elements > static_cast<std::size_t>(PTRDIFF_MAX) / sizeof(float)) {
    return refuse(local, "shape n*c*spatial (%zu*%zu*%zu) exceeds the addressable size", s->n, s->c, s->spatial);
  }
  if (s->c > static_cast<std::size_t>(INT_MAX / 2 - 1)) {
    return refuse(local, "c = %zu exceeds what one MPI message carries (%d channels)", s->c, INT_MAX / 2 - 1);
  }
  local.fields[kChannels] = s->c;
  local.fields[kSpatial] = s->spatial;
  local.fields[kLayout] = static_cast<std::uint64_t>(layout);
  return true;
}

bool check_flags(Local& local, unsigned flags) {
  local.fields[kFlags] = flags;
  if ((flags & ~SIMDNORM_FUSE_RELU) != 0u) return refuse(local, "flags 0x%x has unknown bits", flags);
  return true;
}

struct ForwardArgs {
  const simdnorm_shape* shape;
  const float* x;
  float* y;
  const float *gamma, *beta;
  float eps;
  float *batch_mean, *batch_invstd, *running_mean, *running_var;
  float momentum;
  unsigned flags;
};

bool check_forward(Local& local, const ForwardArgs& a) {
  local.fields[kFunction] = kForward;
  local.fields[kEps] = float_bits(a.eps);
  local.fields[kMomentum] = float_bits(a.momentum);
  local.fields[kNulls] = (a.gamma ? kGammaGiven : 0) | (a.beta ? kBetaGiven : 0) | (a.running_mean ? kRunningGiven : 0);
  std::size_t elements = 0;
  if (!check_shape(local, a.shape, &elements)) return false;
  if (a.shape->n > 0 && a.x == nullptr) return refuse(local, "x is NULL");
  if (a.shape->n > 0 && a.y == nullptr) return refuse(local, "y is NULL");
  if (a.x != a.y && overlap(a.x, a.y, elements * sizeof(float))) {
    return refuse(local, "y overlaps x without being the same buffer");
  }
  if (!(a.eps > 0.0f && a.eps <= FLT_MAX)) return refuse(local, "eps (%g) must be finite and > 0", double(a.eps));
  if (!(a.momentum >= 0.0f && a.momentum <= 1.0f)) {
    return refuse(local, "momentum (%g) must be in [0, 1]", double(a.momentum));
  }
  if ((a.running_mean == nullptr) != (a.running_var == nullptr)) {
    return refuse(local, "running_mean and running_var must be both NULL or both non-NULL (%s is NULL)",
                  a.running_mean == nullptr ? "running_mean" : "running_var");
  }
  const float* outputs[] = {a.batch_mean, a.batch_invstd, a.running_mean, a.running_var};
  const char* names[] = {"batch_mean", "batch_invstd", "running_mean", "running_var"};
  for (int i = 0; i < 4; ++i) {
    for (int j = i + 1; j < 4; ++j) {
      if (overlap(outputs[i], outputs[j], a.shape->c * sizeof(float))) {
        return refuse(local, "%s overlaps %s", names[j], names[i]);
      }
    }
  }
  return check_flags(local, a.flags);
}

struct BackwardArgs {
  const simdnorm_shape* shape;
  const float *x, *dy, *gamma, *beta, *batch_mean, *batch_invstd;
  float *dx, *dgamma, *dbeta;
  unsigned flags;
};

bool check_backward(Local& local, const BackwardArgs& a) {
  local.fields[kFunction] = kBackward;
  local.fields[kNulls] = (a.gamma ? kGammaGiven : 0) | (a.beta ? kBetaGiven : 0);
  std::size_t elements = 0;
  if (!check_shape(local, a.shape, &elements)) return false;
  if (a.shape->n > 0 && a.x == nullptr) return refuse(local, "x is NULL");
  if (a.shape->n > 0 && a.dy == nullptr) return refuse(local, "dy is NULL");
  if (a.batch_mean == nullptr) return refuse(local, "batch_mean is NULL");
  if (a.batch_invstd == nullptr) return refuse(local, "batch_invstd is NULL");
  const std::size_t bytes = elements * sizeof(float);
  if (a.dx != a.dy && overlap(a.dx, a.dy, bytes)) return refuse(local, "dx overlaps dy without being the same buffer");
  if (overlap(a.dx, a.x, bytes)) return refuse(local, "dx overlaps x");
  return check_flags(local, a.flags);
}

// The scratch of a call, in doubles: this rank's record and everybody's (2 + 2c each), the counts, the moments
// repacked as parts x c tables, and the merged moments and float statistics (3c). Backward uses a prefix of it.
double* allocate_scratch(Local& local, std::size_t c, int ranks) {
  const std::size_t parts = static_cast<std::size_t>(ranks), record = 2 + 2 * c;
  std::size_t tables = 0, records = 0, total = 0;
  if (__builtin_mul_overflow(parts + 1, record, &records) || __builtin_mul_overflow(2 * parts, c, &tables) ||
      __builtin_add_overflow(records, tables + parts + 3 * c, &total) || total > SIZE_MAX / sizeof(double)) {
    total = SIZE_MAX / sizeof(double);  // malloc fails below
  }
  // malloc, not new double[]: the statistics are stored as floats in the last part.
  double* scratch = static_cast<double*>(std::malloc(total * sizeof(double)));
  if (scratch == nullptr) {
    local.status = SIMDNORM_OUT_OF_MEMORY;
    std::snprintf(local.reason, sizeof local.reason, "cannot allocate %zu doubles of scratch", total);
  }
  return scratch;
}

// ---- The two drivers.

simdnorm_status forward_steps(const Call& call, const ForwardArgs& a, double* scratch) {
  const std::size_t c = a.shape->c, parts = static_cast<std::size_t>(call.size), size = 2 + 2 * c;
  double* const record = scratch;
  double* const table = record + size;
  double* const counts = table + parts * size;
  double* const means = counts + parts;
  double* const m2s = means + parts * c;
  double* const mean = m2s + parts * c;
  double* const m2 = mean + c;
  float* const stats = reinterpret_cast<float*>(m2 + c);  // batch mean, then batch invstd
  std::memset(record, 0, size * sizeof(double));
  record[0] = static_cast<double>(a.shape->n * a.shape->spatial);
  if (a.shape->n > 0) record[1] = simdnorm_moments(a.shape, a.x, record + 2, record + 2 + c);
  double total = 0.0;
  simdnorm_status st = exchange(call, record, c, table, &total);
  if (st != SIMDNORM_SUCCESS) return st;
  for (std::size_t p = 0; p < parts; ++p) {
    counts[p] = table[p * size];
    std::memcpy(means + p * c, table + p * size + 2, c * sizeof(double));
    std::memcpy(m2s + p * c, table + p * size + 2 + c, c * sizeof(double));
  }
  st = simdnorm_merge_moments(parts, c, counts, means, m2s, mean, m2, &total);
  if (st != SIMDNORM_SUCCESS) return core_failure(call.fn, st);
  // Statistics into scratch first, so that a failed normalisation (out of memory) leaves the caller's arrays as
  // they were; the running statistics are updated last, by a second finish of the same moments (the same bits).
  const simdnorm_status finished =
      simdnorm_finish_moments(c, total, mean, m2, a.eps, stats, stats + c, nullptr, nullptr, a.momentum);
  if (finished != SIMDNORM_SUCCESS && finished != SIMDNORM_NON_FINITE) return core_failure(call.fn, finished);
  char non_finite[kMessageBytes];
  std::snprintf(non_finite, sizeof non_finite, "%s", simdnorm_last_error());
  if (a.shape->n > 0) {
    st = simdnorm_normalize(a.shape, a.x, a.y, a.gamma, a.beta, stats, stats + c, a.flags);
    if (st != SIMDNORM_SUCCESS) return core_failure(call.fn, st);
  }
  if (a.batch_mean != nullptr) std::memcpy(a.batch_mean, stats, c * sizeof(float));
  if (a.batch_invstd != nullptr) std::memcpy(a.batch_invstd, stats + c, c * sizeof(float));
  if (a.running_mean != nullptr) {
    simdnorm_finish_moments(c, total, mean, m2, a.eps, nullptr, nullptr, a.running_mean, a.running_var, a.momentum);
  }
  if (finished == SIMDNORM_NON_FINITE) return fail(SIMDNORM_NON_FINITE, "%s: %s", call.fn, non_finite);
  return SIMDNORM_SUCCESS;
}

simdnorm_status backward_steps(const Call& call, const BackwardArgs& a, double* scratch) {
  const std::size_t c = a.shape->c, parts = static_cast<std::size_t>(call.size), size = 2 + 2 * c;
  double* const record = scratch;
  double* const table = record + size;
  double* const sums = table + parts * size;  // sum_dy, then sum_dy_xhat
  std::memset(record, 0, size * sizeof(double));
  record[0] = static_cast<double>(a.shape->n * a.shape->spatial);
  if (a.shape->n > 0) {
    record[1] = simdnorm_backward_reduce(a.shape, a.x, a.dy, a.gamma, a.beta, a.batch_mean, a.batch_invstd, record + 2,
                                         record + 2 + c, a.flags);
  }
  double total = 0.0;
  const simdnorm_status st = exchange(call, record, c, table, &total);
  if (st != SIMDNORM_SUCCESS) return st;
  // In rank order from the first rank with values: ranks without any add nothing, not even a +0 to a -0.
  bool first = true;
  for (std::size_t p = 0; p < parts; ++p) {
    const double* other = table + p * size;
    if (other[0] == 0.0) continue;
    for (std::size_t j = 0; j < 2 * c; ++j) sums[j] = first ? other[2 + j] : sums[j] + other[2 + j];
    first = false;
  }
  if (a.shape->n > 0 && a.dx != nullptr) {
    const simdnorm_status applied = simdnorm_backward_apply(a.shape, a.x, a.dy, a.gamma, a.beta, a.batch_mean,
                                                            a.batch_invstd, sums, sums + c, total, a.dx, a.flags);
    if (applied != SIMDNORM_SUCCESS) return core_failure(call.fn, applied);
  }
  for (std::size_t j = 0; j < c; ++j) {
    if (a.dbeta != nullptr) a.dbeta[j] = static_cast<float>(sums[j]);
    if (a.dgamma != nullptr) a.dgamma[j] = static_cast<float>(sums[c + j]);
  }
  return SIMDNORM_SUCCESS;
}

// open, check, allocate, agree, then the steps.
template <class Args, class Check, class Steps>
simdnorm_status run(const char* fn, MPI_Comm comm, const Args& args, Check check, Steps steps) {
  Call call;
  simdnorm_status st = open_call(fn, comm, &call);
  if (st != SIMDNORM_SUCCESS) return st;
  Local local;
  struct Free {
    void operator()(double* p) const { std::free(p); }
  };
  std::unique_ptr<double, Free> scratch;
  if (check(local, args)) scratch.reset(allocate_scratch(local, args.shape->c, call.size));
  st = agree(call, local);
  return st != SIMDNORM_SUCCESS ? st : steps(call, args, scratch.get());
}

}  // namespace
}  // namespace simdnorm_mpi

using simdnorm_mpi::BackwardArgs;
using simdnorm_mpi::ForwardArgs;

extern "C" simdnorm_status simdnorm_mpi_forward_training(MPI_Comm comm, const simdnorm_shape* shape, const float* x,
                                                         float* y, const float* gamma, const float* beta, float eps,
                                                         float* batch_mean, float* batch_invstd, float* running_mean,
                                                         float* running_var, float momentum, unsigned flags) {
  const ForwardArgs args{shape,        x,           y,        gamma, beta, eps, batch_mean, batch_invstd,
                         running_mean, running_var, momentum, flags};
  return simdnorm_mpi::run("simdnorm_mpi_forward_training", comm, args, simdnorm_mpi::check_forward,
                           simdnorm_mpi::forward_steps);
}

extern "C" simdnorm_status simdnorm_mpi_backward(MPI_Comm comm, const simdnorm_shape* shape, const float* x,
                                                 const float* dy, const float* gamma, const float* beta,
                                                 const float* batch_mean, const float* batch_invstd, float* dx,
                                                 float* dgamma, float* dbeta, unsigned flags) {
  const BackwardArgs args{shape, x, dy, gamma, beta, batch_mean, batch_invstd, dx, dgamma, dbeta, flags};
  return simdnorm_mpi::run("simdnorm_mpi_backward", comm, args, simdnorm_mpi::check_backward,
                           simdnorm_mpi::backward_steps);
}
