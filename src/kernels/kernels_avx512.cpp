// The avx512 kernels: only the explicit instantiation and the table. Compiled with -mavx512f (src/CMakeLists.txt).
#include "kernels/kernels.hpp"

namespace simdnorm {

template struct kernels::Kernels<xsimd::avx512f>;

const KernelTable kAvx512Kernels = kernels::Kernels<xsimd::avx512f>::table("avx512");

}  // namespace simdnorm
