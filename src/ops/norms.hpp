// LayerNorm, RMSNorm and GroupNorm: the entry points' implementations, for validated arguments. They are batch
// norm's phases over another reduction axis (moments of a row or of an (image, group), the normalise-scale-shift,
// the backward reduce and apply) and run the same kernels (docs/design.md: "The family").
#ifndef SIMDNORM_SRC_OPS_NORMS_HPP_
#define SIMDNORM_SRC_OPS_NORMS_HPP_

#include "status.hpp"

namespace simdnorm {

simdnorm_status run_row_norm_forward(const char* fn, RowNorm norm, const RowNormArgs& args);
simdnorm_status run_row_norm_backward(const char* fn, RowNorm norm, const RowNormBackwardArgs& args);
simdnorm_status run_group_norm_forward(const char* fn, const Geometry& g, const GroupNormArgs& args);
simdnorm_status run_group_norm_backward(const char* fn, const Geometry& g, const GroupNormBackwardArgs& args);

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_OPS_NORMS_HPP_
