// Paired benchmarks: two or more implementations on the same tensor, timed in alternation within one benchmark:
// simdnorm against its peers (oneDNN, PyTorch), and simdnorm in place against the streaming pass.
//
// The machine this suite is meant for is shared: its memory bandwidth changes by up to 2x from one second to the
// next (another tenant's traffic), and separate benchmarks of two implementations run seconds to minutes apart. A
// ratio of their medians then measures the machine as much as the code. Here each iteration runs a block of calls of
// every contender in turn (the first contender rotates from one iteration to the next), each block lasting about
// kBlockSeconds, and each iteration gives one ratio per contender against the first; the benchmark reports the
// median of those ratios. Drift slower than an iteration cancels out. Each block starts with one untimed call, so
// that every contender is timed as a separate benchmark would time it, on caches it left itself: the first call
// after another contender finds the tensor in the other's place (in the other core's L2, or evicted), which cost
// simdnorm 5-15% on NHWC 2048x7x7 at N = 8 and 16 (3-6 MB) in blocks of ~6 calls.
#include <algorithm>
#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bench_common.h"

namespace simdnorm_bench {
namespace {

// A block of timed calls lasts about this long: short enough that the machine changes little within an iteration.
constexpr double kBlockSeconds = 1e-3;
constexpr int kMaxBlockCalls = 1000;
// Paired benchmarks of tensors of kPairedLargeBytes and more (a call takes milliseconds, oneDNN's NCHW tens of them)
// run at least this long, for 5 to 20 iterations per round.
constexpr double kPairedLargeMinSeconds = 0.3;
constexpr double kPairedLargeBytes = 16.0 * 1024 * 1024;

double tensor_bytes(const Point& p) { return static_cast<double>(p.elements()) * sizeof(float); }

struct Contender {
  std::string name;
  Runner run;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 != 0 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double seconds_of(const Runner& run, int calls) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) run();
  benchmark::ClobberMemory();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Counters: "<name>_ms" (median time of a call) for every contender, and "<name>_per_<first>" (median over the
// iterations of the time of a call over the first contender's in the same iteration) for the others.
void run_paired(benchmark::State& state, const std::vector<Contender>& contenders) {
  const std::size_t count = contenders.size();
  std::vector<int> block(count);
  std::vector<std::vector<double>> per_call(count);
  try {
    for (std::size_t i = 0; i < count; ++i) {
      contenders[i].run();  // warm
      const double once = seconds_of(contenders[i].run, 1);
      const double calls = once > 0.0 ? kBlockSeconds / once : kMaxBlockCalls;
      block[i] = calls < 1.0 ? 1 : calls > kMaxBlockCalls ? kMaxBlockCalls : static_cast<int>(calls);
    }
    std::size_t turn = 0;
    for (auto _ : state) {
      double total = 0.0;
      for (std::size_t j = 0; j < count; ++j) {
        const std::size_t i = (turn + j) % count;
        contenders[i].run();  // untimed: caches as this contender leaves them
        const double seconds = seconds_of(contenders[i].run, block[i]);
        per_call[i].push_back(seconds / block[i]);
        total += seconds;
      }
      turn = (turn + 1) % count;
      state.SetIterationTime(total);
    }
  } catch (const std::exception& e) {
    report_error(state, e.what());
    return;
  }
  if (per_call[0].empty()) return;
  for (std::size_t i = 0; i < count; ++i) {
    state.counters[contenders[i].name + "_ms"] = median(per_call[i]) * 1e3;
    if (i == 0) continue;
    std::vector<double> ratios(per_call[i].size());
    for (std::size_t k = 0; k < ratios.size(); ++k) ratios[k] = per_call[i][k] / per_call[0][k];
    state.counters[contenders[i].name + "_per_" + contenders[0].name] = median(ratios);
  }
}

// make() sets up the contenders, and may set the benchmark's label.
using MakeContenders = std::function<std::vector<Contender>(std::string* label)>;

benchmark::internal::Benchmark* register_paired(const std::string& name, const RunSettings& s,
                                                const MakeContenders& make) {
  return benchmark::RegisterBenchmark(name.c_str(),
                                      [make](benchmark::State& state) {
                                        std::vector<Contender> contenders;
                                        std::string label;
                                        try {
                                          contenders = make(&label);
                                        } catch (const std::exception& e) {
                                          report_error(state, e.what());
                                          return;
                                        }
                                        if (!label.empty()) state.SetLabel(label);
                                        run_paired(state, contenders);
                                      })
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime()
      ->MinWarmUpTime(s.warmup_seconds);
}

}  // namespace

void register_paired_peers(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s) {
  const bool with_onednn = onednn_runs(op), with_torch = torch_available();
  if (!with_onednn && !with_torch) return;
  const std::string name = benchmark_name(op, layout, "paired_peers", p, s.name_suffix);
  auto* b = register_paired(name, s, [op, layout, p, with_onednn, with_torch](std::string* label) {
    std::vector<Contender> contenders;
    contenders.push_back({"simdnorm", simdnorm_runner(op, layout, p, false)});
    if (with_onednn) {
      try {
        contenders.push_back({"onednn", onednn_runner(op, layout, p, label)});
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string("oneDNN: ") + e.what());
      }
    }
    if (with_torch) {
      std::string torch_label;
      try {
        contenders.push_back({"torch", torch_runner(op, layout, p, &torch_label)});
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string("PyTorch: ") + e.what());
      }
    }
    return contenders;
  });
  if (tensor_bytes(p) >= kPairedLargeBytes) b->MinTime(kPairedLargeMinSeconds);
}

void register_paired_stream(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s) {
  const std::string name = benchmark_name(op, layout, "paired_stream", p, s.name_suffix);
  // The two-pass floor applies where a call must see every value before it writes the first: batch-norm training
  // and backward, GroupNorm (whose NHWC groups span a whole image). LayerNorm and RMSNorm rows stay in cache.
  const bool with_floor = op == Op::TrainFwd || op == Op::Backward || family_of(op) == Family::Group;
  register_paired(name, s, [op, layout, p, with_floor](std::string* /*label*/) {
    std::vector<Contender> contenders;
    contenders.push_back({"stream", stream_runner(p)});
    contenders.push_back({"inplace", simdnorm_runner(op, layout, p, true)});
    contenders.push_back({"simdnorm", simdnorm_runner(op, layout, p, false)});
    if (with_floor) contenders.push_back({"floor", floor_runner(p, is_backward(op))});
    return contenders;
  })->MinTime(kPairedLargeMinSeconds);
}

}  // namespace simdnorm_bench
