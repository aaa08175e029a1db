// The one place that decides which kernels run: the best ISA the CPU and OS support, capped by SIMDNORM_MAX_ISA (read
// once, at the first call) or simdnorm_set_max_isa(). The choice is a pointer to one KernelTable, swapped atomically.
//
// We do not use xsimd::dispatch: it picks per call from the CPU alone and cannot honour a cap, and xsimd 8.1's cpuid
// does not check that the OS saves AVX-512 state. __builtin_cpu_supports does (it tests XCR0).
#include <simdnorm/simdnorm.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/table.hpp"
#include "status.hpp"

namespace simdnorm {
namespace {

enum Level { kLevelSse2 = 0, kLevelAvx2 = 1, kLevelAvx512 = 2 };

const KernelTable* const kTables[] = {&kSse2Kernels, &kAvx2Kernels, &kAvx512Kernels};

int best_supported_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return kLevelAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kLevelAvx2;
  return kLevelSse2;
}

int level_of(const char* name) {
  if (name == nullptr) return -1;
  for (int level = kLevelSse2; level <= kLevelAvx512; ++level) {
    if (std::strcmp(name, kTables[level]->name) == 0) return level;
  }
  return -1;
}

const KernelTable* table_capped_at(int cap) {
  const int best = best_supported_level();
  return kTables[cap < best ? cap : best];
}

const KernelTable* initial_table() {
  int cap = kLevelAvx512;
  if (const char* env = std::getenv("SIMDNORM_MAX_ISA"); env != nullptr && *env != '\0') {
    const int level = level_of(env);
    if (level < 0) {
      std::fprintf(stderr, "simdnorm: ignoring SIMDNORM_MAX_ISA=%s (expected avx512, avx2 or sse2)\n", env);
    } else {
      cap = level;
    }
  }
  return table_capped_at(cap);
}

std::atomic<const KernelTable*> g_active{nullptr};

}  // namespace

const KernelTable& active_kernels() {
  const KernelTable* table = g_active.load(std::memory_order_acquire);
  if (table == nullptr) {
    const KernelTable* expected = nullptr;
    table = initial_table();
    if (!g_active.compare_exchange_strong(expected, table, std::memory_order_acq_rel)) table = expected;
  }
  return *table;
}

}  // namespace simdnorm

extern "C" const char* simdnorm_isa(void) { return simdnorm::active_kernels().name; }

extern "C" simdnorm_status simdnorm_set_max_isa(const char* isa) {
  const int level = simdnorm::level_of(isa);
  if (level < 0) {
    return simdnorm::fail(SIMDNORM_INVALID_ARGUMENT,
                          "simdnorm_set_max_isa: isa \"%s\" is not one of \"avx512\", \"avx2\", \"sse2\"",
                          isa != nullptr ? isa : "(NULL)");
  }
  simdnorm::g_active.store(simdnorm::table_capped_at(level), std::memory_order_release);
  return SIMDNORM_SUCCESS;
}
