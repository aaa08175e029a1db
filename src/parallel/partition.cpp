#include "parallel/partition.hpp"

#include <cstdint>

#include "platform/cache.hpp"

namespace simdnorm {
namespace {

// The thresholds of this file, from the cache sizes of the machine. The fractions give the values that were measured
// best on the development VM (L2 1 MiB, last level 32 MiB); docs/design.md, "Partitioning", has the figures.
struct Limits {
  // NCHW channels of up to this many floats are grouped kChannelGroup at a time (a group a quarter of L2, normalised
  // while it is still there).
  std::size_t grouped_channel_floats;
  // A first pass reading at least fetch_group_min_bytes fetches groups of short planes (7x7, 14x14), a group being
  // as many channels as fit in fetch_group_bytes of the tensors it reads.
  std::size_t fetch_group_bytes, fetch_group_min_bytes;
  std::size_t plane_item_floats;  // inference work items of short NCHW planes
  std::size_t core_channel_bytes; // an NCHW channel that one core's L2 holds for its second pass
  std::size_t row_chunk_bytes;    // NHWC chunks of rows: at least this many bytes
  std::size_t one_tile_bytes;     // an NHWC tensor of up to this many bytes is one chunk, on the calling thread
  std::size_t beyond_cache_bytes; // tensors of an operation adding up to this are beyond the last-level cache
  // NHWC training and row-split backward of tensors up to these sizes run on the calling thread while the cores are
  // far apart (only with SIMDNORM_PROBE_CORES=1).
  std::size_t far_training_bytes, far_backward_bytes;
  std::size_t next_run_floats;  // RunWalk::next_run_floats: runs that prefetch the next run while they are read
};

const Limits& limits() {
  static const Limits l = [] {
    const CacheSizes& cache = cache_sizes();
    Limits r;
    r.grouped_channel_floats = cache.l2 / 4 / kChannelGroup / sizeof(float);
    r.fetch_group_bytes = cache.l2 / 4;
    r.fetch_group_min_bytes = cache.last_level / 2;
    r.plane_item_floats = cache.l2 / 4 / sizeof(float);
    r.core_channel_bytes = cache.l2;
    r.row_chunk_bytes = cache.l2 / 16;
    r.one_tile_bytes = cache.l2 / 8;
    r.beyond_cache_bytes = cache.last_level;
    r.far_training_bytes = cache.l2 / 2;
    r.far_backward_bytes = cache.l2 / 4;
    r.next_run_floats = cache.l2 / 4 / sizeof(float);
    return r;
  }();
  return l;
}

// Planes shorter than this many floats (7x7, 14x14) are pieces of a few cache lines that no prefetcher follows.
constexpr std::size_t kShortPlaneFloats = 256;
// Inference cuts an NCHW channel of more than this many floats into chunks of this size, so that a few long channels
// still keep every core busy.
constexpr std::size_t kRunChunk = std::size_t{1} << 20;
// NHWC chunks: at most kMaxRowChunks of them (the merge of per-chunk partials, chunks x C, stays negligible), at
// least kMinChunkRows rows each (each chunk adds a merge of C partial moments), and from 2 * kMinChunkRows rows a
// multiple of kChunkRowGrain rows but for the last (the row kernels take rows 8 at a time).
constexpr std::size_t kMaxRowChunks = 32;
constexpr std::size_t kMinChunkRows = 32;
constexpr std::size_t kChunkRowGrain = 8;
// Streaming stores need spans that start on a cache line, or spans of at least this many bytes.
constexpr std::size_t kStreamMinSpanBytes = std::size_t{4} << 10;
// NHWC backward splits channels among threads only in shares of at least this many channels, so that each row is
// long runs of one core's lines.
constexpr std::size_t kShareMinChannels = 1024;

// A walk of runs [begin, end) of the view, with the prefetch limits of this machine.
RunWalk make_walk(const View& v, std::size_t begin, std::size_t end) {
  RunWalk walk{v.run_stride, v.len, begin, end};
  walk.next_run_floats = limits().next_run_floats;
  return walk;
}

bool fetches_groups(const View& v, std::size_t inputs) {
  return v.len < kShortPlaneFloats && v.runs > 1 && inputs * v.elements * sizeof(float) >= limits().fetch_group_min_bytes;
}

}  // namespace

View make_view(const Geometry& g) {
  View v{};
  v.channels = g.c;
  v.per_channel = g.per_channel;
  v.elements = g.elements;
  if (g.c == 1) {  // either layout: the whole tensor is one contiguous channel
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

bool beyond_cache(const Geometry& g, std::size_t tensors) {
  return tensors * g.elements * sizeof(float) >= limits().beyond_cache_bytes;
}

bool streams(const float* in, const float* out, const Geometry& g, std::size_t tensors) {
  if (in == out || !beyond_cache(g, tensors)) return false;
  const View v = make_view(g);
  const std::size_t span = v.rows ? v.channels : v.len;  // floats written contiguously by one kernel step
  const bool aligned = reinterpret_cast<std::uintptr_t>(out) % 64 == 0 && span * sizeof(float) % 64 == 0;
  return aligned || span * sizeof(float) >= kStreamMinSpanBytes;
}

bool groups_are_short(const View& v) { return v.per_channel <= limits().grouped_channel_floats; }

std::size_t channel_group(const View& v, std::size_t inputs) {
  if (inputs == 1 && groups_are_short(v)) return kChannelGroup;
  if (!fetches_groups(v, inputs)) return 1;
  const std::size_t fit = limits().fetch_group_bytes / (inputs * v.per_channel * sizeof(float));
  return fit < 1 ? 1 : (fit < kChannelGroup ? fit : kChannelGroup);
}

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

bool shares_channels(const View& v, const Geometry& g, std::size_t inputs) {
  if (inputs * v.per_channel * sizeof(float) <= limits().core_channel_bytes) return false;
  return v.channels < kChannelParts || beyond_cache(g, inputs);
}

RunWalk channel_part(const View& v, std::size_t p, std::size_t last) {
  const auto at = [&](std::size_t q) { return v.per_channel * q / kChannelParts; };
  RunWalk walk = make_walk(v, at(p), at(p + 1));
  walk.fetch_end = at(last);
  return walk;
}

RunWalk whole_channel(const View& v) { return make_walk(v, 0, v.per_channel); }

std::size_t run_chunks(const View& v) { return (v.per_channel + kRunChunk - 1) / kRunChunk; }

RunWalk run_chunk(const View& v, std::size_t chunk, std::size_t chunks) {
  const std::size_t begin = chunk * kRunChunk;
  const std::size_t end = chunk + 1 == chunks ? v.per_channel : begin + kRunChunk;
  return make_walk(v, begin, end);
}

std::size_t plane_item_floats() { return limits().plane_item_floats; }

RunWalk second_pass(RunWalk walk) {
  walk.last_first = true;
  return walk;
}

RowTiles row_tiles(const View& v, bool fetch) {
  const std::size_t row_bytes = v.channels * sizeof(float);
  if (v.row_count * row_bytes <= limits().one_tile_bytes) return RowTiles{1, v.row_count, v.channels, 1, fetch};
  std::size_t per = (limits().row_chunk_bytes + row_bytes - 1) / row_bytes;
  // At least kMinChunkRows rows, but never so many that a tensor past one_tile_bytes is left one chunk.
  const std::size_t min_rows = kMinChunkRows < (v.row_count + 1) / 2 ? kMinChunkRows : (v.row_count + 1) / 2;
  if (per < min_rows) per = min_rows;
  const std::size_t at_most = (v.row_count + kMaxRowChunks - 1) / kMaxRowChunks;
  if (per < at_most) per = at_most;
  // Chunks of equal size to a grain, and an even number of them unless that would leave one empty: the threads take
  // contiguous blocks of equal count. Fewer rows than two chunks of kMinChunkRows make two chunks of any size.
  const std::size_t grain = v.row_count < 2 * kMinChunkRows ? 1 : kChunkRowGrain;
  std::size_t chunks = (v.row_count + per - 1) / per;
  if (chunks % 2 != 0 && chunks < (v.row_count + grain - 1) / grain) ++chunks;  // never an empty chunk
  return RowTiles{chunks, v.row_count, v.channels, grain, fetch};
}

bool splits_channels(const View& v, const Geometry& g, int threads, bool writes_input, std::size_t tensors) {
  if (threads < 2 || writes_input || beyond_cache(g, tensors)) return false;
  return v.channels >= static_cast<std::size_t>(threads) * kShareMinChannels;
}

int exchanging_team_size(std::size_t items, const Geometry& g, bool training) {
  const int threads = team_size(items, g.elements);
  const std::size_t far_bytes = training ? limits().far_training_bytes : limits().far_backward_bytes;
  if (threads < 2 || g.elements * sizeof(float) > far_bytes) return threads;
  return cores_far_apart() ? 1 : threads;
}

}  // namespace simdnorm

namespace simdnorm {

// A quarter of L2: a chunk of x and of dy (backward) and the column sums they update stay in the core's cache
// between the passes over it. 64K floats on a 1 MiB L2, so rows of 100k floats and more use two cores.
std::size_t row_chunk_floats() {
  const std::size_t floats = cache_sizes().l2 / 4 / sizeof(float) / kMaxLanes * kMaxLanes;
  return floats < 4096 ? 4096 : floats;
}

std::size_t row_parts(std::size_t rows, std::size_t cols) {
  constexpr std::size_t kMaxRowParts = 32;
  // A part's column sums cost about as much as 8 of its rows (set, gathered, added): parts of 16 rows at least.
  constexpr std::size_t kMinPartRows = 16;
  const std::size_t per_part = 3 * padded_channels(cols) * sizeof(double);  // two double arrays, two float
  const std::size_t fit = cache_sizes().last_level / 4 / per_part;
  std::size_t parts = rows / kMinPartRows < kMaxRowParts ? rows / kMinPartRows : kMaxRowParts;
  if (fit < parts) parts = fit;
  return parts < 1 ? 1 : parts;
}

std::size_t row_tile_rows(std::size_t cols) {
  const std::size_t fit = cache_sizes().l2 / 4 / (cols * sizeof(float));
  return fit < 1 ? 1 : (fit < kMaxRowTile ? fit : kMaxRowTile);
}

std::size_t row_few_chunk_floats(std::size_t rows, std::size_t cols) {
  // 8 chunks of 512 floats at least; below 64K floats in all, one thread does it faster than a team with a barrier
  // a row.
  constexpr std::size_t kMinChunk = 512, kChunks = 8, kMinShared = std::size_t{1} << 16;
  const std::size_t whole = row_chunk_floats();
  if (rows * cols < kMinShared || cols < 2 * kMinChunk) return whole;
  std::size_t chunk = (cols + kChunks - 1) / kChunks;
  chunk = (chunk + kMaxLanes - 1) / kMaxLanes * kMaxLanes;
  chunk = chunk < kMinChunk ? kMinChunk : chunk;
  return chunk < whole ? chunk : whole;
}

std::size_t row_column_block() {
  const std::size_t floats = cache_sizes().l2 / 16 / (2 * sizeof(float)) / kMaxLanes * kMaxLanes;
  return floats < 256 ? 256 : floats;
}

// ---- GroupNorm ----

GroupView make_group_view(const Geometry& g, std::size_t groups) {
  GroupView v{};
  v.rows = g.layout == SIMDNORM_NHWC && g.spatial > 1 && g.c > 1;
  v.n = g.n;
  v.c = g.c;
  v.groups = groups;
  v.group_channels = g.c / groups;
  v.spatial = g.spatial;
  v.slabs = g.n * groups;
  v.slab_floats = v.group_channels * g.spatial;
  v.image_floats = g.c * g.spatial;
  v.count = static_cast<double>(v.slab_floats);
  return v;
}

RunWalk contiguous_walk(std::size_t len, std::size_t begin, std::size_t end, std::size_t fetch_end) {
  RunWalk walk{len, len, begin, end};
  walk.fetch_end = fetch_end;
  walk.next_run_floats = limits().next_run_floats;
  return walk;
}

bool shares_group_slabs(const GroupView& v, const Geometry& g, std::size_t inputs) {
  const std::size_t bytes = inputs * v.slab_floats * sizeof(float);
  if (bytes > limits().core_channel_bytes) return v.slabs < kChannelParts || beyond_cache(g, inputs);
  // NB: a lone slab of a quarter of L2 or more (n = 1, groups = 1) would leave every core but one idle.
  return v.slabs == 1 && bytes >= limits().core_channel_bytes / 4;
}

Block slab_part(const GroupView& v, std::size_t p) {
  const auto at = [&](std::size_t q) {
    return q == kChannelParts ? v.slab_floats : v.slab_floats * q / kChannelParts / kMaxLanes * kMaxLanes;
  };
  return Block{at(p), at(p + 1)};
}

RowTiles group_row_tiles(const GroupView& v, bool fetch) {
  View image{};
  image.rows = true;
  image.channels = v.c;
  image.row_count = v.spatial;
  image.per_channel = v.spatial;
  image.elements = v.image_floats;
  return row_tiles(image, fetch);
}

bool group_images_per_thread(const GroupView& v, std::size_t chunks, int image_threads, int chunk_threads) {
  if (chunks < 2 || chunk_threads < 2) return true;  // an image that no team would share
  if (image_threads < 2) return false;               // one image (n = 1): its chunks keep the team busy
  // An image a core's L2 holds is read a second time from there; a larger one is shared, so that each core's part
  // is. NB: one tensor's image counts, for backward too (x and dy). Whole images against shared ones, 2 threads, n = 8
  // and 32 groups: backward 0.87x at 256x32x32 (1 MiB a tensor) and 1.05x at 128x64x64 (2 MiB); forward 0.99-1.01x
  // in place.
  if (v.image_floats * sizeof(float) > limits().core_channel_bytes) return false;
  const auto t = static_cast<std::size_t>(image_threads);
  return v.n % t == 0 || v.n >= 4 * t;  // otherwise the last images would leave cores idle
}

bool streams_in_calls(const float* in, const float* out, const Geometry& g, std::size_t tensors,
                      std::size_t call_floats) {
  // NB: GroupNorm backward writes dx of an NCHW slab a plane a call; streamed against not (2 threads, x, dy and dx
  // of 32-64 MB): planes of 1 KiB 1.43x the time, 2.3 KiB 1.08x, 4 KiB 1.00x, 8 KiB 0.94x, 16 KiB 0.90x.
  return call_floats * sizeof(float) >= kStreamMinSpanBytes && streams(in, out, g, tensors);
}

}  // namespace simdnorm
