// The streaming baseline: what the memory system allows. Every batch-norm pass must at least read its input and
// write its output once; this benchmark does exactly that and nothing else (x = a*x + b in place, vectorised and
// threaded), on a tensor of the same size, so each implementation's GB/s can be read as a fraction of it.
#include "stream_baseline.h"

#include "bench_common.h"

namespace simdnorm_bench {
namespace {

using StreamKernel = void (*)(float*, std::size_t, float, float);
using TrainFloorKernel = void (*)(float*, std::size_t, float, float, float*);
using BackwardFloorKernel = void (*)(const float*, float*, std::size_t, float, float, float*);

struct StreamVariant {
  StreamKernel kernel;
  TrainFloorKernel train_floor;
  BackwardFloorKernel backward_floor;
  const char* isa;
};

// The widest variant this CPU runs (GCC's __builtin_cpu_supports also checks that the OS saves the wide registers).
StreamVariant best_stream_variant() {
#if defined(SIMDNORM_BENCH_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    return {&stream_affine_avx512, &two_pass_train_avx512, &two_pass_backward_avx512, "avx512"};
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return {&stream_affine_avx2, &two_pass_train_avx2, &two_pass_backward_avx2, "avx2"};
  }
#endif
  return {&stream_affine_generic, &two_pass_train_generic, &two_pass_backward_generic, "generic"};
}

const StreamVariant& stream_variant() {
  static const StreamVariant variant = best_stream_variant();
  return variant;
}

// The two-pass floors (stream_kernel.inc) write 64 floats here, so that their read pass is not optimised away.
float g_floor_sink[64];

}  // namespace

// A fresh copy of x; x -> 0.5 x + 0.25 then converges to 0.5 and stays a normal float.
Runner stream_runner(const Point& p) {
  float* data = fresh_copy_of_x(p.elements());
  const StreamKernel kernel = stream_variant().kernel;
  const std::size_t count = static_cast<std::size_t>(p.elements());
  return [=] { kernel(data, count, 0.5f, 0.25f); };
}

// In place on a copy like the streaming baseline. x -> 0.5 x + 0.25 settles at 0.5, and dy -> 0.5 dy + 0.25 x at the
// fixed point 0.5 x, so the values stay normal floats.
Runner floor_runner(const Point& p, bool backward) {
  const std::size_t count = static_cast<std::size_t>(p.elements());
  const StreamVariant& variant = stream_variant();
  if (backward) {
    const float* x = tensors_for(p.elements()).x;
    float* dy = fresh_copy_of_dy(p.elements());
    const BackwardFloorKernel kernel = variant.backward_floor;
    return [=] { kernel(x, dy, count, 0.5f, 0.25f, g_floor_sink); };
  }
  float* data = fresh_copy_of_x(p.elements());
  const TrainFloorKernel kernel = variant.train_floor;
  return [=] { kernel(data, count, 0.5f, 0.25f, g_floor_sink); };
}

const char* stream_isa() { return stream_variant().isa; }

void register_floors(const Point& p, const RunSettings& s) {
  for (const bool backward : {false, true}) {
    const std::string name = benchmark_name("floor", "flat", backward ? "backward" : "train", p, s.name_suffix);
    if (!first_registration(name)) continue;  // a tensor of two families
    benchmark::RegisterBenchmark(name.c_str(), [p, backward](benchmark::State& state) {
                                   // The rate counted is the streaming pass's (2 tensors), so that GB/s compare
                                   // with it directly.
                                   time_runner(state, stream_bytes_per_call(p), p, floor_runner(p, backward));
                                 })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinWarmUpTime(s.warmup_seconds);
  }
}

void register_stream(const Point& p, const RunSettings& s) {
  const std::string name = benchmark_name("stream", "flat", "stream", p, s.name_suffix);
  if (!first_registration(name)) return;  // a tensor of two families (batch norm's matrix and a LayerNorm's)
  benchmark::RegisterBenchmark(name.c_str(), [p](benchmark::State& state) {
                                 time_runner(state, stream_bytes_per_call(p), p, stream_runner(p));
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinWarmUpTime(s.warmup_seconds);
}

}  // namespace simdnorm_bench
