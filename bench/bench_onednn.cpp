// oneDNN's batch normalisation and layer normalisation on the same tensors, when CMake found dnnl
// (SIMDNORM_BENCH_WITH_ONEDNN); otherwise the suite registers no oneDNN benchmarks and says so in its context.
// oneDNN 2.6 has no GroupNorm or RMSNorm primitive: those compare with PyTorch only.
//
// oneDNN 2.6 API (v2: operation descriptor, then primitive descriptor, then primitive), with separate scale and
// shift (use_scale | use_shift) like simdnorm's gamma and beta. Primitives are created before the timing loop; the
// loop times execute() and the stream's wait(), nothing else. oneDNN runs on the same OpenMP runtime with the same
// thread count (main() sets omp_set_num_threads).
#include "bench_common.h"

#if defined(SIMDNORM_BENCH_WITH_ONEDNN)

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdio>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace simdnorm_bench {
namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Everything a call needs, kept alive by the runner.
struct OnednnCall {
  dnnl::stream stream;
  dnnl::primitive primitive;
  std::unordered_map<int, dnnl::memory> args;
  Channels ch;
  AlignedFloats batch_var;
  Stats stats;            // LayerNorm: mean and rstd per row
  AlignedFloats row_var;  // LayerNorm: oneDNN's variance per row

  OnednnCall(std::int64_t c, std::size_t rows)
      : stream(cpu_engine()), ch(c), batch_var(static_cast<std::size_t>(c)), stats(rows), row_var(rows) {}
};

void describe_outputs(Op op, const Tensors& t, const std::shared_ptr<OnednnCall>& call, Outputs* outputs) {
  if (outputs == nullptr) return;
  const float* out = is_backward(op) ? t.dx : t.y;
  outputs->out = [out] { return out; };
  if (is_backward(op)) {
    outputs->dgamma = [call] { return static_cast<const float*>(call->ch.dgamma.data()); };
    outputs->dbeta = [call] { return static_cast<const float*>(call->ch.dbeta.data()); };
  }
}

// LayerNorm over the rows of a rows x cols matrix: layer_normalization_forward (forward_training, which saves the
// mean and variance as PyTorch's and simdnorm's save mean and rstd) and _backward (prop_kind::backward: dx, dscale,
// dshift), use_scale | use_shift.
Runner onednn_layer_norm_runner(Op op, const Point& p, std::string* label, Outputs* outputs) {
  using dnnl::memory;
  using dnnl::normalization_flags;
  using dnnl::prop_kind;
  dnnl::engine& engine = cpu_engine();
  const std::size_t rows = static_cast<std::size_t>(p.n);
  auto call = std::make_shared<OnednnCall>(p.c, rows);
  Channels& ch = call->ch;
  const memory::desc data_md({p.n, p.c}, memory::data_type::f32, memory::format_tag::ab);
  const memory::desc stat_md({p.n}, memory::data_type::f32, memory::format_tag::a);
  const memory::desc column_md({p.c}, memory::data_type::f32, memory::format_tag::a);
  const Tensors t = tensors_for(p.elements());
  memory scale(column_md, engine, ch.gamma.data());
  memory shift(column_md, engine, ch.beta.data());
  memory mean(stat_md, engine, call->stats.mean.data());
  memory variance(stat_md, engine, call->row_var.data());
  const normalization_flags affine = normalization_flags::use_scale | normalization_flags::use_shift;
  const dnnl::layer_normalization_forward::desc forward_desc(prop_kind::forward_training, data_md, stat_md, kEps,
                                                             affine);
  const dnnl::layer_normalization_forward::primitive_desc forward_pd(forward_desc, engine);
  if (op == Op::LayerNormFwd) {
    call->primitive = dnnl::layer_normalization_forward(forward_pd);
    call->args = {{DNNL_ARG_SRC, memory(data_md, engine, const_cast<float*>(t.x))},
                  {DNNL_ARG_DST, memory(data_md, engine, t.y)},
                  {DNNL_ARG_SCALE, scale},
                  {DNNL_ARG_SHIFT, shift},
                  {DNNL_ARG_MEAN, mean},
                  {DNNL_ARG_VARIANCE, variance}};
    *label = forward_pd.impl_info_str();
  } else {
    // The statistics of x, as the forward pass saved them; oneDNN takes the variance, var = 1/rstd^2 - eps.
    actual_stats(op, SIMDNORM_NCHW, p, t.x, &call->stats);
    for (std::size_t r = 0; r < rows; ++r) {
      call->row_var[r] = 1.0f / (call->stats.rstd[r] * call->stats.rstd[r]) - kEps;
    }
    const dnnl::layer_normalization_backward::desc desc(prop_kind::backward, data_md, data_md, stat_md, kEps, affine);
    const dnnl::layer_normalization_backward::primitive_desc pd(desc, engine, forward_pd);
    call->primitive = dnnl::layer_normalization_backward(pd);
    call->args = {{DNNL_ARG_SRC, memory(data_md, engine, const_cast<float*>(t.x))},
                  {DNNL_ARG_DIFF_DST, memory(data_md, engine, const_cast<float*>(t.dy))},
                  {DNNL_ARG_MEAN, mean},
                  {DNNL_ARG_VARIANCE, variance},
                  {DNNL_ARG_SCALE, scale},
                  {DNNL_ARG_SHIFT, shift},
                  {DNNL_ARG_DIFF_SRC, memory(data_md, engine, t.dx)},
                  {DNNL_ARG_DIFF_SCALE, memory(column_md, engine, ch.dgamma.data())},
                  {DNNL_ARG_DIFF_SHIFT, memory(column_md, engine, ch.dbeta.data())}};
    *label = pd.impl_info_str();
  }
  describe_outputs(op, t, call, outputs);
  return [call] {
    call->primitive.execute(call->stream, call->args);
    call->stream.wait();
  };
}

}  // namespace

bool onednn_runs(Op op) {
  return family_of(op) == Family::BatchNorm || op == Op::LayerNormFwd || op == Op::LayerNormBwd;
}

Runner onednn_runner(Op op, simdnorm_layout layout, const Point& p, std::string* label, Outputs* outputs) {
  using dnnl::memory;
  using dnnl::normalization_flags;
  using dnnl::prop_kind;
  if (op == Op::LayerNormFwd || op == Op::LayerNormBwd) return onednn_layer_norm_runner(op, p, label, outputs);
  if (!onednn_runs(op)) throw std::runtime_error(std::string("oneDNN has no ") + op_name(op));
  dnnl::engine& engine = cpu_engine();
  auto call = std::make_shared<OnednnCall>(p.c, 0);
  Channels& ch = call->ch;

  // With spatial 1 (the N x C matrix) both layouts are the same bytes, and oneDNN 2.6 takes its JIT kernel only
  // when the tensor is described as nhwc (nchw and nc get the generic ncsp kernel, 40x slower); its primitive cache
  // even treats the two descriptions as one, so that which kernel ran would depend on the order of the
  // benchmarks. The matrix is therefore described as nhwc in both layouts: oneDNN at its best for those bytes.
  const bool channels_last = layout == SIMDNORM_NHWC || p.hw == 1;
  const memory::format_tag tag = channels_last ? memory::format_tag::nhwc : memory::format_tag::nchw;
  const memory::desc data_md({p.n, p.c, p.hw, p.hw}, memory::data_type::f32, tag);
  const memory::desc channel_md({p.c}, memory::data_type::f32, memory::format_tag::a);

  const Tensors t = tensors_for(p.elements());

  // User buffers wrapped without copies; oneDNN only reads src and diff_dst.
  memory src(data_md, engine, const_cast<float*>(t.x));
  memory dst(data_md, engine, t.y);
  memory diff_dst(data_md, engine, const_cast<float*>(t.dy));
  memory diff_src(data_md, engine, t.dx);
  memory scale(channel_md, engine, ch.gamma.data());
  memory shift(channel_md, engine, ch.beta.data());

  const normalization_flags affine = normalization_flags::use_scale | normalization_flags::use_shift;
  switch (op) {
    case Op::TrainFwd:
    case Op::InferFwd: {
      // Training writes the batch statistics; inference reads the given ones (use_global_stats).
      const bool training = op == Op::TrainFwd;
      const dnnl::batch_normalization_forward::desc desc(
          training ? prop_kind::forward_training : prop_kind::forward_inference, data_md, kEps,
          training ? affine : affine | normalization_flags::use_global_stats);
      const dnnl::batch_normalization_forward::primitive_desc pd(desc, engine);
      call->primitive = dnnl::batch_normalization_forward(pd);
      call->args = {
          {DNNL_ARG_SRC, src},
          {DNNL_ARG_DST, dst},
          {DNNL_ARG_SCALE, scale},
          {DNNL_ARG_SHIFT, shift},
          {DNNL_ARG_MEAN, memory(pd.mean_desc(), engine, training ? ch.batch_mean.data() : ch.mean.data())},
          {DNNL_ARG_VARIANCE, memory(pd.variance_desc(), engine, training ? call->batch_var.data() : ch.var.data())}};
      *label = pd.impl_info_str();
      break;
    }
    default: {
      // Backward. The statistics are the ones simdnorm's backward gets: batch_mean = mean and batch_invstd =
      // 1/sqrt(var + eps) (see Channels).
      const dnnl::batch_normalization_forward::desc forward_desc(prop_kind::forward_training, data_md, kEps, affine);
      const dnnl::batch_normalization_forward::primitive_desc forward_pd(forward_desc, engine);
      const dnnl::batch_normalization_backward::desc desc(prop_kind::backward, data_md, data_md, kEps, affine);
      const dnnl::batch_normalization_backward::primitive_desc pd(desc, engine, forward_pd);
      call->primitive = dnnl::batch_normalization_backward(pd);
      call->args = {{DNNL_ARG_SRC, src},
                    {DNNL_ARG_DIFF_DST, diff_dst},
                    {DNNL_ARG_MEAN, memory(pd.mean_desc(), engine, ch.mean.data())},
                    {DNNL_ARG_VARIANCE, memory(pd.variance_desc(), engine, ch.var.data())},
                    {DNNL_ARG_SCALE, scale},
                    {DNNL_ARG_SHIFT, shift},  // 2.6 lists the shift among the backward inputs too, and checks it
                    {DNNL_ARG_DIFF_SRC, diff_src},
                    {DNNL_ARG_DIFF_SCALE, memory(channel_md, engine, ch.dgamma.data())},
                    {DNNL_ARG_DIFF_SHIFT, memory(channel_md, engine, ch.dbeta.data())}};
      *label = pd.impl_info_str();
      break;
    }
  }
  describe_outputs(op, t, call, outputs);
  return [call] {
    call->primitive.execute(call->stream, call->args);
    call->stream.wait();
  };
}

namespace {

void run_onednn(benchmark::State& state, Op op, simdnorm_layout layout, const Point& p) {
  Runner run;
  try {
    std::string label;
    run = onednn_runner(op, layout, p, &label, nullptr);
    state.SetLabel(label);
  } catch (const std::exception& e) {
    report_error(state, std::string("oneDNN: ") + e.what());
    return;
  }
  time_runner(state, bytes_per_call(op, p), p, run);
}

}  // namespace

bool onednn_available() { return true; }

std::string onednn_version() {
  const dnnl_version_t* v = dnnl::version();
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%d.%d.%d", v->major, v->minor, v->patch);
  return buffer;
}

void register_onednn(Op op, simdnorm_layout layout, const Point& p, const RunSettings& s) {
  if (!onednn_runs(op)) return;
  const std::string name = benchmark_name(op, layout, "onednn", p, s.name_suffix);
  benchmark::RegisterBenchmark(name.c_str(),
                               [op, layout, p](benchmark::State& state) { run_onednn(state, op, layout, p); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinWarmUpTime(s.warmup_seconds);
}

}  // namespace simdnorm_bench

#else  // !SIMDNORM_BENCH_WITH_ONEDNN

#include <stdexcept>

namespace simdnorm_bench {

bool onednn_available() { return false; }
bool onednn_runs(Op) { return false; }
#ifndef SIMDNORM_BENCH_ONEDNN_SKIPPED
#define SIMDNORM_BENCH_ONEDNN_SKIPPED "not found"
#endif
// Why CMake left oneDNN out, as its configure said it (bench/peers.cmake).
std::string onednn_version() { return "not built: " SIMDNORM_BENCH_ONEDNN_SKIPPED; }
void register_onednn(Op, simdnorm_layout, const Point&, const RunSettings&) {}
Runner onednn_runner(Op, simdnorm_layout, const Point&, std::string*, Outputs*) {
  throw std::runtime_error("not built");
}

}  // namespace simdnorm_bench

#endif
