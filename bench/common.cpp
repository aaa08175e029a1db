// Names, the shape grid, the byte model, counters and buffers shared by every benchmark of the suite.
#include "bench_common.h"

#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>

namespace simdnorm_bench {

const char* op_name(Op op) {
  switch (op) {
    case Op::TrainFwd:
      return "train_fwd";
    case Op::InferFwd:
      return "infer_fwd";
    case Op::Backward:
      return "backward";
  }
  return "?";
}

const char* layout_name(simdnorm_layout l) { return l == SIMDNORM_NHWC ? "nhwc" : "nchw"; }

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

}  // namespace

bool make_grid(const std::string& name, std::vector<Point>* grid) {
  grid->clear();
  if (name == "smoke") {
    // Small enough that even the naive reference takes microseconds, yet with a remainder in every vector loop
    // (C = 24, spatial = 49).
    add(grid, Layer{24, 7}, {2});
  } else if (name == "quick") {
    // One layer swept over the batch (for the plot), the deepest layer (many channels, few pixels), the widest
    // layer, the matrix.
    add(grid, Layer{256, 56}, {1, 4, 16});
    add(grid, Layer{2048, 7}, {1, 16});
    add(grid, Layer{64, 112}, {8});
    add(grid, Layer{1024, 1}, {64, 1024});
  } else if (name == "default") {
    // Three layers swept over every batch size: the widest spatial extent, the heaviest mid layer and the
    // deepest layer (2048 channels of 7 x 7, where NCHW rows are short); the other six at batch 1 and 32.
    for (Layer layer : kResNet50) {
      const bool sweep = (layer.c == 64 && layer.hw == 112) || (layer.c == 256 && layer.hw == 56) ||
                         (layer.c == 2048 && layer.hw == 7);
      if (sweep) {
        add(grid, layer, {1, 2, 4, 8, 16, 32, 64});
      } else {
        add(grid, layer, {1, 32});
      }
    }
    add(grid, kMatrix, {16, 64, 256, 1024});
  } else if (name == "full") {
    for (Layer layer : kResNet50) add(grid, layer, {1, 2, 4, 8, 16, 32, 64});
    add(grid, kMatrix, {16, 32, 64, 128, 256, 512, 1024});
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

double bytes_per_call(Op op, const Point& p) {
  const double tensor = static_cast<double>(p.elements()) * sizeof(float);
  switch (op) {
    case Op::TrainFwd:
      return 3.0 * tensor;
    case Op::InferFwd:
      return 2.0 * tensor;
    case Op::Backward:
      return 3.0 * tensor;
  }
  return 0.0;
}

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
  g_errors.fetch_add(1);
  state.SkipWithError(message.c_str());
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

}  // namespace simdnorm_bench
