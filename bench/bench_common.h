// Shared pieces of the simdnorm benchmark suite: what a benchmark measures (an operation on a tensor), the buffers it
// runs on, and how its rates are counted. Every implementation (simdnorm, the naive reference, oneDNN, the streaming
// baseline) goes through these, so their figures are comparable line by line.
#ifndef SIMDNORM_BENCH_BENCH_COMMON_H_
#define SIMDNORM_BENCH_BENCH_COMMON_H_

#include <simdnorm/simdnorm.h>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace simdnorm_bench {

enum class Op { TrainFwd, InferFwd, Backward };

constexpr Op kOps[] = {Op::TrainFwd, Op::InferFwd, Op::Backward};
constexpr simdnorm_layout kLayouts[] = {SIMDNORM_NCHW, SIMDNORM_NHWC};

const char* op_name(Op op);                  // "train_fwd", "infer_fwd", "backward"
const char* layout_name(simdnorm_layout l);  // "nchw", "nhwc"

// One tensor of the grid: a BN layer (C channels of H = W = hw) at batch size n. hw = 1 is an N x C matrix.
struct Point {
  std::int64_t c = 0;
  std::int64_t hw = 0;
  std::int64_t n = 0;

  std::int64_t spatial() const { return hw * hw; }
  std::int64_t elements() const { return n * c * hw * hw; }
};

// The grid a run registers: "smoke" (one tiny tensor, for ctest), "quick", "default" or "full". Returns false for an
// unknown name.
bool make_grid(const std::string& name, std::vector<Point>* grid);

// "<op>/<layout>/<impl>/C:<c>/HW:<hw>/N:<n>" followed by `suffix` ("/round:<k>" from the second round on), the
// name scripts/bench_report.py parses. The streaming baseline is "stream/flat/stream/...": it is one pass over the
// flat buffer, so it has no layout.
std::string benchmark_name(const char* op, const char* layout, const char* impl, const Point& p,
                           const std::string& suffix);

// Minimum memory traffic of one call, in bytes, the same for every implementation so that GB/s compare:
//   train_fwd  x read twice (statistics, then normalisation) + y written once   = 3 tensors
//   infer_fwd  x read once + y written once                                     = 2 tensors
//   backward   x and dy read once + dx written once                             = 3 tensors
//   stream     x read once + written once (in place)                            = 2 tensors
// Per-channel arrays are ignored (at most 2048 floats against tensors of 100 KB and more).
double bytes_per_call(Op op, const Point& p);
double stream_bytes_per_call(const Point& p);

// Sets the `bytes` and `elements` rate counters from the number of iterations that ran.
void set_rate_counters(benchmark::State& state, double bytes_per_call, const Point& p);

// Counts benchmarks that reported an error (a status other than success, an exception from oneDNN); main() exits
// non-zero when there were any, so that the ctest smoke test notices a broken entry point.
void report_error(benchmark::State& state, const std::string& message);
int error_count();

// The tensors of the current benchmark, each 64-byte aligned, pre-faulted and filled deterministically: x and dy with
// values uniform in [-2, 2) that depend only on the element index (so every layout, shape and implementation sees the
// same data), y and dx with zeros. One arena serves the whole run and grows to the largest tensor seen; growing
// refills it with the same values. Not thread-safe (benchmarks run one at a time).
struct Tensors {
  const float* x;
  float* y;
  const float* dy;
  float* dx;
};
Tensors tensors_for(std::int64_t elements);

// Copies x into y for the in-place streaming baseline (and in-place simdnorm) and returns y.
float* fresh_copy_of_x(std::int64_t elements);
// Copies dy into dx for in-place backward and returns dx.
float* fresh_copy_of_dy(std::int64_t elements);
// simdnorm in place is registered for tensors of at least this many bytes (beyond the last-level cache).
constexpr double kInPlaceMinBytes = 64.0 * 1024 * 1024;

// A 64-byte aligned float array (per-channel parameters and statistics).
class AlignedFloats {
 public:
  explicit AlignedFloats(std::size_t count, float value = 0.0f);
  ~AlignedFloats();
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;

  float* data() { return data_; }
  const float* data() const { return data_; }
  std::size_t size() const { return size_; }
  float& operator[](std::size_t i) { return data_[i]; }

 private:
  float* data_;
  std::size_t size_;
};

// The per-channel arrays of every call, with deterministic values. The statistics handed to inference and backward
// are those of the fill distribution (mean 0, variance 4/3, with a small per-channel spread): the kernels' time does
// not depend on them, and computing real batch statistics with the reference would cost more than the benchmark.
struct Channels {
  explicit Channels(std::int64_t c);

  AlignedFloats gamma, beta;                // scale and shift
  AlignedFloats mean, var;                  // inference statistics (and oneDNN's backward inputs)
  AlignedFloats batch_mean, batch_invstd;   // training outputs / backward inputs
  AlignedFloats running_mean, running_var;  // training in/out
  AlignedFloats dgamma, dbeta;              // backward outputs
};

constexpr float kEps = 1e-5f;
constexpr float kMomentum = 0.1f;

// An implementation set up on a tensor, ready to be timed: each call runs the operation once. Buffers, parameters and
// oneDNN primitives are made when the runner is; a failed call throws std::runtime_error.
using Runner = std::function<void()>;

// The timing loop of a benchmark of one runner: one call per iteration, an error (a thrown exception) ends it.
void time_runner(benchmark::State& state, double bytes_per_call, const Point& p, const Runner& run);

// simdnorm out of place (x -> y, dy -> dx) or in place (see register_inplace), on the shared tensors.
Runner simdnorm_runner(Op op, simdnorm_layout layout, const Point& p, bool in_place);
// The streaming pass and the two-pass floors (stream_baseline.cpp), in place on the copy of x (floor of backward: on
// the copy of dy, reading x).
Runner stream_runner(const Point& p);
Runner floor_runner(const Point& p, bool backward);
// oneDNN (bench_onednn.cpp): the label says which implementation oneDNN picked.
Runner onednn_runner(Op op, simdnorm_layout layout, const Point& p, std::string* label);

// Registration of each implementation; main() calls these for every point of the grid, once per round.
struct RunSettings {
  double warmup_seconds = 0.02;     // MinWarmUpTime of the fast implementations
  double naive_min_seconds = 0.05;  // MinTime of the naive reference
  std::string name_suffix;          // "" in the first round, "/round:<k>" in round k > 1
};
void register_simdnorm(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s);
void register_inplace(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s);
void register_naive(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s);
void register_stream(const Point& p, const RunSettings& s);
// The two-pass floors, "floor/flat/train/..." (a read of x, then x = a*x + b) and "floor/flat/backward/..." (a read
// of x and dy, then dy = a*dy + b*x): raw loops of the passes NHWC training and backward cannot avoid, for tensors
// that run in place (kInPlaceMinBytes).
void register_floors(const Point& p, const RunSettings& s);
const char* stream_isa();  // the variant the streaming baseline runs: "avx512", "avx2" or "generic"

// Paired benchmarks (paired.cpp): implementations timed in alternation within one benchmark, so that their ratios
// come from the same seconds of the machine's life. "<op>/<layout>/paired_onednn/..." alternates simdnorm and
// oneDNN; "<op>/<layout>/paired_stream/..." (tensors that run in place) the streaming pass, simdnorm in place and
// out of place, and the two-pass floor of training and backward.
void register_paired_onednn(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s);
void register_paired_stream(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s);

// oneDNN (bench_onednn.cpp, built only when CMake found dnnl).
bool onednn_available();
std::string onednn_version();
void register_onednn(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s);

}  // namespace simdnorm_bench

#endif  // SIMDNORM_BENCH_BENCH_COMMON_H_
