// Shared pieces of the simdnorm benchmark suite: what a benchmark measures (an operation on a tensor), the buffers it
// runs on, and how its rates are counted. Every implementation (simdnorm, the naive reference, oneDNN, PyTorch, the
// streaming baseline) goes through these, so their figures are comparable line by line.
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

// Batch norm (training forward, inference forward, backward), LayerNorm and RMSNorm (forward, backward; over the
// rows of a matrix) and GroupNorm (forward, backward; 32 groups).
enum class Op {
  TrainFwd,
  InferFwd,
  Backward,
  LayerNormFwd,
  LayerNormBwd,
  RmsNormFwd,
  RmsNormBwd,
  GroupNormFwd,
  GroupNormBwd
};
// The ops of one family share a grid of tensors: batch norm and GroupNorm run in both layouts, the row norms on a
// rows x cols matrix (one "layout", named "rows").
enum class Family { BatchNorm, Row, Group };

constexpr Op kBatchNormOps[] = {Op::TrainFwd, Op::InferFwd, Op::Backward};
constexpr Op kRowOps[] = {Op::LayerNormFwd, Op::LayerNormBwd, Op::RmsNormFwd, Op::RmsNormBwd};
constexpr Op kGroupOps[] = {Op::GroupNormFwd, Op::GroupNormBwd};
constexpr simdnorm_layout kLayouts[] = {SIMDNORM_NCHW, SIMDNORM_NHWC};

Family family_of(Op op);
bool is_backward(Op op);
const char* op_name(Op op);  // "train_fwd", "infer_fwd", "backward", "layer_norm_fwd", ..., "group_norm_bwd"
// "nchw", "nhwc"; "rows" for LayerNorm and RMSNorm, which have one layout (the layout argument is ignored there).
const char* layout_name(Op op, simdnorm_layout l);
// The layouts an op runs in: both, or (row norms) NCHW alone, named "rows".
std::vector<simdnorm_layout> layouts_of(Op op);

// GroupNorm's group count on every tensor of the grids (the issue's; c is a multiple of it).
constexpr std::int64_t kGroups = 32;

// One tensor of a grid. Batch norm and GroupNorm: c channels of H = W = hw at batch size n (hw = 1 is an N x C
// matrix). LayerNorm and RMSNorm: a matrix of n rows and c columns (hw = 1), so that names, byte counts and the
// streaming baseline treat it like batch norm's N x C matrix.
struct Point {
  std::int64_t c = 0;
  std::int64_t hw = 0;
  std::int64_t n = 0;

  std::int64_t spatial() const { return hw * hw; }
  std::int64_t elements() const { return n * c * hw * hw; }
  double bytes() const { return static_cast<double>(elements()) * sizeof(float); }
};

// The tensors a run registers, per family.
struct Grid {
  std::vector<Point> batch_norm;  // ResNet-50's BN layers and an N x C matrix
  std::vector<Point> rows;        // LayerNorm / RMSNorm: rows x cols
  std::vector<Point> groups;      // GroupNorm: (c, h = w) at batch n
};

// "smoke" (tiny tensors, for ctest), "quick", "default" or "full". Returns false for an unknown name.
bool make_grid(const std::string& name, Grid* grid);

// "<op>/<layout>/<impl>/C:<c>/HW:<hw>/N:<n>" followed by `suffix` ("/round:<k>" from the second round on), the
// name scripts/bench_report.py parses. The streaming baseline is "stream/flat/stream/...": it is one pass over the
// flat buffer, so it has no layout. A LayerNorm matrix of R rows and C columns is ".../C:<C>/HW:1/N:<R>".
std::string benchmark_name(const char* op, const char* layout, const char* impl, const Point& p,
                           const std::string& suffix);
std::string benchmark_name(Op op, simdnorm_layout layout, const char* impl, const Point& p, const std::string& suffix);

// Minimum memory traffic of one call, in bytes, the same for every implementation so that GB/s compare:
//   train_fwd                 x read twice (statistics, then normalisation) + y written once   = 3 tensors
//   infer_fwd                 x read once + y written once                                     = 2 tensors
//   backward                  x and dy read once + dx written once                             = 3 tensors
//   {layer,rms,group}_norm_fwd x read once (a row or group normalised while in cache) + y once = 2 tensors
//   {layer,rms,group}_norm_bwd x and dy read once + dx written once                            = 3 tensors
//   stream                    x read once + written once (in place)                            = 2 tensors
// Per-channel, per-column and per-row arrays are ignored.
double bytes_per_call(Op op, const Point& p);
double stream_bytes_per_call(const Point& p);

// Sets the `bytes` and `elements` rate counters from the number of iterations that ran.
void set_rate_counters(benchmark::State& state, double bytes_per_call, const Point& p);

// Counts benchmarks that reported an error (a status other than success, an exception from a peer) and failed
// checks; main() exits non-zero when there were any, so that the ctest smoke test notices a broken entry point.
void report_error(benchmark::State& state, const std::string& message);
void count_error();
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
// The naive reference of LayerNorm, RMSNorm and GroupNorm runs on tensors up to this size (it is scalar and
// single-threaded, and only gives the order of magnitude of "speed-up over naive").
constexpr double kNaiveMaxBytes = 16.0 * 1024 * 1024;
bool runs_in_place(const Point& p);
bool runs_naive(Op op, const Point& p);

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

// The per-channel arrays of every call, with deterministic values. The statistics handed to batch norm's inference
// and backward are those of the fill distribution (mean 0, variance 4/3, with a small per-channel spread): the
// kernels' time does not depend on them, and computing real batch statistics with the reference would cost more
// than the benchmark. LayerNorm and RMSNorm use gamma, beta, dgamma and dbeta per column, GroupNorm per channel.
struct Channels {
  explicit Channels(std::int64_t c);

  AlignedFloats gamma, beta;                // scale and shift
  AlignedFloats mean, var;                  // inference statistics (and oneDNN's backward inputs)
  AlignedFloats batch_mean, batch_invstd;   // training outputs / backward inputs
  AlignedFloats running_mean, running_var;  // training in/out
  AlignedFloats dgamma, dbeta;              // backward outputs
};

// The saved statistics of LayerNorm and RMSNorm (one per row) and GroupNorm (n x groups, row n): forward outputs,
// backward inputs.
struct Stats {
  explicit Stats(std::size_t count) : mean(count), rstd(count) {}
  AlignedFloats mean, rstd;
};
// How many statistics an op saves on a tensor (0 for batch norm, whose statistics are per channel).
std::size_t stats_count(Op op, const Point& p);
// The statistics of x itself, as the forward pass saves them (double accumulation, threaded): what a backward call
// gets in a framework, and what the reference is given in the one-off check of the implementations. RMSNorm's mean
// is 0 and its rstd is 1/sqrt(mean(x^2) + eps).
void actual_stats(Op op, simdnorm_layout layout, const Point& p, const float* x, Stats* stats);
// The fill distribution's statistics, the same for every row or group (mean 0, rstd 1/sqrt(4/3 + eps); RMSNorm's
// rstd the same, as mean(x^2) = 4/3 too): the in-place backward calls use them so that each call is a fixed point of
// the one before (see bench_simdnorm.cpp).
void uniform_stats(std::size_t count, Stats* stats);
constexpr float kUniformRstd = 0.86602216f;  // 1/sqrt(4/3 + 1e-5)

constexpr float kEps = 1e-5f;
constexpr float kMomentum = 0.1f;

// An implementation set up on a tensor, ready to be timed: each call runs the operation once. Buffers, parameters and
// primitives are made when the runner is; a failed call throws std::runtime_error.
using Runner = std::function<void()>;

// Where an implementation leaves its results after a call, for the one-off check against the reference (check.cpp):
// the tensor (y of a forward call, dx of a backward one) in the layout of the benchmark, and dgamma / dbeta where it
// computes them. Empty functions for what it does not produce.
struct Outputs {
  std::function<const float*()> out;
  std::function<const float*()> dgamma;
  std::function<const float*()> dbeta;
};

// The timing loop of a benchmark of one runner: one call per iteration, an error (a thrown exception) ends it.
void time_runner(benchmark::State& state, double bytes_per_call, const Point& p, const Runner& run);

// simdnorm out of place (x -> y, dy -> dx) or in place (see bench_simdnorm.cpp), on the shared tensors.
Runner simdnorm_runner(Op op, simdnorm_layout layout, const Point& p, bool in_place, Outputs* outputs = nullptr);
// One call of simdnorm's reference (simdnorm_reference_*, the "naive" implementation) of `op`, with the runners'
// parameters: forward calls write y and the statistics, backward calls read the statistics and write dx, dgamma and
// dbeta (into ch).
simdnorm_status reference_call(Op op, simdnorm_layout layout, const Point& p, const float* x, float* y,
                               const float* dy, float* dx, Channels& ch, Stats& stats);
// The streaming pass and the two-pass floors (stream_baseline.cpp), in place on the copy of x (floor of backward: on
// the copy of dy, reading x).
Runner stream_runner(const Point& p);
Runner floor_runner(const Point& p, bool backward);

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
// come from the same seconds of the machine's life. "<op>/<layout>/paired_peers/..." alternates simdnorm and every
// peer that runs the op (oneDNN, PyTorch); "<op>/<layout>/paired_stream/..." (tensors that run in place) the
// streaming pass, simdnorm in place and out of place, and the two-pass floor of batch-norm training and backward and
// of GroupNorm.
void register_paired_peers(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s);
void register_paired_stream(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s);

// oneDNN (bench_onednn.cpp, built only when CMake found dnnl): batch normalisation and layer normalisation.
bool onednn_available();
bool onednn_runs(Op op);  // built, and oneDNN has the op (batch norm, LayerNorm)
std::string onednn_version();
// The label says which implementation oneDNN picked.
Runner onednn_runner(Op op, simdnorm_layout layout, const Point& p, std::string* label, Outputs* outputs = nullptr);
void register_onednn(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s);

// PyTorch (bench_torch.cpp, built only when CMake found libtorch): every op, through ATen's kernels.
bool torch_available();
std::string torch_version();  // "1.13.1", or why it was not built
// Gives PyTorch the suite's caching CPU allocator (see bench_torch.cpp) and makes its intra-op thread pool the same
// size as simdnorm's (at::set_num_threads); returns what PyTorch then reports (at::get_num_threads), 0 when not
// built.
int torch_setup(int threads);
Runner torch_runner(Op op, simdnorm_layout layout, const Point& p, std::string* label, Outputs* outputs = nullptr);
void register_torch(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s);

// The one-off check (check.cpp): every implementation (simdnorm and each peer that was built) of every op and
// layout runs once on a small tensor, and its outputs are compared with the reference's on the same inputs, so that
// a mis-wired peer (arguments swapped, the wrong memory format, statistics in another convention) shows before
// anything is timed. Prints a line per failure, counts failures as errors, and returns a one-line summary for the
// run's context.
std::string check_implementations();

// Registers a benchmark only once per name (the streaming pass and the floors of a tensor that two families share).
bool first_registration(const std::string& name);

}  // namespace simdnorm_bench

#endif  // SIMDNORM_BENCH_BENCH_COMMON_H_
