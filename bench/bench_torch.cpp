// PyTorch's CPU kernels on the same tensors, when CMake found libtorch (SIMDNORM_BENCH_WITH_TORCH); otherwise the
// suite registers no PyTorch benchmarks and says so in its context.
//
// libtorch 1.13 (Debian's libtorch-dev), through ATen's operators rather than torch::nn modules, so that what is
// timed is the kernels and not autograd's bookkeeping:
//   batch norm    at::native_batch_norm (training; inference with the given running statistics) and
//                 at::native_batch_norm_backward (train = true: dx, dgamma, dbeta from the saved mean and invstd)
//   LayerNorm     at::native_layer_norm, at::native_layer_norm_backward
//   GroupNorm     at::native_group_norm, at::native_group_norm_backward; NHWC is a channels_last tensor (whose
//                 backward runs on contiguous copies, as 1.13's autograd calls it; see there)
//   RMSNorm       1.13 has none: the composite a user writes, x * rsqrt(mean(x^2, -1) + eps) * gamma, forward as
//                 five ATen calls, backward through autograd (the graph built once, then each call runs
//                 torch::autograd::grad over it with retain_graph): RMSNorm's backward is the only one that
//                 includes autograd's engine, as a user's would
// x and dy wrap the suite's buffers (at::from_blob, NCHW or channels_last strides); the outputs are PyTorch's own,
// allocated by each call as in PyTorch, through a caching allocator (so that a large output costs no page faults;
// see CachingCpuAllocator). Calls other than RMSNorm's backward run under c10::InferenceMode (no version counters, no
// autograd dispatch), none of the inputs requires grad. PyTorch runs on the same OpenMP runtime with the same thread
// count as simdnorm (torch_setup, at::set_num_threads).
#include "bench_common.h"

#if defined(SIMDNORM_BENCH_WITH_TORCH)

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>

#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace simdnorm_bench {
namespace {

at::TensorOptions float_options() { return at::TensorOptions().dtype(at::kFloat).device(at::kCPU); }

// A tensor of the suite's layout over `data`, without a copy: a rows x cols matrix for the row norms and batch
// norm's N x C matrix, otherwise N x C x H x W with NCHW or channels_last (NHWC) strides.
at::Tensor wrap_tensor(const float* data, Op op, simdnorm_layout layout, const Point& p) {
  float* ptr = const_cast<float*>(data);  // PyTorch only reads x and dy
  if (family_of(op) == Family::Row || (family_of(op) == Family::BatchNorm && p.hw == 1)) {
    return at::from_blob(ptr, {p.n, p.c}, float_options());
  }
  if (layout == SIMDNORM_NHWC) {
    return at::from_blob(ptr, {p.n, p.c, p.hw, p.hw}, {p.c * p.hw * p.hw, 1, p.hw * p.c, p.c}, float_options());
  }
  return at::from_blob(ptr, {p.n, p.c, p.hw, p.hw}, float_options());
}

at::Tensor wrap_array(float* data, std::vector<std::int64_t> sizes) {
  return at::from_blob(data, sizes, float_options());
}

// Everything a call needs, kept alive by the runner; `results` holds what the last call returned (out, then
// dgamma and dbeta where the op computes them).
struct TorchCall {
  TorchCall(Op op, const Point& p) : ch(p.c), stats(stats_count(op, p)) {}
  Channels ch;
  Stats stats;
  std::vector<at::Tensor> results;
  at::Tensor checked;  // the output in the suite's layout, for Outputs
};

void set_results(TorchCall* call, const std::tuple<at::Tensor, at::Tensor, at::Tensor>& r) {
  call->results = {std::get<0>(r), std::get<1>(r), std::get<2>(r)};
}

// The last call's outputs go back to the allocator before the next call, as in a framework's training step, so that
// the call finds blocks of its sizes in the pool (CachingCpuAllocator).
void drop_results(TorchCall* call) {
  call->results.clear();
  call->checked = at::Tensor();
}

void describe_outputs(Op op, simdnorm_layout layout, const std::shared_ptr<TorchCall>& call, Outputs* outputs) {
  if (outputs == nullptr) return;
  const bool channels_last = layout == SIMDNORM_NHWC && family_of(op) != Family::Row;
  outputs->out = [call, channels_last] {
    const at::Tensor& out = call->results.at(0);
    call->checked = out.dim() == 4 && channels_last ? out.contiguous(at::MemoryFormat::ChannelsLast)
                                                    : out.contiguous();
    return static_cast<const float*>(call->checked.data_ptr<float>());
  };
  if (!is_backward(op)) return;
  outputs->dgamma = [call] {
    call->results.at(1) = call->results.at(1).contiguous();
    return static_cast<const float*>(call->results.at(1).data_ptr<float>());
  };
  if (op == Op::RmsNormBwd) return;
  outputs->dbeta = [call] {
    call->results.at(2) = call->results.at(2).contiguous();
    return static_cast<const float*>(call->results.at(2).data_ptr<float>());
  };
}

// NB: PyTorch allocates its outputs and temporaries at every call (posix_memalign through its default CPU
// allocator). glibc maps every block above 32 MB afresh and unmaps it when it is freed, so that each call on a large
// tensor pays a page fault per 4 KB it allocates, on top of the kernel: at::native_layer_norm on 16384 x 1024 (a
// 64 MB output) took 50 ms a call that way against 9 ms without the faults, on the 2-core development VM. Kept in
// glibc's heap instead (mallopt M_MMAP_MAX = 0), the blocks fragment it: the composite RMSNorm's backward on
// 16384 x 4096 grew the heap to 6 GB over four calls of 1.4 to 2.5 s before settling, and glibc still trims a heap
// whose free top passes 2 GB (the largest threshold mallopt takes).
// So PyTorch gets a caching allocator, as its CUDA backend has one: a freed block is kept and handed to the next
// request of the same size, so that from its second call on a call finds every block it needs already mapped.
// What is timed is then PyTorch's kernels and its allocator's bookkeeping, not the kernel's page faults. The blocks
// in the pool go back to glibc when a runner is made for another op or tensor than the one before (release_free):
// the pool holds what one benchmark's calls need, and keeps it across the runs Google Benchmark makes of one
// benchmark (warm-up, iteration-count trials, measurement: each makes a runner afresh).
class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(std::size_t bytes) const override {
    void* block = take(bytes);
    return {block, block, &give_back, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &give_back; }

  static void release_free() {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    for (const auto& entry : p.free_blocks) {
      p.sizes.erase(entry.second);
      std::free(entry.second);
    }
    p.free_blocks.clear();
  }

 private:
  struct Pool {
    std::mutex mutex;
    std::unordered_map<void*, std::size_t> sizes;   // every block handed out, by address
    std::multimap<std::size_t, void*> free_blocks;  // returned blocks, by size
  };
  static Pool& pool() {
    static Pool instance;
    return instance;
  }
  static void* take(std::size_t bytes) {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    const auto it = p.free_blocks.find(bytes);
    if (it != p.free_blocks.end()) {
      void* block = it->second;
      p.free_blocks.erase(it);
      return block;
    }
    void* block = nullptr;
    // 64-byte aligned, as PyTorch's own allocator (c10::alloc_cpu).
    if (posix_memalign(&block, 64, bytes == 0 ? 64 : bytes) != 0) throw std::bad_alloc();
    p.sizes.emplace(block, bytes);
    return block;
  }
  static void give_back(void* block) {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    p.free_blocks.emplace(p.sizes.at(block), block);
  }
};

// RMSNorm as a PyTorch 1.13 user writes it.
at::Tensor rms_norm_composite(const at::Tensor& x, const at::Tensor& gamma) {
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + kEps) * gamma;
}

}  // namespace

bool torch_available() { return true; }

std::string torch_version() { return TORCH_VERSION; }

int torch_setup(int threads) {
  static CachingCpuAllocator allocator;
  c10::SetCPUAllocator(&allocator, /*priority=*/100);
  at::set_num_threads(threads);
  return at::get_num_threads();
}

Runner torch_runner(Op op, simdnorm_layout layout, const Point& p, std::string* label, Outputs* outputs) {
  static std::string last_tensor;
  const std::string tensor = benchmark_name(op, layout, "", p, "");
  if (tensor != last_tensor) CachingCpuAllocator::release_free();  // the blocks of the benchmarks before
  last_tensor = tensor;
  const Tensors t = tensors_for(p.elements());
  auto call = std::make_shared<TorchCall>(op, p);
  Channels& ch = call->ch;
  const at::Tensor x = wrap_tensor(t.x, op, layout, p);
  const at::Tensor dy = wrap_tensor(t.dy, op, layout, p);
  const at::Tensor gamma = wrap_array(ch.gamma.data(), {p.c});
  const at::Tensor beta = wrap_array(ch.beta.data(), {p.c});
  const bool channels_last = layout == SIMDNORM_NHWC && family_of(op) == Family::BatchNorm && p.hw > 1;
  const bool group_channels_last = layout == SIMDNORM_NHWC && family_of(op) == Family::Group;
  const char* format = channels_last || group_channels_last ? ", channels_last" : "";
  const std::int64_t rows = p.n, cols = p.c;
  Runner run;
  switch (op) {
    case Op::TrainFwd:
    case Op::InferFwd: {
      const bool training = op == Op::TrainFwd;
      const at::Tensor running_mean = wrap_array(training ? ch.running_mean.data() : ch.mean.data(), {p.c});
      const at::Tensor running_var = wrap_array(training ? ch.running_var.data() : ch.var.data(), {p.c});
      run = [call, x, gamma, beta, running_mean, running_var, training] {
        drop_results(call.get());
        c10::InferenceMode guard;
        set_results(call.get(), at::native_batch_norm(x, gamma, beta, running_mean, running_var, training, kMomentum,
                                                      kEps));
      };
      *label = std::string("at::native_batch_norm (") + (training ? "training" : "inference") + format + ")";
      break;
    }
    case Op::Backward: {
      // The statistics simdnorm's backward gets (Channels): running statistics are not read with train = true.
      const at::Tensor save_mean = wrap_array(ch.batch_mean.data(), {p.c});
      const at::Tensor save_invstd = wrap_array(ch.batch_invstd.data(), {p.c});
      const at::Tensor running_mean = wrap_array(ch.mean.data(), {p.c});
      const at::Tensor running_var = wrap_array(ch.var.data(), {p.c});
      run = [call, x, dy, gamma, running_mean, running_var, save_mean, save_invstd] {
        drop_results(call.get());
        c10::InferenceMode guard;
        set_results(call.get(), at::native_batch_norm_backward(dy, x, gamma, running_mean, running_var, save_mean,
                                                               save_invstd, /*train=*/true, kEps, {true, true, true}));
      };
      *label = std::string("at::native_batch_norm_backward (train") + format + ")";
      break;
    }
    case Op::LayerNormFwd:
      run = [call, x, gamma, beta, cols] {
        drop_results(call.get());
        c10::InferenceMode guard;
        set_results(call.get(), at::native_layer_norm(x, {cols}, gamma, beta, kEps));
      };
      *label = "at::native_layer_norm";
      break;
    case Op::LayerNormBwd: {
      actual_stats(op, layout, p, t.x, &call->stats);
      const at::Tensor mean = wrap_array(call->stats.mean.data(), {rows, 1});
      const at::Tensor rstd = wrap_array(call->stats.rstd.data(), {rows, 1});
      run = [call, x, dy, gamma, beta, mean, rstd, cols] {
        drop_results(call.get());
        c10::InferenceMode guard;
        set_results(call.get(),
                    at::native_layer_norm_backward(dy, x, {cols}, mean, rstd, gamma, beta, {true, true, true}));
      };
      *label = "at::native_layer_norm_backward";
      break;
    }
    case Op::RmsNormFwd:
      run = [call, x, gamma] {
        drop_results(call.get());
        c10::InferenceMode guard;
        call->results = {rms_norm_composite(x, gamma)};
      };
      *label = "x * rsqrt(x.pow(2).mean(-1) + eps) * gamma";
      break;
    case Op::RmsNormBwd: {
      // The graph of the composite, built once outside the timing loop; each call walks it again (retain_graph).
      const at::Tensor x_leaf = wrap_tensor(t.x, op, layout, p).requires_grad_(true);
      const at::Tensor gamma_leaf = wrap_array(ch.gamma.data(), {p.c}).requires_grad_(true);
      const at::Tensor y = rms_norm_composite(x_leaf, gamma_leaf);
      run = [call, y, x_leaf, gamma_leaf, dy] {
        drop_results(call.get());
        call->results = torch::autograd::grad({y}, {x_leaf, gamma_leaf}, {dy}, /*retain_graph=*/true);
      };
      *label = "autograd of x * rsqrt(x.pow(2).mean(-1) + eps) * gamma";
      break;
    }
    case Op::GroupNormFwd:
      run = [call, x, gamma, beta, p] {
        drop_results(call.get());
        c10::InferenceMode guard;
        set_results(call.get(), at::native_group_norm(x, gamma, beta, p.n, p.c, p.spatial(), kGroups, kEps));
      };
      *label = std::string("at::native_group_norm (") + (group_channels_last ? "channels_last" : "contiguous") + ")";
      break;
    case Op::GroupNormBwd: {
      actual_stats(op, layout, p, t.x, &call->stats);
      const at::Tensor mean = wrap_array(call->stats.mean.data(), {p.n, kGroups});
      const at::Tensor rstd = wrap_array(call->stats.rstd.data(), {p.n, kGroups});
      // NB: 1.13's native_group_norm_backward reads channels_last x and dy as if they were contiguous (dx off by
      // the order of the values; the one-off check catches it). Its autograd formula (NativeGroupNormBackward0)
      // hands it contiguous copies and returns dx in NCHW, correct: what a PyTorch 1.13 user's NHWC backward costs,
      // copies included, and what is timed here.
      run = [call, x, dy, gamma, mean, rstd, p] {
        drop_results(call.get());
        c10::InferenceMode guard;
        set_results(call.get(), at::native_group_norm_backward(dy.contiguous(), x.contiguous(), mean, rstd, gamma,
                                                               p.n, p.c, p.spatial(), kGroups, {true, true, true}));
      };
      *label = group_channels_last ? "at::native_group_norm_backward (channels_last x, dy made contiguous first)"
                                   : "at::native_group_norm_backward (contiguous)";
      break;
    }
  }
  describe_outputs(op, layout, call, outputs);
  // One call now, untimed: it fills the allocator's pool with this op's blocks (and does PyTorch's lazy set-up), so
  // that the timed calls find them, even where Google Benchmark times a single call of a fresh runner (a slow call
  // on a large tensor). ATen reports errors as c10::Error, a std::exception: the benchmark reports it.
  run();
  return run;
}

namespace {

void run_torch(benchmark::State& state, Op op, simdnorm_layout layout, const Point& p) {
  Runner run;
  try {
    std::string label;
    run = torch_runner(op, layout, p, &label, nullptr);
    state.SetLabel(label);
  } catch (const std::exception& e) {
    report_error(state, std::string("PyTorch: ") + e.what());
    return;
  }
  time_runner(state, bytes_per_call(op, p), p, run);
}

}  // namespace

void register_torch(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s) {
  const std::string name = benchmark_name(op, layout, "torch", p, s.name_suffix);
  benchmark::RegisterBenchmark(name.c_str(),
                               [op, layout, p](benchmark::State& state) { run_torch(state, op, layout, p); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinWarmUpTime(s.warmup_seconds);
}

}  // namespace simdnorm_bench

#else  // !SIMDNORM_BENCH_WITH_TORCH

#include <stdexcept>

namespace simdnorm_bench {

bool torch_available() { return false; }
#ifndef SIMDNORM_BENCH_TORCH_SKIPPED
#define SIMDNORM_BENCH_TORCH_SKIPPED "not found"
#endif
// Why CMake left PyTorch out, as its configure said it (bench/peers.cmake).
std::string torch_version() { return "not built: " SIMDNORM_BENCH_TORCH_SKIPPED; }
int torch_setup(int) { return 0; }
void register_torch(Op, simdnorm_layout, const Point&, const RunSettings&) {}
Runner torch_runner(Op, simdnorm_layout, const Point&, std::string*, Outputs*) {
  throw std::runtime_error("not built");
}

}  // namespace simdnorm_bench

#endif
