// The streaming baseline compiled with no ISA flag: SSE2 on x86-64 (see bench/CMakeLists.txt).
#include "stream_baseline.h"
#include "stream_kernel.inc"

namespace simdnorm_bench {

void stream_affine_generic(float* x, std::size_t n, float a, float b) { stream_affine_body(x, n, a, b); }

}  // namespace simdnorm_bench
