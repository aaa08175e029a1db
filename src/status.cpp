#include "status.hpp"

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <type_traits>

namespace simdnorm {
namespace {

thread_local char g_last_error[512] = "";

constexpr unsigned kKnownFlags = SIMDNORM_FUSE_RELU;

#define SIMDNORM_CHECK(expr)                             \
  do {                                                   \
    const simdnorm_status check_status_ = (expr);        \
    if (check_status_ != SIMDNORM_SUCCESS) return check_status_; \
  } while (0)

simdnorm_status check_shape(const char* fn, const simdnorm_shape* shape, Geometry* g) {
  if (shape == nullptr) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: shape is NULL", fn);
  if (shape->n == 0) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: shape->n is 0", fn);
  if (shape->c == 0) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: shape->c is 0", fn);
  if (shape->spatial == 0) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: shape->spatial is 0", fn);
  // A C caller can store any int in the enum; in C++ loading a value outside the enumerators' range is undefined,
  // so the field is read as its underlying integer.
  std::underlying_type_t<simdnorm_layout> layout;
  static_assert(sizeof layout == sizeof shape->layout, "layout field size");
  std::memcpy(&layout, &shape->layout, sizeof layout);
  if (layout != SIMDNORM_NCHW && layout != SIMDNORM_NHWC) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: shape->layout %lld is neither SIMDNORM_NCHW nor SIMDNORM_NHWC", fn,
                static_cast<long long>(layout));
  }
  // The whole tensor must be addressable as bytes through ptrdiff_t, so that every offset and pointer difference
  // the kernels form is representable.
  const std::size_t limit = static_cast<std::size_t>(PTRDIFF_MAX) / sizeof(float);
  std::size_t nc = 0, total = 0;
  if (__builtin_mul_overflow(shape->n, shape->c, &nc) || __builtin_mul_overflow(nc, shape->spatial, &total)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: shape n*c*spatial (%zu*%zu*%zu) overflows size_t", fn, shape->n,
                shape->c, shape->spatial);
  }
  if (total > limit) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: shape n*c*spatial = %zu floats exceeds the addressable size", fn,
                total);
  }
  g->n = shape->n;
  g->c = shape->c;
  g->spatial = shape->spatial;
  g->layout = shape->layout;
  g->elements = total;
  g->per_channel = shape->n * shape->spatial;
  return SIMDNORM_SUCCESS;
}

simdnorm_status check_required(const char* fn, const void* pointer, const char* name) {
  if (pointer == nullptr) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: %s is NULL", fn, name);
  return SIMDNORM_SUCCESS;
}

simdnorm_status check_eps(const char* fn, float eps) {
  if (!std::isfinite(eps) || !(eps > 0.0f)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: eps (%g) must be finite and > 0", fn, static_cast<double>(eps));
  }
  return SIMDNORM_SUCCESS;
}

simdnorm_status check_flags(const char* fn, unsigned flags) {
  if ((flags & ~kKnownFlags) != 0u) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: flags 0x%x has unknown bits 0x%x", fn, flags, flags & ~kKnownFlags);
  }
  return SIMDNORM_SUCCESS;
}

simdnorm_status check_training_size(const char* fn, const Geometry& g) {
  if (g.per_channel < 2) {
    return fail(SIMDNORM_INVALID_ARGUMENT,
                "%s: need more than one value per channel when training (n*spatial = %zu)", fn, g.per_channel);
  }
  return SIMDNORM_SUCCESS;
}

// The bytes an argument covers, with its name for messages.
struct Extent {
  const void* data;
  std::size_t bytes;
  const char* name;
};

// Whether a and b share a byte; a NULL or empty extent shares none.
bool overlaps(const Extent& a, const Extent& b) {
  if (a.data == nullptr || b.data == nullptr) return false;
  const auto pa = reinterpret_cast<std::uintptr_t>(a.data);
  const auto pb = reinterpret_cast<std::uintptr_t>(b.data);
  return pa < pb + b.bytes && pb < pa + a.bytes;
}

// `output` must share no byte with `input`, except that it may start exactly where `input` starts when `in_place`
// says how the header allows that ("the same buffer", "its row 0"): the op then reads each element before it writes
// there.
simdnorm_status check_disjoint(const char* fn, const Extent& output, const Extent& input, const char* in_place) {
  if (in_place != nullptr && output.data == input.data) return SIMDNORM_SUCCESS;
  if (!overlaps(output, input)) return SIMDNORM_SUCCESS;
  return fail(SIMDNORM_INVALID_ARGUMENT, "%s: %s overlaps %s%s%s", fn, output.name, input.name,
              in_place != nullptr ? " without being " : "", in_place != nullptr ? in_place : "");
}

// An output tensor may be the very same buffer as one input (`may_equal`), never a partial overlap of it.
simdnorm_status check_alias(const char* fn, const float* input, const char* input_name, const float* output,
                            const char* output_name, std::size_t count, bool may_equal) {
  const std::size_t bytes = count * sizeof(float);
  return check_disjoint(fn, Extent{output, bytes, output_name}, Extent{input, bytes, input_name},
                        may_equal ? "the same buffer" : nullptr);
}

// Per-channel outputs share no byte with each other nor with the per-channel inputs. (Per-channel arrays are not
// checked against tensors, as in the one-call functions.)
simdnorm_status check_separate(const char* fn, std::initializer_list<Extent> outputs,
                               std::initializer_list<Extent> inputs) {
  for (const Extent* o = outputs.begin(); o != outputs.end(); ++o) {
    for (const Extent* later = o + 1; later != outputs.end(); ++later) {
      SIMDNORM_CHECK(check_disjoint(fn, *later, *o, nullptr));
    }
    for (const Extent& input : inputs) SIMDNORM_CHECK(check_disjoint(fn, *o, input, nullptr));
  }
  return SIMDNORM_SUCCESS;
}

// c per-channel elements of `element_bytes` each, given as an argument of its own: at least one, and addressable
// through ptrdiff_t.
simdnorm_status check_channels(const char* fn, std::size_t c, std::size_t element_bytes) {
  if (c == 0) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: c is 0", fn);
  if (c > static_cast<std::size_t>(PTRDIFF_MAX) / element_bytes) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: c = %zu exceeds the addressable size", fn, c);
  }
  return SIMDNORM_SUCCESS;
}

// A number of values, passed as a double so that it travels with the moments: finite and >= `minimum` (NaN is not).
bool is_count(double value, double minimum) { return std::isfinite(value) && value >= minimum; }

// The total count that finishes statistics or scales backward's sums: more than one value, as training needs.
simdnorm_status check_total_count(const char* fn, double count) {
  if (!is_count(count, 2.0)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: count (%g) must be finite and >= 2", fn, count);
  }
  return SIMDNORM_SUCCESS;
}

// The running statistics of a training step (forward training, finish_moments): momentum in [0, 1], running_mean
// and running_var both given or both NULL.
simdnorm_status check_running(const char* fn, const float* running_mean, const float* running_var, float momentum) {
  if (!(momentum >= 0.0f && momentum <= 1.0f)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: momentum (%g) must be in [0, 1]", fn, static_cast<double>(momentum));
  }
  if ((running_mean == nullptr) != (running_var == nullptr)) {
    return fail(SIMDNORM_INVALID_ARGUMENT,
                "%s: running_mean and running_var must be both NULL or both non-NULL (%s is NULL)", fn,
                running_mean == nullptr ? "running_mean" : "running_var");
  }
  return SIMDNORM_SUCCESS;
}

// An elementwise pass from x to y with two required per-channel arrays (inference, affine, normalize): the shape,
// the pointers, and y either x itself or apart from it.
simdnorm_status check_elementwise(const char* fn, const simdnorm_shape* shape, const float* x, const float* y,
                                  const float* first, const char* first_name, const float* second,
                                  const char* second_name, Geometry* g) {
  SIMDNORM_CHECK(check_shape(fn, shape, g));
  SIMDNORM_CHECK(check_required(fn, x, "x"));
  SIMDNORM_CHECK(check_required(fn, y, "y"));
  SIMDNORM_CHECK(check_required(fn, first, first_name));
  SIMDNORM_CHECK(check_required(fn, second, second_name));
  return check_alias(fn, x, "x", y, "y", g->elements, true);
}

// What every backward function reads (x, dy, batch_mean, batch_invstd), where dx may lie when given (dy itself or
// apart from it, and apart from x), and the flags.
simdnorm_status check_backward(const char* fn, const BackwardArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_shape(fn, a.shape, g));
  SIMDNORM_CHECK(check_required(fn, a.x, "x"));
  SIMDNORM_CHECK(check_required(fn, a.dy, "dy"));
  SIMDNORM_CHECK(check_required(fn, a.batch_mean, "batch_mean"));
  SIMDNORM_CHECK(check_required(fn, a.batch_invstd, "batch_invstd"));
  SIMDNORM_CHECK(check_alias(fn, a.dy, "dy", a.dx, "dx", g->elements, true));
  SIMDNORM_CHECK(check_alias(fn, a.x, "x", a.dx, "dx", g->elements, false));
  return check_flags(fn, a.flags);
}

// A rows x cols matrix (LayerNorm, RMSNorm): both at least 1, and the whole matrix addressable as bytes through
// ptrdiff_t, as check_shape requires of a tensor.
simdnorm_status check_matrix(const char* fn, std::size_t rows, std::size_t cols) {
  if (rows == 0) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: rows is 0", fn);
  if (cols == 0) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: cols is 0", fn);
  std::size_t total = 0;
  if (__builtin_mul_overflow(rows, cols, &total)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: rows*cols (%zu*%zu) overflows size_t", fn, rows, cols);
  }
  if (total > static_cast<std::size_t>(PTRDIFF_MAX) / sizeof(float)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: rows*cols = %zu floats exceeds the addressable size", fn, total);
  }
  return SIMDNORM_SUCCESS;
}

// The flags of LayerNorm, RMSNorm and GroupNorm: only GroupNorm (`relu`) knows SIMDNORM_FUSE_RELU; the row norms
// define no flag, so any bit is refused there.
simdnorm_status check_norm_flags(const char* fn, unsigned flags, bool relu) {
  if (relu) return check_flags(fn, flags);
  if (flags != 0u) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: flags 0x%x must be 0", fn, flags);
  return SIMDNORM_SUCCESS;
}

// GroupNorm's groups: at least one, and c/groups channels each.
simdnorm_status check_groups(const char* fn, std::size_t groups, const Geometry& g) {
  if (groups == 0) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: groups is 0", fn);
  if (g.c % groups != 0) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: groups (%zu) does not divide shape->c (%zu)", fn, groups, g.c);
  }
  return SIMDNORM_SUCCESS;
}

// The buffers of a LayerNorm, RMSNorm or GroupNorm call (those it lacks NULL), and their sizes in floats: x, y, dy and
// dx (`elements`), gamma, beta, dgamma and dbeta (`params`), mean and rstd (`stats`).
struct NormBuffers {
  const float* x;
  const float* gamma;
  const float* beta;
  const float* mean;  // backward's saved statistics (forward's are outputs, passed on their own)
  const float* rstd;
  std::size_t elements, params, stats;

  Extent tensor(const void* p, const char* name) const { return Extent{p, elements * sizeof(float), name}; }
  Extent param(const void* p, const char* name) const { return Extent{p, params * sizeof(float), name}; }
  Extent stat(const void* p, const char* name) const { return Extent{p, stats * sizeof(float), name}; }
};

// Forward, after the shape: x and y required, y x itself or apart from it, eps, flags (`relu`: GroupNorm's), then
// every output apart from every other buffer -- unlike batch norm's one-call functions, the small arrays are checked
// against the tensors too.
simdnorm_status check_norm_forward(const char* fn, const NormBuffers& b, float* y, float* mean, float* rstd, float eps,
                                   unsigned flags, bool relu) {
  SIMDNORM_CHECK(check_required(fn, b.x, "x"));
  SIMDNORM_CHECK(check_required(fn, y, "y"));
  SIMDNORM_CHECK(check_alias(fn, b.x, "x", y, "y", b.elements, true));
  SIMDNORM_CHECK(check_eps(fn, eps));
  SIMDNORM_CHECK(check_norm_flags(fn, flags, relu));
  const Extent out_mean = b.stat(mean, "mean"), out_rstd = b.stat(rstd, "rstd");
  SIMDNORM_CHECK(check_separate(fn, {b.tensor(y, "y"), out_mean, out_rstd},
                                {b.param(b.gamma, "gamma"), b.param(b.beta, "beta")}));
  return check_separate(fn, {out_mean, out_rstd}, {b.tensor(b.x, "x")});
}

// Backward, after the shape: x, dy, rstd required (and mean with `need_mean`); dx, when given, dy itself or apart
// from it and apart from x, as batch norm's backward allows; flags; then every output apart from every other buffer.
simdnorm_status check_norm_backward(const char* fn, const NormBuffers& b, const float* dy, float* dx, float* dgamma,
                                    float* dbeta, bool need_mean, unsigned flags, bool relu) {
  SIMDNORM_CHECK(check_required(fn, b.x, "x"));
  SIMDNORM_CHECK(check_required(fn, dy, "dy"));
  if (need_mean) SIMDNORM_CHECK(check_required(fn, b.mean, "mean"));
  SIMDNORM_CHECK(check_required(fn, b.rstd, "rstd"));
  SIMDNORM_CHECK(check_alias(fn, dy, "dy", dx, "dx", b.elements, true));
  SIMDNORM_CHECK(check_alias(fn, b.x, "x", dx, "dx", b.elements, false));
  SIMDNORM_CHECK(check_norm_flags(fn, flags, relu));
  const Extent out_dgamma = b.param(dgamma, "dgamma"), out_dbeta = b.param(dbeta, "dbeta");
  SIMDNORM_CHECK(check_separate(fn, {b.tensor(dx, "dx"), out_dgamma, out_dbeta},
                                {b.param(b.gamma, "gamma"), b.param(b.beta, "beta"), b.stat(b.mean, "mean"),
                                 b.stat(b.rstd, "rstd")}));
  return check_separate(fn, {out_dgamma, out_dbeta}, {b.tensor(b.x, "x"), b.tensor(dy, "dy")});
}

}  // namespace

simdnorm_status fail(simdnorm_status status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(g_last_error, sizeof g_last_error, format, args);
  va_end(args);
  return status;
}

simdnorm_status validate(const char* fn, const TrainingArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_shape(fn, a.shape, g));
  SIMDNORM_CHECK(check_required(fn, a.x, "x"));
  SIMDNORM_CHECK(check_required(fn, a.y, "y"));
  SIMDNORM_CHECK(check_alias(fn, a.x, "x", a.y, "y", g->elements, true));
  SIMDNORM_CHECK(check_eps(fn, a.eps));
  SIMDNORM_CHECK(check_running(fn, a.running_mean, a.running_var, a.momentum));
  SIMDNORM_CHECK(check_flags(fn, a.flags));
  SIMDNORM_CHECK(check_training_size(fn, *g));
  return SIMDNORM_SUCCESS;
}

simdnorm_status validate(const char* fn, const InferenceArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_elementwise(fn, a.shape, a.x, a.y, a.mean, "mean", a.var, "var", g));
  SIMDNORM_CHECK(check_eps(fn, a.eps));
  SIMDNORM_CHECK(check_flags(fn, a.flags));
  return SIMDNORM_SUCCESS;
}

simdnorm_status validate(const char* fn, const BackwardArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_backward(fn, a, g));
  SIMDNORM_CHECK(check_training_size(fn, *g));
  return SIMDNORM_SUCCESS;
}

simdnorm_status validate(const char* fn, const FoldArgs& a) {
  SIMDNORM_CHECK(check_channels(fn, a.c, sizeof(float)));
  SIMDNORM_CHECK(check_required(fn, a.mean, "mean"));
  SIMDNORM_CHECK(check_required(fn, a.var, "var"));
  SIMDNORM_CHECK(check_required(fn, a.scale, "scale"));
  SIMDNORM_CHECK(check_required(fn, a.shift, "shift"));
  SIMDNORM_CHECK(check_eps(fn, a.eps));
  return SIMDNORM_SUCCESS;
}

simdnorm_status validate(const char* fn, const AffineArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_elementwise(fn, a.shape, a.x, a.y, a.scale, "scale", a.shift, "shift", g));
  SIMDNORM_CHECK(check_flags(fn, a.flags));
  return SIMDNORM_SUCCESS;
}

simdnorm_status validate(const char* fn, const MomentsArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_shape(fn, a.shape, g));
  SIMDNORM_CHECK(check_required(fn, a.x, "x"));
  SIMDNORM_CHECK(check_required(fn, a.mean, "mean"));
  SIMDNORM_CHECK(check_required(fn, a.m2, "m2"));
  const std::size_t row = g->c * sizeof(double);
  return check_separate(fn, {{a.mean, row, "mean"}, {a.m2, row, "m2"}}, {});
}

simdnorm_status validate(const char* fn, const MergeArgs& a) {
  if (a.parts == 0) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: parts is 0", fn);
  SIMDNORM_CHECK(check_channels(fn, a.c, sizeof(double)));
  std::size_t table = 0;
  if (__builtin_mul_overflow(a.parts, a.c, &table) || table > static_cast<std::size_t>(PTRDIFF_MAX) / sizeof(double)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: parts*c = %zu*%zu doubles exceeds the addressable size", fn, a.parts,
                a.c);
  }
  SIMDNORM_CHECK(check_required(fn, a.counts, "counts"));
  SIMDNORM_CHECK(check_required(fn, a.means, "means"));
  SIMDNORM_CHECK(check_required(fn, a.m2s, "m2s"));
  SIMDNORM_CHECK(check_required(fn, a.mean, "mean"));
  SIMDNORM_CHECK(check_required(fn, a.m2, "m2"));
  SIMDNORM_CHECK(check_required(fn, a.total, "total"));
  for (std::size_t p = 0; p < a.parts; ++p) {
    if (!is_count(a.counts[p], 0.0)) {
      return fail(SIMDNORM_INVALID_ARGUMENT, "%s: counts[%zu] (%g) must be finite and >= 0", fn, p, a.counts[p]);
    }
  }
  const Extent counts{a.counts, a.parts * sizeof(double), "counts"};
  const Extent means{a.means, table * sizeof(double), "means"}, m2s{a.m2s, table * sizeof(double), "m2s"};
  const Extent mean{a.mean, a.c * sizeof(double), "mean"}, m2{a.m2, a.c * sizeof(double), "m2"};
  const Extent total{a.total, sizeof(double), "total"};
  // The merge writes channel j of mean and m2 after it has read channel j of every part, so they may be row 0 of
  // means and m2s; any other overlap of an output with an input or another output is refused.
  SIMDNORM_CHECK(check_disjoint(fn, mean, means, "its row 0"));
  SIMDNORM_CHECK(check_disjoint(fn, m2, m2s, "its row 0"));
  SIMDNORM_CHECK(check_disjoint(fn, mean, m2s, nullptr));
  SIMDNORM_CHECK(check_disjoint(fn, m2, means, nullptr));
  SIMDNORM_CHECK(check_separate(fn, {mean, m2, total}, {counts}));
  return check_separate(fn, {total}, {means, m2s});
}

simdnorm_status validate(const char* fn, const FinishArgs& a) {
  SIMDNORM_CHECK(check_channels(fn, a.c, sizeof(double)));
  SIMDNORM_CHECK(check_total_count(fn, a.count));
  SIMDNORM_CHECK(check_required(fn, a.mean, "mean"));
  SIMDNORM_CHECK(check_required(fn, a.m2, "m2"));
  SIMDNORM_CHECK(check_eps(fn, a.eps));
  SIMDNORM_CHECK(check_running(fn, a.running_mean, a.running_var, a.momentum));
  const std::size_t floats = a.c * sizeof(float), doubles = a.c * sizeof(double);
  return check_separate(fn,
                        {{a.batch_mean, floats, "batch_mean"},
                         {a.batch_invstd, floats, "batch_invstd"},
                         {a.running_mean, floats, "running_mean"},
                         {a.running_var, floats, "running_var"}},
                        {{a.mean, doubles, "mean"}, {a.m2, doubles, "m2"}});
}

simdnorm_status validate(const char* fn, const NormalizeArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_elementwise(fn, a.shape, a.x, a.y, a.batch_mean, "batch_mean", a.batch_invstd, "batch_invstd",
                                   g));
  SIMDNORM_CHECK(check_flags(fn, a.flags));
  return SIMDNORM_SUCCESS;
}

simdnorm_status validate(const char* fn, const ReduceArgs& a, Geometry* g) {
  const BackwardArgs& b = a.backward;
  SIMDNORM_CHECK(check_backward(fn, b, g));
  SIMDNORM_CHECK(check_required(fn, a.sum_dy, "sum_dy"));
  SIMDNORM_CHECK(check_required(fn, a.sum_dy_xhat, "sum_dy_xhat"));
  const std::size_t floats = g->c * sizeof(float), doubles = g->c * sizeof(double);
  return check_separate(fn, {{a.sum_dy, doubles, "sum_dy"}, {a.sum_dy_xhat, doubles, "sum_dy_xhat"}},
                        {{b.gamma, floats, "gamma"},
                         {b.beta, floats, "beta"},
                         {b.batch_mean, floats, "batch_mean"},
                         {b.batch_invstd, floats, "batch_invstd"}});
}

simdnorm_status validate(const char* fn, const ApplyArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_backward(fn, a.backward, g));
  SIMDNORM_CHECK(check_required(fn, a.sum_dy, "sum_dy"));
  SIMDNORM_CHECK(check_required(fn, a.sum_dy_xhat, "sum_dy_xhat"));
  SIMDNORM_CHECK(check_required(fn, a.backward.dx, "dx"));
  SIMDNORM_CHECK(check_total_count(fn, a.count));
  return SIMDNORM_SUCCESS;
}

// ---- LayerNorm, RMSNorm and GroupNorm ----

// RMSNorm's argument sets carry beta and mean as NULL (simdnorm.h has neither), so one check covers both row norms
// forward.
simdnorm_status validate(const char* fn, RowNorm, const RowNormArgs& a) {
  SIMDNORM_CHECK(check_matrix(fn, a.rows, a.cols));
  const NormBuffers b{a.x, a.gamma, a.beta, nullptr, nullptr, a.rows * a.cols, a.cols, a.rows};
  return check_norm_forward(fn, b, a.y, a.mean, a.rstd, a.eps, a.flags, false);
}

simdnorm_status validate(const char* fn, RowNorm norm, const RowNormBackwardArgs& a) {
  SIMDNORM_CHECK(check_matrix(fn, a.rows, a.cols));
  const NormBuffers b{a.x, a.gamma, nullptr, a.mean, a.rstd, a.rows * a.cols, a.cols, a.rows};
  return check_norm_backward(fn, b, a.dy, a.dx, a.dgamma, a.dbeta, norm == RowNorm::kLayer, a.flags, false);
}

// mean and rstd hold n x groups floats.
simdnorm_status validate(const char* fn, const GroupNormArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_shape(fn, a.shape, g));
  SIMDNORM_CHECK(check_groups(fn, a.groups, *g));
  const NormBuffers b{a.x, a.gamma, a.beta, nullptr, nullptr, g->elements, g->c, g->n * a.groups};
  return check_norm_forward(fn, b, a.y, a.mean, a.rstd, a.eps, a.flags, true);
}

// beta is read only with SIMDNORM_FUSE_RELU, so it is never required; when given, the outputs must keep apart from it.
simdnorm_status validate(const char* fn, const GroupNormBackwardArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_shape(fn, a.shape, g));
  SIMDNORM_CHECK(check_groups(fn, a.groups, *g));
  const NormBuffers b{a.x, a.gamma, a.beta, a.mean, a.rstd, g->elements, g->c, g->n * a.groups};
  return check_norm_backward(fn, b, a.dy, a.dx, a.dgamma, a.dbeta, true, a.flags, true);
}

}  // namespace simdnorm

extern "C" const char* simdnorm_last_error(void) { return simdnorm::g_last_error; }
