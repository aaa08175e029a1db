#include "platform/cache.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace simdnorm {
namespace {

constexpr std::size_t kFallbackL2 = std::size_t{256} << 10;
constexpr std::size_t kFallbackLastLevel = std::size_t{8} << 20;
// Sizes outside this range are read errors, not caches.
constexpr std::size_t kMinCache = std::size_t{16} << 10;
constexpr std::size_t kMaxCache = std::size_t{4} << 30;

bool plausible(long long bytes) {
  return bytes >= static_cast<long long>(kMinCache) && bytes <= static_cast<long long>(kMaxCache);
}

// A size as sysfs writes it ("512K", "32768K", "1M").
long long parse_size(const char* text) {
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || value <= 0) return -1;
  if (*end == 'K' || *end == 'k') return value << 10;
  if (*end == 'M' || *end == 'm') return value << 20;
  if (*end == 'G' || *end == 'g') return value << 30;
  return value;
}

std::string read_line(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return "";
  char buffer[64] = {};
  const bool got = std::fgets(buffer, sizeof buffer, f) != nullptr;
  std::fclose(f);
  return got ? std::string(buffer) : "";
}

// The size of cpu0's data or unified cache of `level` from sysfs, or -1.
long long sysfs_cache(int level) {
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    const std::string lvl = read_line(dir + "level");
    if (lvl.empty()) break;
    const std::string type = read_line(dir + "type");
    if (std::atoi(lvl.c_str()) != level || type.rfind("Instruction", 0) == 0) continue;
    return parse_size(read_line(dir + "size").c_str());
  }
  return -1;
}

// The size of the data or unified cache of `level` from CPUID's deterministic cache parameters (leaf 4), or -1.
long long cpuid_cache(int level) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid_max(0, nullptr) < 4) return -1;
  for (unsigned sub = 0; sub < 16; ++sub) {
    __cpuid_count(4, sub, eax, ebx, ecx, edx);
    const unsigned type = eax & 0x1f;
    if (type == 0) break;
    if (type == 2 || static_cast<int>((eax >> 5) & 0x7) != level) continue;  // 2: instruction cache
    const long long ways = ((ebx >> 22) & 0x3ff) + 1, partitions = ((ebx >> 12) & 0x3ff) + 1;
    const long long line = (ebx & 0xfff) + 1, sets = static_cast<long long>(ecx) + 1;
    return ways * partitions * line * sets;
  }
#else
  (void)level;
#endif
  return -1;
}

long long sysconf_cache(int level) {
#if defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
  return sysconf(level == 2 ? _SC_LEVEL2_CACHE_SIZE : _SC_LEVEL3_CACHE_SIZE);
#else
  (void)level;
  return -1;
#endif
}

// The first plausible reading of the cache of `level`, or -1. sysfs first: it gives the cache a core shares with its
// neighbours (32 MiB on the development VM), where glibc's sysconf reported the whole package's (384 MiB).
long long read_cache(int level) {
  for (long long (*source)(int) : {sysfs_cache, sysconf_cache, cpuid_cache}) {
    const long long bytes = source(level);
    if (plausible(bytes)) return bytes;
  }
  return -1;
}

std::size_t from_environment(const char* name, std::size_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  const long long bytes = parse_size(text);
  return plausible(bytes) ? static_cast<std::size_t>(bytes) : fallback;
}

CacheSizes read_cache_sizes() {
  const long long l2 = read_cache(2);
  const long long l3 = read_cache(3);
  CacheSizes sizes;
  sizes.l2 = l2 > 0 ? static_cast<std::size_t>(l2) : kFallbackL2;
  sizes.last_level = l3 > 0 ? static_cast<std::size_t>(l3) : (l2 > 0 ? sizes.l2 : kFallbackLastLevel);
  sizes.l2 = from_environment("SIMDNORM_L2_BYTES", sizes.l2);
  sizes.last_level = from_environment("SIMDNORM_LLC_BYTES", sizes.last_level);
  if (sizes.last_level < sizes.l2) sizes.last_level = sizes.l2;
  return sizes;
}

}  // namespace

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = read_cache_sizes();
  return sizes;
}

}  // namespace simdnorm
