// placeholder until the op lands (this session): GroupNorm.
#include "ops/norms.hpp"
namespace simdnorm {
simdnorm_status run_group_norm_forward(const char* fn, const Geometry&, const GroupNormArgs&) {
  return fail(SIMDNORM_UNSUPPORTED, "%s: not yet", fn);
}
simdnorm_status run_group_norm_backward(const char* fn, const Geometry&, const GroupNormBackwardArgs&) {
  return fail(SIMDNORM_UNSUPPORTED, "%s: not yet", fn);
}
}  // namespace simdnorm
