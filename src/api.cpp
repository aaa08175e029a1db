// The C entry points: validate everything, then hand over to the drivers.
#include <simdnorm/simdnorm.h>

#include "drivers.hpp"
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
