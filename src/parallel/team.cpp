#include "parallel/team.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>

#ifdef SIMDNORM_WITH_OPENMP
#include <immintrin.h>
#endif

#include "kernels/table.hpp"

namespace simdnorm {
namespace {

// Below this many floats a call runs on the calling thread: waking a team costs more than it saves.
[[maybe_unused]] constexpr std::size_t kParallelMinElements = std::size_t{1} << 13;

std::atomic<int> g_num_threads{0};

// The probe of the cores' distance (cores_far_apart). On the shared development VM the round trip of a cache line
// between its two vCPUs took 60-70 ns for minutes, then 370-430 ns for a while; docs/design.md has the figures.
constexpr int kProbeTrips = 8;
constexpr std::int64_t kProbePeriodNs = 100 * 1000 * 1000;
constexpr std::int64_t kFarRoundTripNs = 200;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

#ifdef SIMDNORM_WITH_OPENMP
// The time of one round trip of a cache line between two threads of a new team, in ns; -1 where the team has one
// thread (inside an application's parallel region, with nesting off).
std::int64_t probe_round_trip() {
  struct alignas(64) Line {
    std::atomic<int> turn{0};
  } line;
  std::int64_t elapsed = -1;
#pragma omp parallel num_threads(2)
  {
    if (omp_get_num_threads() == 2) {  // the same for both threads
      // Both threads are running before the clock starts: a worker the team woke up would count as far.
#pragma omp barrier
      const bool first = omp_get_thread_num() == 0;
      const std::int64_t start = first ? now_ns() : 0;
      for (int i = 0; i < kProbeTrips; ++i) {
        const int mine = 2 * i + (first ? 0 : 1);  // a thread's turn comes when `turn` is its number
        while (line.turn.load(std::memory_order_acquire) != mine) _mm_pause();
        line.turn.store(mine + 1, std::memory_order_release);
      }
      if (first) {
        while (line.turn.load(std::memory_order_acquire) != 2 * kProbeTrips) _mm_pause();
        elapsed = (now_ns() - start) / kProbeTrips;
      }
    }
  }
  return elapsed;
}

bool probe_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("SIMDNORM_PROBE_CORES");
    return value != nullptr && value[0] == '1';
  }();
  return enabled;
}
#endif

std::atomic<std::int64_t> g_next_probe_ns{0};
std::atomic<bool> g_cores_far{false};

}  // namespace

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

int team_size(std::size_t items, std::size_t elements) {
#ifdef SIMDNORM_WITH_OPENMP
  if (items < 2 || elements < kParallelMinElements) return 1;
  const int wanted = g_num_threads.load(std::memory_order_relaxed);
  const int threads = wanted > 0 ? wanted : omp_get_max_threads();
  return static_cast<std::size_t>(threads) < items ? threads : static_cast<int>(items);
#else
  (void)items, (void)elements;
  return 1;
#endif
}

bool cores_far_apart() {
#ifdef SIMDNORM_WITH_OPENMP
  if (!probe_enabled()) return false;
  std::int64_t due = g_next_probe_ns.load(std::memory_order_relaxed);
  const std::int64_t now = now_ns();
  if (now >= due && !omp_in_parallel() &&
      g_next_probe_ns.compare_exchange_strong(due, now + kProbePeriodNs, std::memory_order_relaxed)) {
    // The faster of two probes: a thread descheduled in one makes it look far.
    const std::int64_t a = probe_round_trip(), b = probe_round_trip();
    const std::int64_t trip = a < 0 ? b : (b < 0 ? a : (a < b ? a : b));
    if (trip >= 0) g_cores_far.store(trip >= kFarRoundTripNs, std::memory_order_relaxed);
  }
  return g_cores_far.load(std::memory_order_relaxed);
#else
  return false;
#endif
}

Block channel_share(std::size_t c, std::size_t part, std::size_t parts) {
  const std::size_t lanes = (c + kMaxLanes - 1) / kMaxLanes;
  const std::size_t begin = lanes * part / parts * kMaxLanes;
  const std::size_t end = part + 1 == parts ? c : lanes * (part + 1) / parts * kMaxLanes;
  return Block{begin < c ? begin : c, end < c ? end : c};
}

}  // namespace simdnorm
