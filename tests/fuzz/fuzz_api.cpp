// libFuzzer target for the whole C API: bytes become an operation, a shape (sometimes invalid or overflowing), a
// layout, flags, NULL pointers, aliasing and values (NaN, Inf, denormals, huge, ordinary). Every call must return a
// documented status; a rejected call must leave every output byte untouched and leave a message; an accepted call
// must agree with the reference implementation (same status, outputs within tolerances scaled to the magnitudes).
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

namespace {

class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | u8();
    return v;
  }
  bool empty() const { return pos_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

float special_or_ordinary(Bytes& b) {
  const std::uint8_t kind = b.u8();
  switch (kind % 16) {
    case 0: return std::numeric_limits<float>::quiet_NaN();
    case 1: return std::numeric_limits<float>::infinity();
    case 2: return -std::numeric_limits<float>::infinity();
    case 3: return 1e-40f;  // denormal
    case 4: return (b.u8() & 1 ? 1.0f : -1.0f) * 1e30f * (1.0f + b.u8() / 256.0f);
    case 5: return 0.0f;
    case 6: return -0.0f;
    case 7: {
      std::uint32_t bits = b.u32();
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    default: return (static_cast<float>(b.u8()) - 128.0f) / 16.0f + static_cast<float>(kind) * 1000.0f;
  }
}

float scalar_param(Bytes& b, float ordinary) {
  switch (b.u8() % 10) {
    case 0: return std::numeric_limits<float>::quiet_NaN();
    case 1: return std::numeric_limits<float>::infinity();
    case 2: return 0.0f;
    case 3: return -0.5f;
    case 4: return 1.5f;
    case 5: return 1.0f;
    default: return ordinary;
  }
}

[[noreturn]] void die(const char* what, int op) {
  std::fprintf(stderr, "fuzz_api: %s (operation %d)\n", what, op);
  std::abort();
}

bool documented(simdnorm_status s) {
  return s == SIMDNORM_SUCCESS || s == SIMDNORM_INVALID_ARGUMENT || s == SIMDNORM_OUT_OF_MEMORY ||
         s == SIMDNORM_NON_FINITE;
}

// Outputs live in one arena so "nothing was written" is one comparison.
struct Arena {
  std::vector<float> storage;
  float* at(std::size_t offset) { return storage.data() + offset; }
};

bool finite_and_moderate(const std::vector<float>& v) {
  for (float f : v) {
    if (!std::isfinite(f) || std::fabs(f) > 1e15f) return false;
  }
  return true;
}

struct CaseInfo {
  const simdnorm_shape* shape;
  unsigned flags;
  std::uint32_t nulls;
  int alias;
};
CaseInfo g_case;

void check_close(const float* got, const float* want, std::size_t count, const std::vector<double>& bound,
                 const char* what, int op) {
  const CaseInfo& k = g_case;
  if (std::getenv("FUZZ_API_VERBOSE") != nullptr) {
    for (std::size_t i = 0; i < count; ++i) std::fprintf(stderr, "  %s[%zu] got %.9g want %.9g\n", what, i, got[i], want[i]);
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (got[i] == want[i] || (std::isnan(want[i]) && std::isnan(got[i]))) continue;
    // Near the top of the float range a result may round to the largest finite float on one side and overflow on
    // the other: the comparison says nothing there.
    if (!std::isfinite(want[i]) || std::fabs(want[i]) > 1e37f || std::isinf(bound[i])) continue;
    // Likewise where the rounding allowed reaches past FLT_MAX (cancellation among huge terms: dx of 8e36 with an
    // allowed error of 4e40): a float result may then overflow.
    if (std::isinf(got[i]) && std::fabs(want[i]) + bound[i] > FLT_MAX) continue;
    const double diff = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(diff <= bound[i])) {
      std::fprintf(stderr, "%s[%zu]: got %.9g want %.9g bound %.3g (n=%zu c=%zu spatial=%zu layout=%d flags=%u "
                   "nulls=0x%x alias=%d)\n", what, i, got[i], want[i], bound[i], k.shape->n, k.shape->c,
                   k.shape->spatial, static_cast<int>(k.shape->layout), k.flags, k.nulls, k.alias);
      die("an accepted call disagrees with the reference (shape and inputs above)", op);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes b(data, size);
  const int op = b.u8() % 5;
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
  const float eps = scalar_param(b, 1e-5f);
  const float momentum = scalar_param(b, 0.1f);

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

  auto pick = [&](int bit, float* p) -> float* { return (nulls >> bit) & 1u ? nullptr : p; };
  auto pick_c = [&](int bit, const float* p) -> const float* { return (nulls >> bit) & 1u ? nullptr : p; };
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
      // Saved statistics as training would write them: invstd > 0.
      std::vector<float> invstd = pc[3];
      for (float& f : invstd) f = f == 0.0f ? 1.0f : f;
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
        std::memcmp(dy_work.data(), dy_before.data(), dy_work.size() * sizeof(float)) != 0) {
      die("a rejected call wrote memory", op);
    }
    return 0;
  }

  // Accepted: compare with the reference where the inputs make the comparison meaningful (finite, moderate values,
  // no ReLU mask whose edge the two arithmetics may place differently).
  if (!sane || !finite_and_moderate(x) || !finite_and_moderate(dy)) return 0;
  for (auto& v : pc) {
    if (!finite_and_moderate(v)) return 0;
  }
  if (!(eps > 0.0f) || !std::isfinite(eps)) return 0;
  const float* y_got = alias == 1 ? (op == 2 ? dy_work.data() : x_work.data()) : out;
  const float* y_want = alias == 1 ? (op == 2 ? rdy.data() : rx.data()) : rarena.at(0);
  if (alias == 2) return 0;  // rejected above; nothing to compare
  const double u = FLT_EPSILON;
  const bool has_gamma = ((nulls >> 2) & 1u) == 0, has_beta = ((nulls >> 3) & 1u) == 0;
  auto channel_of = [&](std::size_t i) {
    return shape.layout == SIMDNORM_NCHW ? (i / shape.spatial) % C : i % C;
  };
  std::vector<double> bound(total, 0.0);
  if (op == 1 || op == 4) {
    for (std::size_t i = 0; i < total; ++i) {
      const std::size_t c = channel_of(i);
      double a, sh;
      if (op == 4) {
        a = pc[4][c];
        sh = pc[5][c];
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
    }
    check_close(y_got, y_want, total, bound, "y", op);
  } else if (op == 0) {
    const double m = static_cast<double>(shape.n * shape.spatial);
    std::vector<double> mean(C, 0.0), m2(C, 0.0);
    for (std::size_t i = 0; i < total; ++i) mean[channel_of(i)] += x[i] / m;
    for (std::size_t i = 0; i < total; ++i) m2[channel_of(i)] += (x[i] - mean[channel_of(i)]) * (x[i] - mean[channel_of(i)]);
    for (std::size_t i = 0; i < total; ++i) {
      const std::size_t c = channel_of(i);
      const double invstd = 1.0 / std::sqrt(m2[c] / m + eps);
      const double a = (has_gamma ? pc[0][c] : 1.0) * invstd;
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
    std::vector<float> invstd = pc[3];
    for (float& f : invstd) f = f == 0.0f ? 1.0f : f;
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
  }
  return 0;
}
