// simdnorm_bench: batch normalisation (training forward, inference forward, backward; NCHW and NHWC), LayerNorm and
// RMSNorm (forward, backward, over the rows of a matrix) and GroupNorm (forward, backward; NCHW and NHWC) timed for
// simdnorm, its naive reference, oneDNN and PyTorch (when built with them) and a streaming baseline, on the shapes of
// ResNet-50's batch-norm layers and an N x C matrix, transformer widths, and diffusion-UNet GroupNorm layers. Google
// Benchmark's flags apply (--benchmark_filter, --benchmark_repetitions, --benchmark_min_time, --benchmark_out, ...),
// plus the suite's own below. scripts/bench.sh runs it and turns its JSON into tables, a report and plots
// (scripts/bench_report.py); bench/README.md explains what is measured.
#include <simdnorm/simdnorm.h>

#include <omp.h>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "bench_common.h"

namespace simdnorm_bench {
namespace {

struct Options {
  std::string grid = "default";
  int threads = 0;  // 0: OpenMP's default (OMP_NUM_THREADS, else every core)
  int rounds = 1;
  int naive_rounds = 1;
  RunSettings run;
};

void print_own_help() {
  std::printf(
      "simdnorm_bench [--grid=smoke|quick|default|full] [--threads=N] [--rounds=K] [--warmup=SECONDS]\n"
      "               [--naive_min_time=SECONDS] [--naive_rounds=K] [Google Benchmark flags]\n"
      "\n"
      "  --grid=NAME              shapes to register (default: default)\n"
      "                             smoke    tiny tensors of every op (the ctest smoke test)\n"
      "                             quick    a reduced set, a few minutes\n"
      "                             default  batch norm: 3 ResNet-50 layers at N = 1..64, 6 at N = 1 and 32, a\n"
      "                                      1024-wide matrix; LayerNorm/RMSNorm: 768, 1024, 4096 columns at\n"
      "                                      1..16384 rows; GroupNorm: 3 UNet layers at N = 1, 8 and beyond the LLC\n"
      "                             full     more batch sizes of each\n"
      "  --threads=N              OpenMP threads of simdnorm, oneDNN, PyTorch and the streaming baseline\n"
      "                           (default: OMP_NUM_THREADS, else all cores); the naive reference is single-threaded\n"
      "  --rounds=K               register the whole grid K times, one round after the other (default 1); from\n"
      "                           round 2 on names end in /round:<k>. Unlike --benchmark_repetitions, every round\n"
      "                           sizes its own iteration count, so a burst of load elsewhere on the machine costs\n"
      "                           one round's worth of time, and the rounds of a benchmark run minutes apart\n"
      "  --warmup=SECONDS         MinWarmUpTime of simdnorm, oneDNN and the streaming baseline (default 0.02)\n"
      "  --naive_min_time=SECONDS MinTime of the naive reference (default 0.05)\n"
      "  --naive_rounds=K         rounds that include the naive reference (default 1: the first only)\n"
      "\n"
      "Benchmarks are named <op>/<layout>/<impl>/C:<c>/HW:<h=w>/N:<n>, e.g. train_fwd/nchw/simdnorm/C:256/HW:56/N:32;\n"
      "a LayerNorm of R rows of C columns is layer_norm_fwd/rows/<impl>/C:<C>/HW:1/N:<R>; the streaming baseline is\n"
      "stream/flat/stream/C:../HW:../N:.. . Before timing, every implementation runs once per op on small tensors and\n"
      "is compared with the reference (a failure is an error).\n"
      "\n");
  benchmark::PrintDefaultHelp();
}

// Matches "--name=value" or "--name value"; on a match stores the value and advances *i past what it consumed.
bool take_flag(int argc, char** argv, int* i, const char* name, std::string* value) {
  const std::size_t length = std::strlen(name);
  const char* arg = argv[*i];
  if (std::strncmp(arg, name, length) != 0) return false;
  if (arg[length] == '=') {
    *value = arg + length + 1;
    return true;
  }
  if (arg[length] == '\0' && *i + 1 < argc) {
    *value = argv[++*i];
    return true;
  }
  return false;
}

bool parse_number(const std::string& text, double low, double high, double* out) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(v >= low && v <= high)) return false;
  *out = v;
  return true;
}

// Removes the suite's own flags from argv (Google Benchmark has consumed its own already). Returns false, with a
// message on stderr, for a malformed value.
bool parse_own_flags(int* argc, char** argv, Options* options) {
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    std::string value;
    double number = 0.0;
    if (take_flag(*argc, argv, &i, "--grid", &value)) {
      Grid unused;
      if (!make_grid(value, &unused)) {
        std::fprintf(stderr, "simdnorm_bench: unknown --grid '%s' (smoke, quick, default or full)\n", value.c_str());
        return false;
      }
      options->grid = value;
    } else if (take_flag(*argc, argv, &i, "--threads", &value)) {
      if (!parse_number(value, 1, 4096, &number) || number != static_cast<int>(number)) {
        std::fprintf(stderr, "simdnorm_bench: --threads wants a whole number >= 1, not '%s'\n", value.c_str());
        return false;
      }
      options->threads = static_cast<int>(number);
    } else if (take_flag(*argc, argv, &i, "--warmup", &value)) {
      if (!parse_number(value, 0, 60, &number)) {
        std::fprintf(stderr, "simdnorm_bench: --warmup wants seconds in [0, 60], not '%s'\n", value.c_str());
        return false;
      }
      options->run.warmup_seconds = number;
    } else if (take_flag(*argc, argv, &i, "--naive_min_time", &value)) {
      if (!parse_number(value, 0.001, 60, &number)) {
        std::fprintf(stderr, "simdnorm_bench: --naive_min_time wants seconds in [0.001, 60], not '%s'\n",
                     value.c_str());
        return false;
      }
      options->run.naive_min_seconds = number;
    } else if (take_flag(*argc, argv, &i, "--rounds", &value)) {
      if (!parse_number(value, 1, 100, &number) || number != static_cast<int>(number)) {
        std::fprintf(stderr, "simdnorm_bench: --rounds wants a whole number in [1, 100], not '%s'\n", value.c_str());
        return false;
      }
      options->rounds = static_cast<int>(number);
    } else if (take_flag(*argc, argv, &i, "--naive_rounds", &value)) {
      if (!parse_number(value, 1, 100, &number) || number != static_cast<int>(number)) {
        std::fprintf(stderr, "simdnorm_bench: --naive_rounds wants a whole number in [1, 100], not '%s'\n",
                     value.c_str());
        return false;
      }
      options->naive_rounds = static_cast<int>(number);
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  argv[kept] = nullptr;
  return true;
}

// The CPU's model name as the kernel reports it ("?" where /proc/cpuinfo has none): the report names the machine.
std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const std::size_t colon = line.find(':');
    if (colon != std::string::npos && colon + 2 <= line.size()) return line.substr(colon + 2);
  }
  return "?";
}

// The vector extensions the CPU offers, of those the kernels can use: with the model, what a reader needs to place a
// figure (the same model name has come with and without AVX-512 on this project's VMs).
std::string cpu_features() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  std::string features;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) features += "avx512f ";
  if (__builtin_cpu_supports("avx2")) features += "avx2 ";
  if (__builtin_cpu_supports("fma")) features += "fma ";
  if (__builtin_cpu_supports("sse2")) features += "sse2";
  return features;
#else
  return "?";
#endif
}

// Every implementation of one op on one tensor.
void register_point(Op op, simdnorm_layout layout, const Point& p, const RunSettings& run, bool with_naive) {
  register_simdnorm(op, layout, p, run);
  if (runs_in_place(p)) register_inplace(op, layout, p, run);
  if (with_naive && runs_naive(op, p)) register_naive(op, layout, p, run);
  register_onednn(op, layout, p, run);
  register_torch(op, layout, p, run);
  register_paired_peers(op, layout, p, run);
  if (runs_in_place(p)) register_paired_stream(op, layout, p, run);
}

template <std::size_t kCount>
void register_family(const std::vector<Point>& points, const Op (&ops)[kCount], const RunSettings& run,
                     bool with_naive) {
  // Grouped by tensor, so that the implementations of one shape run back to back under the same machine load.
  for (const Point& p : points) {
    for (Op op : ops) {
      for (simdnorm_layout layout : layouts_of(op)) register_point(op, layout, p, run, with_naive);
    }
    register_stream(p, run);
    if (runs_in_place(p) && family_of(ops[0]) != Family::Row) register_floors(p, run);
  }
}

void register_grid(const Grid& grid, const Options& options) {
  for (int round = 1; round <= options.rounds; ++round) {
    RunSettings run = options.run;
    if (round > 1) run.name_suffix = "/round:" + std::to_string(round);
    const bool with_naive = round <= options.naive_rounds;
    register_family(grid.batch_norm, kBatchNormOps, run, with_naive);
    register_family(grid.rows, kRowOps, run, with_naive);
    register_family(grid.groups, kGroupOps, run, with_naive);
  }
}

}  // namespace
}  // namespace simdnorm_bench

int main(int argc, char** argv) {
  using namespace simdnorm_bench;
  // Recorded in the context for the report; Google Benchmark does not expose its flags.
  std::string min_time = "0.5 s (Google Benchmark's default)";
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--benchmark_min_time=", 21) == 0) min_time = std::string(argv[i] + 21) + " s";
    if (std::strncmp(argv[i], "--benchmark_list_tests", 22) == 0) listing = std::strstr(argv[i], "=false") == nullptr;
  }
  benchmark::Initialize(&argc, argv, print_own_help);
  Options options;
  if (!parse_own_flags(&argc, argv, &options)) return 2;
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

  if (options.threads > 0) omp_set_num_threads(options.threads);  // oneDNN and the streaming baseline
  const int threads = omp_get_max_threads();
  simdnorm_set_num_threads(threads);
  const int torch_threads = torch_setup(threads);

  Grid grid;
  make_grid(options.grid, &grid);
  register_grid(grid, options);
  // Every implementation once against the reference, before anything is timed (not when only listing the names).
  const std::string check = listing ? "not run (listing)" : check_implementations();

  // Printed at the top of the console output and stored in the JSON's "context", where bench_report.py finds it.
  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::AddCustomContext("cpu_features", cpu_features());
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("simdnorm_version", simdnorm_version());
  benchmark::AddCustomContext("simdnorm_isa", simdnorm_isa());
  benchmark::AddCustomContext("onednn", onednn_available() ? onednn_version() : "skipped: " + onednn_version());
  benchmark::AddCustomContext("torch", torch_available() ? torch_version() : "skipped: " + torch_version());
  if (torch_available()) {
    benchmark::AddCustomContext("torch_threads", std::to_string(torch_threads) + " (at::set_num_threads)");
  }
  benchmark::AddCustomContext("check", check);
  benchmark::AddCustomContext("stream_isa", stream_isa());
  benchmark::AddCustomContext("grid", options.grid);
  benchmark::AddCustomContext("rounds", std::to_string(options.rounds));
  benchmark::AddCustomContext("min_time", min_time);
  char naive_runs[96];
  std::snprintf(naive_runs, sizeof naive_runs, "MinTime %g s, %d round(s), no warm-up, single-threaded",
                options.run.naive_min_seconds,
                options.naive_rounds < options.rounds ? options.naive_rounds : options.rounds);
  benchmark::AddCustomContext("naive_runs", naive_runs);
  char warmup[48];
  std::snprintf(warmup, sizeof warmup, "MinWarmUpTime %g s", options.run.warmup_seconds);
  benchmark::AddCustomContext("warmup", warmup);
  std::string omp_env;
  for (const char* name : {"OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"}) {
    if (const char* value = std::getenv(name)) omp_env += std::string(omp_env.empty() ? "" : " ") + name + "=" + value;
  }
  benchmark::AddCustomContext("omp_env", omp_env.empty() ? "(none set)" : omp_env);
  benchmark::AddCustomContext("bytes_model",
                              "train_fwd 3, infer_fwd 2, backward 3, {layer,rms,group}_norm_fwd 2, "
                              "{layer,rms,group}_norm_bwd 3, stream 2 tensor sizes per call");
  benchmark::AddCustomContext("groups", std::to_string(kGroups));

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  if (error_count() > 0) {
    std::fprintf(stderr, "simdnorm_bench: %d benchmark(s) reported an error (see error_message above)\n",
                 error_count());
    return 1;
  }
  return 0;
}
