// The kernels, written once for every ISA as a class template on the xsimd architecture: the class and its shared
// helpers here, the kernel families in kernels/{moments,channel,affine,grad}.hpp. Only the per-ISA units
// (kernels/kernels_<isa>.cpp, compiled with that ISA's flags) include this file; each instantiates Kernels<Arch>
// explicitly and publishes its KernelTable. Everything here is a template on Arch, so no function is emitted twice
// with different instruction sets under one name.
#ifndef SIMDNORM_SRC_KERNELS_KERNELS_HPP_
#define SIMDNORM_SRC_KERNELS_KERNELS_HPP_

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <xsimd/xsimd.hpp>

#include "kernels/table.hpp"
#include "core/moments.hpp"
#include "simd/native.hpp"

// Forces a lambda inline where a kernel calls it from several places (GCC and clang): the per-row value lambdas of
// the narrow row kernels hold their coefficients in registers only once inlined into each loop.
#if defined(__GNUC__)
#define SIMDNORM_INLINE __attribute__((always_inline))
#else
#define SIMDNORM_INLINE
#endif

namespace simdnorm {
namespace kernels {

template <class Arch>
struct Kernels {
  using F = xsimd::batch<float, Arch>;
  using D = xsimd::batch<double, Arch>;
  using Native = kernels::Native<Arch>;
  static constexpr std::size_t W = F::size;  // float lanes
  static constexpr std::size_t H = D::size;  // double lanes: W / 2
  // Vectors per lane block of the Welford recurrence: the block's mean and M2 are formed in registers (a power of
  // two, so its mean s/U is exact), then merged into the double lane state with Chan's formula, one merge per U*W
  // values. Fewer vectors left over go in power-of-two sub-blocks (4, 2, 1).
  static constexpr std::size_t U = 8;

  static Moments moments_run(const float* x, const RunWalk& walk, float shift);
  static void moments_rows(const float* x, const RowWalk& walk, const float* shift, double* sum, double* m2);
  static void merge_rows(double* sum, double* m2, const double* sum_b, const double* m2_b, std::size_t c, double na,
                         double nb);
  static void center_rows(const double* sum, const float* shift, std::size_t c, double m, double* mean);
  static void stats_rows(const double* mean, const double* m2, const float* gamma, const float* beta, std::size_t c,
                         double m, double eps, float* mean_f, float* invstd, float* a, float* b);
  static void update_running(const double* mean, const double* m2, std::size_t c, double m, double momentum,
                             float* running_mean, float* running_var);
  static void fold_rows(const float* mean, const float* var, const float* gamma, const float* beta, std::size_t c,
                        double eps, float* a, float* b);
  static void fold_saved_rows(const float* mean, const float* invstd, const float* gamma, const float* beta,
                              std::size_t c, float* a, float* b);
  static void add_rows(double* sum_dy, double* sum_dy_xc, std::size_t parts, std::size_t part_stride, std::size_t c);
  static void grad_finish_rows(const double* sum_dy, const double* sum_dy_xc, const float* invstd,
                               const float* gamma, std::size_t c, double m, float* dbeta, float* dgamma, float* k_dy,
                               float* mean_dy, float* mean_dy_xhat);
  static void affine_run(const float* x, float* y, const RunWalk& walk, float a, float b, bool relu, bool stream);
  static void affine_rows(const float* x, float* y, const RowWalk& walk, const float* a, const float* b, bool relu,
                          bool stream);
  static void affine_planes(const float* x, float* y, std::size_t len, std::size_t count, std::size_t c,
                            std::size_t channels, const float* a, const float* b, bool relu, bool stream);
  static void grad_sums_run(const float* x, const float* dy, const RunWalk& walk, const GradCoefficients& k,
                            bool relu, double* sum_dy, double* sum_dy_xc);
  static void grad_sums_rows(const float* x, const float* dy, const RowWalk& walk, const GradCoefficientArrays& k,
                             bool relu, double* sum_dy, double* sum_dy_xc);
  static void grad_input_run(const float* x, const float* dy, float* dx, const RunWalk& walk,
                             const GradCoefficients& k, bool relu, bool stream);
  static void grad_input_rows(const float* x, const float* dy, float* dx, const RowWalk& walk,
                              const GradCoefficientArrays& k, bool relu, bool stream);

  static void normalize_span(const float* x, float* y, std::size_t len, const RowScalars& s, const float* gamma,
                             const float* beta, bool stream);
  static void row_grad_sums(const float* x, const float* dy, std::size_t len, const RowScalars& s,
                            const float* gamma, double* sums, float* col_dy, float* col_dy_xhat,
                            bool set_columns);
  static void row_grad_input(const float* x, const float* dy, float* dx, std::size_t len, const RowScalars& s,
                             const float* gamma, std::size_t ahead, bool stream);

  static constexpr KernelTable table(const char* name) {
    return KernelTable{name,           &moments_run,      &moments_rows,   &merge_rows,     &center_rows,    &stats_rows,    &update_running,
                       &fold_rows,     &fold_saved_rows,  &affine_run,     &affine_rows,    &affine_planes, &grad_sums_run,
                       &grad_sums_rows, &add_rows, &grad_finish_rows, &grad_input_run, &grad_input_rows,
                       &normalize_span, &row_grad_sums, &row_grad_input};
  }

 private:
  // ---- the arithmetic, once for both walks ----

  // Per lane: Σ(x − K) and M2 of the values seen so far, in double (lo and hi halves of the float lanes).
  struct Lanes {
    D sum_lo, sum_hi, m2_lo, m2_hi;
  };

  // Chan's weights for merging a block of u values per lane into a lane state holding n values per lane (the
  // same for every lane and every channel vector of a block, so computed once per block).
  struct BlockWeights {
    ChanWeights<Arch, D> chan;
    bool first;
    BlockWeights(double n, double u) : chan(n > 0.0 ? n : 1.0, u), first(n == 0.0) {}
  };

  // Sum and M2 (about the block mean) of Count shifted vectors, per lane, in float: the block is in registers, so
  // its M2 is taken about its own mean instead of accumulating squares. Both reductions are pairwise trees, which
  // keeps the dependency chains short (log2 Count) as well as the rounding error.
  template <std::size_t Count>
  static void block_moments(const F (&v)[Count], F& s, F& q) {
    F t[Count];
    for (std::size_t i = 0; i < Count; ++i) t[i] = v[i];
    for (std::size_t width = Count / 2; width > 0; width /= 2) {
      for (std::size_t i = 0; i < width; ++i) t[i] = t[i] + t[i + width];
    }
    s = t[0];
    const F mean = s * F(1.0f / static_cast<float>(Count));
    for (std::size_t i = 0; i < Count; ++i) {
      const F d = v[i] - mean;
      t[i] = d * d;
    }
    for (std::size_t width = Count / 2; width > 0; width /= 2) {
      for (std::size_t i = 0; i < width; ++i) t[i] = t[i] + t[i + width];
    }
    q = t[0];
  }

  static void merge_half(D& sum, D& m2, const BlockWeights& bw, D s, D q) {
    if (bw.first) {
      sum = s;
      m2 = q;
      return;
    }
    chan_merge(sum, m2, s, q, bw.chan);
  }

  static void merge_block(Lanes& st, const BlockWeights& bw, F s, F q) {
    merge_half(st.sum_lo, st.m2_lo, bw, Native::widen_lo(s), Native::widen_lo(q));
    merge_half(st.sum_hi, st.m2_hi, bw, Native::widen_hi(s), Native::widen_hi(q));
  }

  // The same merge for a state kept in memory (row walks: one state per channel vector).
  static void merge_block(double* sum, double* m2, const BlockWeights& bw, F s, F q) {
    D sum_lo = D::load_unaligned(sum), sum_hi = D::load_unaligned(sum + H);
    D m2_lo = D::load_unaligned(m2), m2_hi = D::load_unaligned(m2 + H);
    merge_half(sum_lo, m2_lo, bw, Native::widen_lo(s), Native::widen_lo(q));
    merge_half(sum_hi, m2_hi, bw, Native::widen_hi(s), Native::widen_hi(q));
    sum_lo.store_unaligned(sum);
    sum_hi.store_unaligned(sum + H);
    m2_lo.store_unaligned(m2);
    m2_hi.store_unaligned(m2 + H);
  }

  // Row walks read a column of vectors (Count rows) at a time, a pattern hardware prefetchers follow poorly once
  // the rows come from DRAM. This touches the block of Count rows two blocks ahead in address order instead, Count
  // cache lines per column step j, which covers the block once over a sweep of the columns (rows of C floats have C/W
  // steps of Count lines each). Only with walk.fetch: from the caches the hardware keeps up, and the instructions
  // cost 3-9% of a training or backward call (1x2048x7x7 to 1x512x28x28 and 16x2048x7x7 NHWC, 2 threads), while
  // beyond the last-level cache they save 6-27% (training and backward of 8x256x56x56 and 32x64x56x56, training of
  // 32x256x56x56; its backward gained nothing).
  template <std::size_t Count>
  class BlockPrefetch {
   public:
    BlockPrefetch(const float* x, std::size_t r, const RowWalk& walk)
        : base_(walk.fetch && r + 3 * Count <= walk.rows ? x + (r + 2 * Count) * walk.row_stride : nullptr),
          extent_((Count - 1) * walk.row_stride + walk.c) {}
    void operator()(std::size_t j, std::size_t u) const {
      const std::size_t line = ((j / W) * Count + u) * (64 / sizeof(float));
      if (base_ != nullptr && line < extent_) {
        _mm_prefetch(reinterpret_cast<const char*>(base_ + line), _MM_HINT_T0);
      }
    }

   private:
    const float* base_;
    std::size_t extent_;
  };

  // Block-merges Count vectors v[0..Count) into a lane state holding n values per lane.
  template <std::size_t Count>
  static void merge_block(Lanes& st, double& n, const F* v) {
    F block[Count];
    for (std::size_t i = 0; i < Count; ++i) block[i] = v[i];
    F s, q;
    block_moments(block, s, q);
    merge_block(st, BlockWeights(n, static_cast<double>(Count)), s, q);
    n += static_cast<double>(Count);
  }

  // Fewer than U collected vectors: merged in power-of-two sub-blocks so every block mean stays exact.
  static void merge_pending(Lanes& st, double& n, const F* v, std::size_t count) {
    static_assert(U == 8, "sub-blocks below cover counts up to 7");
    std::size_t i = 0;
    if (count & 4) merge_block<4>(st, n, v + i), i += 4;
    if (count & 2) merge_block<2>(st, n, v + i), i += 2;
    if (count & 1) merge_block<1>(st, n, v + i);
  }

  // A channel of one short run (a batch of one 7x7 or 14x14 image), whole in registers: its sum, then its M2 about
  // its own mean, from the registers (one read of memory, and two passes, the most accurate form there is). The
  // blocked recurrence spent more on merging its lanes than on the data here. Count is the number of vectors, the
  // last one holding `tail` values (W when full), so that every loop unrolls and v[] stays in registers.
  static constexpr std::size_t kShortVectors = 2 * U;
  template <std::size_t Count>
  static Moments moments_short(const float* x, std::size_t len, F k) {
    const std::size_t tail = len - (Count - 1) * W;
    F v[Count];
    for (std::size_t i = 0; i + 1 < Count; ++i) v[i] = F::load_unaligned(x + i * W) - k;
    const auto in_tail = lane_index() < F(static_cast<float>(tail));
    // Lanes past len: 0 after the shift, so they add nothing to the sum.
    v[Count - 1] = xsimd::select(in_tail, Native::load_first(x + (Count - 1) * W, tail) - k, F(0.0f));
    const double n = static_cast<double>(len);
    const double sum = pairwise_total(v);
    const float mean = static_cast<float>(sum / n);  // rounded: corrected for below
    F d2[Count];
    for (std::size_t i = 0; i < Count; ++i) {
      const F d = v[i] - F(mean);
      d2[i] = d * d;
    }
    d2[Count - 1] = xsimd::select(in_tail, d2[Count - 1], F(0.0f));
    // Σ(v − m̃)² = M2 + n(m̃ − mean)²: take off what the rounding of the mean added.
    const double off = static_cast<double>(mean) - sum / n;
    const double m2 = pairwise_total(d2) - n * off * off;
    return Moments{n, sum, m2 < 0.0 ? 0.0 : m2};  // NaN passes
  }
  // Σ of the vectors, pairwise in float (a tree fixed at compile time, so everything stays in registers), then of
  // the lanes in double.
  template <std::size_t Begin, std::size_t Count, std::size_t N>
  static F tree_sum(const F (&v)[N]) {
    if constexpr (Count == 1) {
      return v[Begin];
    } else {
      return tree_sum<Begin, Count / 2>(v) + tree_sum<Begin + Count / 2, Count - Count / 2>(v);
    }
  }
  template <std::size_t Count>
  static double pairwise_total(const F (&v)[Count]) {
    const F t = tree_sum<0, Count>(v);
    return xsimd::hadd(Native::widen_lo(t) + Native::widen_hi(t));
  }
  template <std::size_t... I>
  static Moments moments_short_dispatch(const float* x, std::size_t len, F k, std::index_sequence<I...>) {
    Moments result{0.0, 0.0, 0.0};
    const std::size_t count = (len + W - 1) / W;
    static_cast<void>(((count == I + 1 ? (result = moments_short<I + 1>(x, len, k), true) : false) || ...));
    return result;
  }
  static F lane_index() {
    alignas(64) static constexpr float kLanes[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    return F::load_aligned(kLanes);
  }

  // Moments of the first `used` lanes of a lane state (n values each).
  static Moments lane_moments(const Lanes& st, double n, std::size_t used) {
    alignas(64) double sum[W];
    alignas(64) double m2[W];
    st.sum_lo.store_unaligned(sum);
    st.sum_hi.store_unaligned(sum + H);
    st.m2_lo.store_unaligned(m2);
    st.m2_hi.store_unaligned(m2 + H);
    return merge_equal_sets<Arch>(sum, m2, used, n);
  }

  // The W float lanes of one vector as two double vectors: the per-channel kernels compute in double, W channels a
  // step, and round each result once back into one float vector that is stored whole. (Masked stores of H lanes
  // instead stalled the wider loads that read them back.)
  struct Wide {
    D lo, hi;
  };
  static Wide widen(F v) { return Wide{Native::widen_lo(v), Native::widen_hi(v)}; }
  static Wide load_wide(const double* p) { return Wide{D::load_unaligned(p), D::load_unaligned(p + H)}; }
  static void store_wide(double* p, const Wide& v) {
    v.lo.store_unaligned(p);
    v.hi.store_unaligned(p + H);
  }
  static F narrow(const Wide& v) { return Native::narrow2(v.lo, v.hi); }
  // op applied to the low halves, then to the high halves, of its Wide arguments.
  template <class Op, class... Args>
  static Wide each(const Op& op, const Args&... args) {
    return Wide{op(args.lo...), op(args.hi...)};
  }

  // a = gamma*invstd and b = beta − mean*a for W channels, in double, each rounded once, b from the rounded a (the
  // roundings of fold_coefficients).
  static void fold_wide(F mean, const Wide& invstd, F gamma, F beta, float* a, float* b) {
    const F a_r = narrow(each([](D g, D is) { return g * is; }, widen(gamma), invstd));
    a_r.store_unaligned(a);
    narrow(each([](D bt, D mu, D ar) { return bt - mu * ar; }, widen(beta), widen(mean), widen(a_r))).store_unaligned(b);
  }

  static void add_widened(D& lo, D& hi, F v) {
    lo += Native::widen_lo(v);
    hi += Native::widen_hi(v);
  }
  static void add_widened(double* p, F v) {
    (D::load_unaligned(p) + Native::widen_lo(v)).store_unaligned(p);
    (D::load_unaligned(p + H) + Native::widen_hi(v)).store_unaligned(p + H);
  }

  template <bool Relu>
  static F activate(F y) {
    if constexpr (Relu) {
      return xsimd::select(y <= F(0.0f), F(0.0f), y);  // NaN compares false and passes through
    } else {
      return y;
    }
  }

  // dy masked where the forward output a*x + b (the forward's own arithmetic) is <= 0.
  template <bool Relu>
  static F masked_dy(F x, F dy, F a, F b) {
    if constexpr (Relu) {
      return xsimd::select(Native::fma(a, x, b) <= F(0.0f), F(0.0f), dy);
    } else {
      (void)x, (void)a, (void)b;
      return dy;
    }
  }

  // dx = k_dy*((dy' − mean_dy) − xhat*mean_dy_xhat), xhat = (x − mean)*invstd: the formula as documented, in
  // float. (Folding it into k1*dy + k2*x + k3 would need invstd³, which overflows float long before dx does.)
  template <bool Relu>
  static F grad_input(F x, F dy, F mean, F invstd, F a, F b, F k_dy, F mean_dy, F mean_dy_xhat) {
    const F xhat = (x - mean) * invstd;
    return k_dy * Native::fnma(xhat, mean_dy_xhat, masked_dy<Relu>(x, dy, a, b) - mean_dy);
  }
  // The same with dy' scaled by k_in first (GradCoefficients::k_in).
  template <bool Relu>
  static F grad_input(F x, F dy, F mean, F invstd, F a, F b, F k_dy, F mean_dy, F mean_dy_xhat, F k_in) {
    const F xhat = (x - mean) * invstd;
    return k_dy * Native::fnma(xhat, mean_dy_xhat, k_in * masked_dy<Relu>(x, dy, a, b) - mean_dy);
  }

  // The count lanes at p: a whole vector when count == W, else the first count lanes (the rest 0).
  static F load_lanes(const float* p, std::size_t count) {
    return count == W ? F::load_unaligned(p) : Native::load_first(p, count);
  }
  // Stores a whole vector at p: non-temporal with Stream (p aligned), else an ordinary store.
  template <bool Stream>
  static void put(float* p, F v) {
    if constexpr (Stream) {
      Native::stream(p, v);
    } else {
      v.store_unaligned(p);
    }
  }

  // Writes y[i] for i in [0, len) from whole(i) (a full vector at i) and first(i, count) (the first count lanes at
  // i). With Stream, y is peeled to vector alignment and the aligned body goes out with non-temporal stores.
  // The caller fences (sfence) once after its last streaming span.
  template <bool Stream, class Whole, class First>
  static void store_span(float* y, std::size_t len, const Whole& whole, const First& first) {
    std::size_t i = 0;
    if constexpr (Stream) {
      const std::size_t misaligned = reinterpret_cast<std::uintptr_t>(y) / sizeof(float) % W;
      if (misaligned != 0) {
        const std::size_t head = W - misaligned < len ? W - misaligned : len;
        Native::store_first(y, first(0, head), head);
        i = head;
      }
      for (; i + W <= len; i += W) Native::stream(y + i, whole(i));
    } else {
      for (; i + W <= len; i += W) whole(i).store_unaligned(y + i);
    }
    if (i < len) Native::store_first(y + i, first(i, len - i), len - i);
  }

  // Rows of at most kNarrowVectors vectors (C <= 64 with AVX-512: ResNet's 64-channel layers, its largest tensors)
  // keep the per-channel coefficients of the whole row in registers, loaded once a call: a wider row loads them with
  // every data vector, and grad_input has seven of them. The limit leaves registers for the data.
  static constexpr std::size_t kNarrowVectors = sizeof(F) == 64 ? 4 : 2;

  // Calls narrow(std::integral_constant<std::size_t, V>{}) if rows of c channels are V <= kNarrowVectors vectors and,
  // streaming, every row starts on a vector boundary of y (rows `stride` floats apart); returns whether it did.
  template <bool Stream, class Narrow>
  static bool with_narrow_rows(const float* y, std::size_t stride, std::size_t c, const Narrow& narrow) {
    if (c == 0 || c > kNarrowVectors * W) return false;
    if (Stream && (reinterpret_cast<std::uintptr_t>(y) % sizeof(F) != 0 || stride % W != 0)) return false;
    const std::size_t vectors = (c + W - 1) / W;
    return with_vector_count(vectors, narrow, std::make_index_sequence<kNarrowVectors>{});
  }
  template <class Narrow, std::size_t... I>
  static bool with_vector_count(std::size_t vectors, const Narrow& narrow, std::index_sequence<I...>) {
    return ((vectors == I + 1 ? (narrow(std::integral_constant<std::size_t, I + 1>{}), true) : false) || ...);
  }

  // A row whose length is not a multiple of W ends in a masked store, and a masked store holds up every later load
  // that overlaps its vector's footprint until it retires: in place, the next row's first load did, and rows of 17
  // to 63 channels were written 3-10x slower than rows of 16 or 64 (from L2, one core: affine_rows 12-41 GB/s against
  // 132-174). Row kernels writing in place therefore take kTailRows rows at a time, their whole vectors first and
  // then their tails, whose footprints (c >= W floats apart) do not overlap: one wait per kTailRows rows instead of
  // one a row. (Rows shorter than W are all tail and still wait on each other. Out of place no load overlaps a store;
  // the reordering measured 0.93-1.07x there, and those rows keep their order.)
  static constexpr std::size_t kTailRows = 8;
  template <class Whole, class Tail>
  SIMDNORM_INLINE static void tails_last(std::size_t rows, const Whole& whole_of_row, const Tail& tail_of_row) {
    for (std::size_t r0 = 0; r0 < rows; r0 += kTailRows) {
      const std::size_t r1 = rows - r0 < kTailRows ? rows : r0 + kTailRows;
      for (std::size_t r = r0; r < r1; ++r) whole_of_row(r);
      for (std::size_t r = r0; r < r1; ++r) tail_of_row(r);
    }
  }
  // Writes `rows` rows of c channels, `stride` floats apart, from value(r, i, count): row r's vector at channel i, of
  // which the first count lanes are stored (W but for the last vector of a row). in_place: y is also an input of
  // value(), so rows that end in a masked store put their tails last (see tails_last); otherwise row after row,
  // streaming with Stream (store_span: the caller fences).
  template <bool Stream, class Value>
  static void store_rows(float* y, std::size_t rows, std::size_t stride, std::size_t c, bool in_place,
                         const Value& value_of) {
    // A local copy of the closure, whose callers capture by value: the vector stores may alias any memory, so what
    // value() reaches through a reference (the caller's closure, its references to the caller's locals) is loaded
    // again after every store, several loads a vector besides the data and coefficients (as with the walk in
    // affine_rows_impl). The narrow rows' closures keep capturing by reference: they hold arrays of coefficient
    // vectors, which copying would only move from one place in memory to another.
    const Value value = value_of;
    if (!Stream && in_place && c % W != 0) {
      const std::size_t whole = c / W * W, tail = c - whole;
      tails_last(
          rows,
          [&](std::size_t r) {
            for (std::size_t i = 0; i < whole; i += W) value(r, i, W).store_unaligned(y + r * stride + i);
          },
          [&](std::size_t r) { Native::store_first(y + r * stride + whole, value(r, whole, tail), tail); });
      return;
    }
    for (std::size_t r = 0; r < rows; ++r) {
      store_span<Stream>(
          y + r * stride, c, [&](std::size_t i) SIMDNORM_INLINE { return value(r, i, W); },
          [&](std::size_t i, std::size_t count) SIMDNORM_INLINE { return value(r, i, count); });
    }
  }

  // Writes `rows` rows of c <= V*W channels, `stride` floats apart, from value(r, v, count): row r's vector v, of
  // which the first count lanes are stored (W but for the last vector of a row).
  // in_place: y is also an input of value(), so its tails go last (see tails_last).
  template <bool Stream, std::size_t V, class Value>
  static void store_narrow_rows(float* y, std::size_t rows, std::size_t stride, std::size_t c, bool in_place,
                                const Value& value) {
    const std::size_t tail = c - (V - 1) * W;  // lanes of each row's last vector: 1 to W
    if (!Stream && in_place && tail != W) {
      tails_last(
          rows,
          [&](std::size_t r) SIMDNORM_INLINE {
            for (std::size_t v = 0; v + 1 < V; ++v) value(r, v, W).store_unaligned(y + r * stride + v * W);
          },
          [&](std::size_t r) SIMDNORM_INLINE {
            Native::store_first(y + r * stride + (V - 1) * W, value(r, V - 1, tail), tail);
          });
      return;
    }
    for (std::size_t r = 0; r < rows; ++r, y += stride) {
      for (std::size_t v = 0; v + 1 < V; ++v) put<Stream>(y + v * W, value(r, v, W));
      if (tail == W) {
        put<Stream>(y + (V - 1) * W, value(r, V - 1, W));
      } else {
        Native::store_first(y + (V - 1) * W, value(r, V - 1, tail), tail);
      }
    }
  }

  // y[i] = a*x[i] + b over len contiguous floats (the caller fences after streaming).
  template <bool Relu, bool Stream>
  static void affine_span(const float* x, float* y, std::size_t len, F a, F b) {
    store_span<Stream>(
        y, len, [&](std::size_t i) { return activate<Relu>(Native::fma(a, F::load_unaligned(x + i), b)); },
        [&](std::size_t i, std::size_t n) { return activate<Relu>(Native::fma(a, Native::load_first(x + i, n), b)); });
  }
  template <bool Relu, bool Stream>
  static void affine_run_impl(const float* x, float* y, const RunWalk& walk, float a, float b);
  template <bool Relu, bool Stream>
  static void affine_rows_impl(const float* x, float* y, const RowWalk& walk, const float* a, const float* b);
  template <bool Relu>
  static void grad_sums_run_impl(const float* x, const float* dy, const RunWalk& walk, const GradCoefficients& k,
                                 double* sum_dy, double* sum_dy_xc);
  template <bool Relu>
  static void grad_sums_rows_impl(const float* x, const float* dy, const RowWalk& walk,
                                  const GradCoefficientArrays& k, double* sum_dy, double* sum_dy_xc);
  template <bool Relu, bool Stream>
  static void grad_input_run_impl(const float* x, const float* dy, float* dx, const RunWalk& walk,
                                  const GradCoefficients& k);
  template <bool Relu, bool Stream, bool Scaled>
  static void grad_input_rows_impl(const float* x, const float* dy, float* dx, const RowWalk& walk,
                                   const GradCoefficientArrays& k);

  template <bool Gamma, bool Beta, bool Stream>
  static void normalize_span_impl(const float* x, float* y, std::size_t len, const RowScalars& s,
                                  const float* gamma, const float* beta);
  static void fetch_ahead(const float* p, std::size_t ahead);
  enum { kNoColumns, kAddColumns, kSetColumns };  // what row_grad_sums does with the column sums
  template <bool Gamma, int Columns>
  static void row_grad_sums_impl(const float* x, const float* dy, std::size_t len, const RowScalars& s,
                                 const float* gamma, double* sums, float* col_dy, float* col_dy_xhat);
  template <bool Gamma, bool Stream>
  static void row_grad_input_impl(const float* x, const float* dy, float* dx, std::size_t len, const RowScalars& s,
                                  const float* gamma, std::size_t ahead);

  // Calls body(relu, stream) with both flags as compile-time constants (std::bool_constant).
  template <class Body>
  static void with_modes(bool relu, bool stream, const Body& body) {
    if (relu) {
      stream ? body(std::true_type{}, std::true_type{}) : body(std::true_type{}, std::false_type{});
    } else {
      stream ? body(std::false_type{}, std::true_type{}) : body(std::false_type{}, std::false_type{});
    }
  }

  // The first pass over an NCHW channel reads its N runs one after the other, each a fresh stream that the hardware
  // prefetchers pick up only after a few misses: a run of 56x56 floats is over before they are fully up to speed.
  // While a run is read, this touches the same offset of the next run (one stride further on), so each run arrives
  // already in flight. Only for runs of up to RunWalk::next_run_floats (see there).
  static void prefetch_block(const float* p) {
    for (std::size_t l = 0; l < U * W; l += 64 / sizeof(float)) {
      _mm_prefetch(reinterpret_cast<const char*>(p + l), _MM_HINT_T0);
    }
  }

  // How a first pass prefetches while it reads a run: the block `distance` floats on from offset i, while i < until;
  // or, when span != 0, all of [distance, distance + span) once, before the run is read (a walk with
  // RunWalk::fetch_floats, over short runs).
  struct Ahead {
    std::size_t distance, until;
    std::size_t span = 0;
  };
  // NCHW planes of a few hundred floats (7x7, 14x14), a plane stride apart, defeat the hardware prefetchers: a walk
  // with RunWalk::fetch_floats fetches that block of a run kShortRunAheadFloats / fetch_floats runs ahead, about 4 KB
  // in flight (64x2048x7x7 on one core: 4.0 ms without, 1.4 ms with; docs/design.md).
  static constexpr std::size_t kShortRunAheadFloats = 1024;
  static void prefetch_span(const float* p, std::size_t len) {
    const auto first = reinterpret_cast<std::uintptr_t>(p) / 64 * 64;
    const auto last = reinterpret_cast<std::uintptr_t>(p + len - 1);
    for (std::uintptr_t line = first; line <= last; line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(line), _MM_HINT_T0);
    }
  }
  // Runs longer than RunWalk::next_run_floats: moments_run touches 8 KB ahead (one 16 MB run: 35 -> 48 GB/s).
  static constexpr std::size_t kInRunAheadFloats = 2048;

  // Calls visit(start, len, ahead) for each run of the walk: its offset, its length, and what to prefetch while it
  // is read: the same offset of a run further on when there is one before walk.fetch_end (the next run, or several
  // runs on with walk.fetch_floats) and runs are short, `in_run` floats further on in the run itself when runs are
  // long (0: nothing), or nothing (!walk.fetch). Every prefetched block lies inside the tensor: in the walk's runs, or
  // with walk.fetch_floats in the block of adjacent channels' runs at the same image that the driver asked for.
  template <class Visit>
  static void for_each_run(const RunWalk& walk, std::size_t in_run, Visit&& visit) {
    const bool short_runs = walk.len <= walk.next_run_floats;
    const std::size_t fetch_end = walk.fetch_end > walk.end ? walk.fetch_end : walk.end;
    std::size_t e = walk.begin;
    while (e < walk.end) {
      const std::size_t run = e / walk.len;
      const std::size_t offset = e - run * walk.len;
      const std::size_t rest = walk.len - offset;
      const std::size_t take = rest < walk.end - e ? rest : walk.end - e;
      Ahead ahead{0, 0};
      const std::size_t next = (run + 1) * walk.len;  // where the next run starts
      if (!walk.fetch) {
        // nothing
      } else if (walk.fetch_floats != 0) {
        if (next < fetch_end) {
          // Runs run + 1 ... run + left start before fetch_end: the one fetched lies inside the tensor.
          const std::size_t left = (fetch_end - next + walk.len - 1) / walk.len;
          const std::size_t span = walk.fetch_floats;
          const std::size_t wanted = span < kShortRunAheadFloats ? kShortRunAheadFloats / span : 1;
          ahead = Ahead{(wanted < left ? wanted : left) * walk.stride, 0, span};
        }
      } else if (short_runs && e + take < fetch_end) {
        ahead = Ahead{walk.stride, take};
      } else if (!short_runs && in_run != 0 && take >= in_run + U * W) {
        ahead = Ahead{in_run, take - in_run - U * W + 1};
      }
      visit(run * walk.stride + offset, take, ahead);
      e += take;
    }
  }

  // Calls visit(start, len) for the runs of the walk in the order it asks for (RunWalk::last_first).
  template <class Visit>
  static void for_each_run_in_order(const RunWalk& walk, Visit&& visit) {
    if (!walk.last_first) {
      for_each_run(walk, 0, [&](std::size_t start, std::size_t len, Ahead /*ahead*/) { visit(start, len); });
      return;
    }
    std::size_t e = walk.end;
    while (e > walk.begin) {
      const std::size_t run = (e - 1) / walk.len;
      const std::size_t first = run * walk.len > walk.begin ? run * walk.len : walk.begin;
      visit(run * walk.stride + (first - run * walk.len), e - first);
      e = first;
    }
  }
};

}  // namespace kernels
}  // namespace simdnorm

#include "kernels/affine.hpp"
#include "kernels/channel.hpp"
#include "kernels/grad.hpp"
#include "kernels/moments.hpp"
#include "kernels/row_norm.hpp"

#endif  // SIMDNORM_SRC_KERNELS_KERNELS_HPP_
