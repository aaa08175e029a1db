// The sse2 kernels: only the explicit instantiation and the table. Compiled with -msse2 (src/CMakeLists.txt).
#include "kernels/kernels.hpp"

namespace simdnorm {

template struct kernels::Kernels<xsimd::sse2>;

const KernelTable kSse2Kernels = kernels::Kernels<xsimd::sse2>::table("sse2");

}  // namespace simdnorm
