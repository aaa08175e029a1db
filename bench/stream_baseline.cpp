// The streaming baseline: what the memory system allows. Every batch-norm pass must at least read its input and
// write its output once; this benchmark does exactly that and nothing else (x = a*x + b in place, vectorised and
// threaded), on a tensor of the same size, so each implementation's GB/s can be read as a fraction of it.
#include "stream_baseline.h"

#include "bench_common.h"

namespace simdnorm_bench {
namespace {

using StreamKernel = void (*)(float*, std::size_t, float, float);

struct StreamVariant {
  StreamKernel kernel;
  const char* isa;
};

// The widest variant this CPU runs (GCC's __builtin_cpu_supports also checks that the OS saves the wide registers).
StreamVariant best_stream_variant() {
#if defined(SIMDNORM_BENCH_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {&stream_affine_avx512, "avx512"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {&stream_affine_avx2, "avx2"};
#endif
  return {&stream_affine_generic, "generic"};
}

const StreamVariant& stream_variant() {
  static const StreamVariant variant = best_stream_variant();
  return variant;
}

void run_stream(benchmark::State& state, const Point& p) {
  // A fresh copy of x for every run; x -> 0.5 x + 0.25 then converges to 0.5 and stays a normal float.
  float* data = fresh_copy_of_x(p.elements());
  const StreamKernel kernel = stream_variant().kernel;
  const std::size_t count = static_cast<std::size_t>(p.elements());
  for (auto _ : state) {
    kernel(data, count, 0.5f, 0.25f);
    benchmark::ClobberMemory();
  }
  set_rate_counters(state, stream_bytes_per_call(p), p);
}

}  // namespace

const char* stream_isa() { return stream_variant().isa; }

void register_stream(const Point& p, const RunSettings& s) {
  const std::string name = benchmark_name("stream", "flat", "stream", p, s.name_suffix);
  benchmark::RegisterBenchmark(name.c_str(), [p](benchmark::State& state) { run_stream(state, p); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinWarmUpTime(s.warmup_seconds);
}

}  // namespace simdnorm_bench
