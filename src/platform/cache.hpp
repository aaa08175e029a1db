// The machine's facts that partitioning depends on, read once at run time: the data cache sizes a core sees. Every
// threshold that was tuned to a cache size is a fraction of what is read here (src/parallel/partition.cpp), never a
// literal of one machine.
#ifndef SIMDNORM_SRC_PLATFORM_CACHE_HPP_
#define SIMDNORM_SRC_PLATFORM_CACHE_HPP_

#include <cstddef>

namespace simdnorm {

struct CacheSizes {
  std::size_t l2;         // bytes of unified L2 a core has to itself
  std::size_t last_level; // bytes of the last-level cache (L3, or L2 where there is no L3), shared
};

// Read on first use from sysfs (/sys/devices/system/cpu/cpu0/cache), else sysconf, else CPUID leaf 4; a size none of
// them gives falls back to a conservative value (L2 256 KiB, last level 8 MiB). The environment variables
// SIMDNORM_L2_BYTES and SIMDNORM_LLC_BYTES override the reading (for experiments and tests).
const CacheSizes& cache_sizes();

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_PLATFORM_CACHE_HPP_
