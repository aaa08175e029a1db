#include "core/scratch.hpp"

#include <cstdlib>
#include <cstring>

namespace simdnorm {
namespace {

constexpr int kSlots = static_cast<int>(Slot::kCount);

struct ScratchBlocks {
  void* block[kSlots] = {};
  std::size_t bytes[kSlots] = {};
  ~ScratchBlocks() {
    for (void* p : block) std::free(p);
  }
};

thread_local ScratchBlocks g_scratch;

}  // namespace

void* scratch_bytes(Slot slot, std::size_t bytes) {
  const int i = static_cast<int>(slot);
  if (g_scratch.bytes[i] < bytes) {
    void* fresh = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (fresh == nullptr) return nullptr;
    std::free(g_scratch.block[i]);
    g_scratch.block[i] = fresh;
    g_scratch.bytes[i] = bytes;
  }
  return g_scratch.block[i];
}

void copy_or_fill(float* to, const float* from, std::size_t c, float fill) {
  if (from != nullptr) {
    std::memcpy(to, from, c * sizeof(float));
  } else {
    std::fill(to, to + c, fill);
  }
}

}  // namespace simdnorm
