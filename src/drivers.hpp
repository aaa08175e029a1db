// Drivers: for validated arguments, choose the walk that fits the layout, partition the work by shape (never by
// thread count, so results are bitwise identical for any number of threads), allocate what scratch they need before
// writing anything, and run the active kernels over the pieces on an OpenMP team.
#ifndef SIMDNORM_SRC_DRIVERS_HPP_
#define SIMDNORM_SRC_DRIVERS_HPP_

#include "status.hpp"

namespace simdnorm {

simdnorm_status run_forward_training(const char* fn, const Geometry& g, const TrainingArgs& args);
simdnorm_status run_forward_inference(const char* fn, const Geometry& g, const InferenceArgs& args);
simdnorm_status run_backward(const char* fn, const Geometry& g, const BackwardArgs& args);
simdnorm_status run_fold(const FoldArgs& args);
simdnorm_status run_affine(const char* fn, const Geometry& g, const AffineArgs& args);

void set_num_threads(int n);

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_DRIVERS_HPP_
