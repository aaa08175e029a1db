// The streaming baseline's kernel variants. Each is the same loop (stream_kernel.inc) compiled for one instruction
// set in its own translation unit; stream_baseline.cpp picks the widest the CPU runs.
#ifndef SIMDNORM_BENCH_STREAM_BASELINE_H_
#define SIMDNORM_BENCH_STREAM_BASELINE_H_

#include <cstddef>

namespace simdnorm_bench {

// x[i] = a * x[i] + b for i < n, threaded with OpenMP. x must be 64-byte aligned.
void stream_affine_generic(float* x, std::size_t n, float a, float b);
// The two-pass floors (stream_kernel.inc): a read of x, then x = a*x + b; a read of x and dy, then
// dy = a*dy + b*x. `sink` holds 64 floats.
void two_pass_train_generic(float* x, std::size_t n, float a, float b, float* sink);
void two_pass_backward_generic(const float* x, float* dy, std::size_t n, float a, float b, float* sink);
#if defined(SIMDNORM_BENCH_X86)
void stream_affine_avx2(float* x, std::size_t n, float a, float b);
void stream_affine_avx512(float* x, std::size_t n, float a, float b);
void two_pass_train_avx2(float* x, std::size_t n, float a, float b, float* sink);
void two_pass_train_avx512(float* x, std::size_t n, float a, float b, float* sink);
void two_pass_backward_avx2(const float* x, float* dy, std::size_t n, float a, float b, float* sink);
void two_pass_backward_avx512(const float* x, float* dy, std::size_t n, float a, float b, float* sink);
#endif

}  // namespace simdnorm_bench

#endif  // SIMDNORM_BENCH_STREAM_BASELINE_H_
