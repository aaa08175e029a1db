// Batch normalisation: the entry points' implementations, for validated arguments. Each op is a set of named phases
// (moments, merge, finish, normalise; backward reduce and apply), written once and used both by the fused one-call
// paths and by the split-phase API (docs/design.md: "How an op is built").
#ifndef SIMDNORM_SRC_OPS_BATCH_NORM_HPP_
#define SIMDNORM_SRC_OPS_BATCH_NORM_HPP_

#include "status.hpp"

namespace simdnorm {

// Fused paths.
simdnorm_status run_forward_training(const char* fn, const Geometry& g, const TrainingArgs& args);
simdnorm_status run_forward_inference(const char* fn, const Geometry& g, const InferenceArgs& args);
simdnorm_status run_backward(const char* fn, const Geometry& g, const BackwardArgs& args);
simdnorm_status run_fold(const FoldArgs& args);
simdnorm_status run_affine(const char* fn, const Geometry& g, const AffineArgs& args);

// Split phases.
simdnorm_status run_moments(const char* fn, const Geometry& g, const MomentsArgs& args);
simdnorm_status run_merge_moments(const MergeArgs& args);
simdnorm_status run_finish_moments(const char* fn, const FinishArgs& args);
simdnorm_status run_normalize(const char* fn, const Geometry& g, const NormalizeArgs& args);
simdnorm_status run_backward_reduce(const char* fn, const Geometry& g, const ReduceArgs& args);
simdnorm_status run_backward_apply(const char* fn, const Geometry& g, const ApplyArgs& args);

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_OPS_BATCH_NORM_HPP_
