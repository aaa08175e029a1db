// The streaming baseline compiled with -mavx512f -mavx2 -mfma -mprefer-vector-width=512 (see bench/CMakeLists.txt).
#include "stream_baseline.h"
#include "stream_kernel.inc"

namespace simdnorm_bench {

void stream_affine_avx512(float* x, std::size_t n, float a, float b) { stream_affine_body(x, n, a, b); }
void two_pass_train_avx512(float* x, std::size_t n, float a, float b, float* sink) {
  two_pass_train_body(x, n, a, b, sink);
}
void two_pass_backward_avx512(const float* x, float* dy, std::size_t n, float a, float b, float* sink) {
  two_pass_backward_body(x, dy, n, a, b, sink);
}

}  // namespace simdnorm_bench
