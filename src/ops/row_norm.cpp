// placeholder until the op lands (this session): LayerNorm and RMSNorm.
#include "ops/norms.hpp"
namespace simdnorm {
simdnorm_status run_row_norm_forward(const char* fn, RowNorm, const RowNormArgs&) {
  return fail(SIMDNORM_UNSUPPORTED, "%s: not yet", fn);
}
simdnorm_status run_row_norm_backward(const char* fn, RowNorm, const RowNormBackwardArgs&) {
  return fail(SIMDNORM_UNSUPPORTED, "%s: not yet", fn);
}
}  // namespace simdnorm
