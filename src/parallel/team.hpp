// The thread team: how a call runs its pieces on OpenMP threads. Which thread runs which piece never changes a
// result: pieces are fixed by the shape (src/parallel/partition.hpp), and every merge runs in a fixed order.
#ifndef SIMDNORM_SRC_PARALLEL_TEAM_HPP_
#define SIMDNORM_SRC_PARALLEL_TEAM_HPP_

#include <cstddef>

#ifdef SIMDNORM_WITH_OPENMP
#include <omp.h>
#endif

namespace simdnorm {

// Process-wide thread count of the kernels (simdnorm_set_num_threads); 0 is OpenMP's default.
void set_num_threads(int n);

// The team worth waking for `items` independent pieces over `elements` floats: 1 below a size where waking a team
// costs more than it saves, else the thread count, at most one thread a piece.
int team_size(std::size_t items, std::size_t elements);

// Whether the two cores of a team were last found far apart (a cache line's round trip of 200 ns or more). Only
// with SIMDNORM_PROBE_CORES=1 in the environment: it then times a few round trips between two threads at most once
// every 100 ms, inside a compute call; otherwise it is always false (see docs/design.md).
bool cores_far_apart();

// A thread's share of [0, items): contiguous, nearly equal blocks, one per thread of its team.
struct Block {
  std::size_t begin, end;
};

// The team a run_team body runs in: the thread's index in it and its size.
struct Team {
  std::size_t thread, threads;
};

// Waits for the whole team. Only a team that run_team made itself has a barrier to meet: a body run on the calling
// thread alone must not reach one, which would bind to whatever parallel region the caller is in (an application's
// own OpenMP threads each running simdnorm on a tensor of its own: their barriers then crossed).
inline void sync(const Team& team) {
#ifdef SIMDNORM_WITH_OPENMP
  if (team.threads > 1) {
#pragma omp barrier
  }
#else
  (void)team;
#endif
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

// Runs body(block, team) once on every thread of a team of up to `threads`, each with its own block of [0, items),
// or body({0, items}, {0, 1}) on the calling thread for a team of one. The body synchronises with sync(team) only,
// never with a bare `omp barrier` (see sync).
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
Block channel_share(std::size_t c, std::size_t part, std::size_t parts);

// Runs body(c0, count, t) on each thread t of a team of `threads` for its share [c0, c0 + count) of the channels
// (channel_share; an empty share is skipped).
template <class Body>
void for_each_channel_share(std::size_t channels, int threads, const Body& body) {
  run_team(threads, channels, [&](Block /*mine*/, Team team) {
    const Block share = channel_share(channels, team.thread, team.threads);
    if (share.begin < share.end) body(share.begin, share.end - share.begin, team.thread);
  });
}

// Runs body(c0, count) for the groups [c0, c0 + count) of `group` channels (the last one shorter), in parallel.
template <class Body>
void for_each_channel_group(std::size_t channels, std::size_t group, std::size_t elements, const Body& body) {
  parallel_for((channels + group - 1) / group, elements, [&](std::size_t i) {
    const std::size_t c0 = i * group;
    body(c0, channels - c0 < group ? channels - c0 : group);
  });
}

// The two passes over NHWC row chunks, with the per-channel step between them, in one team of at most `threads`
// (callers size per-thread scratch with the same count). Each thread t runs prepare(t), then first(i, t) for every
// chunk i of its block; then merge_half(block, c0, count) merges the partials of a half of the chunks, [0, half) or
// [half, chunks) with half = chunks / 2, in chunk order into the half's first chunk, and finish(half, c0, count, t)
// merges chunk half into chunk 0 and finishes channels [c0, c0 + count); then second(i, t) for every chunk of its
// block, from its end. The merge tree is fixed by the chunk count, so results do not depend on the team. Needs
// chunks >= 2. A team of two has the halves for blocks, so each thread merges its own half from partials in its own
// cache before the barrier; other teams merge both halves of their share of the channels after it. The second pass
// starts, on each core, with what that core's first pass read last. (docs/design.md: the halves merge.)
template <class Prepare, class First, class MergeHalf, class Finish, class Second>
void parallel_row_passes(int threads, std::size_t chunks, std::size_t channels, const Prepare& prepare,
                         const First& first, const MergeHalf& merge_half, const Finish& finish, const Second& second) {
  const std::size_t half = chunks / 2;
  const Block halves[2] = {{0, half}, {half, chunks}};
  run_team(threads, chunks, [&](Block mine, Team team) {
    const std::size_t t = team.thread;
    prepare(t);
    for (std::size_t i = mine.begin; i < mine.end; ++i) first(i, t);
    const bool blocks_are_halves = team.threads == 2;  // run_team's blocks of a team of two are the halves
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

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_PARALLEL_TEAM_HPP_
