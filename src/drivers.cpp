#include "drivers.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#ifdef SIMDNORM_WITH_OPENMP
#include <immintrin.h>
#include <omp.h>
#endif

#include "kernel_table.hpp"
#include "moments.hpp"

namespace simdnorm {
namespace {

struct Baseline {};  // instantiation tag of the shared arithmetic templates in baseline code

// ---- Partitioning: constants of the shape, never of the thread count. ----

// NCHW channels of up to this many floats go kChannelGroup at a time, so that their per-channel arithmetic runs
// vectorised across the group (a multiple of the widest vector, so groups never share one); a group is at most
// 256 KiB, normalised while it is still in L2.
constexpr std::size_t kGroupedChannelFloats = 4096;
constexpr std::size_t kChannelGroup = 16;
// When a first pass reads at least kFetchGroupMinBytes, channels of planes shorter than kShortPlaneFloats (7x7,
// 14x14) are read a group at a time, as many as fit in kFetchGroupBytes of the tensors it reads, up to
// kChannelGroup: the group's first channel fetches the group's whole block of each image (RunWalk::fetch_floats),
// one contiguous block instead of a piece of a few lines per channel, and the others find their data in L2. 2
// threads, median of 9 alternating rounds: 64x2048x7x7 training 0.58x the time, backward 0.59x; 64x1024x14x14
// 0.71x and 0.76x; 32x1024x14x14 0.75x and 0.77x; backward of 32x2048x7x7 (2 x 12.8 MB read) 0.50x. Where what the
// pass reads mostly stays in the caches, the burst of prefetches cost about as much as it saved or more (training of
// 32x2048x7x7, 12.8 MB, 1.05x; backward of 32x256x14x14, 2 x 6.4 MB, 1.12x), so those keep the prefetch of the next
// run's first block.
constexpr std::size_t kShortPlaneFloats = 256;
constexpr std::size_t kFetchGroupBytes = std::size_t{256} << 10;
constexpr std::size_t kFetchGroupMinBytes = std::size_t{16} << 20;
// Inference walks NCHW planes shorter than this in memory order, this many floats (256 KiB) of whole planes per work
// item; longer planes go channel by channel.
constexpr std::size_t kPlaneItemFloats = std::size_t{1} << 16;
// Training and backward take an NCHW channel whose first pass reads up to this many bytes (x, or x and dy) as one
// work item: its second pass follows on the same core while the data is still in that core's L2 (1 MiB here). A
// larger channel would not stay there, so the whole team may share it instead (shares_channels): the channel is cut
// into kChannelParts parts (fixed, whatever the team: the moments merge in part order), each thread takes a
// contiguous block of them, and every core keeps its own share in its L2. (Raw loops, read then read-modify-write of
// each channel, against one streaming pass: 1.5 MiB channels 1.42-1.47x on one core each, 1.16-1.23x shared by two;
// 1 MiB channels 1.12-1.18x on one core each, which sharing did not improve.)
constexpr std::size_t kCoreChannelBytes = std::size_t{1} << 20;
constexpr std::size_t kChannelParts = 16;
// Inference cuts an NCHW channel of more than this many floats (4 MiB) into chunks of this size, so that a few long
// channels still keep every core busy.
constexpr std::size_t kRunChunk = std::size_t{1} << 20;
// NHWC rows are cut into chunks of at least this many bytes, and at most kMaxRowChunks chunks. Small chunks keep
// both cores busy on tensors of a few hundred KiB (64 KiB measured best against 512 KiB and 128 KiB on N = 1 ResNet
// layers); the cap keeps the merge of per-chunk partials (chunks x C) negligible.
constexpr std::size_t kRowChunkBytes = std::size_t{64} << 10;
constexpr std::size_t kMaxRowChunks = 32;
// ... and of at least this many rows: each chunk adds a merge of C partial moments, as costly as a few rows.
constexpr std::size_t kMinChunkRows = 32;
// ... and, from 2 * kMinChunkRows rows, of a multiple of this many rows but for the last: the row kernels take rows
// 8 at a time, and a chunk of 30 or 31 rows costs 5 or 6 such steps of each channel instead of 4 (1x512x28x28
// training, 2 threads, split into 26 chunks of 30-31 rows: 1.06x the time of 25 chunks of 32 rows).
constexpr std::size_t kChunkRowGrain = 8;
// An NHWC tensor of up to this many bytes is one chunk, run on the calling thread, statistics then normalisation
// while it is in cache: a second thread saved less than its cost there (1x512x7x7 training: 3.9 us alone, 4.5 us
// on two).
constexpr std::size_t kOneTileBytes = std::size_t{128} << 10;
// Below this many floats a call runs on the calling thread: waking a team costs more than it saves.
[[maybe_unused]] constexpr std::size_t kParallelMinElements = std::size_t{1} << 13;
// Tensors (the inputs and output of an operation) adding up to at least this many bytes are beyond the last-level
// cache (32 MiB here): what a first pass reads comes back to the second from DRAM, and what is written is evicted
// before anyone reads it.
constexpr std::size_t kBeyondCacheBytes = std::size_t{32} << 20;
constexpr std::size_t kStreamMinSpanBytes = std::size_t{4} << 10;

std::atomic<int> g_num_threads{0};

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

// ---- How far apart the cores are, measured at run time. ----
//
// On this shared machine the round trip of a cache line between the two cores takes 60-70 ns for seconds or minutes,
// then 370-430 ns for a while (as if the hypervisor had put the vCPUs on distant cores; one core alone runs as fast
// either way). NHWC training and backward split by rows pass partial results and coefficients between the cores, and
// wait for each other twice: with the cores far apart, small tensors took longer on two threads than on one. So those
// calls run on the calling thread while the last probe found the cores far apart, for tensors of up to
// kFarTrainingBytes (training) and kFarBackwardBytes (backward). In-process A/B against two threads, cores far
// apart, 11 rounds:
// - training: 1x256x14x14 0.47-0.52x the time in place, 0.54-0.62x out of place; 1x2048x7x7 0.69-0.73x and
//   0.84-0.87x; 1x128x28x28 0.76-0.82x and 0.93-1.04x; at 800 KB two threads were as fast or faster (1x1024x14x14:
//   21.3 us against 20.7 us in place, 23.2 us against 30 us out of place);
// - backward: 1x256x14x14 0.59-0.74x in place, 0.72-0.83x out of place; but 1x128x28x28 1.05-1.20x and
//   1.26-1.46x, 1x2048x7x7 in place 1.0-1.25x (out of place it splits the channels, see splits_channels).
// A probe times kProbeTrips round trips between two threads of a fresh team; it runs at most once every
// kProbePeriodNs (about 1 us of 100 ms), in the call that finds the last one stale. On a quiet machine the A/B read
// 0.97-1.03x. Results do not depend on the team, so this changes only where the work runs.
constexpr std::size_t kFarTrainingBytes = std::size_t{512} << 10;
constexpr std::size_t kFarBackwardBytes = std::size_t{256} << 10;
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
#endif

std::atomic<std::int64_t> g_next_probe_ns{0};
std::atomic<bool> g_cores_far{false};

// Whether the last probe found the cores far apart; probes first if it is older than kProbePeriodNs.
bool cores_far_apart() {
#ifdef SIMDNORM_WITH_OPENMP
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

// The team of an NHWC training or backward call split by rows, whose threads exchange partial results: that of
// team_size, or the calling thread alone for a tensor (x) of up to far_bytes while the cores are far apart.
int exchanging_team_size(std::size_t items, const Geometry& g, std::size_t far_bytes) {
  const int threads = team_size(items, g.elements);
  if (threads < 2 || g.elements * sizeof(float) > far_bytes) return threads;
  return cores_far_apart() ? 1 : threads;
}

// Runs body(i) for i in [0, items). Items are independent; which thread runs which does not affect any result.
template <class Body>
void parallel_for(std::size_t items, std::size_t elements, const Body& body) {
#ifdef SIMDNORM_WITH_OPENMP
  const int threads = team_size(items, elements);
  if (threads > 1) {
    const auto count = static_cast<std::ptrdiff_t>(items);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::ptrdiff_t i = 0; i < count; ++i) body(static_cast<std::size_t>(i));
    return;
  }
#else
  (void)elements;
#endif
  for (std::size_t i = 0; i < items; ++i) body(i);
}

// A thread's share of [0, items): contiguous, nearly equal blocks, one per thread of its team.
struct Block {
  std::size_t begin, end;
};

// The team a run_team body runs in: the thread's index in it and its size.
struct Team {
  std::size_t thread, threads;
};

// Waits for the whole team. Only a team that run_team made itself has a barrier to meet: a body run on the
// calling thread alone must not reach one, which would bind to whatever parallel region the caller is in (an
// application's own OpenMP threads each running simdnorm on a tensor of its own: their barriers then crossed, and
// each call merged only part of its channels).
void sync(const Team& team) {
#ifdef SIMDNORM_WITH_OPENMP
  if (team.threads > 1) {
#pragma omp barrier
  }
#else
  (void)team;
#endif
}

// Runs body(block, team) once on every thread of a team of up to `threads` (team_size), each with its own block of
// [0, items), or body({0, items}, {0, 1}) on the calling thread for a team of one. The body synchronises with
// sync(team) only, never with a bare `omp barrier` (see sync).
template <class Body>
void run_team(int threads, std::size_t items, const Body& body) {
#ifdef SIMDNORM_WITH_OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      // The team may be smaller than asked for (inside an application's parallel region, with nesting off: one).
      const auto t = static_cast<std::size_t>(omp_get_thread_num());
      const auto team = static_cast<std::size_t>(omp_get_num_threads());
      body(Block{items * t / team, items * (t + 1) / team}, Team{t, team});
    }
    return;
  }
#else
  (void)threads;
#endif
  body(Block{0, items}, Team{0, 1});
}

// run_team with the team that pays for `items` items over `elements` floats (team_size).
template <class Body>
void for_each_block(std::size_t items, std::size_t elements, const Body& body) {
  run_team(team_size(items, elements), items, body);
}

// Part `part` of `parts` of the channels [0, c) for per-channel steps split among threads: contiguous, starting on a
// multiple of kMaxLanes (the vectorised per-channel kernels write whole vectors from their first channel up to the
// next multiple), the last one ending at c. Parts may be empty.
Block channel_share(std::size_t c, std::size_t part, std::size_t parts) {
  const std::size_t lanes = (c + kMaxLanes - 1) / kMaxLanes;
  const std::size_t begin = lanes * part / parts * kMaxLanes;
  const std::size_t end = part + 1 == parts ? c : lanes * (part + 1) / parts * kMaxLanes;
  return Block{begin < c ? begin : c, end < c ? end : c};
}

// The two passes over NHWC row chunks (RowTiles), with the per-channel step between them, in one team of at most
// `threads` (team_size; callers size per-thread scratch with the same count). Each thread t first runs prepare(t), then
// first(i, t) for every chunk i of its block; then, for channels [c0, c0 + count), merge_half(block, c0, count) merges
// the partials of the chunks of a half, block = [0, half) or [half, chunks) with half = chunks / 2, in chunk order into
// the half's first chunk, and finish(half, c0, count, t) merges chunk half into chunk 0 and finishes the channels; then
// second(i, t) for every chunk. t lets a thread keep its own copies of what every chunk reads (made in prepare): arrays
// that one thread wrote for all made the others fetch them from its cache on every call. The merge tree is fixed by the
// chunk count, so results do not depend on the team. Needs chunks >= 2 (callers run one chunk on the calling thread). A
// team of two (this machine's) has the halves for blocks: each thread merges its own half, for every channel, from
// partials in its own cache, as soon as its first pass is done; after a barrier each finishes its share of the channels
// (channel_share), which reads one partial of the other core's instead of half of its chunks'. Other teams merge both
// halves of their share of the channels after the barrier. (Until 2026-11 every team merged the chunks in order, each
// thread for its share of the channels, reading the partials of the other core's chunks: when this shared machine was
// busy, that crossing made 1x1024x14x14 NHWC training take 29 us on two threads, 32 us on one and 23.5 us in oneDNN;
// the halves take 0.81-0.85x that time then, and 0.96-1.0x when the machine is quiet.) All wait again, then each thread
// runs its block through second() from its end: the second pass then starts, on each core, with what that core's first
// pass read last, and never with another core's data (reversing the whole sweep instead made each core start on data
// the other core had just read, and made NHWC training twice as slow here).
template <class Prepare, class First, class MergeHalf, class Finish, class Second>
void parallel_row_passes(int threads, std::size_t chunks, std::size_t channels, const Prepare& prepare,
                         const First& first, const MergeHalf& merge_half, const Finish& finish, const Second& second) {
  const std::size_t half = chunks / 2;
  const Block halves[2] = {{0, half}, {half, chunks}};
  run_team(threads, chunks, [&](Block mine, Team team) {
    const std::size_t t = team.thread;
    prepare(t);
    for (std::size_t i = mine.begin; i < mine.end; ++i) first(i, t);
    // run_team's blocks of a team of two are the halves.
    const bool blocks_are_halves = team.threads == 2;
    if (blocks_are_halves) merge_half(mine, 0, channels);
    sync(team);
    const Block share = channel_share(channels, t, team.threads);
    if (share.begin < share.end) {
      if (!blocks_are_halves) {
        for (const Block& h : halves) merge_half(h, share.begin, share.end - share.begin);
      }
      finish(half, share.begin, share.end - share.begin, t);
    }
    sync(team);
    for (std::size_t i = mine.end; i-- > mine.begin;) second(i, t);
  });
}

// Channels [0, channels) shared by the whole team (see kCoreChannelBytes), one at a time: first(c, p, end) for the
// parts p of the calling thread's block [begin, end), then, once every part of channel c has been through first(),
// second(c, block, team). first() of channel c must write only what belongs to its part, and second() may read what
// any part's first() wrote: per-part results live in per-channel slots, so that a thread running ahead into channel
// c + 1 overwrites nothing another thread still reads. One barrier a channel.
template <class First, class Second>
void for_each_shared_channel(std::size_t channels, std::size_t elements, const First& first, const Second& second) {
  for_each_block(kChannelParts, elements, [&](Block mine, Team team) {
    for (std::size_t c = 0; c < channels; ++c) {
      for (std::size_t p = mine.begin; p < mine.end; ++p) first(c, p, mine.end);
      sync(team);
      second(c, mine, team);
    }
  });
}

// Scratch memory: per calling thread, one block per allocation site (`slot`), grown when a call needs more and kept
// for the next call, so that repeated calls on a shape neither allocate nor fault pages in (a fresh multi-megabyte
// block per call cost more than the whole computation on small tensors). Returns nullptr when the memory cannot be
// had; the caller then fails with SIMDNORM_OUT_OF_MEMORY before writing anything.
constexpr int kScratchSlots = 8;

struct ScratchBlocks {
  void* block[kScratchSlots] = {};
  std::size_t bytes[kScratchSlots] = {};
  ~ScratchBlocks() {
    for (void* p : block) std::free(p);
  }
};

thread_local ScratchBlocks g_scratch;

template <class T>
T* scratch(int slot, std::size_t count) {
  static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>,
                "scratch holds plain data only");
  if (count > PTRDIFF_MAX / sizeof(T)) return nullptr;
  const std::size_t bytes = (count == 0 ? 1 : count) * sizeof(T);
  if (g_scratch.bytes[slot] < bytes) {
    void* fresh = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (fresh == nullptr) return nullptr;
    std::free(g_scratch.block[slot]);
    g_scratch.block[slot] = fresh;
    g_scratch.bytes[slot] = bytes;
  }
  return static_cast<T*>(g_scratch.block[slot]);
}

// Clears the padding [c, cp) of `count` per-channel arrays of cp = padded_channels(c) values laid end to end.
template <class T>
void clear_padding(T* arrays, std::size_t count, std::size_t c, std::size_t cp) {
  for (std::size_t i = 0; i < count; ++i) std::fill(arrays + i * cp + c, arrays + (i + 1) * cp, T{0});
}

// Scratch for `count` such arrays, whose [0, c) the call writes (itself or through a kernel) before anything reads
// it: only the padding is cleared (clearing them whole cost a few microseconds a call at C = 2048, a fifth of a
// 1x2048x7x7 training).
template <class T>
T* per_channel_scratch(int slot, std::size_t count, std::size_t c, std::size_t cp) {
  T* const arrays = scratch<T>(slot, count * cp);
  if (arrays != nullptr) clear_padding(arrays, count, c, cp);
  return arrays;
}

// gamma and beta as padded arrays: copies, or ones and zeros for NULL.
void copy_or_fill(float* to, const float* from, std::size_t c, float fill) {
  if (from != nullptr) {
    std::memcpy(to, from, c * sizeof(float));
  } else {
    std::fill(to, to + c, fill);
  }
}

// Whether a[i] and b[i] are finite for every i < n. The check runs over every channel of every call, and the channels
// that fail it are rare, so it is written for GCC to vectorise with any instruction set: on the bits, an exponent of
// all ones (infinity or NaN) carries into the sign bit when its lowest bit is added, and nothing else does. (The
// form with fabs(x) <= DBL_MAX compiled to a scalar loop, 2 us a 1x2048x7x7 training on one thread, 15% of it.)
bool all_finite(const double* a, const double* b, std::size_t n) {
  constexpr std::uint64_t kExponent = 0x7ff0000000000000u;
  constexpr std::uint64_t kExponentLsb = std::uint64_t{1} << 52;
  std::uint64_t carries = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t x, y;
    std::memcpy(&x, a + i, sizeof x);
    std::memcpy(&y, b + i, sizeof y);
    carries |= ((x & kExponent) + kExponentLsb) | ((y & kExponent) + kExponentLsb);
  }
  return carries >> 63 == 0;
}

// ---- How a layout is walked. ----

// A run walk (NCHW, or any tensor with one channel): channel c, run k starts at c*channel_stride + k*run_stride and
// holds len contiguous floats. A row walk (NHWC, or NCHW with spatial 1, which is the same memory): rows of c floats.
struct View {
  bool rows;
  std::size_t channels;
  std::size_t runs, len, run_stride, channel_stride;  // run walk
  std::size_t row_count;                              // row walk
  std::size_t per_channel;
  std::size_t elements;
};

View make_view(const Geometry& g) {
  View v{};
  v.channels = g.c;
  v.per_channel = g.per_channel;
  v.elements = g.elements;
  if (g.c == 1) {
    // Either layout: the whole tensor is one contiguous channel.
    v.rows = false;
    v.runs = 1;
    v.len = g.elements;
    v.run_stride = g.elements;
    v.channel_stride = 0;
  } else if (g.layout == SIMDNORM_NCHW && g.spatial > 1) {
    v.rows = false;
    v.runs = g.n;
    v.len = g.spatial;
    v.run_stride = g.c * g.spatial;
    v.channel_stride = g.spatial;
  } else {
    v.rows = true;
    v.row_count = g.n * g.spatial;
  }
  return v;
}

// Whether `tensors` tensors of the shape take at least kBeyondCacheBytes; callers say which they count. (Counting
// the output of an in-place call too, as streams() and the row prefetch do, is what was measured: in-place NHWC
// training of 8x256x56x56, one 25.7 MB tensor, took 0.8x the time with the row prefetch.)
bool beyond_cache(const Geometry& g, std::size_t tensors) {
  return tensors * g.elements * sizeof(float) >= kBeyondCacheBytes;
}

// Whether an output goes out with non-temporal stores: an output written to a buffer other than its input, by an
// operation whose tensors are beyond the cache (kBeyondCacheBytes, counting the inputs and the output: backward of
// 32x64x56x56 NHWC, 3 x 26 MB, 2.26 -> 1.99 ms). Nobody reads it back before it is evicted, so the
// read-for-ownership that a normal store makes of every line is wasted traffic (a third of an out-of-place pass),
// and the output no longer evicts the inputs that the second pass reads again. Only when the spans the kernels write
// start on cache lines, or are long. A span that starts or ends inside a line writes that line with ordinary stores
// and the rest with streaming ones: NHWC rows of 64 channels off their lines ran 1.3x slower streamed than with
// ordinary stores.
bool streams(const float* in, const float* out, const Geometry& g, std::size_t tensors) {
  if (in == out || !beyond_cache(g, tensors)) return false;
  const View v = make_view(g);
  const std::size_t span = v.rows ? v.channels : v.len;  // floats written contiguously by one kernel step
  const bool aligned = reinterpret_cast<std::uintptr_t>(out) % 64 == 0 && span * sizeof(float) % 64 == 0;
  return aligned || span * sizeof(float) >= kStreamMinSpanBytes;
}

// Whether an NCHW first pass over `inputs` tensors fetches groups of short planes (kShortPlaneFloats).
bool fetches_groups(const View& v, std::size_t inputs) {
  return v.len < kShortPlaneFloats && v.runs > 1 && inputs * v.elements * sizeof(float) >= kFetchGroupMinBytes;
}

// Channels per work item of an NCHW first pass reading `inputs` tensors (kGroupedChannelFloats, kFetchGroupBytes).
std::size_t channel_group(const View& v, std::size_t inputs) {
  if (inputs == 1 && v.per_channel <= kGroupedChannelFloats) return kChannelGroup;
  if (!fetches_groups(v, inputs)) return 1;
  const std::size_t fit = kFetchGroupBytes / (inputs * v.per_channel * sizeof(float));
  return fit < 1 ? 1 : (fit < kChannelGroup ? fit : kChannelGroup);
}

// The first-pass walk of channel c in the group [c0, c0 + count): with fetches_groups, the first channel fetches the
// whole group's block of each run, the others nothing.
RunWalk group_walk(RunWalk walk, const View& v, std::size_t inputs, std::size_t c, std::size_t c0,
                   std::size_t count) {
  if (!fetches_groups(v, inputs)) return walk;
  if (c == c0) {
    walk.fetch_floats = count * v.len;
  } else {
    walk.fetch = false;
  }
  return walk;
}

// Runs body(c0, count) for the groups [c0, c0 + count) of `group` channels (the last one shorter), in parallel.
template <class Body>
void for_each_channel_group(std::size_t channels, std::size_t group, std::size_t elements, const Body& body) {
  parallel_for((channels + group - 1) / group, elements, [&](std::size_t i) {
    const std::size_t c0 = i * group;
    body(c0, channels - c0 < group ? channels - c0 : group);
  });
}

std::size_t run_chunks(const View& v) { return (v.per_channel + kRunChunk - 1) / kRunChunk; }

RunWalk run_walk(const View& v, std::size_t chunk, std::size_t chunks) {
  const std::size_t begin = chunk * kRunChunk;
  const std::size_t end = chunk + 1 == chunks ? v.per_channel : begin + kRunChunk;
  return RunWalk{v.run_stride, v.len, begin, end};
}

// Whether training (inputs = 1: x) or backward (inputs = 2: x and dy) shares each NCHW channel among the team (see
// kCoreChannelBytes): channels that do not fit in a core's L2, in a tensor beyond the last-level cache (in cache, a
// core's second pass hits there anyway, and sharing only added a barrier a channel: 8x16x50000 training, 25 MB,
// 1.1x slower shared) or with fewer channels than a team may have threads (one core each would leave cores idle:
// 1x3x400000, 0.6-0.8x the time shared).
bool shares_channels(const View& v, const Geometry& g, std::size_t inputs) {
  if (inputs * v.per_channel * sizeof(float) <= kCoreChannelBytes) return false;
  return v.channels < kChannelParts || beyond_cache(g, inputs);
}

// Part p of kChannelParts of a channel shared by the team, walked by a thread whose block of parts ends before part
// `last`: its first pass reads ahead into the thread's next part. (Without that, every part began with a stall on
// memory: 32x64x112x112 training took 1.1x as long.)
RunWalk channel_part(const View& v, std::size_t p, std::size_t last) {
  const auto at = [&](std::size_t q) { return v.per_channel * q / kChannelParts; };
  RunWalk walk{v.run_stride, v.len, at(p), at(p + 1)};
  walk.fetch_end = at(last);
  return walk;
}

// The walk of a second pass over data a first pass has just read: its runs last first (RunWalk::last_first). On
// 32x64x112x112 NCHW (1.6 MB channels, 1 MB of L2 a core), training ran 0.83x and backward 0.96x the time of a
// front-first second pass; shapes whose channels fit in L2 did not change.
RunWalk second_pass(RunWalk walk) {
  walk.last_first = true;
  return walk;
}

// NHWC work items: chunks of whole rows, fixed by the shape; per-channel partials merge in two halves of the chunks,
// each in chunk order (parallel_row_passes). Each core works on rows of its own: splitting rows into channel blocks
// instead (one block a core) interleaved the cores' lines finely enough that their prefetchers pulled each other's
// lines, and two threads ran slower than one.
struct RowTiles {
  std::size_t chunks;
  std::size_t rows;
  std::size_t c;
  std::size_t grain;  // rows
  bool fetch;         // RowWalk::fetch of every tile

  struct Tile {
    std::size_t chunk, r0;
    RowWalk walk;
    std::size_t offset;  // of row r0
  };

  std::size_t items() const { return chunks; }
  // Chunk i holds rows [first_row(i), first_row(i + 1)): whole grains of rows (the last chunk may end in part of
  // one), as many to each chunk as can be, give or take one.
  std::size_t first_row(std::size_t chunk) const {
    const std::size_t grains = (rows + grain - 1) / grain;
    const std::size_t r = grains * chunk / chunks * grain;
    return r < rows ? r : rows;
  }
  std::size_t rows_of(std::size_t chunk) const { return first_row(chunk + 1) - first_row(chunk); }
  Tile tile(std::size_t chunk) const {
    const std::size_t r0 = first_row(chunk);
    return Tile{chunk, r0, RowWalk{rows_of(chunk), c, c, fetch}, r0 * c};
  }
};

RowTiles row_tiles(const View& v, bool fetch) {
  const std::size_t row_bytes = v.channels * sizeof(float);
  if (v.row_count * row_bytes <= kOneTileBytes) return RowTiles{1, v.row_count, v.channels, 1, fetch};
  std::size_t per = (kRowChunkBytes + row_bytes - 1) / row_bytes;
  // At least kMinChunkRows rows, but never so many that a tensor past kOneTileBytes is left one chunk (a batch of
  // 16 rows of 64K channels would run on one thread).
  const std::size_t min_rows = kMinChunkRows < (v.row_count + 1) / 2 ? kMinChunkRows : (v.row_count + 1) / 2;
  if (per < min_rows) per = min_rows;
  const std::size_t at_most = (v.row_count + kMaxRowChunks - 1) / kMaxRowChunks;
  if (per < at_most) per = at_most;
  // Chunks of equal size to a grain (49 rows in chunks of 32 would leave one core 17), and an even number of them
  // unless that would leave one empty: the threads take contiguous blocks of equal count, so 7 chunks left one of two
  // cores 4/3.5 of the work (1x1024x14x14, 1x128x28x28). Fewer rows than two chunks of kMinChunkRows make two chunks
  // of any size.
  const std::size_t grain = v.row_count < 2 * kMinChunkRows ? 1 : kChunkRowGrain;
  std::size_t chunks = (v.row_count + per - 1) / per;
  if (chunks % 2 != 0 && chunks < (v.row_count + grain - 1) / grain) ++chunks;  // never an empty chunk
  return RowTiles{chunks, v.row_count, v.channels, grain, fetch};
}

// Whether NHWC backward gives each thread of its team a share of whole channels over all rows, instead of a block of
// rows (parallel_row_passes): each thread then reduces, finishes and writes dx for its own channels, with no barrier
// and no partial sums read from another core. Only where x and dy are never written (out of place, or without dx):
// a core writing its half of every row makes the other core's prefetchers pull lines across the boundary between
// halves (see RowTiles); in cache (the row split prefetches beyond it); and in shares of at least kShareMinChannels,
// so that each row is long runs of one core's lines. Two threads, out of place, against the row split, in-process
// A/B (medians of 21 rounds):
// - 1 and 2 x 2048 x 7x7, 1 x 2048 x 14x14: 0.76-0.83x the time when the cores pass lines quickly, 0.91-1.02x when
//   this shared machine is slow to (a barrier twice as dear); 16 x 2048 x 7x7 0.87-0.91x (1.10x in one round of 6),
//   where the harness reads 0.94-0.98x with the same library on both sides (0.97-1.0x on the smaller shapes);
// - counting only the inputs against the cache, 32 x 2048 x 7x7 (38 MB with dx) took 1.01-1.10x;
// - shares of 512 channels lost: 1 x 1024 x 7x7 1.03-1.05x, 1 x 1024 x 14x14 1.04-1.06x.
// Training keeps the row split: the same split of its passes took 0.97-1.10x the time on 1 x 2048 x 7x7 (1.07-1.14x
// when the machine was slow) and 1.02-1.09x on 2-16 x 2048 x 7x7; its output writes across the same boundaries.
// Each channel's sums are the row split's, bit for bit: the same chunks of rows added in the same order, by kernels
// whose lanes are channels.
constexpr std::size_t kShareMinChannels = 1024;

bool splits_channels(const View& v, const Geometry& g, int threads, bool writes_input, std::size_t tensors) {
  if (threads < 2 || writes_input || beyond_cache(g, tensors)) return false;
  return v.channels >= static_cast<std::size_t>(threads) * kShareMinChannels;
}

// Runs body(c0, count, t) on each thread t of a team of `threads` for its share [c0, c0 + count) of the channels
// (channel_share; a share may be empty, and then is skipped).
template <class Body>
void for_each_channel_share(std::size_t channels, int threads, const Body& body) {
  run_team(threads, channels, [&](Block /*mine*/, Team team) {
    const Block share = channel_share(channels, team.thread, team.threads);
    if (share.begin < share.end) body(share.begin, share.end - share.begin, team.thread);
  });
}

template <class Visit>
void for_each_value(const float* x, const View& v, std::size_t c, const Visit& visit) {
  if (v.rows) {
    for (std::size_t r = 0; r < v.row_count; ++r) visit(x[r * v.channels + c]);
  } else {
    const float* base = x + c * v.channel_stride;
    for (std::size_t k = 0; k < v.runs; ++k) {
      for (std::size_t s = 0; s < v.len; ++s) visit(base[k * v.run_stride + s]);
    }
  }
}

float channel_shift(const float* x, const View& v, std::size_t c) { return v.rows ? x[c] : x[c * v.channel_stride]; }

// ---- Per-channel arithmetic. ----

struct ChannelStats {
  double mean;
  double m2;
  float mean_f;
  float invstd_f;
};

// Mean and M2 from the merged moments. When the float lanes overflowed on finite data (|x - K| near 1e19 and
// beyond: squares past FLT_MAX), the channel is recomputed in double, two passes, so that every variance that double
// can hold comes out right; non-finite data stays non-finite.
ChannelStats finish_stats(const Moments& moments, const float* x, const View& v, std::size_t c, float shift,
                          float eps) {
  const double m = static_cast<double>(v.per_channel);
  // A true division: on exactly representable data sum/m is then the exact offset of the mean from the shift.
  double mean = static_cast<double>(shift) + moments.sum / m;
  double m2 = moments.m2;
  if (!std::isfinite(mean) || !std::isfinite(m2)) {
    double sum = 0.0;
    for_each_value(x, v, c, [&](float value) { sum += value; });
    mean = sum / m;
    m2 = 0.0;
    for_each_value(x, v, c, [&](float value) { m2 += (value - mean) * (value - mean); });
  }
  const double var = m2 / m;  // as finish_rows computes it
  ChannelStats st;
  st.mean = mean;
  st.m2 = m2;
  st.mean_f = static_cast<float>(mean);
  st.invstd_f = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
  return st;
}

struct Coefficients {
  float a, b;
};

// y = a*x + b with a = gamma*invstd and b = beta - mean*a, each rounded once to float, b from the rounded a: then
// a*x + b = a*(x − mean) + beta up to the rounding of b, so the rounding of a costs |a*(x − mean)| ulps rather than
// |a*x|. Training, the ReLU mask of backward (which must reproduce the forward output exactly) and inference
// folding all go through here.
Coefficients fold_coefficients(const float* gamma, const float* beta, std::size_t c, double mean, double invstd) {
  const double g = gamma != nullptr ? gamma[c] : 1.0;
  const double b = beta != nullptr ? beta[c] : 0.0;
  const float a = static_cast<float>(g * invstd);
  return Coefficients{a, static_cast<float>(b - mean * static_cast<double>(a))};
}

}  // namespace

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

// ---------------------------------------------------------------------------------------------------------------

simdnorm_status run_forward_training(const char* fn, const Geometry& g, const TrainingArgs& args) {
  const KernelTable& k = active_kernels();
  const View v = make_view(g);
  const bool relu = (args.flags & SIMDNORM_FUSE_RELU) != 0u;
  const std::size_t C = v.channels;
  const std::size_t cp = padded_channels(C);
  const bool stream = streams(args.x, args.y, g, 2);

  // Per-channel work goes through padded arrays, vectorised over channels: the sums (relative to shift) and M2 of
  // each channel, the mean in double and float, invstd, gamma and beta (ones and zeros for NULL), a and b.
  double* const mean_d = per_channel_scratch<double>(0, 1, C, cp);
  float* const shift = per_channel_scratch<float>(3, 1, C, cp);
  float* const coeffs = per_channel_scratch<float>(4, 2, C, cp);
  float* const affine = per_channel_scratch<float>(5, 2, C, cp);
  float* const rounded = per_channel_scratch<float>(7, 2, C, cp);
  if (!mean_d || !shift || !coeffs || !affine || !rounded) {
    return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
  }
  float* const a = coeffs;
  float* const b = coeffs + cp;
  float* const gamma = affine;
  float* const beta = affine + cp;
  float* const mean_f = rounded;
  float* const invstd_f = rounded + cp;
  if (v.rows) {
    std::memcpy(shift, args.x, C * sizeof(float));  // the first row
  } else {
    for (std::size_t c = 0; c < C; ++c) shift[c] = channel_shift(args.x, v, c);
  }
  const double m = static_cast<double>(v.per_channel);
  double* sums = nullptr;  // per chunk of rows for row walks; chunk 0 ends up holding the merged moments
  double* m2 = nullptr;
  // Whether some channel's statistics are not finite (NaN or Inf in x). Only the scalar path can produce such
  // statistics: finish_channels sends every channel whose sums or M2 are not finite there, and finite sums and M2
  // give a finite mean and invstd.
  std::atomic<bool> non_finite{false};
  // Statistics and coefficients of channel c from sums and m2, in scalar; finish_stats recomputes in double a channel
  // whose float lanes overflowed.
  auto store_channel = [&](std::size_t c, const ChannelStats& st, const Coefficients& co) {
    mean_d[c] = st.mean;
    m2[c] = st.m2;
    mean_f[c] = st.mean_f;
    invstd_f[c] = st.invstd_f;
    a[c] = co.a;
    b[c] = co.b;
    if (!std::isfinite(st.mean) || !std::isfinite(st.m2)) non_finite.store(true, std::memory_order_relaxed);
  };
  // The caller's per-channel outputs for channels [c0, c0 + count), written by the thread that has just finished
  // those channels, from its own cache: written after the team had joined, they made the calling thread read the
  // statistics of the other core's channels (mean_d, m2, mean_f and invstd_f: 24 bytes a channel). One bad batch must
  // not poison the running statistics: channels whose statistics are not finite keep theirs (update_running).
  auto publish = [&](std::size_t c0, std::size_t count) {
    if (args.batch_mean != nullptr) std::memcpy(args.batch_mean + c0, mean_f + c0, count * sizeof(float));
    if (args.batch_invstd != nullptr) std::memcpy(args.batch_invstd + c0, invstd_f + c0, count * sizeof(float));
    if (args.running_mean != nullptr) {
      k.update_running(mean_d + c0, m2 + c0, count, static_cast<double>(v.per_channel), args.momentum,
                       args.running_mean + c0, args.running_var + c0);
    }
  };
  auto finish_channel = [&](std::size_t c) {
    const ChannelStats st = finish_stats(Moments{m, sums[c], m2[c]}, args.x, v, c, shift[c], args.eps);
    store_channel(c, st, fold_coefficients(args.gamma, args.beta, c, st.mean_f, st.invstd_f));
  };
  // The same for channels [c0, c0 + count), vectorised; a channel whose float lanes overflowed (or whose data is not
  // finite) goes again through finish_channel. The vector steps write whole vectors from c0: callers pass c0 a
  // multiple of kMaxLanes and own the channels up to the next multiple (or the padding). gamma and beta are copied
  // here, by the thread that finishes the channels, which alone reads them: copied for all channels by the calling
  // thread, they made the other core fetch its share from that thread's cache on every call.
  auto finish_channels = [&](std::size_t c0, std::size_t count) {
    copy_or_fill(gamma + c0, args.gamma != nullptr ? args.gamma + c0 : nullptr, count, 1.0f);
    copy_or_fill(beta + c0, args.beta != nullptr ? args.beta + c0 : nullptr, count, 0.0f);
    k.finish_rows(sums + c0, m2 + c0, shift + c0, gamma + c0, beta + c0, count, m, args.eps, mean_d + c0,
                  mean_f + c0, invstd_f + c0, a + c0, b + c0);
    if (all_finite(sums + c0, m2 + c0, count)) return;
    for (std::size_t c = c0; c < c0 + count; ++c) {
      if (!std::isfinite(sums[c]) || !std::isfinite(m2[c])) finish_channel(c);
    }
  };

  if (!v.rows) {
    sums = per_channel_scratch<double>(1, 1, C, cp);
    m2 = per_channel_scratch<double>(2, 1, C, cp);
    if (!sums || !m2) return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
    if (!shares_channels(v, g, 1)) {
      // Statistics, then normalisation of the same channels while they are still in the core's L2, a group of
      // channels at a time (channel_group). kChannelGroup short channels have their per-channel arithmetic
      // vectorised; a long channel's, in scalar, costs nothing next to its data.
      const std::size_t group = channel_group(v, 1);
      const RunWalk walk = run_walk(v, 0, 1);
      // update_running reads whole vectors of statistics from c0 (publish): groups that are not a whole number of
      // the widest vectors would read those of channels another thread is finishing, so they publish after the join.
      const bool publish_in_groups = group % kMaxLanes == 0;
      for_each_channel_group(C, group, g.elements, [&](std::size_t c0, std::size_t count) {
        for (std::size_t c = c0; c < c0 + count; ++c) {
          const Moments moments =
              k.moments_run(args.x + c * v.channel_stride, group_walk(walk, v, 1, c, c0, count), shift[c]);
          sums[c] = moments.sum;
          m2[c] = moments.m2;
        }
        if (v.per_channel <= kGroupedChannelFloats) {  // groups of kChannelGroup (channel_group)
          finish_channels(c0, count);
        } else {
          for (std::size_t c = c0; c < c0 + count; ++c) finish_channel(c);
        }
        if (publish_in_groups) publish(c0, count);
        for (std::size_t c = c0; c < c0 + count; ++c) {
          const std::size_t at = c * v.channel_stride;
          k.affine_run(args.x + at, args.y + at, second_pass(walk), a[c], b[c], relu, stream);
        }
      });
      if (!publish_in_groups) publish(0, C);
    } else {
      // Each channel shared by the team: moments of every part, merged in part order by every thread (the same
      // result on each), then each thread normalises its own parts.
      Moments* const partial = scratch<Moments>(6, C * kChannelParts);
      if (!partial) return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
      for_each_shared_channel(
          C, g.elements,
          [&](std::size_t c, std::size_t p, std::size_t last) {
            partial[c * kChannelParts + p] =
                k.moments_run(args.x + c * v.channel_stride, channel_part(v, p, last), shift[c]);
          },
          [&](std::size_t c, Block mine, Team team) {
            Moments total{0.0, 0.0, 0.0};
            for (std::size_t p = 0; p < kChannelParts; ++p) {
              merge_moments<Baseline>(total, partial[c * kChannelParts + p]);
            }
            const ChannelStats st = finish_stats(total, args.x, v, c, shift[c], args.eps);
            if (!std::isfinite(total.sum) || !std::isfinite(total.m2)) {
              // finish_stats has just read the whole channel again: nobody writes it (in place) before all have.
              // Every thread sees the same total, so all of them or none come here.
              sync(team);
            }
            const Coefficients co = fold_coefficients(args.gamma, args.beta, c, st.mean_f, st.invstd_f);
            if (mine.begin == 0) {
              store_channel(c, st, co);
              publish(c, 1);
            }
            const std::size_t at = c * v.channel_stride;
            for (std::size_t p = mine.end; p-- > mine.begin;) {
              k.affine_run(args.x + at, args.y + at, second_pass(channel_part(v, p, p + 1)), co.a, co.b, relu, stream);
            }
          });
    }
  } else {
    const RowTiles rt = row_tiles(v, beyond_cache(g, 2));
    sums = scratch<double>(1, rt.chunks * cp);
    m2 = scratch<double>(2, rt.chunks * cp);
    if (!sums || !m2) return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
    if (rt.chunks == 1) {
      // Few rows: normalised right after the statistics, while they are still in cache (the NHWC counterpart of
      // the NCHW per-channel walk), on the calling thread.
      const RowWalk walk = rt.tile(0).walk;
      k.moments_rows(args.x, walk, shift, sums, m2);
      finish_channels(0, C);
      publish(0, C);
      k.affine_rows(args.x, args.y, walk, a, b, relu, stream);
    } else {
      // Chunk 0 ends up holding the merged moments (parallel_row_passes). The weights of Chan's formula depend
      // only on the row counts.
      parallel_row_passes(
          exchanging_team_size(rt.chunks, g, kFarTrainingBytes), rt.chunks, C, [](std::size_t) {},
          [&](std::size_t i, std::size_t) {
            const RowTiles::Tile t = rt.tile(i);
            const std::size_t at = t.chunk * cp;
            k.moments_rows(args.x + t.offset, t.walk, shift, sums + at, m2 + at);
          },
          [&](Block h, std::size_t c0, std::size_t count) {
            const std::size_t at = h.begin * cp + c0;
            for (std::size_t i = h.begin + 1; i < h.end; ++i) {
              k.merge_rows(sums + at, m2 + at, sums + i * cp + c0, m2 + i * cp + c0, count,
                           static_cast<double>(rt.first_row(i) - rt.first_row(h.begin)),
                           static_cast<double>(rt.rows_of(i)));
            }
          },
          [&](std::size_t half, std::size_t c0, std::size_t count, std::size_t) {
            k.merge_rows(sums + c0, m2 + c0, sums + half * cp + c0, m2 + half * cp + c0, count,
                         static_cast<double>(rt.first_row(half)),
                         static_cast<double>(v.row_count - rt.first_row(half)));
            finish_channels(c0, count);
            publish(c0, count);
          },
          [&](std::size_t i, std::size_t) {
            const RowTiles::Tile t = rt.tile(i);
            k.affine_rows(args.x + t.offset, args.y + t.offset, t.walk, a, b, relu, stream);
          });
    }
  }

  if (!non_finite.load(std::memory_order_relaxed)) return SIMDNORM_SUCCESS;
  for (std::size_t c = 0; c < C; ++c) {
    if (std::isfinite(mean_d[c]) && std::isfinite(m2[c])) continue;
    return fail(SIMDNORM_NON_FINITE,
                "%s: the statistics of channel %zu are not finite (NaN or Inf in x); its running statistics were left "
                "unchanged",
                fn, c);
  }
  return SIMDNORM_SUCCESS;
}

// ---------------------------------------------------------------------------------------------------------------

namespace {

// y = a[c]*x + b[c] over the whole tensor. `coeffs` is per channel, padded for row walks.
simdnorm_status apply_affine(const KernelTable& k, const Geometry& g, const float* x, float* y, const float* a,
                             const float* b, bool relu) {
  const View v = make_view(g);
  const bool stream = streams(x, y, g, 2);
  if (!v.rows && v.len < kPlaneItemFloats) {
    // Short planes in memory order, a run of whole planes per work item: one stream through memory instead of N
    // strided runs per channel.
    const std::size_t planes = v.runs * v.channels;
    const std::size_t per = kPlaneItemFloats / v.len;
    parallel_for((planes + per - 1) / per, g.elements, [&](std::size_t i) {
      const std::size_t p0 = i * per;
      const std::size_t count = planes - p0 < per ? planes - p0 : per;
      k.affine_planes(x + p0 * v.len, y + p0 * v.len, v.len, count, p0 % v.channels, v.channels, a, b, relu, stream);
    });
  } else if (!v.rows) {
    const std::size_t chunks = run_chunks(v);
    parallel_for(v.channels * chunks, g.elements, [&](std::size_t i) {
      const std::size_t c = i / chunks;
      const float* xc = x + c * v.channel_stride;
      float* yc = y + c * v.channel_stride;
      k.affine_run(xc, yc, run_walk(v, i % chunks, chunks), a[c], b[c], relu, stream);
    });
  } else {
    const RowTiles rt = row_tiles(v, false);  // affine_rows prefetches nothing
    parallel_for(rt.items(), g.elements, [&](std::size_t i) {
      const RowTiles::Tile t = rt.tile(i);
      k.affine_rows(x + t.offset, y + t.offset, t.walk, a, b, relu, stream);
    });
  }
  return SIMDNORM_SUCCESS;
}

}  // namespace

namespace {

// scale and shift of every channel (fold_rows, vectorised) into the padded arrays a and b, from padded copies of
// the per-channel inputs (NULL gamma and beta: ones and zeros).
simdnorm_status fold_all(const char* fn, std::size_t c, const float* gamma, const float* beta, const float* mean,
                         const float* var, float eps, float** a, float** b) {
  const std::size_t cp = padded_channels(c);
  float* const in = per_channel_scratch<float>(1, 4, c, cp);
  float* const out = per_channel_scratch<float>(2, 2, c, cp);
  if (!in || !out) return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
  float* const pg = in;
  float* const pb = in + cp;
  float* const pm = in + 2 * cp;
  float* const pv = in + 3 * cp;
  copy_or_fill(pg, gamma, c, 1.0f);
  copy_or_fill(pb, beta, c, 0.0f);
  std::memcpy(pm, mean, c * sizeof(float));
  std::memcpy(pv, var, c * sizeof(float));
  *a = out;
  *b = out + cp;
  active_kernels().fold_rows(pm, pv, pg, pb, c, static_cast<double>(eps), *a, *b);
  return SIMDNORM_SUCCESS;
}

}  // namespace

simdnorm_status run_forward_inference(const char* fn, const Geometry& g, const InferenceArgs& args) {
  float *a = nullptr, *b = nullptr;
  const simdnorm_status status = fold_all(fn, g.c, args.gamma, args.beta, args.mean, args.var, args.eps, &a, &b);
  if (status != SIMDNORM_SUCCESS) return status;
  return apply_affine(active_kernels(), g, args.x, args.y, a, b, (args.flags & SIMDNORM_FUSE_RELU) != 0u);
}

simdnorm_status run_fold(const FoldArgs& args) {
  float *a = nullptr, *b = nullptr;
  const simdnorm_status status =
      fold_all("simdnorm_fold", args.c, args.gamma, args.beta, args.mean, args.var, args.eps, &a, &b);
  if (status != SIMDNORM_SUCCESS) return status;
  std::memcpy(args.scale, a, args.c * sizeof(float));
  std::memcpy(args.shift, b, args.c * sizeof(float));
  return SIMDNORM_SUCCESS;
}

simdnorm_status run_affine(const char* fn, const Geometry& g, const AffineArgs& args) {
  const bool relu = (args.flags & SIMDNORM_FUSE_RELU) != 0u;
  if (!make_view(g).rows) return apply_affine(active_kernels(), g, args.x, args.y, args.scale, args.shift, relu);
  // Row kernels read per-channel arrays in whole vectors: give them padded copies.
  const std::size_t cp = padded_channels(g.c);
  float* const a = per_channel_scratch<float>(1, 1, g.c, cp);
  float* const b = per_channel_scratch<float>(2, 1, g.c, cp);
  if (!a || !b) return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
  std::memcpy(a, args.scale, g.c * sizeof(float));
  std::memcpy(b, args.shift, g.c * sizeof(float));
  return apply_affine(active_kernels(), g, args.x, args.y, a, b, relu);
}

// ---------------------------------------------------------------------------------------------------------------

namespace {

struct GradSums {
  double dy;
  double dy_xc;
};

// dbeta = Σdy', dgamma = invstd * Σdy'(x − mean), and the coefficients of dx (see GradCoefficients).
GradCoefficients grad_coefficients(const BackwardArgs& args, std::size_t c, const GradSums& s, double m) {
  const double gamma = args.gamma != nullptr ? args.gamma[c] : 1.0;
  const double invstd = args.batch_invstd[c];
  const Coefficients fwd = fold_coefficients(args.gamma, args.beta, c, args.batch_mean[c], invstd);
  GradCoefficients k;
  k.mean = args.batch_mean[c];
  k.invstd = args.batch_invstd[c];
  k.a = fwd.a;
  k.b = fwd.b;
  k.k_dy = static_cast<float>(gamma * invstd);
  const double inv_m = 1.0 / m;
  k.mean_dy = static_cast<float>(s.dy * inv_m);
  k.mean_dy_xhat = static_cast<float>(s.dy_xc * invstd * inv_m);
  return k;
}

void write_param_grads(const BackwardArgs& args, std::size_t c, const GradSums& s) {
  if (args.dbeta != nullptr) args.dbeta[c] = static_cast<float>(s.dy);
  if (args.dgamma != nullptr) args.dgamma[c] = static_cast<float>(s.dy_xc * static_cast<double>(args.batch_invstd[c]));
}

}  // namespace

simdnorm_status run_backward(const char* fn, const Geometry& g, const BackwardArgs& args) {
  const KernelTable& k = active_kernels();
  const View v = make_view(g);
  const bool relu = (args.flags & SIMDNORM_FUSE_RELU) != 0u;
  const std::size_t C = v.channels;
  const double m = static_cast<double>(v.per_channel);
  const bool stream = args.dx != nullptr && streams(args.dy, args.dx, g, 3);

  if (!v.rows) {
    if (!shares_channels(v, g, 2)) {
      // Both reductions, then dx from the same channel while x and dy are still in the core's L2, a group of
      // channels at a time (channel_group).
      const std::size_t group = channel_group(v, 2);
      const RunWalk walk = run_walk(v, 0, 1);
      for_each_channel_group(C, group, g.elements, [&](std::size_t c0, std::size_t count) {
        for (std::size_t c = c0; c < c0 + count; ++c) {
          const std::size_t base = c * v.channel_stride;
          const GradCoefficients probe = grad_coefficients(args, c, GradSums{0.0, 0.0}, m);
          GradSums s{0.0, 0.0};
          k.grad_sums_run(args.x + base, args.dy + base, group_walk(walk, v, 2, c, c0, count), probe, relu, &s.dy,
                          &s.dy_xc);
          write_param_grads(args, c, s);
          if (args.dx == nullptr) continue;
          const GradCoefficients co = grad_coefficients(args, c, s, m);
          k.grad_input_run(args.x + base, args.dy + base, args.dx + base, second_pass(walk), co, relu, stream);
        }
      });
    } else {
      // Each channel shared by the team (see run_forward_training).
      GradSums* const partial = scratch<GradSums>(1, C * kChannelParts);
      if (!partial) return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
      for_each_shared_channel(
          C, g.elements,
          [&](std::size_t c, std::size_t p, std::size_t last) {
            const std::size_t base = c * v.channel_stride;
            const GradCoefficients probe = grad_coefficients(args, c, GradSums{0.0, 0.0}, m);
            GradSums& s = partial[c * kChannelParts + p];
            k.grad_sums_run(args.x + base, args.dy + base, channel_part(v, p, last), probe, relu, &s.dy, &s.dy_xc);
          },
          [&](std::size_t c, Block mine, Team /*team*/) {
            GradSums s{0.0, 0.0};
            for (std::size_t p = 0; p < kChannelParts; ++p) {
              s.dy += partial[c * kChannelParts + p].dy;
              s.dy_xc += partial[c * kChannelParts + p].dy_xc;
            }
            if (mine.begin == 0) write_param_grads(args, c, s);
            if (args.dx == nullptr) return;
            const GradCoefficients co = grad_coefficients(args, c, s, m);
            const std::size_t base = c * v.channel_stride;
            for (std::size_t p = mine.end; p-- > mine.begin;) {
              const RunWalk walk = second_pass(channel_part(v, p, p + 1));
              k.grad_input_run(args.x + base, args.dy + base, args.dx + base, walk, co, relu, stream);
            }
          });
    }
    return SIMDNORM_SUCCESS;
  }

  const RowTiles rt = row_tiles(v, beyond_cache(g, args.dx != nullptr ? 3 : 2));
  const std::size_t cp = padded_channels(C);
  // Per chunk; each chunk's thread clears its own before adding to it.
  double* const sum_dy = scratch<double>(1, rt.chunks * cp);
  double* const sum_dy_xc = scratch<double>(2, rt.chunks * cp);
  // Per-channel arrays, end to end: first what the finish writes for the second pass (k_dy, mean_dy, mean_dy_xhat,
  // dbeta, dgamma); then one copy a thread, made by that thread (parallel_row_passes), of the saved statistics and
  // the parameters: mean, invstd, gamma, beta (ones and zeros for NULL) and the forward's a and b folded from them,
  // which the passes and the finish read (the first pass reads mean, and a and b for the ReLU mask; the second
  // invstd too; the finish invstd and gamma). Copies that the calling thread made for all made the other core fetch
  // six arrays from its cache on every call (and the calling thread cleared every chunk's sums before the team
  // started): own copies and sums take 0.92-0.95x the time of 1x2048x7x7 backward, 0.94-0.98x of 1x1024x14x14 and
  // 1x512x28x28, 1.0x of 1x256x14x14 (2 threads, in and out of place).
  constexpr std::size_t kFinished = 5, kSaved = 6;
  const int threads = rt.chunks == 1 ? 1 : team_size(rt.chunks, g.elements);
  // Each thread's copies start a whole number of pages after thread 0's, at the same offsets within a page and so
  // in the same L1 sets relative to the data: at a stride of 6*cp floats, 16x2048x7x7 backward in place took
  // 1.04-1.05x the time of one shared copy; at whole pages, 0.97-0.99x.
  constexpr std::size_t kPageFloats = 4096 / sizeof(float);
  const std::size_t block = (kSaved * cp + kPageFloats - 1) / kPageFloats * kPageFloats;
  float* const finished = scratch<float>(3, kFinished * cp + static_cast<std::size_t>(threads) * block);
  if (!sum_dy || !sum_dy_xc || !finished) return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
  clear_padding(finished, kFinished, C, cp);
  float* const saved = finished + kFinished * cp;
  float* const k_dy = finished;
  float* const mean_dy = k_dy + cp;
  float* const mean_dy_xhat = mean_dy + cp;
  float* const dbeta = mean_dy_xhat + cp;
  float* const dgamma = dbeta + cp;
  struct Saved {
    float *mean, *invstd, *gamma, *beta, *a, *b;
  };
  auto saved_of = [&](std::size_t t) {
    float* const at = saved + t * block;
    return Saved{at, at + cp, at + 2 * cp, at + 3 * cp, at + 4 * cp, at + 5 * cp};
  };
  // Thread t's coefficient arrays, from channel c0 on.
  auto coefficients_of = [&](std::size_t t, std::size_t c0) {
    const Saved s = saved_of(t);
    return GradCoefficientArrays{s.mean + c0, s.invstd + c0, s.a + c0, s.b + c0, k_dy + c0, mean_dy + c0,
                                 mean_dy_xhat + c0};
  };
  // Thread t's copies of channels [c0, c0 + count) (all, or a share: see channel_share).
  auto prepare_share = [&](std::size_t t, std::size_t c0, std::size_t count) {
    const Saved s = saved_of(t);
    clear_padding(s.mean, kSaved, C, cp);  // the six arrays, end to end from mean
    std::memcpy(s.mean + c0, args.batch_mean + c0, count * sizeof(float));
    std::memcpy(s.invstd + c0, args.batch_invstd + c0, count * sizeof(float));
    copy_or_fill(s.gamma + c0, args.gamma != nullptr ? args.gamma + c0 : nullptr, count, 1.0f);
    copy_or_fill(s.beta + c0, args.beta != nullptr ? args.beta + c0 : nullptr, count, 0.0f);
    k.fold_saved_rows(s.mean + c0, s.invstd + c0, s.gamma + c0, s.beta + c0, count, s.a + c0, s.b + c0);
  };
  auto prepare = [&](std::size_t t) { prepare_share(t, 0, C); };
  // Channels [c0, c0 + count), c0 a multiple of kMaxLanes (see channel_share), from thread t's copies.
  auto finish_channels = [&](std::size_t c0, std::size_t count, std::size_t t) {
    const Saved s = saved_of(t);
    k.grad_finish_rows(sum_dy + c0, sum_dy_xc + c0, s.invstd + c0, s.gamma + c0, count, m, dbeta + c0, dgamma + c0,
                       k_dy + c0, mean_dy + c0, mean_dy_xhat + c0);
    if (args.dbeta != nullptr) std::memcpy(args.dbeta + c0, dbeta + c0, count * sizeof(float));
    if (args.dgamma != nullptr) std::memcpy(args.dgamma + c0, dgamma + c0, count * sizeof(float));
  };
  // Chunk i's sums of channels [c0, c0 + count) (all, or a share), from thread t's copies, cleared first; the share
  // that ends at C owns the padding past it.
  auto share_sums_of = [&](std::size_t i, std::size_t t, std::size_t c0, std::size_t count) {
    const RowTiles::Tile tile = rt.tile(i);
    const std::size_t at = tile.chunk * cp + c0;
    const std::size_t cleared = c0 + count == C ? cp - c0 : count;
    std::fill(sum_dy + at, sum_dy + at + cleared, 0.0);
    std::fill(sum_dy_xc + at, sum_dy_xc + at + cleared, 0.0);
    k.grad_sums_rows(args.x + tile.offset + c0, args.dy + tile.offset + c0,
                     RowWalk{tile.walk.rows, C, count, tile.walk.fetch}, coefficients_of(t, c0), relu, sum_dy + at,
                     sum_dy_xc + at);
  };
  auto sums_of = [&](std::size_t i, std::size_t t) { share_sums_of(i, t, 0, C); };
  if (rt.chunks == 1) {
    // Few rows: both reductions, then dx while the rows are still in cache, on the calling thread.
    prepare(0);
    sums_of(0, 0);
    finish_channels(0, C, 0);
    if (args.dx != nullptr) {
      k.grad_input_rows(args.x, args.dy, args.dx, rt.tile(0).walk, coefficients_of(0, 0), relu, stream);
    }
    return SIMDNORM_SUCCESS;
  }
  // Chunk 0 ends up holding the merged sums.
  auto merge_half = [&](Block h, std::size_t c0, std::size_t count) {
    k.add_rows(sum_dy + h.begin * cp + c0, sum_dy_xc + h.begin * cp + c0, h.end - h.begin, cp, count);
  };
  auto finish = [&](std::size_t half, std::size_t c0, std::size_t count, std::size_t t) {
    k.add_rows(sum_dy + c0, sum_dy_xc + c0, 2, half * cp, count);
    finish_channels(c0, count, t);
  };
  if (splits_channels(v, g, threads, args.dx == args.dy, args.dx != nullptr ? 3 : 2)) {
    const std::size_t half = rt.chunks / 2;
    for_each_channel_share(C, threads, [&](std::size_t c0, std::size_t count, std::size_t t) {
      prepare_share(t, c0, count);
      for (std::size_t i = 0; i < rt.chunks; ++i) share_sums_of(i, t, c0, count);
      merge_half(Block{0, half}, c0, count);
      merge_half(Block{half, rt.chunks}, c0, count);
      finish(half, c0, count, t);
      if (args.dx == nullptr) return;
      k.grad_input_rows(args.x + c0, args.dy + c0, args.dx + c0, RowWalk{v.row_count, C, count},
                        coefficients_of(t, c0), relu, stream);
    });
    return SIMDNORM_SUCCESS;
  }
  const int team = exchanging_team_size(rt.chunks, g, kFarBackwardBytes);
  parallel_row_passes(team, rt.chunks, C, prepare, sums_of, merge_half, finish, [&](std::size_t i, std::size_t t) {
    if (args.dx == nullptr) return;
    const RowTiles::Tile tile = rt.tile(i);
    k.grad_input_rows(args.x + tile.offset, args.dy + tile.offset, args.dx + tile.offset, tile.walk,
                      coefficients_of(t, 0), relu, stream);
  });
  return SIMDNORM_SUCCESS;
}

}  // namespace simdnorm
