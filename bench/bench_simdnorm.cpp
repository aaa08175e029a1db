// simdnorm and its naive reference, run through the same code: the two share their C signatures, so one benchmark
// body takes the entry points of either and nothing but the called functions differs between their figures.
#include <simdnorm/reference.h>
#include <simdnorm/simdnorm.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>

#include "bench_common.h"

namespace simdnorm_bench {
namespace {

struct EntryPoints {
  const char* impl;
  decltype(&simdnorm_forward_training) forward_training;
  decltype(&simdnorm_forward_inference) forward_inference;
  decltype(&simdnorm_backward) backward;
  decltype(&simdnorm_layer_norm_forward) layer_norm_forward;
  decltype(&simdnorm_layer_norm_backward) layer_norm_backward;
  decltype(&simdnorm_rms_norm_forward) rms_norm_forward;
  decltype(&simdnorm_rms_norm_backward) rms_norm_backward;
  decltype(&simdnorm_group_norm_forward) group_norm_forward;
  decltype(&simdnorm_group_norm_backward) group_norm_backward;
};

constexpr EntryPoints kSimdnorm = {"simdnorm",
                                   &simdnorm_forward_training,
                                   &simdnorm_forward_inference,
                                   &simdnorm_backward,
                                   &simdnorm_layer_norm_forward,
                                   &simdnorm_layer_norm_backward,
                                   &simdnorm_rms_norm_forward,
                                   &simdnorm_rms_norm_backward,
                                   &simdnorm_group_norm_forward,
                                   &simdnorm_group_norm_backward};
constexpr EntryPoints kNaive = {"naive",
                                &simdnorm_reference_forward_training,
                                &simdnorm_reference_forward_inference,
                                &simdnorm_reference_backward,
                                &simdnorm_reference_layer_norm_forward,
                                &simdnorm_reference_layer_norm_backward,
                                &simdnorm_reference_rms_norm_forward,
                                &simdnorm_reference_rms_norm_backward,
                                &simdnorm_reference_group_norm_forward,
                                &simdnorm_reference_group_norm_backward};

simdnorm_shape shape_of(const Point& p, simdnorm_layout layout) {
  return simdnorm_shape{static_cast<std::size_t>(p.n), static_cast<std::size_t>(p.c),
                        static_cast<std::size_t>(p.spatial()), layout};
}

// One call of `op` through `api` on the given buffers (y for the forward output, dy and dx for backward). Forward
// calls write the statistics they save into `stats`; backward calls read them from it.
simdnorm_status call(const EntryPoints& api, Op op, simdnorm_layout layout, const Point& p, const float* x, float* y,
                     const float* dy, float* dx, Channels& ch, Stats& stats) {
  const simdnorm_shape shape = shape_of(p, layout);
  const std::size_t rows = static_cast<std::size_t>(p.n), cols = static_cast<std::size_t>(p.c);
  switch (op) {
    case Op::TrainFwd:
      return api.forward_training(&shape, x, y, ch.gamma.data(), ch.beta.data(), kEps, ch.batch_mean.data(),
                                  ch.batch_invstd.data(), ch.running_mean.data(), ch.running_var.data(), kMomentum,
                                  0u);
    case Op::InferFwd:
      return api.forward_inference(&shape, x, y, ch.gamma.data(), ch.beta.data(), ch.mean.data(), ch.var.data(), kEps,
                                   0u);
    case Op::Backward:
      return api.backward(&shape, x, dy, ch.gamma.data(), ch.beta.data(), ch.batch_mean.data(), ch.batch_invstd.data(),
                          dx, ch.dgamma.data(), ch.dbeta.data(), 0u);
    case Op::LayerNormFwd:
      return api.layer_norm_forward(rows, cols, x, y, ch.gamma.data(), ch.beta.data(), kEps, stats.mean.data(),
                                    stats.rstd.data(), 0u);
    case Op::LayerNormBwd:
      return api.layer_norm_backward(rows, cols, x, dy, ch.gamma.data(), stats.mean.data(), stats.rstd.data(), dx,
                                     ch.dgamma.data(), ch.dbeta.data(), 0u);
    case Op::RmsNormFwd:
      return api.rms_norm_forward(rows, cols, x, y, ch.gamma.data(), kEps, stats.rstd.data(), 0u);
    case Op::RmsNormBwd:
      return api.rms_norm_backward(rows, cols, x, dy, ch.gamma.data(), stats.rstd.data(), dx, ch.dgamma.data(), 0u);
    case Op::GroupNormFwd:
      return api.group_norm_forward(&shape, static_cast<std::size_t>(kGroups), x, y, ch.gamma.data(), ch.beta.data(),
                                    kEps, stats.mean.data(), stats.rstd.data(), 0u);
    case Op::GroupNormBwd:
      return api.group_norm_backward(&shape, static_cast<std::size_t>(kGroups), x, dy, ch.gamma.data(),
                                     ch.beta.data(), stats.mean.data(), stats.rstd.data(), dx, ch.dgamma.data(),
                                     ch.dbeta.data(), 0u);
  }
  return SIMDNORM_INVALID_ARGUMENT;
}

// Throws with simdnorm's message when a call failed.
void check(const EntryPoints& api, simdnorm_status status) {
  if (status != SIMDNORM_SUCCESS) {
    throw std::runtime_error(std::string(api.impl) + " returned status " +
                             std::to_string(static_cast<int>(status)) + ": " + simdnorm_last_error());
  }
}

// The parameters of one runner: per-channel (per-column) arrays and the saved statistics.
struct Params {
  Params(Op op, const Point& p) : ch(p.c), stats(stats_count(op, p)) {}
  Channels ch;
  Stats stats;
};

void describe_outputs(Op op, const float* out, const std::shared_ptr<Params>& params, Outputs* outputs) {
  if (outputs == nullptr) return;
  outputs->out = [out] { return out; };
  if (is_backward(op)) {
    outputs->dgamma = [params] { return static_cast<const float*>(params->ch.dgamma.data()); };
    if (op != Op::RmsNormBwd) outputs->dbeta = [params] { return static_cast<const float*>(params->ch.dbeta.data()); };
  }
}

// Out of place, as a framework calls it: y (dx) is a separate buffer, so x and dy stay the same data for every
// iteration and no value can drift towards denormals or infinity however long the benchmark runs. The row norms'
// and GroupNorm's backward get the statistics of x itself, as the forward pass would have saved them.
Runner entry_point_runner(const EntryPoints& api, Op op, simdnorm_layout layout, const Point& p, Outputs* outputs) {
  const Tensors t = tensors_for(p.elements());
  auto params = std::make_shared<Params>(op, p);
  if (is_backward(op) && family_of(op) != Family::BatchNorm) actual_stats(op, layout, p, t.x, &params->stats);
  describe_outputs(op, is_backward(op) ? t.dx : t.y, params, outputs);
  const EntryPoints* entry_points = &api;
  return [=] {
    check(*entry_points, call(*entry_points, op, layout, p, t.x, t.y, t.dy, t.dx, params->ch, params->stats));
  };
}

// In place, as an inference engine or a memory-tight trainer calls it: y = x (dx = dy), on a copy of x (dy) made
// before timing, like the streaming baseline's. Registered for tensors beyond the last-level cache, where the issues
// set their targets against the streaming pass. The parameters make every call a fixed point of the one before, or
// at least keep the values where they are, so that repeating it on its own output neither grows the values nor
// shrinks them into denormals:
// - batch norm: training normalises its own output to itself; inference has a = 1, b = 0 to a rounding; backward has
//   gamma*invstd = 1 and projects dy onto what it already is;
// - LayerNorm, RMSNorm and GroupNorm forward: the output is normalised (then scaled by gamma ~ 1 and shifted by
//   beta ~ 0) whatever the input, so it stays bounded over any number of calls;
// - their backward: every row (group) gets the same rstd and gamma = 1/rstd, so that dx = P(dy), P the projection
//   off the mean and the normalised input, whose eigenvalues are 1 and (on those two directions) near 0: the values
//   settle and stay normal floats.
// Other passes over the same buffer in between (a paired benchmark's streaming pass, floor, out-of-place call)
// change nothing of that: training is blind to x -> 0.5 x + 0.25, and the others only pull the values towards a
// normal fixed point.
Runner inplace_runner(Op op, simdnorm_layout layout, const Point& p, Outputs* outputs) {
  const Tensors t = tensors_for(p.elements());
  auto params = std::make_shared<Params>(op, p);
  Channels& ch = params->ch;
  if (family_of(op) == Family::BatchNorm) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(p.c); ++i) {
      if (op == Op::InferFwd) {
        ch.gamma[i] = std::sqrt(ch.var[i] + kEps);
        ch.beta[i] = ch.mean[i];
      } else if (op == Op::Backward) {
        ch.gamma[i] = 1.0f / ch.batch_invstd[i];
      }
    }
  } else if (is_backward(op)) {
    uniform_stats(params->stats.mean.size(), &params->stats);
    for (std::size_t i = 0; i < static_cast<std::size_t>(p.c); ++i) ch.gamma[i] = 1.0f / kUniformRstd;
  }
  float* const data = is_backward(op) ? fresh_copy_of_dy(p.elements()) : fresh_copy_of_x(p.elements());
  describe_outputs(op, data, params, outputs);
  return [=] {
    check(kSimdnorm, is_backward(op)
                         ? call(kSimdnorm, op, layout, p, t.x, nullptr, data, data, params->ch, params->stats)
                         : call(kSimdnorm, op, layout, p, data, data, nullptr, nullptr, params->ch, params->stats));
  };
}

benchmark::internal::Benchmark* register_entry_points(const EntryPoints& api, Op op, simdnorm_layout layout,
                                                      const Point& p, const std::string& suffix) {
  const std::string name = benchmark_name(op, layout, api.impl, p, suffix);
  const EntryPoints* entry_points = &api;
  return benchmark::RegisterBenchmark(name.c_str(),
                                      [entry_points, op, layout, p](benchmark::State& state) {
                                        time_runner(state, bytes_per_call(op, p), p,
                                                    entry_point_runner(*entry_points, op, layout, p, nullptr));
                                      })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace

Runner simdnorm_runner(Op op, simdnorm_layout layout, const Point& p, bool in_place, Outputs* outputs) {
  return in_place ? inplace_runner(op, layout, p, outputs) : entry_point_runner(kSimdnorm, op, layout, p, outputs);
}

simdnorm_status reference_call(Op op, simdnorm_layout layout, const Point& p, const float* x, float* y,
                               const float* dy, float* dx, Channels& ch, Stats& stats) {
  return call(kNaive, op, layout, p, x, y, dy, dx, ch, stats);
}

void register_simdnorm(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s) {
  register_entry_points(kSimdnorm, op, layout, p, s.name_suffix)->MinWarmUpTime(s.warmup_seconds);
}

void register_inplace(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s) {
  const std::string name = benchmark_name(op, layout, "inplace", p, s.name_suffix);
  benchmark::RegisterBenchmark(name.c_str(),
                               [op, layout, p](benchmark::State& state) {
                                 time_runner(state, bytes_per_call(op, p), p, inplace_runner(op, layout, p, nullptr));
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinWarmUpTime(s.warmup_seconds);
}

// The reference is scalar, single-threaded and, in NHWC, walks the tensor channel by channel with a stride of C
// floats: one call on a large tensor takes up to a second. It runs for a short minimum time, without warm-up, one
// repetition, and only in the first round(s) (main.cpp), so it is present for every operation and layout at a
// bounded cost; a slow call times itself well, so little precision is lost. LayerNorm, RMSNorm and GroupNorm's
// reference runs on the small tensors only (runs_naive).
void register_naive(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s) {
  register_entry_points(kNaive, op, layout, p, s.name_suffix)->MinTime(s.naive_min_seconds)->Repetitions(1);
}

}  // namespace simdnorm_bench
