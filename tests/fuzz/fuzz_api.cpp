// libFuzzer target for the whole C API: bytes become an operation, a shape (sometimes invalid or overflowing), a
// layout, flags, NULL pointers, aliasing and values (NaN, Inf, denormals, huge, ordinary). Every call must return a
// documented status; a rejected call must leave every output byte untouched and leave a message; an accepted call
// must agree with the reference implementation (same status, outputs within tolerances scaled to the magnitudes).
// The split-phase functions (operations 5 to 10) take their per-channel doubles (moments, counts, sums) from bytes read
// after all the others, so that the seeds of the one-call operations keep their meaning.
#include <simdnorm/reference.h>
#include <simdnorm/simdnorm.h>

#include <cfloat>
#include <cmath>
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

// A count of the split phases: the natural one, or an edge (NaN, infinite, negative, zero, one, fractional).
double count_param(Bytes& b, double natural) {
  static const double kEdges[] = {std::numeric_limits<double>::quiet_NaN(), INFINITY, -1.0, 0.0, 1.0, 2.5};
  const std::uint8_t k = b.u8() % 10;
  return k < 6 ? kEdges[k] : natural;
}

[[noreturn]] void die(const char* what, int op) {
  std::fprintf(stderr, "fuzz_api: %s (operation %d)\n", what, op);
  std::abort();
}

// Outputs live in one arena so "nothing was written" is one comparison.
struct Arena {
  std::vector<float> storage;
  float* at(std::size_t offset) { return storage.data() + offset; }
};

struct CaseInfo {
  const simdnorm_shape* shape;
  unsigned flags;
  std::uint32_t nulls;
  int alias;
};
CaseInfo g_case;

template <class T>
void check_close(const T* got, const T* want, std::size_t count, const std::vector<double>& bound, const char* what,
                 int op) {
  const CaseInfo& k = g_case;
  if (std::getenv("FUZZ_API_VERBOSE") != nullptr) {
    for (std::size_t i = 0; i < count; ++i) {
      std::fprintf(stderr, "  %s[%zu] got %.9g want %.9g\n", what, i, static_cast<double>(got[i]),
                   static_cast<double>(want[i]));
    }
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (bound.empty()) {  // promised bit for bit
      if (got[i] == want[i] || (std::isnan(want[i]) && std::isnan(got[i]))) continue;
      std::fprintf(stderr, "%s[%zu]: got %.17g want %.17g\n", what, i, static_cast<double>(got[i]),
                   static_cast<double>(want[i]));
      die("a result promised bitwise equal to the reference's differs", op);
    }
    if (within_bound(got[i], want[i], bound[i])) continue;
    std::fprintf(stderr, "%s[%zu]: got %.9g want %.9g bound %.3g (n=%zu c=%zu spatial=%zu layout=%d flags=%u "
                 "nulls=0x%x alias=%d)\n", what, i, static_cast<double>(got[i]), static_cast<double>(want[i]),
                 bound[i], k.shape->n, k.shape->c,
                 k.shape->spatial, static_cast<int>(k.shape->layout), k.flags, k.nulls, k.alias);
    die("an accepted call disagrees with the reference (shape and inputs above)", op);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes b(data, size);
  // Operations 0 to 10, numbered so that the committed seeds (first bytes 0 to 4 and 30) keep theirs.
  const int op_byte = b.u8() % 15;
  const int op = op_byte < 11 ? op_byte : op_byte - 11;
  simdnorm_shape shape;
  auto dim = [&]() -> std::size_t {
    const std::uint8_t v = b.u8();
    if (v == 255) return std::numeric_limits<std::size_t>::max() / 2;  // overflow
    return v % 24;                                                    // 0 is invalid
  };
  shape.n = dim();
  shape.c = dim();
  shape.spatial = dim();
  const std::uint8_t layout_byte = b.u8();
  // An unknown layout is stored as a C caller would store it: as the integer.
  const std::underlying_type_t<simdnorm_layout> layout_value = layout_byte % 7 == 6 ? 5 : layout_byte % 2;
  std::memcpy(&shape.layout, &layout_value, sizeof layout_value);
  const std::uint8_t flag_byte = b.u8();
  const unsigned flags = flag_byte % 11 == 10 ? 0x6u : (flag_byte & 1u);
  const std::uint32_t nulls = b.u8() % 4 == 0 ? b.u32() : 0u;
  const std::uint8_t alias = b.u8() % 6;  // 0: separate, 1: in place, 2: partial overlap, else separate
  const float eps = scalar_param(b, 1e-5f, 1.5f);
  const float momentum = scalar_param(b, 0.1f, 1.5f);

  g_case = CaseInfo{&shape, flags, nulls, alias};
  const bool sane = shape.n < 24 && shape.c < 24 && shape.spatial < 24;
  const std::size_t total = sane ? shape.n * shape.c * shape.spatial : 0;
  const std::size_t C = sane ? shape.c : 0;

  std::vector<float> x(total + 1), dy(total + 1), pc[6];  // per-channel inputs: gamma, beta, mean, var, scale, shift
  for (float& v : x) v = special_or_ordinary(b);
  for (float& v : dy) v = special_or_ordinary(b);
  for (auto& v : pc) {
    v.resize(C + 1);
    for (float& f : v) f = special_or_ordinary(b);
  }
  for (float& f : pc[3]) f = std::fabs(f);  // variances are >= 0 (NaN stays NaN)
  // Saved statistics as training would write them, for backward and the split phases: invstd > 0.
  std::vector<float> invstd = pc[3];
  for (float& f : invstd) f = f == 0.0f ? 1.0f : f;
  // The split phases' doubles: `parts` rows of moments for the merge (row 0 is also the finish's moments, rows 0 and 1
  // of dsums the sums backward_apply takes), the parts' counts, and a total count.
  const std::size_t parts = b.u8() % 4;  // 0 is invalid
  const double m_here = sane ? static_cast<double>(shape.n * shape.spatial) : 0.0;
  std::vector<double> counts(parts + 1), dmeans((parts + 1) * (C + 1)), dm2s(dmeans.size()), dsums(2 * (C + 1));
  for (double& v : counts) v = count_param(b, m_here);
  for (double& v : dmeans) v = static_cast<double>(special_or_ordinary(b)) * (b.u8() == 255 ? 1e280 : 1.0);
  for (double& v : dm2s) v = std::fabs(static_cast<double>(special_or_ordinary(b)));
  for (double& v : dsums) v = static_cast<double>(special_or_ordinary(b));
  const double count = count_param(b, m_here);
  if (std::getenv("FUZZ_API_VERBOSE") != nullptr) {
    for (std::size_t i = 0; i < x.size(); ++i) std::fprintf(stderr, "x[%zu]=%.9g dy=%.9g\n", i, x[i], dy[i]);
    for (int k = 0; k < 6; ++k)
      for (std::size_t i = 0; i < pc[k].size(); ++i) std::fprintf(stderr, "pc%d[%zu]=%.9g\n", k, i, pc[k][i]);
  }

  // Output arena: y/dx (total, plus one float so a partial overlap can be formed), then six per-channel outputs.
  const std::size_t out_tensor = total + 1;
  Arena arena{std::vector<float>(out_tensor + 6 * (C + 1), -7.0f)};
  for (std::size_t i = 0; i < arena.storage.size(); ++i) arena.storage[i] = static_cast<float>(i % 97) - 3.0f;
  std::vector<float> x_work = x, dy_work = dy;
  // Double outputs (moments, merged moments and total, sums), and the merge's inputs, which it may write over.
  std::vector<double> darena(3 * (C + 1), -5.0), dmeans_work = dmeans, dm2s_work = dm2s;

  auto pick = [&](int bit, float* p) -> float* { return (nulls >> bit) & 1u ? nullptr : p; };
  auto pick_c = [&](int bit, const float* p) -> const float* { return (nulls >> bit) & 1u ? nullptr : p; };
  auto pickp = [&](int bit, auto* p) { return (nulls >> bit) & 1u ? nullptr : p; };
  float* const out = arena.at(0);
  float* const pout = arena.at(out_tensor);
  auto per_channel_out = [&](int i) { return pout + i * (C + 1); };

  // The tensor output: its own buffer, the input itself, or the input shifted by one float.
  auto tensor_out = [&](std::vector<float>& input) -> float* {
    if (alias == 1) return input.data();
    if (alias == 2) return input.data() + 1;
    return out;
  };

  const std::vector<float> arena_before = arena.storage;
  const std::vector<float> x_before = x_work, dy_before = dy_work;
  const std::vector<double> darena_before = darena;
  simdnorm_status got = SIMDNORM_SUCCESS, want = SIMDNORM_SUCCESS;

  // The reference runs on its own copies, with the same aliasing.
  std::vector<float> rx = x, rdy = dy;
  Arena rarena{arena_before};
  auto rtensor_out = [&](std::vector<float>& input) -> float* {
    if (alias == 1) return input.data();
    if (alias == 2) return input.data() + 1;
    return rarena.at(0);
  };
  float* const rpout = rarena.at(out_tensor);
  auto rper_channel_out = [&](int i) { return rpout + i * (C + 1); };
  std::vector<double> rdarena = darena_before, rdmeans = dmeans, rdm2s = dm2s;
  // Operations 5 to 10 on the fast (`ref` false) or the reference functions, each on its own buffers.
  auto split_phase = [&](bool ref) -> simdnorm_status {
    std::vector<float>& xs = ref ? rx : x_work;
    std::vector<float>& dys = ref ? rdy : dy_work;
    double* const dout = (ref ? rdarena : darena).data();
    double* const means = (ref ? rdmeans : dmeans_work).data();
    double* const m2s = (ref ? rdm2s : dm2s_work).data();
    auto pcout = [&](int i) { return ref ? rper_channel_out(i) : per_channel_out(i); };
    float* const tout = ref ? rtensor_out(op == 10 ? dys : xs) : tensor_out(op == 10 ? dys : xs);
    double* const out1 = alias == 1 ? dout : alias == 2 ? dout + 1 : dout + (C + 1);  // with out0 = dout
    switch (op) {
      case 5:
        return (ref ? simdnorm_reference_moments : simdnorm_moments)(&shape, pickp(0, xs.data()), pickp(1, dout),
                                                                     pickp(2, out1));
      case 6:  // mean and m2 over row 0 of the inputs (allowed), or one double into it (refused)
        return (ref ? simdnorm_reference_merge_moments : simdnorm_merge_moments)(
            parts, C, pickp(0, counts.data()), pickp(1, means), pickp(2, m2s),
            pickp(3, alias == 1 ? means : alias == 2 ? means + 1 : dout), pickp(4, alias == 1 ? m2s : dout + (C + 1)),
            pickp(5, dout + 2 * (C + 1)));
      case 7:
        return (ref ? simdnorm_reference_finish_moments : simdnorm_finish_moments)(
            C, count, pickp(0, static_cast<const double*>(means)), pickp(1, static_cast<const double*>(m2s)), eps,
            pickp(2, pcout(0)), pickp(3, alias == 2 ? pcout(0) + 1 : pcout(1)), pickp(4, pcout(2)),
            pickp(5, pcout(3)), momentum);
      case 8:
        return (ref ? simdnorm_reference_normalize : simdnorm_normalize)(
            &shape, pick_c(0, xs.data()), pickp(1, tout), pick_c(2, pc[0].data()), pick_c(3, pc[1].data()),
            pick_c(4, pc[2].data()), pick_c(5, invstd.data()), flags);
      case 9:
        return (ref ? simdnorm_reference_backward_reduce : simdnorm_backward_reduce)(
            &shape, pick_c(0, xs.data()), pick_c(1, dys.data()), pick_c(2, pc[0].data()), pick_c(3, pc[1].data()),
            pick_c(4, pc[2].data()), pick_c(5, invstd.data()), pickp(6, dout), pickp(7, out1), flags);
      default:
        return (ref ? simdnorm_reference_backward_apply : simdnorm_backward_apply)(
            &shape, pick_c(0, xs.data()), pick_c(1, dys.data()), pick_c(2, pc[0].data()), pick_c(3, pc[1].data()),
            pick_c(4, pc[2].data()), pick_c(5, invstd.data()), pickp(6, static_cast<const double*>(dsums.data())),
            pickp(7, static_cast<const double*>(dsums.data() + (C + 1))), count, pickp(8, tout), flags);
    }
  };

  switch (op) {
    case 0: {
      float* y = tensor_out(x_work);
      got = simdnorm_forward_training(&shape, pick_c(0, x_work.data()), pick(1, y), pick_c(2, pc[0].data()),
                                      pick_c(3, pc[1].data()), eps, pick(4, per_channel_out(0)),
                                      pick(5, per_channel_out(1)), pick(6, per_channel_out(2)),
                                      pick(7, per_channel_out(3)), momentum, flags);
      want = simdnorm_reference_forward_training(
          &shape, pick_c(0, rx.data()), pick(1, rtensor_out(rx)), pick_c(2, pc[0].data()), pick_c(3, pc[1].data()),
          eps, pick(4, rper_channel_out(0)), pick(5, rper_channel_out(1)), pick(6, rper_channel_out(2)),
          pick(7, rper_channel_out(3)), momentum, flags);
      break;
    }
    case 1: {
      float* y = tensor_out(x_work);
      got = simdnorm_forward_inference(&shape, pick_c(0, x_work.data()), pick(1, y), pick_c(2, pc[0].data()),
                                       pick_c(3, pc[1].data()), pick_c(4, pc[2].data()), pick_c(5, pc[3].data()), eps,
                                       flags);
      want = simdnorm_reference_forward_inference(&shape, pick_c(0, rx.data()), pick(1, rtensor_out(rx)),
                                                  pick_c(2, pc[0].data()), pick_c(3, pc[1].data()),
                                                  pick_c(4, pc[2].data()), pick_c(5, pc[3].data()), eps, flags);
      break;
    }
    case 2: {
      float* dx = tensor_out(dy_work);
      got = simdnorm_backward(&shape, pick_c(0, x_work.data()), pick_c(1, dy_work.data()), pick_c(2, pc[0].data()),
                              pick_c(3, pc[1].data()), pick_c(4, pc[2].data()), pick_c(5, invstd.data()), pick(6, dx),
                              pick(7, per_channel_out(0)), pick(8, per_channel_out(1)), flags);
      want = simdnorm_reference_backward(&shape, pick_c(0, rx.data()), pick_c(1, rdy.data()), pick_c(2, pc[0].data()),
                                         pick_c(3, pc[1].data()), pick_c(4, pc[2].data()), pick_c(5, invstd.data()),
                                         pick(6, rtensor_out(rdy)), pick(7, rper_channel_out(0)),
                                         pick(8, rper_channel_out(1)), flags);
      break;
    }
    case 3: {
      const std::size_t c = sane ? shape.c : dim();
      const std::size_t cc = c < C + 1 ? c : C;  // never let the call read past the per-channel vectors
      got = simdnorm_fold(cc, pick_c(0, pc[0].data()), pick_c(1, pc[1].data()), pick_c(2, pc[2].data()),
                          pick_c(3, pc[3].data()), eps, pick(4, per_channel_out(0)), pick(5, per_channel_out(1)));
      want = simdnorm_reference_fold(cc, pick_c(0, pc[0].data()), pick_c(1, pc[1].data()), pick_c(2, pc[2].data()),
                                     pick_c(3, pc[3].data()), eps, pick(4, rper_channel_out(0)),
                                     pick(5, rper_channel_out(1)));
      break;
    }
    case 5:
    case 6:
    case 7:
    case 8:
    case 9:
    case 10:
      got = split_phase(false);
      want = split_phase(true);
      break;
    default: {
      float* y = tensor_out(x_work);
      got = simdnorm_affine(&shape, pick_c(0, x_work.data()), pick(1, y), pick_c(2, pc[4].data()),
                            pick_c(3, pc[5].data()), flags);
      want = simdnorm_reference_affine(&shape, pick_c(0, rx.data()), pick(1, rtensor_out(rx)),
                                       pick_c(2, pc[4].data()), pick_c(3, pc[5].data()), flags);
      break;
    }
  }

  if (!documented(got)) die("undocumented status", op);
  if (got != want) die("status differs from the reference", op);
  if (got == SIMDNORM_INVALID_ARGUMENT || got == SIMDNORM_OUT_OF_MEMORY) {
    if (simdnorm_last_error()[0] == '\0') die("a failure left no message", op);
    if (std::memcmp(arena.storage.data(), arena_before.data(), arena.storage.size() * sizeof(float)) != 0 ||
        std::memcmp(x_work.data(), x_before.data(), x_work.size() * sizeof(float)) != 0 ||
        std::memcmp(dy_work.data(), dy_before.data(), dy_work.size() * sizeof(float)) != 0 ||
        darena != darena_before || std::memcmp(dmeans_work.data(), dmeans.data(), dmeans.size() * 8) != 0 ||
        std::memcmp(dm2s_work.data(), dm2s.data(), dm2s.size() * 8) != 0) {
      die("a rejected call wrote memory", op);
    }
    return 0;
  }

  if (op == 6) {  // reference.h: the two merges agree bit for bit, whatever the values
    const bool row0 = alias == 1;
    check_close(row0 ? dmeans_work.data() : darena.data(), row0 ? rdmeans.data() : rdarena.data(), C, {},
                "merged mean", op);
    check_close(row0 ? dm2s_work.data() : darena.data() + (C + 1), row0 ? rdm2s.data() : rdarena.data() + (C + 1), C,
                {}, "merged m2", op);
    check_close(darena.data() + 2 * (C + 1), rdarena.data() + 2 * (C + 1), 1, {}, "total", op);
    return 0;
  }

  // Accepted: compare with the reference where the inputs make the comparison meaningful (finite, moderate values,
  // no ReLU mask whose edge the two arithmetics may place differently).
  if (!sane || !finite_and_moderate(x) || !finite_and_moderate(dy)) return 0;
  for (auto& v : pc) {
    if (!finite_and_moderate(v)) return 0;
  }
  if ((op == 7 || op == 10) && (!finite_and_moderate(dmeans) || !finite_and_moderate(dm2s) ||
                                !finite_and_moderate(dsums) || !std::isfinite(count))) {
    return 0;
  }
  if (!(eps > 0.0f) || !std::isfinite(eps)) return 0;
  const bool into_dy = op == 2 || op == 10;
  const float* y_got = alias == 1 ? (into_dy ? dy_work.data() : x_work.data()) : out;
  const float* y_want = alias == 1 ? (into_dy ? rdy.data() : rx.data()) : rarena.at(0);
  if (alias == 2) return 0;  // rejected above; nothing to compare
  const double u = FLT_EPSILON;
  const bool has_gamma = ((nulls >> 2) & 1u) == 0, has_beta = ((nulls >> 3) & 1u) == 0;
  auto channel_of = [&](std::size_t i) {
    return shape.layout == SIMDNORM_NCHW ? (i / shape.spatial) % C : i % C;
  };
  std::vector<double> bound(total, 0.0);
  if (op == 1 || op == 4 || op == 8) {
    for (std::size_t i = 0; i < total; ++i) {
      const std::size_t c = channel_of(i);
      double a, sh;
      if (op == 4) {
        a = pc[4][c];
        sh = pc[5][c];
      } else if (op == 8) {  // a = gamma*invstd, b = beta − mean*a, each rounded to float: the inference bound
        a = (has_gamma ? pc[0][c] : 1.0) * invstd[c];
        sh = (has_beta ? pc[1][c] : 0.0) - pc[2][c] * a;
      } else {
        a = (has_gamma ? pc[0][c] : 1.0) / std::sqrt(static_cast<double>(pc[3][c]) + eps);
        sh = (has_beta ? pc[1][c] : 0.0) - pc[2][c] * a;
      }
      // Rounding of a, b and y, plus gradual underflow: a and b rounded to float lose up to FLT_TRUE_MIN
      // absolutely. b is formed from the rounded a (b = beta − mean*a), so the loss in a is scaled by |x − mean|,
      // not by |x| alone: with gamma = 1e-40 and |mean| = 5e14, a rounds to 0 and y loses mean*a ≈ 2e-33.
      const double mean_in = op == 4 ? 0.0 : pc[2][c];
      bound[i] = 8 * u * (std::fabs(a * x[i]) + std::fabs(sh) + std::fabs(a * pc[2][c])) +
                 2 * FLT_TRUE_MIN * (std::fabs(x[i]) + std::fabs(mean_in) + 1.0) + 1e-37;
      // Given statistics (op 8) are not bounded by eps as inference's are: a, b or a*x past the float range
      // (gamma*invstd = 2e29 times a mean of 5e14) overflow in the documented float arithmetic whatever y is.
      if (std::fabs(a) > 1e37 || std::fabs(sh) > 1e37 || std::fabs(a * x[i]) > 1e37) bound[i] = INFINITY;
    }
    check_close(y_got, y_want, total, bound, "y", op);
  } else if (op == 0) {
    const double m = static_cast<double>(shape.n * shape.spatial);
    std::vector<double> mean(C, 0.0), m2(C, 0.0);
    for (std::size_t i = 0; i < total; ++i) mean[channel_of(i)] += x[i] / m;
    for (std::size_t i = 0; i < total; ++i) m2[channel_of(i)] += (x[i] - mean[channel_of(i)]) * (x[i] - mean[channel_of(i)]);
    for (std::size_t i = 0; i < total; ++i) {
      const std::size_t c = channel_of(i);
      const double channel_invstd = 1.0 / std::sqrt(m2[c] / m + eps);
      const double a = (has_gamma ? pc[0][c] : 1.0) * channel_invstd;
      const double sh = (has_beta ? pc[1][c] : 0.0) - mean[c] * a;
      // The mean is rounded to float before b is formed (backward takes that float mean): near zero it lands on a
      // denormal and loses up to FLT_TRUE_MIN/2 absolutely (1e-40 among ten zeros: mean 9.1e-42, off by 7e-5
      // relative), which |a| scales.
      const double dmean = 16 * u * (std::fabs(mean[c]) + std::sqrt(m2[c] / m)) + FLT_TRUE_MIN;
      bound[i] = 16 * u * (std::fabs(a * x[i]) + std::fabs(sh)) + std::fabs(a) * dmean +
                 1e-5 * std::fabs(a * (x[i] - mean[c])) +
                 2 * FLT_TRUE_MIN * (std::fabs(x[i]) + std::fabs(mean[c]) + 1.0) + 1e-37;  // as for op 1
    }
    check_close(y_got, y_want, total, bound, "y", op);
  } else if (op == 2 && flags == 0u) {
    const double m = static_cast<double>(shape.n * shape.spatial);
    std::vector<double> abs_dy(C, 0.0), abs_dy_xhat(C, 0.0);
    for (std::size_t i = 0; i < total; ++i) {
      const std::size_t c = channel_of(i);
      abs_dy[c] += std::fabs(dy[i]);
      abs_dy_xhat[c] += std::fabs(dy[i] * (x[i] - static_cast<double>(pc[2][c])) * invstd[c]);
    }
    if (((nulls >> 6) & 1u) == 0) {
      for (std::size_t i = 0; i < total; ++i) {
        const std::size_t c = channel_of(i);
        const double k = std::fabs((has_gamma ? pc[0][c] : 1.0) * invstd[c]);
        const double xhat = std::fabs((x[i] - static_cast<double>(pc[2][c])) * invstd[c]);
        const double inner = std::fabs(dy[i]) + abs_dy[c] / m + xhat * (1.0 + abs_dy_xhat[c] / m);
        // The bracket and its coefficients dbeta/m and dgamma/m are formed in float (documented): past FLT_MAX
        // they overflow whatever gamma*invstd is.
        if (inner > 1e37 || abs_dy_xhat[c] / m > 1e37 || abs_dy[c] / m > 1e37) {
          bound[i] = INFINITY;
          continue;
        }
        // Rounding of every term, plus gradual underflow: k_dy (rounded to float) and each term of the bracket may
        // lose up to FLT_TRUE_MIN absolutely, which the other factor (the bracket, or k_dy) scales. In the product
        // xhat * mean_dy_xhat, each factor is formed in float and may lose FLT_TRUE_MIN times (invstd + 1): xhat
        // from the float x − mean times invstd, mean_dy_xhat from a sum of float products dy*(x − mean) (see dgamma
        // below) times invstd/m; the other factor (bounded by mdx and xhat) and k scale that.
        const double mdx = abs_dy_xhat[c] / m;
        bound[i] = 16 * u * k * inner + 4 * FLT_TRUE_MIN * (1.0 + k + inner) +
                   2 * k * FLT_TRUE_MIN * (invstd[c] + 1.0) * (xhat + mdx) + 1e-37;
      }
      check_close(y_got, y_want, total, bound, "dx", op);
    }
    std::vector<double> cb(C);
    if (((nulls >> 7) & 1u) == 0) {
      // Each product dy*(x − mean) is formed in float before invstd scales the sum: below the normal range it loses
      // up to FLT_TRUE_MIN/2 absolutely (dy = 1e-40 times 0.44, with invstd = 4.7e14: off by 4e-6 relative).
      for (std::size_t c = 0; c < C; ++c) cb[c] = 16 * u * abs_dy_xhat[c] + 2 * m * FLT_TRUE_MIN * invstd[c] + 1e-37;
      check_close(per_channel_out(0), rper_channel_out(0), C, cb, "dgamma", op);
    }
    if (((nulls >> 8) & 1u) == 0) {
      for (std::size_t c = 0; c < C; ++c) cb[c] = 16 * u * abs_dy[c] + 1e-37;
      check_close(per_channel_out(1), rper_channel_out(1), C, cb, "dbeta", op);
    }
  } else if (op == 5) {
    // The bounds op 0 puts on the statistics: the mean within 16 ulps of |mean| + std (and a denormal), the variance
    // within 2e-5 of itself (op 0's 1e-5 on invstd); plus what a mean off by that adds to m2 (second order), and
    // squares of tiny deviations underflowing in float (a denormal each).
    const double m = static_cast<double>(shape.n * shape.spatial);
    std::vector<double> mean(C, 0.0), m2(C, 0.0), mb(C), m2b(C);
    for (std::size_t i = 0; i < total; ++i) mean[channel_of(i)] += x[i] / m;
    for (std::size_t i = 0; i < total; ++i) {
      const double d = x[i] - mean[channel_of(i)];
      m2[channel_of(i)] += d * d;
    }
    for (std::size_t c = 0; c < C; ++c) {
      mb[c] = 16 * u * (std::fabs(mean[c]) + std::sqrt(m2[c] / m)) + FLT_TRUE_MIN;
      m2b[c] = 2e-5 * m2[c] + m * mb[c] * mb[c] + 4 * m * FLT_TRUE_MIN + 1e-37;
    }
    if (((nulls >> 1) & 1u) == 0) check_close(darena.data(), rdarena.data(), C, mb, "moments mean", op);
    if (((nulls >> 2) & 1u) == 0) {
      check_close(darena.data() + (C + 1), rdarena.data() + (C + 1), C, m2b, "moments m2", op);
    }
  } else if (op == 7) {
    // Both round the same doubles: batch_mean once; invstd = 1/sqrt(m2/count + eps) and the running statistics a few
    // roundings of their terms apart (with a denormal each for gradual underflow).
    const double mom = momentum;
    std::vector<double> b0(C), b1(C), b2(C), b3(C);
    for (std::size_t c = 0; c < C; ++c) {
      const float old_mean = arena_before[out_tensor + 2 * (C + 1) + c];
      const float old_var = arena_before[out_tensor + 3 * (C + 1) + c];
      b0[c] = u * std::fabs(dmeans[c]) + FLT_TRUE_MIN;
      b1[c] = 4 * u / std::sqrt(dm2s[c] / count + eps) + FLT_TRUE_MIN;
      b2[c] = 8 * u * (std::fabs((1.0 - mom) * old_mean) + std::fabs(mom * dmeans[c])) + 2 * FLT_TRUE_MIN;
      b3[c] = 8 * u * (std::fabs((1.0 - mom) * old_var) + std::fabs(mom * dm2s[c] / (count - 1.0))) +
              2 * FLT_TRUE_MIN;
    }
    const std::vector<double>* bounds[] = {&b0, &b1, &b2, &b3};
    const char* names[] = {"batch_mean", "batch_invstd", "running_mean", "running_var"};
    for (int k = 0; k < 4; ++k) {
      if (((nulls >> (2 + k)) & 1u) != 0) continue;
      check_close(per_channel_out(k), rper_channel_out(k), C, *bounds[k], names[k], op);
    }
  } else if (op == 9 && flags == 0u) {
    // op 2's bounds of dbeta and dgamma, on the sums before they are rounded to float.
    std::vector<double> bdy(C, 1e-37), bdx(C, 1e-37);
    for (std::size_t i = 0; i < total; ++i) {
      const std::size_t c = channel_of(i);
      bdy[c] += 16 * u * std::fabs(dy[i]);
      bdx[c] += 16 * u * std::fabs(dy[i] * (x[i] - static_cast<double>(pc[2][c])) * invstd[c]) +
                2 * FLT_TRUE_MIN * invstd[c];
    }
    if (((nulls >> 6) & 1u) == 0) check_close(darena.data(), rdarena.data(), C, bdy, "sum_dy", op);
    if (((nulls >> 7) & 1u) == 0) {
      check_close(darena.data() + (C + 1), rdarena.data() + (C + 1), C, bdx, "sum_dy_xhat", op);
    }
  } else if (op == 10 && flags == 0u && ((nulls >> 8) & 1u) == 0) {
    // op 2's bound of dx, with the given sums in place of its own.
    for (std::size_t i = 0; i < total; ++i) {
      const std::size_t c = channel_of(i);
      const double k = std::fabs((has_gamma ? pc[0][c] : 1.0) * invstd[c]);
      const double xhat = std::fabs((x[i] - static_cast<double>(pc[2][c])) * invstd[c]);
      const double mdy = std::fabs(dsums[c]) / count, mdx = std::fabs(dsums[C + 1 + c]) / count;
      const double inner = std::fabs(dy[i]) + mdy + xhat * (1.0 + mdx);
      bound[i] = inner > 1e37 || mdy > 1e37 || mdx > 1e37
                     ? INFINITY
                     : 16 * u * k * inner + 4 * FLT_TRUE_MIN * (1.0 + k + inner) +
                           2 * k * FLT_TRUE_MIN * (invstd[c] + 1.0) * (xhat + mdx) + 1e-37;
    }
    check_close(y_got, y_want, total, bound, "dx", op);
  }
  return 0;
}
