// The one-off check of the implementations before anything is timed: each implementation's runner (the very code
// the benchmarks time, with its parameters and its description of the tensors) runs once per op and layout on small
// tensors, and its outputs are compared with simdnorm's reference on the same inputs. It catches a peer wired wrong
// (a memory format, statistics in another convention, swapped arguments) that would otherwise be timed doing
// something else, and it costs milliseconds.
#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bench_common.h"

namespace simdnorm_bench {
namespace {

// Float kernels against the double reference on values of order 1 (sums of up to a few hundred for dgamma and
// dbeta): a correct implementation is within 1e-5 of the scale, a mis-wired one off by the order of the values.
constexpr double kTolerance = 1e-3;

// The small tensors: batch norm's with remainders (C = 24, 7 x 7) and its N x C matrix; a matrix of 5 rows of 67
// columns; GroupNorm with 3 channels in each of its 32 groups, 5 x 5.
std::vector<Point> check_points(Family family) {
  switch (family) {
    case Family::BatchNorm:
      return {Point{24, 7, 2}, Point{24, 1, 6}};
    case Family::Row:
      return {Point{67, 1, 5}};
    case Family::Group:
      return {Point{96, 5, 2}};
  }
  return {};
}

// The largest difference of `got` from `want` over `count` values, against the scale max(1, max |want|); an empty
// string when within tolerance, else what differs.
std::string compare(const char* what, const float* got, const float* want, std::size_t count) {
  double scale = 1.0, worst = 0.0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < count; ++i) scale = std::fmax(scale, std::fabs(static_cast<double>(want[i])));
  for (std::size_t i = 0; i < count; ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
    if (!(d <= worst)) {  // NaN is worst
      worst = d;
      at = i;
      if (std::isnan(d)) break;
    }
  }
  if (worst <= kTolerance * scale) return "";
  char buffer[160];
  std::snprintf(buffer, sizeof buffer, "%s differs at %zu: %g, the reference %g (max |reference| %g)", what, at,
                static_cast<double>(got[at]), static_cast<double>(want[at]), scale);
  return buffer;
}

std::string point_name(Op op, simdnorm_layout layout, const Point& p) {
  char shape[96];
  std::snprintf(shape, sizeof shape, "C:%lld/HW:%lld/N:%lld", static_cast<long long>(p.c),
                static_cast<long long>(p.hw), static_cast<long long>(p.n));
  return std::string(op_name(op)) + "/" + layout_name(op, layout) + "/" + shape;
}

using Make = Runner (*)(Op, simdnorm_layout, const Point&, Outputs*);

Runner make_simdnorm(Op op, simdnorm_layout layout, const Point& p, Outputs* outputs) {
  return simdnorm_runner(op, layout, p, false, outputs);
}
Runner make_onednn(Op op, simdnorm_layout layout, const Point& p, Outputs* outputs) {
  std::string label;
  return onednn_runner(op, layout, p, &label, outputs);
}
Runner make_torch(Op op, simdnorm_layout layout, const Point& p, Outputs* outputs) {
  std::string label;
  return torch_runner(op, layout, p, &label, outputs);
}

}  // namespace

std::string check_implementations() {
  struct Impl {
    const char* name;
    Make make;
    bool (*runs)(Op);
  };
  const Impl impls[] = {{"simdnorm", &make_simdnorm, [](Op) { return true; }},
                        {"oneDNN", &make_onednn, [](Op op) { return onednn_runs(op); }},
                        {"PyTorch", &make_torch, [](Op) { return torch_available(); }}};
  std::map<std::string, int> passed;
  std::vector<std::string> not_run, failed;
  std::set<std::string> not_checked;
  std::vector<Op> ops(std::begin(kBatchNormOps), std::end(kBatchNormOps));
  ops.insert(ops.end(), std::begin(kRowOps), std::end(kRowOps));
  ops.insert(ops.end(), std::begin(kGroupOps), std::end(kGroupOps));
  for (Op op : ops) {
    for (const Point& p : check_points(family_of(op))) {
      for (simdnorm_layout layout : layouts_of(op)) {
        const std::size_t count = static_cast<std::size_t>(p.elements());
        const Tensors t = tensors_for(p.elements());
        // The reference on the runners' inputs: the same deterministic parameters, and for the row norms' and
        // GroupNorm's backward the statistics of x, as the runners compute them.
        Channels ch(p.c);
        Stats stats(stats_count(op, p));
        if (is_backward(op) && family_of(op) != Family::BatchNorm) actual_stats(op, layout, p, t.x, &stats);
        AlignedFloats y(count), dx(count);
        const simdnorm_status status = reference_call(op, layout, p, t.x, y.data(), t.dy, dx.data(), ch, stats);
        if (status != SIMDNORM_SUCCESS) {
          not_checked.insert(std::string(op_name(op)) + " (the reference returned status " +
                             std::to_string(static_cast<int>(status)) + ")");
          break;
        }
        const float* want = is_backward(op) ? dx.data() : y.data();
        for (const Impl& impl : impls) {
          if (!impl.runs(op)) continue;
          const std::string where = std::string(impl.name) + " " + point_name(op, layout, p);
          std::string problem;
          Outputs outputs;
          try {
            const Runner run = impl.make(op, layout, p, &outputs);
            try {
              run();
            } catch (const std::exception& e) {
              if (impl.make == &make_simdnorm) {
                // simdnorm's own failures show in its benchmarks (and fail them); the check is about wiring.
                not_run.push_back(where + ": " + e.what());
                continue;
              }
              throw;
            }
            problem = compare(is_backward(op) ? "dx" : "y", outputs.out(), want, count);
            if (problem.empty() && outputs.dgamma) {
              problem = compare("dgamma", outputs.dgamma(), ch.dgamma.data(), static_cast<std::size_t>(p.c));
            }
            if (problem.empty() && outputs.dbeta) {
              problem = compare("dbeta", outputs.dbeta(), ch.dbeta.data(), static_cast<std::size_t>(p.c));
            }
          } catch (const std::exception& e) {
            problem = std::string("failed: ") + e.what();
          }
          if (problem.empty()) {
            ++passed[impl.name];
          } else {
            failed.push_back(where + ": " + problem);
          }
        }
      }
    }
  }
  for (const std::string& line : failed) {
    std::fprintf(stderr, "simdnorm_bench: check against the reference FAILED: %s\n", line.c_str());
    count_error();
  }
  for (const std::string& line : not_run) {
    std::fprintf(stderr, "simdnorm_bench: check against the reference: not run: %s\n", line.c_str());
  }
  std::string summary;
  for (const Impl& impl : impls) {
    const auto it = passed.find(impl.name);
    if (it == passed.end()) continue;
    summary += (summary.empty() ? "" : ", ") + std::string(impl.name) + " " + std::to_string(it->second);
  }
  summary = (summary.empty() ? std::string("none passed") : "passed: " + summary + " cases");
  if (!failed.empty()) summary = "FAILED " + std::to_string(failed.size()) + " (see the console); " + summary;
  if (!not_run.empty()) summary += "; simdnorm did not run " + std::to_string(not_run.size());
  if (!not_checked.empty()) {
    summary += "; not checked:";
    for (const std::string& op : not_checked) summary += " " + op;
  }
  return summary;
}

}  // namespace simdnorm_bench
