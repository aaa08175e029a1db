// The streaming baseline compiled with no ISA flag: SSE2 on x86-64 (see bench/CMakeLists.txt).
#include "stream_baseline.h"
#include "stream_kernel.inc"

namespace simdnorm_bench {

void stream_affine_generic(float* x, std::size_t n, float a, float b) { stream_affine_body(x, n, a, b); }
void two_pass_train_generic(float* x, std::size_t n, float a, float b, float* sink) {
  two_pass_train_body(x, n, a, b, sink);
}
void two_pass_backward_generic(const float* x, float* dy, std::size_t n, float a, float b, float* sink) {
  two_pass_backward_body(x, dy, n, a, b, sink);
}

}  // namespace simdnorm_bench
