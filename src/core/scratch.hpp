// Scratch memory, named and sized in one place: per calling thread, one block per slot, grown when a call needs more
// and kept for the next call, so that repeated calls on a shape neither allocate nor fault pages in (a fresh
// multi-megabyte block per call cost more than the whole computation on small tensors). A call uses each slot for
// one purpose; functions that one call runs one after the other may share a slot only where the earlier one's
// contents are dead when the later one starts.
#ifndef SIMDNORM_SRC_CORE_SCRATCH_HPP_
#define SIMDNORM_SRC_CORE_SCRATCH_HPP_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace simdnorm {

enum class Slot : int {
  kShift,       // floats: the shift of each channel's moments (its first value)
  kSums,        // doubles: Σ(x − shift) per channel, per chunk of rows (NHWC); chunk 0 ends up holding the merge
  kM2,          // doubles: M2 per channel, likewise
  kMeanD,       // doubles: the mean of each channel in double
  kStatistics,  // floats: mean and invstd of each channel, rounded
  kParameters,  // floats: gamma and beta (ones and zeros for NULL), padded copies
  kCoefficients,  // floats: a and b of y = a*x + b
  kPartials,    // Moments or GradSums of the parts of shared NCHW channels
  kGradSums,    // doubles: Σdy' and Σdy'(x − mean) per channel, per chunk of rows
  kGradArrays,  // floats: the backward coefficient arrays, then one copy a thread of the saved statistics
  kRowSums,     // doubles: LayerNorm/RMSNorm per-row sums of a long row's chunks
  kRowPartials,  // doubles: LayerNorm/RMSNorm column sums (dgamma, dbeta) per part of the rows
  // GroupNorm's slots (ops/group_norm.cpp) go here, named kGroup*.
  kGroupPartials,  // GroupNorm slabs: Moments or GradSums of the parts of shared slabs, two slabs' worth
  kGroupCoefficients,  // floats: GroupNorm slabs, a and b of a slab's channels, one pair a thread (or a slab)
  kGroupRowSums,   // doubles: GroupNorm rows, per-channel partials of each chunk of an image's rows, per set
  kGroupArrays,    // floats: GroupNorm rows, one block a thread of padded per-channel arrays
  kGroupChannels,  // doubles: GroupNorm backward, Σdy' and Σdy'(x − mean) of every (image, channel)
  kCount
};

// `count` values of T in `slot`, or nullptr when the memory cannot be had (the caller then fails with
// SIMDNORM_OUT_OF_MEMORY before writing anything). 64-byte aligned.
void* scratch_bytes(Slot slot, std::size_t bytes);

template <class T>
T* scratch(Slot slot, std::size_t count) {
  static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>,
                "scratch holds plain data only");
  if (count > PTRDIFF_MAX / sizeof(T)) return nullptr;
  return static_cast<T*>(scratch_bytes(slot, (count == 0 ? 1 : count) * sizeof(T)));
}

// Clears the padding [c, cp) of `count` per-channel arrays of cp = padded_channels(c) values laid end to end.
template <class T>
void clear_padding(T* arrays, std::size_t count, std::size_t c, std::size_t cp) {
  for (std::size_t i = 0; i < count; ++i) std::fill(arrays + i * cp + c, arrays + (i + 1) * cp, T{0});
}

// Scratch for `count` padded per-channel arrays, whose [0, c) the call writes before anything reads it: only the
// padding is cleared (clearing them whole cost a few microseconds a call at C = 2048, a fifth of a 1x2048x7x7
// training).
template <class T>
T* per_channel_scratch(Slot slot, std::size_t count, std::size_t c, std::size_t cp) {
  T* const arrays = scratch<T>(slot, count * cp);
  if (arrays != nullptr) clear_padding(arrays, count, c, cp);
  return arrays;
}

// A padded copy of a per-channel parameter: `from`, or `fill` for NULL.
void copy_or_fill(float* to, const float* from, std::size_t c, float fill);

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_CORE_SCRATCH_HPP_
