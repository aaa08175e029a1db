// What both libFuzzer targets (fuzz_api.cpp for batch norm, fuzz_norms.cpp for LayerNorm, RMSNorm and GroupNorm) make
// of their bytes, and how they judge a call: the byte reader, the value generators, the documented statuses and the
// comparison of an accepted call with the reference.
#ifndef SIMDNORM_TESTS_FUZZ_FUZZ_INPUT_HPP_
#define SIMDNORM_TESTS_FUZZ_FUZZ_INPUT_HPP_

#include <simdnorm/simdnorm.h>

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace simdnorm_fuzz {

// The input, read front to back; past its end every byte reads as 0.
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

// NaN, an infinity, a denormal, a huge value, a signed zero, any bit pattern, or an ordinary value.
inline float special_or_ordinary(Bytes& b) {
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

// A scalar argument (eps, momentum): `ordinary` most of the time, else NaN, infinity, 0, -0.5, 1, or an edge of the
// caller's own (`edge`: a momentum above 1, an eps far below any variance).
inline float scalar_param(Bytes& b, float ordinary, float edge) {
  switch (b.u8() % 10) {
    case 0: return std::numeric_limits<float>::quiet_NaN();
    case 1: return std::numeric_limits<float>::infinity();
    case 2: return 0.0f;
    case 3: return -0.5f;
    case 4: return edge;
    case 5: return 1.0f;
    default: return ordinary;
  }
}

inline bool documented(simdnorm_status s) {
  return s == SIMDNORM_SUCCESS || s == SIMDNORM_INVALID_ARGUMENT || s == SIMDNORM_OUT_OF_MEMORY ||
         s == SIMDNORM_NON_FINITE;
}

// Inputs with which the results are compared with the reference at all.
template <class T>
bool finite_and_moderate(const std::vector<T>& v) {
  for (T f : v) {
    if (!std::isfinite(f) || std::fabs(f) > 1e15f) return false;
  }
  return true;
}

// Whether an accepted call's result agrees with the reference's within `bound`. Near the top of the float range a
// result may round to the largest finite float on one side and overflow on the other, and where the rounding allowed
// reaches past FLT_MAX (cancellation among huge terms: dx of 8e36 with an allowed error of 4e40) a float result may
// overflow: the comparison says nothing there.
template <class T>
bool within_bound(T got, T want, double bound) {
  if (got == want || (std::isnan(got) && std::isnan(want))) return true;
  if (!std::isfinite(want) || std::fabs(want) > 1e37f || std::isinf(bound)) return true;
  if (std::isinf(got) && std::fabs(want) + bound > FLT_MAX) return true;
  return std::fabs(static_cast<double>(got) - want) <= bound;
}

}  // namespace simdnorm_fuzz

#endif  // SIMDNORM_TESTS_FUZZ_FUZZ_INPUT_HPP_
