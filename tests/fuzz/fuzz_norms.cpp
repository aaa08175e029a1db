// libFuzzer target for LayerNorm, RMSNorm and GroupNorm (forward and backward, six functions): bytes become a function,
// sizes (sometimes zero or overflowing, rows up to 400 columns wide), groups (sometimes 0, not dividing c, above c),
// a layout, flags, NULL pointers, aliasing (in place, partial overlaps, outputs inside inputs or each other) and values
// (NaN, Inf, denormals, huge, ordinary; or long runs from a byte-seeded generator, with large means now and then).
// Every call must return a documented status, the same as the reference's; a rejected call must leave a message and
// every byte untouched; an accepted call must agree with the reference (statistics and outputs within tolerances
// scaled to the magnitudes, as fuzz_api.cpp's) wherever the inputs are finite and moderate. Backward's saved
// statistics are the reference forward's, or fuzzed values.
#include <simdnorm/reference.h>
#include <simdnorm/simdnorm.h>

#include <cfloat>
#include <cmath>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "fuzz_input.hpp"

namespace {

using simdnorm_fuzz::Bytes, simdnorm_fuzz::special_or_ordinary, simdnorm_fuzz::scalar_param, simdnorm_fuzz::documented,
    simdnorm_fuzz::finite_and_moderate, simdnorm_fuzz::within_bound;

// Values one by one from the bytes, or a run from a generator the bytes seed: offset + scale * U[-1, 1], with a
// large mean (mean/std up to 3e5) now and then, and a few values from the bytes put in.
void fill(std::vector<float>& v, Bytes& b) {
  const std::uint8_t mode = b.u8() % 3;
  if (mode == 0) {
    for (float& f : v) f = special_or_ordinary(b);
    return;
  }
  static const double kOffsets[] = {0.0, 1.0, -3.0, 1e4, -3e5, 1e10, 0.5, 2.0};
  static const double kScales[] = {1.0, 1e-3, 100.0, 1e4, 1.0, 0.25, 1e20, 3.0};
  const double offset = kOffsets[b.u8() % 8], scale = kScales[b.u8() % 8];
  std::uint32_t state = b.u32() | 1u;
  for (float& f : v) {
    state = state * 1664525u + 1013904223u;
    f = static_cast<float>(offset + scale * (static_cast<double>(state >> 8) / 8388608.0 - 1.0));
  }
  if (mode == 2 && !v.empty()) {
    for (int k = b.u8() % 4; k > 0; --k) v[b.u8() % v.size()] = special_or_ordinary(b);
  }
}

enum Op { kLayerForward, kLayerBackward, kRmsForward, kRmsBackward, kGroupForward, kGroupBackward };
bool is_forward(int op) { return op % 2 == 0; }

[[noreturn]] void die(const char* what, int op) {
  std::fprintf(stderr, "fuzz_norms: %s (function %d)\n", what, op);
  std::abort();
}

// Every buffer one side of the comparison sees; the fast path and the reference each get an identical copy, so that
// aliasing and "nothing written" apply to each alike. `out` holds y or dx (one float more, for partial overlaps),
// then dgamma and dbeta (params + 1 each), then mean and rstd (stats + 1 each).
struct Side {
  std::vector<float> x, dy, gamma, beta, saved_mean, saved_rstd, out;
  bool operator==(const Side& o) const {
    auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    return same(x, o.x) && same(dy, o.dy) && same(gamma, o.gamma) && same(beta, o.beta) &&
           same(saved_mean, o.saved_mean) && same(saved_rstd, o.saved_rstd) && same(out, o.out);
  }
};

struct Call {
  int op;
  std::size_t rows, cols, groups, T, C, S;
  simdnorm_shape shape;
  float eps;
  unsigned flags;
  std::uint32_t nulls;
  int alias;

  template <class P>
  P* pick(int bit, P* p) const {
    return (nulls >> bit) & 1u ? nullptr : p;
  }

  simdnorm_status run(Side& s, bool ref) const {
    float* const tensor = s.out.data();
    float* const dgamma = tensor + T + 1;
    float* const dbeta = dgamma + C + 1;
    float* const mean = dbeta + C + 1;
    float* const rstd = mean + S + 1;
    const float* const g = pick(2, s.gamma.data());
    const float* const bt = pick(3, s.beta.data());
    if (is_forward(op)) {
      // y: its own buffer, x itself (allowed), x shifted by one float (refused). mean over y, rstd over mean or
      // over gamma, rstd over x (all refused).
      float* y = alias == 1 ? s.x.data() : alias == 2 ? s.x.data() + 1 : tensor;
      float* m = alias == 3 ? y : mean;
      float* r = alias == 4 ? (op == kRmsForward ? s.gamma.data() : m) : alias == 5 ? s.x.data() : rstd;
      const float* x = pick(0, s.x.data());
      y = pick(1, y), m = pick(4, m), r = pick(5, r);
      switch (op) {
        case kLayerForward:
          return (ref ? simdnorm_reference_layer_norm_forward : simdnorm_layer_norm_forward)(rows, cols, x, y, g, bt,
                                                                                             eps, m, r, flags);
        case kRmsForward:
          return (ref ? simdnorm_reference_rms_norm_forward : simdnorm_rms_norm_forward)(rows, cols, x, y, g, eps, r,
                                                                                         flags);
        default:
          return (ref ? simdnorm_reference_group_norm_forward : simdnorm_group_norm_forward)(&shape, groups, x, y, g,
                                                                                             bt, eps, m, r, flags);
      }
    }
    // dx: its own buffer, dy itself (allowed), dy shifted (refused), dgamma over dx, dbeta over dgamma (RMSNorm:
    // dgamma over the saved rstd), dx over x (all refused).
    float* dx = alias == 1 ? s.dy.data() : alias == 2 ? s.dy.data() + 1 : alias == 5 ? s.x.data() : tensor;
    float* dg = alias == 3 ? dx : alias == 4 && op == kRmsBackward ? s.saved_rstd.data() : dgamma;
    float* db = alias == 4 ? dg : dbeta;
    const float* x = pick(0, s.x.data());
    const float* dy = pick(1, s.dy.data());
    const float* m = pick(4, s.saved_mean.data());
    const float* r = pick(5, s.saved_rstd.data());
    dx = pick(6, dx), dg = pick(7, dg), db = pick(8, db);
    switch (op) {
      case kLayerBackward:
        return (ref ? simdnorm_reference_layer_norm_backward : simdnorm_layer_norm_backward)(rows, cols, x, dy, g, m, r,
                                                                                             dx, dg, db, flags);
      case kRmsBackward:
        return (ref ? simdnorm_reference_rms_norm_backward : simdnorm_rms_norm_backward)(rows, cols, x, dy, g, r, dx,
                                                                                         dg, flags);
      default:
        return (ref ? simdnorm_reference_group_norm_backward : simdnorm_group_norm_backward)(
            &shape, groups, x, dy, g, bt, m, r, dx, dg, db, flags);
    }
  }
};

void check_close(const float* got, const float* want, std::size_t count, const std::vector<double>& bound,
                 const char* what, const Call& k) {
  for (std::size_t i = 0; i < count; ++i) {
    if (within_bound(got[i], want[i], bound[i])) continue;
    std::fprintf(stderr, "%s[%zu]: got %.9g want %.9g bound %.3g (rows=%zu cols=%zu n=%zu c=%zu spatial=%zu layout=%d "
                 "groups=%zu flags=%u nulls=0x%x alias=%d)\n", what, i, static_cast<double>(got[i]),
                 static_cast<double>(want[i]), bound[i], k.rows, k.cols, k.shape.n, k.shape.c, k.shape.spatial,
                 static_cast<int>(k.shape.layout), k.groups, k.flags, k.nulls, k.alias);
    die("an accepted call disagrees with the reference (arguments above)", k.op);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes b(data, size);
  Call k{};
  k.op = b.u8() % 6;
  const bool group = k.op >= kGroupForward;
  auto dim = [&](bool wide) -> std::size_t {
    const std::uint8_t v = b.u8();
    if (v == 255) return std::numeric_limits<std::size_t>::max() / 2;  // overflows
    if (wide && v >= 200) return 24 + (v - 200) * 7u;                  // up to 402: whole vectors and long tails
    return v % 24;                                                     // 0 is invalid
  };
  if (group) {
    k.shape.n = dim(false);
    k.shape.c = dim(true);
    k.shape.spatial = dim(false);
    const std::uint8_t layout_byte = b.u8();
    const std::underlying_type_t<simdnorm_layout> layout = layout_byte % 7 == 6 ? 5 : layout_byte % 2;
    std::memcpy(&k.shape.layout, &layout, sizeof layout);
    // One group, InstanceNorm, a divisor of c, or anything up to c + 1 (0 and non-divisors are refused).
    const std::uint8_t gb = b.u8();
    std::vector<std::size_t> divisors;
    for (std::size_t d = 1; k.shape.c < 403 && d <= k.shape.c; ++d) {
      if (k.shape.c % d == 0) divisors.push_back(d);
    }
    switch (gb % 4) {
      case 0: k.groups = gb == 252 ? std::numeric_limits<std::size_t>::max() : 1; break;
      case 1: k.groups = k.shape.c; break;
      case 2: k.groups = divisors.empty() ? 1 : divisors[gb / 4 % divisors.size()]; break;
      default: k.groups = gb / 4 % (k.shape.c < 403 ? k.shape.c + 2 : 8); break;
    }
  } else {
    k.rows = dim(false);
    k.cols = dim(true);
  }
  const std::uint8_t flag_byte = b.u8();
  k.flags = flag_byte % 11 == 10 ? 0x6u : (flag_byte % 3 == 0 ? 1u : 0u);
  k.nulls = b.u8() % 4 == 0 ? b.u32() : 0u;
  k.alias = b.u8() % 8;
  k.eps = scalar_param(b, 1e-5f, 1e-30f);

  const bool sane = group ? k.shape.n < 24 && k.shape.c < 403 && k.shape.spatial < 24 : k.rows < 24 && k.cols < 403;
  const bool groups_ok = group && sane && k.groups != 0 && k.groups <= k.shape.c && k.shape.c % k.groups == 0;
  k.T = !sane ? 0 : group ? k.shape.n * k.shape.c * k.shape.spatial : k.rows * k.cols;
  k.C = !sane ? 0 : group ? k.shape.c : k.cols;
  k.S = !sane ? 0 : group ? (groups_ok ? k.shape.n * k.groups : 0) : k.rows;

  Side fast;
  fast.x.resize(k.T + 1);
  fast.dy.resize(k.T + 1);
  // Long enough to stand for any output pointed at them (RMSNorm's rstd over gamma, dgamma over the saved rstd).
  const std::size_t small = std::max(k.C, k.S) + 1;
  fast.gamma.resize(small);
  fast.beta.resize(small);
  fill(fast.x, b);
  fill(fast.dy, b);
  fill(fast.gamma, b);
  fill(fast.beta, b);
  // Saved statistics: the reference forward's (mostly), or fuzzed (rstd > 0, as a forward pass writes it).
  fast.saved_mean.assign(small, 0.0f);
  fast.saved_rstd.assign(small, 1.0f);
  const bool fuzzed_stats = b.u8() % 4 == 0;
  if (fuzzed_stats) {
    fill(fast.saved_mean, b);
    fill(fast.saved_rstd, b);
    for (float& f : fast.saved_rstd) f = f == 0.0f ? 1.0f : std::fabs(f);
  } else if (!is_forward(k.op) && k.T > 0 && k.S > 0) {
    // (Refused when the call itself will be: a bad layout or eps. The statistics then stay 0 and 1.)
    std::vector<float> y(k.T);
    const float eps = std::isfinite(k.eps) && k.eps > 0.0f ? k.eps : 1e-5f;
    const simdnorm_status s =
        k.op == kLayerBackward
            ? simdnorm_reference_layer_norm_forward(k.rows, k.cols, fast.x.data(), y.data(), fast.gamma.data(),
                                                    fast.beta.data(), eps, fast.saved_mean.data(),
                                                    fast.saved_rstd.data(), 0)
        : k.op == kRmsBackward
            ? simdnorm_reference_rms_norm_forward(k.rows, k.cols, fast.x.data(), y.data(), fast.gamma.data(), eps,
                                                  fast.saved_rstd.data(), 0)
            : simdnorm_reference_group_norm_forward(&k.shape, k.groups, fast.x.data(), y.data(), fast.gamma.data(),
                                                    fast.beta.data(), eps, fast.saved_mean.data(),
                                                    fast.saved_rstd.data(), 0);
    if (s != SIMDNORM_SUCCESS) {
      fast.saved_mean.assign(small, 0.0f);
      fast.saved_rstd.assign(small, 1.0f);
    }
  }
  fast.out.resize(k.T + 1 + 2 * (k.C + 1) + 2 * (k.S + 1));
  for (std::size_t i = 0; i < fast.out.size(); ++i) fast.out[i] = static_cast<float>(i % 97) - 3.0f;
  if (std::getenv("FUZZ_NORMS_VERBOSE") != nullptr) {  // replaying an artifact: every input
    const char* names[] = {"x", "dy", "gamma", "beta", "saved_mean", "saved_rstd"};
    const std::vector<float>* vs[] = {&fast.x, &fast.dy, &fast.gamma, &fast.beta, &fast.saved_mean, &fast.saved_rstd};
    std::fprintf(stderr, "function %d eps %.9g groups %zu T %zu C %zu S %zu\n", k.op, static_cast<double>(k.eps),
                 k.groups, k.T, k.C, k.S);
    for (int v = 0; v < 6; ++v) {
      for (std::size_t i = 0; i < vs[v]->size(); ++i) {
        std::fprintf(stderr, "%s[%zu] = %.9g\n", names[v], i, static_cast<double>((*vs[v])[i]));
      }
    }
  }
  const Side before = fast;
  Side ref = fast;

  const simdnorm_status got = k.run(fast, false), want = k.run(ref, true);
  if (!documented(got)) die("undocumented status", k.op);
  if (got != want) die("status differs from the reference", k.op);
  if (got != SIMDNORM_SUCCESS) {
    if (simdnorm_last_error()[0] == '\0') die("a failure left no message", k.op);
    if (!(fast == before)) die("a rejected call wrote memory", k.op);
    return 0;
  }
  // Accepted: then no output overlapped what it may not (judged here, apart from status.cpp).
  auto given = [&](int bit) { return ((k.nulls >> bit) & 1u) == 0; };
  const bool rms = k.op == kRmsForward || k.op == kRmsBackward;
  bool overlapped = false;
  if (is_forward(k.op)) {
    // (A tensor of one value shifted by one float lies just past itself: alias 2 overlaps from two values on.)
    overlapped = (k.alias == 2 && k.T > 1) || (k.alias == 3 && !rms && given(4)) ||
                 (k.alias == 4 && given(5) && (rms ? given(2) : given(4))) || (k.alias == 5 && given(5));
  } else {
    overlapped = (k.alias == 2 && k.T > 1 && given(6)) || (k.alias == 3 && given(6) && given(7)) ||
                 (k.alias == 4 && given(7) && (rms || given(8))) || (k.alias == 5 && given(6));
  }
  if (overlapped) die("a call with overlapping buffers was accepted", k.op);

  // Accepted: compare where the inputs make it meaningful (finite, moderate; no ReLU mask in backward).
  if (!finite_and_moderate(before.x) || !finite_and_moderate(before.dy) || !finite_and_moderate(before.gamma) ||
      !finite_and_moderate(before.beta) || !finite_and_moderate(before.saved_mean) ||
      !finite_and_moderate(before.saved_rstd)) {
    return 0;
  }
  const double u = FLT_EPSILON;
  const bool centred = k.op != kRmsForward && k.op != kRmsBackward;
  const bool has_gamma = ((k.nulls >> 2) & 1u) == 0, has_beta = ((k.nulls >> 3) & 1u) == 0 && centred;
  const std::vector<float>& x = before.x;
  // Statistic and parameter of element i.
  auto stat_of = [&](std::size_t i) -> std::size_t {
    if (!group) return i / k.cols;
    const std::size_t c = k.shape.layout == SIMDNORM_NCHW ? (i / k.shape.spatial) % k.C : i % k.C;
    return i / (k.C * k.shape.spatial) * k.groups + c / (k.C / k.groups);
  };
  auto param_of = [&](std::size_t i) -> std::size_t {
    if (!group) return i % k.cols;
    return k.shape.layout == SIMDNORM_NCHW ? (i / k.shape.spatial) % k.C : i % k.C;
  };
  const double m = static_cast<double>(k.T / k.S);
  if (is_forward(k.op)) {
    std::vector<double> mean(k.S, 0.0), var(k.S, 0.0);
    // Two passes in double, as the reference takes them (a constant group has var exactly 0 here as there).
    for (std::size_t i = 0; i < k.T; ++i) {
      if (centred) mean[stat_of(i)] += x[i];
    }
    for (double& v : mean) v /= m;
    for (std::size_t i = 0; i < k.T; ++i) var[stat_of(i)] += (x[i] - mean[stat_of(i)]) * (x[i] - mean[stat_of(i)]);
    for (double& v : var) v /= m;
    std::vector<double> dmean(k.S), rel(k.S), bound(k.T);
    for (std::size_t s = 0; s < k.S; ++s) {
      // The mean within 16 ulps of |mean| + std (and a denormal); var + eps within 32 ulps plus what the mean's
      // error adds to it (its square); rstd within half that relative.
      dmean[s] = centred ? 16 * u * (std::fabs(mean[s]) + std::sqrt(var[s])) + FLT_TRUE_MIN : 0.0;
      rel[s] = 16 * u + dmean[s] * dmean[s] / (var[s] + k.eps);
    }
    for (std::size_t i = 0; i < k.T; ++i) {
      const std::size_t s = stat_of(i), p = param_of(i);
      const double r = 1.0 / std::sqrt(var[s] + k.eps);
      const double a = (has_gamma ? before.gamma[p] : 1.0) * r, beta = has_beta ? before.beta[p] : 0.0;
      const double dev = std::fabs(a * (x[i] - mean[s]));
      bound[i] = 16 * u * (std::fabs(a * x[i]) + std::fabs(a * mean[s]) + dev + std::fabs(beta)) +
                 std::fabs(a) * dmean[s] + 2 * rel[s] * dev +
                 2 * FLT_TRUE_MIN * (std::fabs(x[i]) + std::fabs(mean[s]) + 1.0) * (1.0 + std::fabs(a)) + 1e-37;
      if (std::fabs(a) > 1e37 || std::fabs(a * x[i]) > 1e37 || std::fabs(a * mean[s]) > 1e37) bound[i] = INFINITY;
    }
    const float* y_got = k.alias == 1 ? fast.x.data() : fast.out.data();
    const float* y_want = k.alias == 1 ? ref.x.data() : ref.out.data();
    if (((k.nulls >> 1) & 1u) == 0) check_close(y_got, y_want, k.T, bound, "y", k);
    const std::size_t stats_at = k.T + 1 + 2 * (k.C + 1);
    std::vector<double> sb(k.S);
    if (centred && ((k.nulls >> 4) & 1u) == 0) {
      check_close(fast.out.data() + stats_at, ref.out.data() + stats_at, k.S, dmean, "mean", k);
    }
    for (std::size_t s = 0; s < k.S; ++s) sb[s] = rel[s] / std::sqrt(var[s] + k.eps) + FLT_TRUE_MIN;
    if (((k.nulls >> 5) & 1u) == 0) {
      check_close(fast.out.data() + stats_at + k.S + 1, ref.out.data() + stats_at + k.S + 1, k.S, sb, "rstd", k);
    }
    return 0;
  }
  if (k.flags != 0u) return 0;
  // Backward, from the saved statistics as given: op 2 of fuzz_api.cpp per statistic, with g = dy*gamma inside.
  const std::vector<float>&dy = before.dy, &sm = before.saved_mean, &sr = before.saved_rstd;
  std::vector<double> abs_g(k.S, 0.0), abs_gx(k.S, 0.0), abs_gs(k.S, 0.0), abs_dy(k.C, 0.0), abs_dyx(k.C, 0.0),
      tiny(k.C, 1e-37);
  auto mu_of = [&](std::size_t s) { return centred ? static_cast<double>(sm[s]) : 0.0; };
  for (std::size_t i = 0; i < k.T; ++i) {
    const std::size_t s = stat_of(i), p = param_of(i);
    const double g = std::fabs(dy[i] * (has_gamma ? before.gamma[p] : 1.0));
    const double xhat = std::fabs((x[i] - mu_of(s)) * sr[s]), spread = (std::fabs(x[i]) + std::fabs(mu_of(s))) * sr[s];
    abs_g[s] += g / m;
    abs_gx[s] += g * xhat / m;
    abs_gs[s] += g * spread / m;
    abs_dy[p] += std::fabs(dy[i]);
    abs_dyx[p] += std::fabs(dy[i]) * spread;
    // Each product dy*(x - mean) formed in float may lose a denormal's worth, which rstd scales.
    tiny[p] += 2 * FLT_TRUE_MIN * (sr[s] + 1.0);
  }
  // GroupNorm runs batch norm's backward sums, which add dy'*(x - mean) in float before rstd scales them (as
  // fuzz_api.cpp knows): those products can overflow past FLT_MAX although dx is ordinary, and such statistics are
  // not compared. The row norms scale first (g*xhat), so every one of theirs is.
  std::vector<double> unscaled(k.S, 0.0);
  for (std::size_t i = 0; i < k.T && group; ++i) {
    const std::size_t s = stat_of(i);
    unscaled[s] += std::fabs(dy[i] * (has_gamma ? before.gamma[param_of(i)] : 1.0) * (x[i] - mu_of(s)));
  }
  std::vector<double> bound(k.T), cb(k.C);
  for (std::size_t i = 0; i < k.T; ++i) {
    const std::size_t s = stat_of(i), p = param_of(i);
    const double r = sr[s], g = std::fabs(dy[i] * (has_gamma ? before.gamma[p] : 1.0));
    const double xhat = std::fabs((x[i] - mu_of(s)) * r), spread = (std::fabs(x[i]) + std::fabs(mu_of(s))) * r;
    const double inner = g + abs_g[s] + xhat * abs_gs[s] + spread * abs_gx[s];
    bound[i] = inner > 1e37 || r * inner > 1e37 || unscaled[s] > 1e37
                   ? INFINITY
                   : 16 * u * r * inner + 4 * FLT_TRUE_MIN * (1.0 + r + inner) +
                         2 * r * FLT_TRUE_MIN * (r + 1.0) * (xhat + abs_gx[s] + 1.0) + 1e-37;
  }
  const float* dx_got = k.alias == 1 ? fast.dy.data() : fast.out.data();
  const float* dx_want = k.alias == 1 ? ref.dy.data() : ref.out.data();
  if (((k.nulls >> 6) & 1u) == 0) check_close(dx_got, dx_want, k.T, bound, "dx", k);
  for (std::size_t p = 0; p < k.C; ++p) {
    cb[p] = 16 * u * abs_dyx[p] + tiny[p];
  }
  if (((k.nulls >> 7) & 1u) == 0) {
    check_close(fast.out.data() + k.T + 1, ref.out.data() + k.T + 1, k.C, cb, "dgamma", k);
  }
  for (std::size_t p = 0; p < k.C; ++p) cb[p] = 16 * u * abs_dy[p] + 1e-37;
  if (centred && ((k.nulls >> 8) & 1u) == 0) {
    check_close(fast.out.data() + k.T + 1 + k.C + 1, ref.out.data() + k.T + 1 + k.C + 1, k.C, cb, "dbeta", k);
  }
  return 0;
}
