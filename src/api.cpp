// The C entry points: validate everything, then hand over to the ops (src/ops).
#include <simdnorm/simdnorm.h>

#include "ops/batch_norm.hpp"
#include "parallel/team.hpp"
#include "status.hpp"

#ifndef SIMDNORM_VERSION_STRING
#error "SIMDNORM_VERSION_STRING must be defined by the build"
#endif

extern "C" const char* simdnorm_version(void) { return SIMDNORM_VERSION_STRING; }

extern "C" void simdnorm_set_num_threads(int n) { simdnorm::set_num_threads(n); }

extern "C" simdnorm_status simdnorm_forward_training(const simdnorm_shape* shape, const float* x, float* y,
                                                     const float* gamma, const float* beta, float eps,
                                                     float* batch_mean, float* batch_invstd, float* running_mean,
                                                     float* running_var, float momentum, unsigned flags) {
  const char* fn = "simdnorm_forward_training";
  const simdnorm::TrainingArgs args{shape,        x,           y,           gamma,    beta, eps, batch_mean,
                                    batch_invstd, running_mean, running_var, momentum, flags};
  simdnorm::Geometry g;
  const simdnorm_status status = simdnorm::validate(fn, args, &g);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_forward_training(fn, g, args);
}

extern "C" simdnorm_status simdnorm_forward_inference(const simdnorm_shape* shape, const float* x, float* y,
                                                      const float* gamma, const float* beta, const float* mean,
                                                      const float* var, float eps, unsigned flags) {
  const char* fn = "simdnorm_forward_inference";
  const simdnorm::InferenceArgs args{shape, x, y, gamma, beta, mean, var, eps, flags};
  simdnorm::Geometry g;
  const simdnorm_status status = simdnorm::validate(fn, args, &g);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_forward_inference(fn, g, args);
}

extern "C" simdnorm_status simdnorm_backward(const simdnorm_shape* shape, const float* x, const float* dy,
                                             const float* gamma, const float* beta, const float* batch_mean,
                                             const float* batch_invstd, float* dx, float* dgamma, float* dbeta,
                                             unsigned flags) {
  const char* fn = "simdnorm_backward";
  const simdnorm::BackwardArgs args{shape, x, dy, gamma, beta, batch_mean, batch_invstd, dx, dgamma, dbeta, flags};
  simdnorm::Geometry g;
  const simdnorm_status status = simdnorm::validate(fn, args, &g);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_backward(fn, g, args);
}

extern "C" simdnorm_status simdnorm_fold(size_t c, const float* gamma, const float* beta, const float* mean,
                                         const float* var, float eps, float* scale, float* shift) {
  const simdnorm::FoldArgs args{c, gamma, beta, mean, var, eps, scale, shift};
  const simdnorm_status status = simdnorm::validate("simdnorm_fold", args);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_fold(args);
}

extern "C" simdnorm_status simdnorm_affine(const simdnorm_shape* shape, const float* x, float* y, const float* scale,
                                           const float* shift, unsigned flags) {
  const char* fn = "simdnorm_affine";
  const simdnorm::AffineArgs args{shape, x, y, scale, shift, flags};
  simdnorm::Geometry g;
  const simdnorm_status status = simdnorm::validate(fn, args, &g);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_affine(fn, g, args);
}

extern "C" simdnorm_status simdnorm_moments(const simdnorm_shape* shape, const float* x, double* mean, double* m2) {
  const char* fn = "simdnorm_moments";
  const simdnorm::MomentsArgs args{shape, x, mean, m2};
  simdnorm::Geometry g;
  const simdnorm_status status = simdnorm::validate(fn, args, &g);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_moments(fn, g, args);
}

extern "C" simdnorm_status simdnorm_merge_moments(size_t parts, size_t c, const double* counts, const double* means,
                                                  const double* m2s, double* mean, double* m2, double* total) {
  const simdnorm::MergeArgs args{parts, c, counts, means, m2s, mean, m2, total};
  const simdnorm_status status = simdnorm::validate("simdnorm_merge_moments", args);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_merge_moments(args);
}

extern "C" simdnorm_status simdnorm_finish_moments(size_t c, double count, const double* mean, const double* m2,
                                                   float eps, float* batch_mean, float* batch_invstd,
                                                   float* running_mean, float* running_var, float momentum) {
  const char* fn = "simdnorm_finish_moments";
  const simdnorm::FinishArgs args{c, count, mean, m2, eps, batch_mean, batch_invstd, running_mean, running_var,
                                  momentum};
  const simdnorm_status status = simdnorm::validate(fn, args);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_finish_moments(fn, args);
}

extern "C" simdnorm_status simdnorm_normalize(const simdnorm_shape* shape, const float* x, float* y,
                                              const float* gamma, const float* beta, const float* batch_mean,
                                              const float* batch_invstd, unsigned flags) {
  const char* fn = "simdnorm_normalize";
  const simdnorm::NormalizeArgs args{shape, x, y, gamma, beta, batch_mean, batch_invstd, flags};
  simdnorm::Geometry g;
  const simdnorm_status status = simdnorm::validate(fn, args, &g);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_normalize(fn, g, args);
}

extern "C" simdnorm_status simdnorm_backward_reduce(const simdnorm_shape* shape, const float* x, const float* dy,
                                                    const float* gamma, const float* beta, const float* batch_mean,
                                                    const float* batch_invstd, double* sum_dy, double* sum_dy_xhat,
                                                    unsigned flags) {
  const char* fn = "simdnorm_backward_reduce";
  const simdnorm::ReduceArgs args{
      {shape, x, dy, gamma, beta, batch_mean, batch_invstd, nullptr, nullptr, nullptr, flags}, sum_dy, sum_dy_xhat};
  simdnorm::Geometry g;
  const simdnorm_status status = simdnorm::validate(fn, args, &g);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_backward_reduce(fn, g, args);
}

extern "C" simdnorm_status simdnorm_backward_apply(const simdnorm_shape* shape, const float* x, const float* dy,
                                                   const float* gamma, const float* beta, const float* batch_mean,
                                                   const float* batch_invstd, const double* sum_dy,
                                                   const double* sum_dy_xhat, double count, float* dx,
                                                   unsigned flags) {
  const char* fn = "simdnorm_backward_apply";
  const simdnorm::ApplyArgs args{
      {shape, x, dy, gamma, beta, batch_mean, batch_invstd, dx, nullptr, nullptr, flags}, sum_dy, sum_dy_xhat, count};
  simdnorm::Geometry g;
  const simdnorm_status status = simdnorm::validate(fn, args, &g);
  return status != SIMDNORM_SUCCESS ? status : simdnorm::run_backward_apply(fn, g, args);
}
