// The streaming baseline compiled with -mavx2 -mfma (see bench/CMakeLists.txt).
#include "stream_baseline.h"
#include "stream_kernel.inc"

namespace simdnorm_bench {

void stream_affine_avx2(float* x, std::size_t n, float a, float b) { stream_affine_body(x, n, a, b); }

}  // namespace simdnorm_bench
