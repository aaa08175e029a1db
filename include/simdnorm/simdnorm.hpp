// simdnorm: thin C++17 wrapper over the C API of simdnorm.h.
//
// Typed enums, a non-owning tensor view, and an exception (simdnorm::Error) carrying the status and the message of
// any failure. SIMDNORM_NON_FINITE from training is not an error: forward_training returns it as Status::NonFinite.
#ifndef SIMDNORM_SIMDNORM_HPP_
#define SIMDNORM_SIMDNORM_HPP_

#include <simdnorm/simdnorm.h>

#include <cstddef>
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

}  // namespace simdnorm

#endif  // SIMDNORM_SIMDNORM_HPP_
