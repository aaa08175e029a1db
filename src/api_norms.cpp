// The C entry points of LayerNorm, RMSNorm and GroupNorm: validate everything, then hand over to the ops
// (src/ops/norms.hpp). RMSNorm is the row norm without a mean: its argument sets carry beta, mean and dbeta as NULL.
#include <simdnorm/simdnorm.h>

#include "ops/norms.hpp"
#include "status.hpp"

extern "C" simdnorm_status simdnorm_layer_norm_forward(size_t rows, size_t cols, const float* x, float* y,
                                                       const float* gamma, const float* beta, float eps, float* mean,
                                                       float* rstd, unsigned flags) {
  const char* fn = "simdnorm_layer_norm_forward";
  const simdnorm::RowNormArgs args{rows, cols, x, y, gamma, beta, eps, mean, rstd, flags};
  const simdnorm_status status = simdnorm::validate(fn, simdnorm::RowNorm::kLayer, args);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_row_norm_forward(fn, simdnorm::RowNorm::kLayer, args);
}

extern "C" simdnorm_status simdnorm_layer_norm_backward(size_t rows, size_t cols, const float* x, const float* dy,
                                                        const float* gamma, const float* mean, const float* rstd,
                                                        float* dx, float* dgamma, float* dbeta, unsigned flags) {
  const char* fn = "simdnorm_layer_norm_backward";
  const simdnorm::RowNormBackwardArgs args{rows, cols, x, dy, gamma, mean, rstd, dx, dgamma, dbeta, flags};
  const simdnorm_status status = simdnorm::validate(fn, simdnorm::RowNorm::kLayer, args);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_row_norm_backward(fn, simdnorm::RowNorm::kLayer, args);
}

extern "C" simdnorm_status simdnorm_rms_norm_forward(size_t rows, size_t cols, const float* x, float* y,
                                                     const float* gamma, float eps, float* rstd, unsigned flags) {
  const char* fn = "simdnorm_rms_norm_forward";
  const simdnorm::RowNormArgs args{rows, cols, x, y, gamma, nullptr, eps, nullptr, rstd, flags};
  const simdnorm_status status = simdnorm::validate(fn, simdnorm::RowNorm::kRms, args);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_row_norm_forward(fn, simdnorm::RowNorm::kRms, args);
}

extern "C" simdnorm_status simdnorm_rms_norm_backward(size_t rows, size_t cols, const float* x, const float* dy,
                                                      const float* gamma, const float* rstd, float* dx, float* dgamma,
                                                      unsigned flags) {
  const char* fn = "simdnorm_rms_norm_backward";
  const simdnorm::RowNormBackwardArgs args{rows, cols, x, dy, gamma, nullptr, rstd, dx, dgamma, nullptr, flags};
  const simdnorm_status status = simdnorm::validate(fn, simdnorm::RowNorm::kRms, args);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_row_norm_backward(fn, simdnorm::RowNorm::kRms, args);
}

extern "C" simdnorm_status simdnorm_group_norm_forward(const simdnorm_shape* shape, size_t groups, const float* x,
                                                       float* y, const float* gamma, const float* beta, float eps,
                                                       float* mean, float* rstd, unsigned flags) {
  const char* fn = "simdnorm_group_norm_forward";
  const simdnorm::GroupNormArgs args{shape, groups, x, y, gamma, beta, eps, mean, rstd, flags};
  simdnorm::Geometry g;
  const simdnorm_status status = simdnorm::validate(fn, args, &g);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_group_norm_forward(fn, g, args);
}

extern "C" simdnorm_status simdnorm_group_norm_backward(const simdnorm_shape* shape, size_t groups, const float* x,
                                                        const float* dy, const float* gamma, const float* beta,
                                                        const float* mean, const float* rstd, float* dx,
                                                        float* dgamma, float* dbeta, unsigned flags) {
  const char* fn = "simdnorm_group_norm_backward";
  const simdnorm::GroupNormBackwardArgs args{shape, groups, x, dy, gamma, beta, mean, rstd, dx, dgamma, dbeta, flags};
  simdnorm::Geometry g;
  const simdnorm_status status = simdnorm::validate(fn, args, &g);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_group_norm_backward(fn, g, args);
}
