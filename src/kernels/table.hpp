// The interface between the ops (src/ops: they walk a layout and split work over threads, compiled for baseline
// x86-64) and the kernels (single-threaded inner loops, one source instantiated per ISA). Plain types only: this header is
// included by baseline code and must not pull in SIMD types.
//
// The two layouts are two walks over the same arithmetic:
//   * a "run walk" (NCHW): one channel's values are n runs of `len` contiguous floats, run k at base + k*stride, and
//     every run shares one per-channel coefficient set (scalars);
//   * a "row walk" (NHWC): `rows` rows of `c` contiguous channels at `row_stride`, vectorised along the channels,
//     with per-channel coefficient arrays.
// Per-channel arrays handed to row kernels are padded by the driver (padded_channels), so the kernels read and write
// them in whole vectors; the tensors themselves are touched only within their bounds (masked tails).
#ifndef SIMDNORM_SRC_KERNELS_TABLE_HPP_
#define SIMDNORM_SRC_KERNELS_TABLE_HPP_

#include <cstddef>

namespace simdnorm {

// Widest float vector of any ISA we build (AVX-512: 16 lanes): padding unit of per-channel arrays.
constexpr std::size_t kMaxLanes = 16;

// Length of a padded per-channel array: room for a whole vector read at any channel offset below c (streaming row
// kernels peel each row to alignment, so their vectors start at arbitrary offsets).
inline std::size_t padded_channels(std::size_t c) { return (c + kMaxLanes - 1) / kMaxLanes * kMaxLanes + kMaxLanes; }

// Moments of a set of values relative to a shift K (the first value of the channel): count, sum = Σ(x − K) and
// m2 = Σ(x − mean)². Sets merge with Chan's formula; the shift keeps sums small whatever the mean.
struct Moments {
  double count;
  double sum;
  double m2;
};

// The values of one channel in a run walk, restricted to the element range [begin, end) of their concatenation.
// The kernels take the channel's base pointer (its run 0) separately, one per tensor walked.
struct RunWalk {
  std::size_t stride;  // floats between the starts of consecutive runs
  std::size_t len;     // floats per run
  std::size_t begin;
  std::size_t end;
  // First passes read ahead (prefetch) runs that start before here, past `end` when the caller reads on from there
  // next (the parts of a channel that one thread walks one after the other); at most `end` when below it. (With
  // fetch_floats, what is fetched of such a run may extend into the adjacent channels' runs of the same image.)
  std::size_t fetch_end = 0;
  // Second passes (affine_run, grad_input_run) visit the runs from the last to the first, each run still front to
  // back: a channel larger than the core's L2 then starts with what the first pass read last, still in L2, instead of
  // chasing the lines that a forward sweep is about to evict. First passes ignore it.
  bool last_first = false;
  // When not 0, first passes prefetch this many floats of a run a few runs further on, from the walk's offset in it,
  // instead of what they fetch by themselves: drivers set it for short runs (7x7, 14x14 planes), on the first of a
  // group of adjacent channels read one after the other, to the whole group's block of each run; the others then
  // find theirs in cache and fetch nothing (fetch = false).
  std::size_t fetch_floats = 0;
  bool fetch = true;
  // Runs of up to this many floats prefetch the next run while they are read; longer runs prefetch within themselves.
  // Drivers set it from the L2 size (src/parallel/partition.cpp): what is fetched a whole longer run ahead would leave
  // L2 before it is used. The default is the development VM's value (a quarter of its 1 MiB L2).
  std::size_t next_run_floats = std::size_t{1} << 16;
};

// A block of rows in a row walk.
struct RowWalk {
  std::size_t rows;
  std::size_t row_stride;  // floats between consecutive rows
  std::size_t c;           // channels in each row (contiguous)
  // First passes prefetch the rows ahead of the block they read (tensors beyond the last-level cache); otherwise the
  // hardware prefetchers keep up and the prefetch instructions only cost.
  bool fetch = false;
};

// Backward coefficients of one channel: dy' = relu && a*x + b <= 0 ? 0 : dy, xhat = (x − mean)*invstd,
// dx = k_dy*((k_in*dy' − mean_dy) − xhat*mean_dy_xhat). Batch norm has k_in = 1, k_dy = gamma*invstd,
// mean_dy = dbeta/m and mean_dy_xhat = dgamma/m; GroupNorm has k_in = gamma, k_dy = rstd and the group's means of
// gamma*dy' and gamma*dy'*xhat (gamma cannot move out of the bracket there: it may be 0). The formula itself, whose
// intermediates stay within the range of the quantities the user sees (a folded form k1*dy + k2*x + k3 needs
// invstd³, which overflows float long before dx does).
struct GradCoefficients {
  float mean, invstd, a, b, k_dy, mean_dy, mean_dy_xhat;
  float k_in = 1.0f;
};
// The same, as padded per-channel arrays for row walks; k_in NULL is 1 (and costs no load).
struct GradCoefficientArrays {
  const float *mean, *invstd, *a, *b, *k_dy, *mean_dy, *mean_dy_xhat;
  const float* k_in = nullptr;
};

// The scalars of one row of a row norm (LayerNorm, RMSNorm): its mean (0 for RMSNorm) as a float and the rest of
// its double value (mean_lo), rstd, and for backward the row means of g = dy*gamma and of g*xhat.
struct RowScalars {
  float mean, mean_lo, rstd;
  float mean_g = 0.0f, mean_g_xhat = 0.0f;
};

struct KernelTable {
  const char* name;  // "avx512", "avx2", "sse2"

  // Forward statistics.
  Moments (*moments_run)(const float* x, const RunWalk& walk, float shift);
  // Writes sum[c] and m2[c] (padded arrays) of rows × c values, each channel relative to shift[c]; count is rows.
  void (*moments_rows)(const float* x, const RowWalk& walk, const float* shift, double* sum, double* m2);

  // Merges the moments of a set of nb rows (sum_b, m2_b) into those of the na rows before it (sum, m2), for
  // channels [0, c) (padded arrays), with Chan's formula.
  void (*merge_rows)(double* sum, double* m2, const double* sum_b, const double* m2_b, std::size_t c, double na,
                     double nb);

  // The mean of channels [0, c) in double from their moments over m values (padded arrays): mean = shift + sum/m.
  void (*center_rows)(const double* sum, const float* shift, std::size_t c, double m, double* mean);

  // Per-channel statistics and coefficients of channels [0, c), vectorised over channels (padded arrays): in double,
  // var = m2/m, invstd = 1/sqrt(var + eps); mean and invstd each rounded to float, then a = gamma*invstd and
  // b = beta - mean*a from the rounded values, exactly as fold_coefficients rounds them.
  void (*stats_rows)(const double* mean, const double* m2, const float* gamma, const float* beta, std::size_t c,
                     double m, double eps, float* mean_f, float* invstd, float* a, float* b);

  // Running statistics of channels [0, c): running = (1 − momentum)*running + momentum*batch, with the unbiased
  // variance m2/(m − 1), in double, rounded once. A channel whose mean or m2 is not finite keeps its running values.
  // mean and m2 are padded arrays; running_mean and running_var hold exactly c floats (masked tails).
  void (*update_running)(const double* mean, const double* m2, std::size_t c, double m, double momentum,
                         float* running_mean, float* running_var);

  // Inference folding of channels [0, c) (padded arrays): invstd = 1/sqrt(var + eps) in double, a = gamma*invstd
  // and b = beta - mean*a, rounded exactly as fold_coefficients rounds them.
  void (*fold_rows)(const float* mean, const float* var, const float* gamma, const float* beta, std::size_t c,
                    double eps, float* a, float* b);

  // The forward coefficients a = gamma*invstd and b = beta - mean*a of saved statistics (padded arrays), rounded
  // exactly as fold_coefficients rounds them: backward recomputes the forward output for the ReLU mask with them.
  void (*fold_saved_rows)(const float* mean, const float* invstd, const float* gamma, const float* beta,
                          std::size_t c, float* a, float* b);

  // y = a*x + b, optionally ReLU (x <= 0 -> +0, NaN kept). y may equal x. With `stream`, the kernels write
  // whole vectors with non-temporal stores (the output of a tensor larger than the cache is not read back soon, so
  // it skips the read-for-ownership of every line); it is ordered (sfence) before returning.
  void (*affine_run)(const float* x, float* y, const RunWalk& walk, float a, float b, bool relu, bool stream);
  void (*affine_rows)(const float* x, float* y, const RowWalk& walk, const float* a, const float* b, bool relu,
                      bool stream);
  // The same over `count` consecutive NCHW planes of `len` floats in memory order, the first of channel c (then
  // c + 1, wrapping at `channels`); a and b hold one value per channel.
  void (*affine_planes)(const float* x, float* y, std::size_t len, std::size_t count, std::size_t c,
                        std::size_t channels, const float* a, const float* b, bool relu, bool stream);

  // Backward reductions: sum_dy = Σdy', sum_dy_xc = Σdy'*(x − mean). The run kernel writes its two sums; the row
  // kernel adds into the padded arrays (zeroed by the caller).
  void (*grad_sums_run)(const float* x, const float* dy, const RunWalk& walk, const GradCoefficients& k, bool relu,
                        double* sum_dy, double* sum_dy_xc);
  void (*grad_sums_rows)(const float* x, const float* dy, const RowWalk& walk, const GradCoefficientArrays& k,
                         bool relu, double* sum_dy, double* sum_dy_xc);

  // Adds the backward sums of parts 1 .. parts − 1 of a set of rows (part i at sum_dy + i*part_stride, and likewise
  // for sum_dy_xc) into part 0's, in part order, for channels [0, c) (padded arrays).
  void (*add_rows)(double* sum_dy, double* sum_dy_xc, std::size_t parts, std::size_t part_stride, std::size_t c);

  // Parameter gradients and dx coefficients of channels [0, c) from the merged sums (padded arrays), in double,
  // each rounded once: dbeta = Σdy', dgamma = Σdy'(x − mean)*invstd, k_dy = gamma*invstd, mean_dy = Σdy'/m,
  // mean_dy_xhat = Σdy'(x − mean)*invstd/m.
  void (*grad_finish_rows)(const double* sum_dy, const double* sum_dy_xc, const float* invstd, const float* gamma,
                           std::size_t c, double m, float* dbeta, float* dgamma, float* k_dy, float* mean_dy,
                           float* mean_dy_xhat);

  // dx from dy (dx may equal dy).
  void (*grad_input_run)(const float* x, const float* dy, float* dx, const RunWalk& walk, const GradCoefficients& k,
                         bool relu, bool stream);
  void (*grad_input_rows)(const float* x, const float* dy, float* dx, const RowWalk& walk,
                          const GradCoefficientArrays& k, bool relu, bool stream);

  // Row norms: `len` floats of one row; gamma and beta point at the span's first column (the caller's arrays, read
  // with masked tails) and may be NULL (ones, zeros).
  // y = ((x − mean − mean_lo)*rstd)*gamma + beta; y may equal x. Streaming as affine_run.
  void (*normalize_span)(const float* x, float* y, std::size_t len, const RowScalars& s, const float* gamma,
                         const float* beta, bool stream);
  // Backward sums of the span, with xhat = (x − mean)*rstd and g = dy*gamma: sums[0] = Σg, sums[1] = Σg*xhat (in
  // double). When col_dy is not NULL, also col_dy[j] += dy and col_dy_xhat[j] += dy*xhat (= with set_columns): arrays
  // of floats starting at the span's first column, padded to whole vectors past its end, which the caller adds into
  // double every few rows.
  void (*row_grad_sums)(const float* x, const float* dy, std::size_t len, const RowScalars& s, const float* gamma,
                        double* sums, float* col_dy, float* col_dy_xhat, bool set_columns);
  // dx = rstd*((g − mean_g) − xhat*mean_g_xhat), xhat = (x − mean)*rstd: grad_input with k_in = gamma. dx may
  // equal dy. With ahead != 0, the floats `ahead` past those of x and dy read (inside them: the caller's next row)
  // are fetched into L2 on the way.
  void (*row_grad_input)(const float* x, const float* dy, float* dx, std::size_t len, const RowScalars& s,
                         const float* gamma, std::size_t ahead, bool stream);
};

// One table per ISA, each defined in its own translation unit (kernels_<isa>.cpp) compiled with that ISA's flags.
extern const KernelTable kSse2Kernels;
extern const KernelTable kAvx2Kernels;
extern const KernelTable kAvx512Kernels;

// The table of the ISA that runs now (see dispatch.cpp).
const KernelTable& active_kernels();

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_KERNELS_TABLE_HPP_
