// Names, the shape grid, the byte model, counters and buffers shared by every benchmark of the suite.
#include "bench_common.h"

#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <set>

namespace simdnorm_bench {

Family family_of(Op op) {
  switch (op) {
    case Op::TrainFwd:
    case Op::InferFwd:
    case Op::Backward:
      return Family::BatchNorm;
    case Op::LayerNormFwd:
    case Op::LayerNormBwd:
    case Op::RmsNormFwd:
    case Op::RmsNormBwd:
      return Family::Row;
    case Op::GroupNormFwd:
    case Op::GroupNormBwd:
      return Family::Group;
  }
  return Family::BatchNorm;
}

bool is_backward(Op op) {
  return op == Op::Backward || op == Op::LayerNormBwd || op == Op::RmsNormBwd || op == Op::GroupNormBwd;
}

const char* op_name(Op op) {
  switch (op) {
    case Op::TrainFwd:
      return "train_fwd";
    case Op::InferFwd:
      return "infer_fwd";
    case Op::Backward:
      return "backward";
    case Op::LayerNormFwd:
      return "layer_norm_fwd";
    case Op::LayerNormBwd:
      return "layer_norm_bwd";
    case Op::RmsNormFwd:
      return "rms_norm_fwd";
    case Op::RmsNormBwd:
      return "rms_norm_bwd";
    case Op::GroupNormFwd:
      return "group_norm_fwd";
    case Op::GroupNormBwd:
      return "group_norm_bwd";
  }
  return "?";
}

const char* layout_name(Op op, simdnorm_layout l) {
  if (family_of(op) == Family::Row) return "rows";
  return l == SIMDNORM_NHWC ? "nhwc" : "nchw";
}

std::vector<simdnorm_layout> layouts_of(Op op) {
  if (family_of(op) == Family::Row) return {SIMDNORM_NCHW};
  return {SIMDNORM_NCHW, SIMDNORM_NHWC};
}

namespace {

struct Layer {
  std::int64_t c;
  std::int64_t hw;
};

// The batch-norm layers of ResNet-50 (torchvision), by (channels, H = W); each size occurs several times in the net.
constexpr Layer kResNet50[] = {{64, 112},  {256, 56}, {64, 56},  {512, 28}, {128, 28},
                               {1024, 14}, {256, 14}, {2048, 7}, {512, 7}};
constexpr Layer kMatrix = {1024, 1};  // an N x C activation matrix (BatchNorm1d after a fully connected layer)

void add(std::vector<Point>* grid, Layer layer, std::initializer_list<std::int64_t> batches) {
  for (std::int64_t n : batches) grid->push_back(Point{layer.c, layer.hw, n});
}

// LayerNorm / RMSNorm matrices of `rows` x `cols`.
void add_rows(std::vector<Point>* grid, std::initializer_list<std::int64_t> cols_list,
              std::initializer_list<std::int64_t> rows_list) {
  for (std::int64_t cols : cols_list) {
    for (std::int64_t rows : rows_list) grid->push_back(Point{cols, 1, rows});
  }
}

}  // namespace

bool make_grid(const std::string& name, Grid* grid) {
  *grid = Grid{};
  std::vector<Point>* bn = &grid->batch_norm;
  std::vector<Point>* rows = &grid->rows;
  std::vector<Point>* groups = &grid->groups;
  if (name == "smoke") {
    // Small enough that even the naive reference takes microseconds, yet with a remainder in every vector loop
    // (C = 24, spatial = 49; 100 columns; 3 channels per group).
    add(bn, Layer{24, 7}, {2});
    add_rows(rows, {100}, {3});
    add(groups, Layer{96, 7}, {2});
  } else if (name == "quick") {
    // One layer swept over the batch (for the plot), the deepest layer (many channels, few pixels), the widest
    // layer, the matrix.
    add(bn, Layer{256, 56}, {1, 4, 16});
    add(bn, Layer{2048, 7}, {1, 16});
    add(bn, Layer{64, 112}, {8});
    add(bn, Layer{1024, 1}, {64, 1024});
    // One width of a transformer at one row (latency), 2048 rows (8 MB, in the last-level cache) and 16384 rows
    // (64 MB, beyond it: in place against the streaming pass); GroupNorm's largest layer at the batch sizes
    // and at one beyond the cache.
    add_rows(rows, {1024}, {1, 2048, 16384});
    add(groups, Layer{128, 64}, {1, 8, 32});
  } else if (name == "default") {
    // Three layers swept over every batch size: the widest spatial extent, the heaviest mid layer and the
    // deepest layer (2048 channels of 7 x 7, where NCHW rows are short); the other six at batch 1 and 32.
    for (Layer layer : kResNet50) {
      const bool sweep = (layer.c == 64 && layer.hw == 112) || (layer.c == 256 && layer.hw == 56) ||
                         (layer.c == 2048 && layer.hw == 7);
      if (sweep) {
        add(bn, layer, {1, 2, 4, 8, 16, 32, 64});
      } else {
        add(bn, layer, {1, 32});
      }
    }
    add(bn, kMatrix, {16, 64, 256, 1024});
    // The shapes: widths of BERT-base, BERT-large / GPT-2 medium and LLaMA-7B at 1 to 16384 rows (tokens);
    // GroupNorm with 32 groups on three layers of a diffusion UNet at batch 1 and 8, and each at the batch that
    // takes it beyond the last-level cache (67 MB), where the in-place targets apply.
    add_rows(rows, {768, 1024, 4096}, {1, 128, 2048, 16384});
    add(groups, Layer{128, 64}, {1, 8, 32});
    add(groups, Layer{256, 32}, {1, 8, 64});
    add(groups, Layer{512, 16}, {1, 8, 128});
  } else if (name == "full") {
    for (Layer layer : kResNet50) add(bn, layer, {1, 2, 4, 8, 16, 32, 64});
    add(bn, kMatrix, {16, 32, 64, 128, 256, 512, 1024});
    add_rows(rows, {768, 1024, 4096}, {1, 16, 128, 512, 2048, 8192, 16384});
    add(groups, Layer{128, 64}, {1, 2, 4, 8, 16, 32});
    add(groups, Layer{256, 32}, {1, 2, 4, 8, 16, 32, 64});
    add(groups, Layer{512, 16}, {1, 2, 4, 8, 16, 32, 64, 128});
  } else {
    return false;
  }
  return true;
}

std::string benchmark_name(const char* op, const char* layout, const char* impl, const Point& p,
                           const std::string& suffix) {
  char buffer[160];
  std::snprintf(buffer, sizeof buffer, "%s/%s/%s/C:%lld/HW:%lld/N:%lld", op, layout, impl, static_cast<long long>(p.c),
                static_cast<long long>(p.hw), static_cast<long long>(p.n));
  return buffer + suffix;
}

std::string benchmark_name(Op op, simdnorm_layout layout, const char* impl, const Point& p,
                           const std::string& suffix) {
  return benchmark_name(op_name(op), layout_name(op, layout), impl, p, suffix);
}

double bytes_per_call(Op op, const Point& p) {
  const double tensor = p.bytes();
  switch (op) {
    case Op::TrainFwd:
      return 3.0 * tensor;
    case Op::InferFwd:
    case Op::LayerNormFwd:
    case Op::RmsNormFwd:
    case Op::GroupNormFwd:
      return 2.0 * tensor;
    case Op::Backward:
    case Op::LayerNormBwd:
    case Op::RmsNormBwd:
    case Op::GroupNormBwd:
      return 3.0 * tensor;
  }
  return 0.0;
}

bool runs_in_place(const Point& p) { return p.bytes() >= kInPlaceMinBytes; }

bool runs_naive(Op op, const Point& p) { return family_of(op) == Family::BatchNorm || p.bytes() <= kNaiveMaxBytes; }

double stream_bytes_per_call(const Point& p) { return 2.0 * static_cast<double>(p.elements()) * sizeof(float); }

void set_rate_counters(benchmark::State& state, double bytes, const Point& p) {
  const double calls = static_cast<double>(state.iterations());
  state.counters["bytes"] = benchmark::Counter(bytes * calls, benchmark::Counter::kIsRate);
  state.counters["elements"] =
      benchmark::Counter(static_cast<double>(p.elements()) * calls, benchmark::Counter::kIsRate);
}

namespace {
std::atomic<int> g_errors{0};
}  // namespace

void time_runner(benchmark::State& state, double bytes, const Point& p, const Runner& run) {
  try {
    for (auto _ : state) {
      run();
      benchmark::ClobberMemory();
    }
  } catch (const std::exception& e) {
    report_error(state, e.what());
    return;
  }
  set_rate_counters(state, bytes, p);
}

void report_error(benchmark::State& state, const std::string& message) {
  count_error();
  state.SkipWithError(message.c_str());
}

void count_error() { g_errors.fetch_add(1); }

bool first_registration(const std::string& name) {
  static std::set<std::string> registered;
  return registered.insert(name).second;
}

int error_count() { return g_errors.load(); }

namespace {

float* allocate_floats(std::size_t count) {
  const std::size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<float*>(p);
}

// splitmix64 of (seed, index): cheap, stateless, so the fill parallelises and any prefix is the same in every run.
float uniform_value(std::uint64_t seed, std::uint64_t index) {
  std::uint64_t z = index * 0x9E3779B97F4A7C15ull + seed;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const float unit = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
  return 4.0f * unit - 2.0f;
}

constexpr std::uint64_t kSeedX = 0x5EED0001ull;
constexpr std::uint64_t kSeedDy = 0x5EED0002ull;

class Arena {
 public:
  ~Arena() { release(); }

  Tensors get(std::int64_t elements) {
    const std::size_t count = static_cast<std::size_t>(elements);
    if (count > capacity_) grow(count);
    return Tensors{x_, y_, dy_, dx_};
  }

 private:
  void release() {
    std::free(x_);
    std::free(y_);
    std::free(dy_);
    std::free(dx_);
    x_ = y_ = dy_ = dx_ = nullptr;
    capacity_ = 0;
  }

  void grow(std::size_t count) {
    release();
    x_ = allocate_floats(count);
    y_ = allocate_floats(count);
    dy_ = allocate_floats(count);
    dx_ = allocate_floats(count);
    capacity_ = count;
    // Written by the threads that will later read the data, so that pages are spread like the kernels' work.
    const std::int64_t total = static_cast<std::int64_t>(count);
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < total; ++i) {
      x_[i] = uniform_value(kSeedX, static_cast<std::uint64_t>(i));
      dy_[i] = uniform_value(kSeedDy, static_cast<std::uint64_t>(i));
      y_[i] = 0.0f;
      dx_[i] = 0.0f;
    }
  }

  float* x_ = nullptr;
  float* y_ = nullptr;
  float* dy_ = nullptr;
  float* dx_ = nullptr;
  std::size_t capacity_ = 0;
};

Arena& arena() {
  static Arena instance;
  return instance;
}

}  // namespace

Tensors tensors_for(std::int64_t elements) { return arena().get(elements); }

float* fresh_copy_of_x(std::int64_t elements) {
  const Tensors t = arena().get(elements);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < elements; ++i) t.y[i] = t.x[i];
  return t.y;
}

float* fresh_copy_of_dy(std::int64_t elements) {
  const Tensors t = arena().get(elements);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < elements; ++i) t.dx[i] = t.dy[i];
  return t.dx;
}

AlignedFloats::AlignedFloats(std::size_t count, float value) : data_(allocate_floats(count)), size_(count) {
  for (std::size_t i = 0; i < count; ++i) data_[i] = value;
}

AlignedFloats::~AlignedFloats() { std::free(data_); }

Channels::Channels(std::int64_t c)
    : gamma(static_cast<std::size_t>(c)),
      beta(static_cast<std::size_t>(c)),
      mean(static_cast<std::size_t>(c)),
      var(static_cast<std::size_t>(c)),
      batch_mean(static_cast<std::size_t>(c)),
      batch_invstd(static_cast<std::size_t>(c)),
      running_mean(static_cast<std::size_t>(c), 0.0f),
      running_var(static_cast<std::size_t>(c), 1.0f),
      dgamma(static_cast<std::size_t>(c)),
      dbeta(static_cast<std::size_t>(c)) {
  for (std::size_t i = 0; i < static_cast<std::size_t>(c); ++i) {
    const float spread = uniform_value(0x5EED0003ull, i) * 0.05f;  // [-0.1, 0.1)
    gamma[i] = 1.0f + spread;
    beta[i] = spread;
    mean[i] = spread;
    var[i] = 4.0f / 3.0f + spread;
    batch_mean[i] = mean[i];
    batch_invstd[i] = 1.0f / std::sqrt(var[i] + kEps);
  }
}

std::size_t stats_count(Op op, const Point& p) {
  switch (family_of(op)) {
    case Family::Row:
      return static_cast<std::size_t>(p.n);
    case Family::Group:
      return static_cast<std::size_t>(p.n * kGroups);
    case Family::BatchNorm:
      break;
  }
  return 0;
}

void actual_stats(Op op, simdnorm_layout layout, const Point& p, const float* x, Stats* stats) {
  const bool rms = op == Op::RmsNormFwd || op == Op::RmsNormBwd;
  if (family_of(op) == Family::Row) {
    const std::int64_t cols = p.c;
#pragma omp parallel for schedule(static)
    for (std::int64_t r = 0; r < p.n; ++r) {
      double sum = 0.0, squares = 0.0;
      for (std::int64_t j = 0; j < cols; ++j) {
        const double v = x[r * cols + j];
        sum += v;
        squares += v * v;
      }
      const double mean = rms ? 0.0 : sum / cols;
      const double var = squares / cols - mean * mean;
      stats->mean[static_cast<std::size_t>(r)] = static_cast<float>(mean);
      stats->rstd[static_cast<std::size_t>(r)] = static_cast<float>(1.0 / std::sqrt(var + kEps));
    }
  } else if (family_of(op) == Family::Group) {
    // Per image: every channel's sums, then the groups' (NHWC visits each row of C channels once).
    const std::int64_t c = p.c, s = p.spatial(), per_group = p.c / kGroups;
#pragma omp parallel for schedule(static)
    for (std::int64_t n = 0; n < p.n; ++n) {
      std::vector<double> sum(static_cast<std::size_t>(c), 0.0), squares(static_cast<std::size_t>(c), 0.0);
      const float* image = x + n * c * s;
      for (std::int64_t ch = 0; ch < c; ++ch) {
        for (std::int64_t i = 0; i < s; ++i) {
          const double v = layout == SIMDNORM_NHWC ? image[i * c + ch] : image[ch * s + i];
          sum[static_cast<std::size_t>(ch)] += v;
          squares[static_cast<std::size_t>(ch)] += v * v;
        }
      }
      for (std::int64_t g = 0; g < kGroups; ++g) {
        double group_sum = 0.0, group_squares = 0.0;
        for (std::int64_t ch = g * per_group; ch < (g + 1) * per_group; ++ch) {
          group_sum += sum[static_cast<std::size_t>(ch)];
          group_squares += squares[static_cast<std::size_t>(ch)];
        }
        const double count = static_cast<double>(per_group * s);
        const double mean = group_sum / count;
        const double var = group_squares / count - mean * mean;
        const std::size_t k = static_cast<std::size_t>(n * kGroups + g);
        stats->mean[k] = static_cast<float>(mean);
        stats->rstd[k] = static_cast<float>(1.0 / std::sqrt(var + kEps));
      }
    }
  }
}

void uniform_stats(std::size_t count, Stats* stats) {
  for (std::size_t i = 0; i < count; ++i) {
    stats->mean[i] = 0.0f;
    stats->rstd[i] = kUniformRstd;
  }
}

}  // namespace simdnorm_bench
