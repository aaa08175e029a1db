#include "status.hpp"

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>

namespace simdnorm {
namespace {

thread_local char g_last_error[512] = "";

constexpr unsigned kKnownFlags = SIMDNORM_FUSE_RELU;

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

bool ranges_overlap(const float* a, const float* b, std::size_t count) {
  const auto pa = reinterpret_cast<std::uintptr_t>(a);
  const auto pb = reinterpret_cast<std::uintptr_t>(b);
  const std::uintptr_t bytes = count * sizeof(float);
  return pa < pb + bytes && pb < pa + bytes;
}

// An output tensor may be the very same buffer as one input (`may_equal`), never a partial overlap of it.
simdnorm_status check_alias(const char* fn, const float* input, const char* input_name, const float* output,
                            const char* output_name, std::size_t count, bool may_equal) {
  if (input == nullptr || output == nullptr) return SIMDNORM_SUCCESS;
  if (input == output && may_equal) return SIMDNORM_SUCCESS;
  if (ranges_overlap(input, output, count)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: %s overlaps %s%s", fn, output_name, input_name,
                may_equal ? " without being the same buffer" : "");
  }
  return SIMDNORM_SUCCESS;
}

#define SIMDNORM_CHECK(expr)                             \
  do {                                                   \
    const simdnorm_status check_status_ = (expr);        \
    if (check_status_ != SIMDNORM_SUCCESS) return check_status_; \
  } while (0)

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
  if (!(a.momentum >= 0.0f && a.momentum <= 1.0f)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: momentum (%g) must be in [0, 1]", fn,
                static_cast<double>(a.momentum));
  }
  if ((a.running_mean == nullptr) != (a.running_var == nullptr)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: running_mean and running_var must be both NULL or both non-NULL (%s is NULL)",
                fn, a.running_mean == nullptr ? "running_mean" : "running_var");
  }
  SIMDNORM_CHECK(check_flags(fn, a.flags));
  SIMDNORM_CHECK(check_training_size(fn, *g));
  return SIMDNORM_SUCCESS;
}

simdnorm_status validate(const char* fn, const InferenceArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_shape(fn, a.shape, g));
  SIMDNORM_CHECK(check_required(fn, a.x, "x"));
  SIMDNORM_CHECK(check_required(fn, a.y, "y"));
  SIMDNORM_CHECK(check_required(fn, a.mean, "mean"));
  SIMDNORM_CHECK(check_required(fn, a.var, "var"));
  SIMDNORM_CHECK(check_alias(fn, a.x, "x", a.y, "y", g->elements, true));
  SIMDNORM_CHECK(check_eps(fn, a.eps));
  SIMDNORM_CHECK(check_flags(fn, a.flags));
  return SIMDNORM_SUCCESS;
}

simdnorm_status validate(const char* fn, const BackwardArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_shape(fn, a.shape, g));
  SIMDNORM_CHECK(check_required(fn, a.x, "x"));
  SIMDNORM_CHECK(check_required(fn, a.dy, "dy"));
  SIMDNORM_CHECK(check_required(fn, a.batch_mean, "batch_mean"));
  SIMDNORM_CHECK(check_required(fn, a.batch_invstd, "batch_invstd"));
  SIMDNORM_CHECK(check_alias(fn, a.dy, "dy", a.dx, "dx", g->elements, true));
  SIMDNORM_CHECK(check_alias(fn, a.x, "x", a.dx, "dx", g->elements, false));
  SIMDNORM_CHECK(check_flags(fn, a.flags));
  SIMDNORM_CHECK(check_training_size(fn, *g));
  return SIMDNORM_SUCCESS;
}

simdnorm_status validate(const char* fn, const FoldArgs& a) {
  if (a.c == 0) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: c is 0", fn);
  if (a.c > static_cast<std::size_t>(PTRDIFF_MAX) / sizeof(float)) {
    return fail(SIMDNORM_INVALID_ARGUMENT, "%s: c = %zu exceeds the addressable size", fn, a.c);
  }
  SIMDNORM_CHECK(check_required(fn, a.mean, "mean"));
  SIMDNORM_CHECK(check_required(fn, a.var, "var"));
  SIMDNORM_CHECK(check_required(fn, a.scale, "scale"));
  SIMDNORM_CHECK(check_required(fn, a.shift, "shift"));
  SIMDNORM_CHECK(check_eps(fn, a.eps));
  return SIMDNORM_SUCCESS;
}

simdnorm_status validate(const char* fn, const AffineArgs& a, Geometry* g) {
  SIMDNORM_CHECK(check_shape(fn, a.shape, g));
  SIMDNORM_CHECK(check_required(fn, a.x, "x"));
  SIMDNORM_CHECK(check_required(fn, a.y, "y"));
  SIMDNORM_CHECK(check_required(fn, a.scale, "scale"));
  SIMDNORM_CHECK(check_required(fn, a.shift, "shift"));
  SIMDNORM_CHECK(check_alias(fn, a.x, "x", a.y, "y", g->elements, true));
  SIMDNORM_CHECK(check_flags(fn, a.flags));
  return SIMDNORM_SUCCESS;
}

}  // namespace simdnorm

extern "C" const char* simdnorm_last_error(void) { return simdnorm::g_last_error; }
