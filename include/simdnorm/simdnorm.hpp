// simdnorm: thin C++17 wrapper over the C API of simdnorm.h.
//
// Typed enums, a non-owning tensor view, and an exception (simdnorm::Error) carrying the status and the message of
// any failure. SIMDNORM_NON_FINITE from training is not an error: forward_training returns it as Status::NonFinite.
#ifndef SIMDNORM_SIMDNORM_HPP_
#define SIMDNORM_SIMDNORM_HPP_

#include <simdnorm/simdnorm.h>

#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

namespace simdnorm {

enum class Layout { NCHW = SIMDNORM_NCHW, NHWC = SIMDNORM_NHWC };

enum class Status {
  Success = SIMDNORM_SUCCESS,
  InvalidArgument = SIMDNORM_INVALID_ARGUMENT,
  Unsupported = SIMDNORM_UNSUPPORTED,
  OutOfMemory = SIMDNORM_OUT_OF_MEMORY,
  NonFinite = SIMDNORM_NON_FINITE,
};

enum class Activation { None, Relu };

class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  Status status() const noexcept { return status_; }

 private:
  Status status_;
};

struct Shape {
  std::size_t n = 0;
  std::size_t c = 0;
  std::size_t spatial = 1;
  Layout layout = Layout::NCHW;

  std::size_t elements() const noexcept { return n * c * spatial; }
  simdnorm_shape c_shape() const noexcept {
    return simdnorm_shape{n, c, spatial, static_cast<simdnorm_layout>(layout)};
  }
};

// A non-owning view of an fp32 tensor: a pointer and the shape it is read with.
template <class T>
struct TensorView {
  T* data = nullptr;
  Shape shape;
};
using ConstTensor = TensorView<const float>;
using Tensor = TensorView<float>;

// A non-owning view of a rows x cols fp32 matrix, row-major: what LayerNorm and RMSNorm normalise, row by row.
template <class T>
struct MatrixView {
  T* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
};
using ConstMatrix = MatrixView<const float>;
using Matrix = MatrixView<float>;

// Per-channel learned parameters; a null pointer means ones (gamma) or zeros (beta).
struct Affine {
  const float* gamma = nullptr;
  const float* beta = nullptr;
};

namespace detail {
inline unsigned flags_of(Activation activation) noexcept {
  return activation == Activation::Relu ? SIMDNORM_FUSE_RELU : 0u;
}
inline Status check(simdnorm_status status) {
  if (status != SIMDNORM_SUCCESS && status != SIMDNORM_NON_FINITE) {
    throw Error(static_cast<Status>(status), simdnorm_last_error());
  }
  return static_cast<Status>(status);
}
inline const Shape& same_shape(const Shape& a, const Shape& b) {
  if (a.n != b.n || a.c != b.c || a.spatial != b.spatial || a.layout != b.layout) {
    throw Error(Status::InvalidArgument, "simdnorm: input and output tensor views have different shapes");
  }
  return a;
}
template <class A, class B>
inline void same_size(const MatrixView<A>& a, const MatrixView<B>& b) {
  if (a.rows != b.rows || a.cols != b.cols) {
    throw Error(Status::InvalidArgument, "simdnorm: input and output matrix views have different sizes");
  }
}
}  // namespace detail

inline const char* version() noexcept { return simdnorm_version(); }
inline const char* isa() noexcept { return simdnorm_isa(); }
inline void set_max_isa(const char* name) { detail::check(simdnorm_set_max_isa(name)); }
inline void set_num_threads(int n) noexcept { simdnorm_set_num_threads(n); }

struct TrainingOptions {
  float eps = 1e-5f;
  float momentum = 0.1f;  // PyTorch's convention: weight of the new batch statistics
  Activation activation = Activation::None;
};

// Per-channel outputs and state of a training step; every pointer may be null (running_* both or neither).
struct TrainingState {
  float* batch_mean = nullptr;
  float* batch_invstd = nullptr;
  float* running_mean = nullptr;
  float* running_var = nullptr;
};

// Returns Status::Success, or Status::NonFinite when some channel's statistics were not finite (see simdnorm.h).
inline Status forward_training(ConstTensor x, Tensor y, Affine affine, TrainingState state,
                               const TrainingOptions& options = {}) {
  const simdnorm_shape s = detail::same_shape(x.shape, y.shape).c_shape();
  return detail::check(simdnorm_forward_training(&s, x.data, y.data, affine.gamma, affine.beta, options.eps,
                                                 state.batch_mean, state.batch_invstd, state.running_mean,
                                                 state.running_var, options.momentum,
                                                 detail::flags_of(options.activation)));
}

inline void forward_inference(ConstTensor x, Tensor y, Affine affine, const float* mean, const float* var,
                              float eps = 1e-5f, Activation activation = Activation::None) {
  const simdnorm_shape s = detail::same_shape(x.shape, y.shape).c_shape();
  detail::check(simdnorm_forward_inference(&s, x.data, y.data, affine.gamma, affine.beta, mean, var, eps,
                                           detail::flags_of(activation)));
}

// Gradients; any of dx.data, dgamma, dbeta may be null when not wanted.
struct Gradients {
  Tensor dx;
  float* dgamma = nullptr;
  float* dbeta = nullptr;
};

inline void backward(ConstTensor x, ConstTensor dy, Affine affine, const float* batch_mean, const float* batch_invstd,
                     Gradients grads, Activation activation = Activation::None) {
  const Shape& shape = detail::same_shape(x.shape, dy.shape);
  if (grads.dx.data != nullptr) detail::same_shape(shape, grads.dx.shape);
  const simdnorm_shape s = shape.c_shape();
  detail::check(simdnorm_backward(&s, x.data, dy.data, affine.gamma, affine.beta, batch_mean, batch_invstd,
                                  grads.dx.data, grads.dgamma, grads.dbeta, detail::flags_of(activation)));
}

inline void fold(std::size_t c, Affine affine, const float* mean, const float* var, float eps, float* scale,
                 float* shift) {
  detail::check(simdnorm_fold(c, affine.gamma, affine.beta, mean, var, eps, scale, shift));
}

inline void affine(ConstTensor x, Tensor y, const float* scale, const float* shift,
                   Activation activation = Activation::None) {
  const simdnorm_shape s = detail::same_shape(x.shape, y.shape).c_shape();
  detail::check(simdnorm_affine(&s, x.data, y.data, scale, shift, detail::flags_of(activation)));
}

// ---- Split phases (simdnorm.h): forward training and backward cut at their reductions, for callers that do the
// reductions across processes themselves. Per-channel arrays have length c; counts, moments and sums are doubles.

// mean and m2 of this part of the batch, per channel.
inline void moments(ConstTensor x, double* mean, double* m2) {
  const simdnorm_shape s = x.shape.c_shape();
  detail::check(simdnorm_moments(&s, x.data, mean, m2));
}

// Merges the parts' moments (means and m2s: parts x c, row p for part p) into mean and m2; returns the total count.
inline double merge_moments(std::size_t parts, std::size_t c, const double* counts, const double* means,
                            const double* m2s, double* mean, double* m2) {
  double total = 0.0;
  detail::check(simdnorm_merge_moments(parts, c, counts, means, m2s, mean, m2, &total));
  return total;
}

// The batch and running statistics from merged moments over `count` values, with the eps and momentum of `options`
// (its activation is for normalize). Returns Status::Success, or Status::NonFinite as forward_training does.
inline Status finish_moments(std::size_t c, double count, const double* mean, const double* m2, TrainingState state,
                             const TrainingOptions& options = {}) {
  return detail::check(simdnorm_finish_moments(c, count, mean, m2, options.eps, state.batch_mean, state.batch_invstd,
                                               state.running_mean, state.running_var, options.momentum));
}

inline void normalize(ConstTensor x, Tensor y, Affine affine, const float* batch_mean, const float* batch_invstd,
                      Activation activation = Activation::None) {
  const simdnorm_shape s = detail::same_shape(x.shape, y.shape).c_shape();
  detail::check(simdnorm_normalize(&s, x.data, y.data, affine.gamma, affine.beta, batch_mean, batch_invstd,
                                   detail::flags_of(activation)));
}

// This part's sum(dy') and sum(dy' * xhat), per channel; summed over all parts they are dbeta and dgamma.
inline void backward_reduce(ConstTensor x, ConstTensor dy, Affine affine, const float* batch_mean,
                            const float* batch_invstd, double* sum_dy, double* sum_dy_xhat,
                            Activation activation = Activation::None) {
  const simdnorm_shape s = detail::same_shape(x.shape, dy.shape).c_shape();
  detail::check(simdnorm_backward_reduce(&s, x.data, dy.data, affine.gamma, affine.beta, batch_mean, batch_invstd,
                                         sum_dy, sum_dy_xhat, detail::flags_of(activation)));
}

// This part's dx from the sums over all parts and their total count.
inline void backward_apply(ConstTensor x, ConstTensor dy, Affine affine, const float* batch_mean,
                           const float* batch_invstd, const double* sum_dy, const double* sum_dy_xhat, double count,
                           Tensor dx, Activation activation = Activation::None) {
  const simdnorm_shape s = detail::same_shape(detail::same_shape(x.shape, dy.shape), dx.shape).c_shape();
  detail::check(simdnorm_backward_apply(&s, x.data, dy.data, affine.gamma, affine.beta, batch_mean, batch_invstd,
                                        sum_dy, sum_dy_xhat, count, dx.data, detail::flags_of(activation)));
}

// ---- LayerNorm, RMSNorm and GroupNorm (simdnorm.h): PyTorch's conventions, statistics saved as mean and
// rstd = 1/sqrt(var + eps). LayerNorm's and RMSNorm's gamma and beta have length cols, GroupNorm's length c.

// What a forward pass saves for its backward: per row (LayerNorm, RMSNorm), or n x groups, row n (GroupNorm). Either
// may be null when not wanted.
struct SavedStats {
  float* mean = nullptr;
  float* rstd = nullptr;
};

// Gradients of LayerNorm and RMSNorm; any of dx.data, dgamma, dbeta may be null when not wanted.
struct MatrixGradients {
  Matrix dx;
  float* dgamma = nullptr;
  float* dbeta = nullptr;
};

inline void layer_norm_forward(ConstMatrix x, Matrix y, Affine affine, SavedStats stats = {}, float eps = 1e-5f) {
  detail::same_size(x, y);
  detail::check(simdnorm_layer_norm_forward(x.rows, x.cols, x.data, y.data, affine.gamma, affine.beta, eps,
                                            stats.mean, stats.rstd, 0u));
}

inline void layer_norm_backward(ConstMatrix x, ConstMatrix dy, const float* gamma, const float* mean,
                                const float* rstd, MatrixGradients grads) {
  detail::same_size(x, dy);
  if (grads.dx.data != nullptr) detail::same_size(x, grads.dx);
  detail::check(simdnorm_layer_norm_backward(x.rows, x.cols, x.data, dy.data, gamma, mean, rstd, grads.dx.data,
                                             grads.dgamma, grads.dbeta, 0u));
}

// RMSNorm has no mean and no beta. eps defaults to float's machine epsilon, as torch.nn.RMSNorm's eps=None does.
inline void rms_norm_forward(ConstMatrix x, Matrix y, const float* gamma, float* rstd = nullptr,
                             float eps = std::numeric_limits<float>::epsilon()) {
  detail::same_size(x, y);
  detail::check(simdnorm_rms_norm_forward(x.rows, x.cols, x.data, y.data, gamma, eps, rstd, 0u));
}

// RMSNorm has no beta, so no dbeta; dx.data and dgamma may be null when not wanted.
inline void rms_norm_backward(ConstMatrix x, ConstMatrix dy, const float* gamma, const float* rstd, Matrix dx,
                              float* dgamma = nullptr) {
  detail::same_size(x, dy);
  if (dx.data != nullptr) detail::same_size(x, dx);
  detail::check(simdnorm_rms_norm_backward(x.rows, x.cols, x.data, dy.data, gamma, rstd, dx.data, dgamma, 0u));
}

inline void group_norm_forward(ConstTensor x, Tensor y, std::size_t groups, Affine affine, SavedStats stats = {},
                               float eps = 1e-5f, Activation activation = Activation::None) {
  const simdnorm_shape s = detail::same_shape(x.shape, y.shape).c_shape();
  detail::check(simdnorm_group_norm_forward(&s, groups, x.data, y.data, affine.gamma, affine.beta, eps, stats.mean,
                                            stats.rstd, detail::flags_of(activation)));
}

// affine.beta is read only with Activation::Relu (to recompute the forward output's sign).
inline void group_norm_backward(ConstTensor x, ConstTensor dy, std::size_t groups, Affine affine, const float* mean,
                                const float* rstd, Gradients grads, Activation activation = Activation::None) {
  const Shape& shape = detail::same_shape(x.shape, dy.shape);
  if (grads.dx.data != nullptr) detail::same_shape(shape, grads.dx.shape);
  const simdnorm_shape s = shape.c_shape();
  detail::check(simdnorm_group_norm_backward(&s, groups, x.data, dy.data, affine.gamma, affine.beta, mean, rstd,
                                             grads.dx.data, grads.dgamma, grads.dbeta, detail::flags_of(activation)));
}

}  // namespace simdnorm

#endif  // SIMDNORM_SIMDNORM_HPP_
