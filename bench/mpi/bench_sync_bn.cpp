// simdnorm_bench_mpi: what synchronising batch norm over MPI costs. Every rank runs one training step of one layer
// (forward training, then backward) on its own slice of the batch, two ways:
//   local         simdnorm_forward_training + simdnorm_backward on the slice alone (what each replica would do
//                 without synchronisation: statistics of its own slice);
//   synchronised  simdnorm_mpi_forward_training + simdnorm_mpi_backward (statistics of the whole batch).
// The two alternate, in ABBA order, after a barrier each; a step's time is that of the slowest rank (MPI_MAX of the
// ranks' times). The table gives the medians and the median of the per-pair ratios synchronised / local, over
// ResNet-50's batch-norm shapes at n = 8 and 16 images per rank, and the bytes each rank sends and receives a step.
//
//   OMP_NUM_THREADS=1 mpirun -np 2 build/bench/mpi/simdnorm_bench_mpi [--reps N] [--layout nchw|nhwc|both]
//
// (as root, Open MPI also wants --allow-run-as-root; with more ranks than cores, --oversubscribe).
#include <simdnorm/simdnorm_mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Layer {
  std::size_t c, hw;
  const char* name;
};
constexpr Layer kLayers[] = {
    {64, 56 * 56, "64x56x56"},     {256, 56 * 56, "256x56x56"}, {512, 28 * 28, "512x28x28"},
    {1024, 14 * 14, "1024x14x14"}, {2048, 7 * 7, "2048x7x7"},
};
constexpr std::size_t kBatches[] = {8, 16};
constexpr std::size_t kAgreementBytes = 17 * 8;  // the MPI_Allreduce of each call (simdnorm_mpi.h)

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void Check(simdnorm_status status, const char* what) {
  if (status == SIMDNORM_SUCCESS) return;
  std::fprintf(stderr, "%s failed: %s%s\n", what, simdnorm_last_error(), simdnorm_mpi_last_error());
  MPI_Abort(MPI_COMM_WORLD, 1);
}

// One layer's buffers on this rank, filled once.
struct Step {
  simdnorm_shape shape;
  std::vector<float> x, y, dy, dx, gamma, beta, mean, invstd, running_mean, running_var, dgamma, dbeta;

  Step(std::size_t n, const Layer& layer, simdnorm_layout layout, int rank) : shape{n, layer.c, layer.hw, layout} {
    const std::size_t count = n * layer.c * layer.hw;
    x.resize(count);
    dy.resize(count);
    y.resize(count);
    dx.resize(count);
    unsigned long long state = 88172645463325252ull + static_cast<unsigned long long>(rank);
    for (std::size_t i = 0; i < count; ++i) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      x[i] = static_cast<float>(state >> 40) * 0x1p-23f - 1.0f + static_cast<float>(i % 5);
      dy[i] = static_cast<float>((state >> 20) & 0xfffff) * 0x1p-19f - 1.0f;
    }
    for (std::vector<float>* v : {&gamma, &beta, &mean, &invstd, &running_mean, &running_var, &dgamma, &dbeta}) {
      v->assign(layer.c, 1.0f);
    }
  }
  void Local() {
    Check(simdnorm_forward_training(&shape, x.data(), y.data(), gamma.data(), beta.data(), 1e-5f, mean.data(),
                                    invstd.data(), running_mean.data(), running_var.data(), 0.1f, 0),
          "simdnorm_forward_training");
    Check(simdnorm_backward(&shape, x.data(), dy.data(), gamma.data(), beta.data(), mean.data(), invstd.data(),
                            dx.data(), dgamma.data(), dbeta.data(), 0),
          "simdnorm_backward");
  }
  void Synchronised() {
    Check(simdnorm_mpi_forward_training(MPI_COMM_WORLD, &shape, x.data(), y.data(), gamma.data(), beta.data(), 1e-5f,
                                        mean.data(), invstd.data(), running_mean.data(), running_var.data(), 0.1f, 0),
          "simdnorm_mpi_forward_training");
    Check(simdnorm_mpi_backward(MPI_COMM_WORLD, &shape, x.data(), dy.data(), gamma.data(), beta.data(), mean.data(),
                                invstd.data(), dx.data(), dgamma.data(), dbeta.data(), 0),
          "simdnorm_mpi_backward");
  }
};

// Seconds of the slowest rank.
template <class F>
double Timed(F step) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double start = MPI_Wtime();
  step();
  const double mine = MPI_Wtime() - start;
  double slowest = 0.0;
  MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  int reps = 31;
  std::string layouts = "both";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--layout") == 0 && i + 1 < argc) {
      layouts = argv[++i];
    } else {
      if (rank == 0) std::fprintf(stderr, "usage: %s [--reps N] [--layout nchw|nhwc|both]\n", argv[0]);
      MPI_Finalize();
      return 2;
    }
  }
  simdnorm_set_num_threads(1);
  if (rank == 0) {
    std::printf(
        "Synchronised batch norm over MPI: %d ranks, one thread each, isa %s, median of %d interleaved pairs\n"
        "(forward training + backward; a step's time is the slowest rank's)\n\n",
        ranks, simdnorm_isa(), reps);
    std::printf("| layout | per rank | x per rank | local | synchronised | ratio | sent + received per rank |\n");
    std::printf("|:---|:---|---:|---:|---:|---:|---:|\n");
  }
  for (simdnorm_layout layout : {SIMDNORM_NCHW, SIMDNORM_NHWC}) {
    const char* name = layout == SIMDNORM_NCHW ? "nchw" : "nhwc";
    if (layouts != "both" && layouts != name) continue;
    for (std::size_t n : kBatches) {
      for (const Layer& layer : kLayers) {
        Step step(n, layer, layout, rank);
        step.Local();  // first touch of every buffer, and the private communicator's MPI_Comm_dup
        step.Synchronised();
        std::vector<double> local, synced, ratio;
        for (int r = 0; r < reps; ++r) {
          const bool local_first = r % 2 == 0;
          const double a = Timed([&] { local_first ? step.Local() : step.Synchronised(); });
          const double b = Timed([&] { local_first ? step.Synchronised() : step.Local(); });
          local.push_back(local_first ? a : b);
          synced.push_back(local_first ? b : a);
          ratio.push_back(synced.back() / local.back());
        }
        // Per call: the agreement (both ways) and this rank's record out, the other ranks' records in.
        const std::size_t record = (2 + 2 * layer.c) * sizeof(double);
        const std::size_t bytes = 2 * (2 * kAgreementBytes + record * static_cast<std::size_t>(ranks));
        if (rank == 0) {
          std::printf("| %s | %zux%s | %.1f MB | %.3f ms | %.3f ms | %.3fx | %.1f KB |\n", name, n, layer.name,
                      static_cast<double>(step.x.size() * sizeof(float)) / 1e6, 1e3 * Median(local),
                      1e3 * Median(synced), Median(ratio), static_cast<double>(bytes) / 1e3);
          std::fflush(stdout);
        }
      }
    }
  }
  MPI_Finalize();
  return 0;
}
