// Per-thread error messages behind simdnorm_last_error(), and the validation every entry point runs before it
// touches memory. Shared by the fast API (api.cpp) and the reference (reference.cpp), so both reject exactly the
// same calls with exactly the same messages.
#ifndef SIMDNORM_SRC_STATUS_HPP_
#define SIMDNORM_SRC_STATUS_HPP_

#include <simdnorm/simdnorm.h>

#include <cstddef>

namespace simdnorm {

// Records a formatted message for simdnorm_last_error() on this thread and returns `status`.
simdnorm_status fail(simdnorm_status status, const char* format, ...) __attribute__((format(printf, 2, 3)));

// The validated shape, with the derived sizes every driver needs.
struct Geometry {
  std::size_t n = 0;
  std::size_t c = 0;
  std::size_t spatial = 0;
  simdnorm_layout layout = SIMDNORM_NCHW;
  std::size_t elements = 0;   // n * c * spatial
  std::size_t per_channel = 0;  // m = n * spatial
};

// Arguments of each entry point, validated as a whole. `fn` names the public function in messages.
struct TrainingArgs {
  const simdnorm_shape* shape;
  const float* x;
  float* y;
  const float* gamma;
  const float* beta;
  float eps;
  float* batch_mean;
  float* batch_invstd;
  float* running_mean;
  float* running_var;
  float momentum;
  unsigned flags;
};
struct InferenceArgs {
  const simdnorm_shape* shape;
  const float* x;
  float* y;
  const float* gamma;
  const float* beta;
  const float* mean;
  const float* var;
  float eps;
  unsigned flags;
};
struct BackwardArgs {
  const simdnorm_shape* shape;
  const float* x;
  const float* dy;
  const float* gamma;
  const float* beta;
  const float* batch_mean;
  const float* batch_invstd;
  float* dx;
  float* dgamma;
  float* dbeta;
  unsigned flags;
};
struct FoldArgs {
  std::size_t c;
  const float* gamma;
  const float* beta;
  const float* mean;
  const float* var;
  float eps;
  float* scale;
  float* shift;
};
struct AffineArgs {
  const simdnorm_shape* shape;
  const float* x;
  float* y;
  const float* scale;
  const float* shift;
  unsigned flags;
};

// The split-phase API (simdnorm_moments ... simdnorm_backward_apply).
struct MomentsArgs {
  const simdnorm_shape* shape;
  const float* x;
  double* mean;
  double* m2;
};
struct MergeArgs {
  std::size_t parts;
  std::size_t c;
  const double* counts;
  const double* means;
  const double* m2s;
  double* mean;
  double* m2;
  double* total;
};
struct FinishArgs {
  std::size_t c;
  double count;
  const double* mean;
  const double* m2;
  float eps;
  float* batch_mean;
  float* batch_invstd;
  float* running_mean;
  float* running_var;
  float momentum;
};
struct NormalizeArgs {
  const simdnorm_shape* shape;
  const float* x;
  float* y;
  const float* gamma;
  const float* beta;
  const float* batch_mean;
  const float* batch_invstd;
  unsigned flags;
};
// simdnorm_backward_reduce: `backward` with dx, dgamma and dbeta NULL, and the sums as outputs.
struct ReduceArgs {
  BackwardArgs backward;
  double* sum_dy;
  double* sum_dy_xhat;
};
// simdnorm_backward_apply: `backward` with dx the output (dgamma and dbeta NULL), from the summed reductions.
struct ApplyArgs {
  BackwardArgs backward;
  const double* sum_dy;
  const double* sum_dy_xhat;
  double count;
};

// LayerNorm and RMSNorm (rows x cols, row-major). RMSNorm leaves beta and mean NULL.
struct RowNormArgs {
  std::size_t rows;
  std::size_t cols;
  const float* x;
  float* y;
  const float* gamma;
  const float* beta;
  float eps;
  float* mean;
  float* rstd;
  unsigned flags;
};
struct RowNormBackwardArgs {
  std::size_t rows;
  std::size_t cols;
  const float* x;
  const float* dy;
  const float* gamma;
  const float* mean;  // required for LayerNorm, NULL for RMSNorm
  const float* rstd;
  float* dx;
  float* dgamma;
  float* dbeta;  // NULL for RMSNorm
  unsigned flags;
};
// GroupNorm.
struct GroupNormArgs {
  const simdnorm_shape* shape;
  std::size_t groups;
  const float* x;
  float* y;
  const float* gamma;
  const float* beta;
  float eps;
  float* mean;
  float* rstd;
  unsigned flags;
};
struct GroupNormBackwardArgs {
  const simdnorm_shape* shape;
  std::size_t groups;
  const float* x;
  const float* dy;
  const float* gamma;
  const float* beta;
  const float* mean;
  const float* rstd;
  float* dx;
  float* dgamma;
  float* dbeta;
  unsigned flags;
};
// Which of the two row norms an argument set belongs to (they differ in what is required and allowed).
enum class RowNorm { kLayer, kRms };

simdnorm_status validate(const char* fn, const TrainingArgs& args, Geometry* geometry);
simdnorm_status validate(const char* fn, const InferenceArgs& args, Geometry* geometry);
simdnorm_status validate(const char* fn, const BackwardArgs& args, Geometry* geometry);
simdnorm_status validate(const char* fn, const FoldArgs& args);
simdnorm_status validate(const char* fn, const AffineArgs& args, Geometry* geometry);
simdnorm_status validate(const char* fn, const MomentsArgs& args, Geometry* geometry);
simdnorm_status validate(const char* fn, const MergeArgs& args);
simdnorm_status validate(const char* fn, const FinishArgs& args);
simdnorm_status validate(const char* fn, const NormalizeArgs& args, Geometry* geometry);
simdnorm_status validate(const char* fn, const ReduceArgs& args, Geometry* geometry);
simdnorm_status validate(const char* fn, const ApplyArgs& args, Geometry* geometry);
simdnorm_status validate(const char* fn, RowNorm norm, const RowNormArgs& args);
simdnorm_status validate(const char* fn, RowNorm norm, const RowNormBackwardArgs& args);
simdnorm_status validate(const char* fn, const GroupNormArgs& args, Geometry* geometry);
simdnorm_status validate(const char* fn, const GroupNormBackwardArgs& args, Geometry* geometry);

// Offset of element (n, c, s) in a tensor of the given geometry.
inline std::size_t element_offset(const Geometry& g, std::size_t n, std::size_t c, std::size_t s) {
  return g.layout == SIMDNORM_NCHW ? (n * g.c + c) * g.spatial + s : (n * g.spatial + s) * g.c + c;
}

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_STATUS_HPP_
