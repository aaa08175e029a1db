// The avx2 kernels: only the explicit instantiation and the table. Compiled with -mavx2 -mfma (src/CMakeLists.txt).
#include "kernels/kernels.hpp"

namespace simdnorm {

template struct kernels::Kernels<xsimd::fma3<xsimd::avx2>>;

const KernelTable kAvx2Kernels = kernels::Kernels<xsimd::fma3<xsimd::avx2>>::table("avx2");

}  // namespace simdnorm
