// Every partitioning decision, in one place: how a layout is walked (View), how it is cut into pieces (channel
// groups, parts of shared channels, chunks of rows), and which path a shape takes (streaming stores, prefetch,
// channel shares). Pieces depend on the shape and on the machine's cache sizes, never on the thread count, so
// results are bitwise identical for any team. The thresholds are fractions of the caches read at run time
// (src/platform/cache.hpp); the fractions reproduce the values measured on the development VM (1 MiB of L2 per
// core, 32 MiB of L3), and docs/design.md has the measurements behind each.
#ifndef SIMDNORM_SRC_PARALLEL_PARTITION_HPP_
#define SIMDNORM_SRC_PARALLEL_PARTITION_HPP_

#include <cstddef>

#include "kernels/table.hpp"
#include "parallel/team.hpp"
#include "status.hpp"

namespace simdnorm {

// NCHW training and backward share a channel larger than a core's L2 among the team in this many parts (fixed,
// whatever the team: the moments merge in part order).
constexpr std::size_t kChannelParts = 16;
// NCHW channels that are grouped go this many at a time (a multiple of the widest vector, so that groups never share
// one and their per-channel arithmetic runs vectorised across the group).
constexpr std::size_t kChannelGroup = 16;

// How a tensor is walked. A run walk (NCHW, or any tensor with one channel): channel c, run k starts at
// c*channel_stride + k*run_stride and holds len contiguous floats. A row walk (NHWC, or NCHW with spatial 1, which is
// the same memory): rows of c floats.
struct View {
  bool rows;
  std::size_t channels;
  std::size_t runs, len, run_stride, channel_stride;  // run walk
  std::size_t row_count;                              // row walk
  std::size_t per_channel;
  std::size_t elements;
};

View make_view(const Geometry& g);

// Whether `tensors` tensors of the shape exceed the last-level cache; callers say which tensors they count.
bool beyond_cache(const Geometry& g, std::size_t tensors);

// Whether an output goes out with non-temporal stores: written to a buffer other than its input, by an operation
// whose `tensors` tensors are beyond the cache, in spans that start on cache lines or are long.
bool streams(const float* in, const float* out, const Geometry& g, std::size_t tensors);

// NCHW: channels per work item of a first pass reading `inputs` tensors (1 for training, 2 for backward), and the
// first-pass walk of channel c in the group [c0, c0 + count) (its first channel may fetch the group's block).
std::size_t channel_group(const View& v, std::size_t inputs);
bool groups_are_short(const View& v);  // whether a group's per-channel arithmetic runs vectorised
RunWalk group_walk(RunWalk walk, const View& v, std::size_t inputs, std::size_t c, std::size_t c0,
                   std::size_t count);
// Whether each NCHW channel is shared by the team (kChannelParts parts), and part p's walk for a thread whose block
// of parts ends before `last`.
bool shares_channels(const View& v, const Geometry& g, std::size_t inputs);
RunWalk channel_part(const View& v, std::size_t p, std::size_t last);
// The whole channel, one walk, and chunks of long channels for inference.
RunWalk whole_channel(const View& v);
std::size_t run_chunks(const View& v);
RunWalk run_chunk(const View& v, std::size_t chunk, std::size_t chunks);
// Inference: NCHW planes shorter than this many floats are walked in memory order, this many floats a work item.
std::size_t plane_item_floats();
// The walk of a second pass over data a first pass has just read: its runs last first.
RunWalk second_pass(RunWalk walk);

// NHWC work items: chunks of whole rows, fixed by the shape; per-channel partials merge in two halves of the chunks,
// each in chunk order (parallel_row_passes).
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

  // Chunk i holds rows [first_row(i), first_row(i + 1)): whole grains of rows (the last may end in part of one).
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

RowTiles row_tiles(const View& v, bool fetch);

// Whether NHWC backward gives each thread a share of whole channels over all rows instead of a block of rows.
bool splits_channels(const View& v, const Geometry& g, int threads, bool writes_input, std::size_t tensors);

// The team of an NHWC training (training = true) or backward call split by rows, whose threads exchange partial
// results: team_size's, or the calling thread alone for a small tensor while the cores are far apart.
int exchanging_team_size(std::size_t items, const Geometry& g, bool training);

// Channels [0, channels) shared by the whole team, one at a time: first(c, p, end) for the parts p of the calling
// thread's block [begin, end), then, once every part of channel c has been through first(), second(c, block, team).
// first() of channel c writes only what belongs to its part; second() may read what any part's first() wrote.
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

// Row norms (LayerNorm, RMSNorm). A row longer than a share of a core's L2 is cut into chunks of this many floats
// (a multiple of kMaxLanes), which the team shares; every other row is one piece, and rows are split over threads.
std::size_t row_chunk_floats();
// The parts of the rows whose column sums (dgamma, dbeta) are kept apart, then added in part order: at most 32, of
// 16 rows at least, within a share of the last-level cache.
std::size_t row_parts(std::size_t rows, std::size_t cols);
// Forward rows normalised together, a block of columns at a time (at most kMaxRowTile: a quarter of L2), and the
// block of columns (a sixteenth of L2 over gamma and beta, a multiple of kMaxLanes).
constexpr std::size_t kMaxRowTile = 16;
std::size_t row_tile_rows(std::size_t cols);
// Backward with column sums over rows too few for two parts: the rows' chunks, so that the team shares the columns
// (the row itself when the matrix is too small to share).
std::size_t row_few_chunk_floats(std::size_t rows, std::size_t cols);
std::size_t row_column_block();

// ---- GroupNorm (ops/group_norm_*.cpp) ----

// How a GroupNorm tensor is walked. Slab layouts (NCHW, or spatial 1 in either layout): the group (image n, group g)
// is one contiguous slab of group_channels planes of `spatial` floats, slab s = n*groups + g at s*slab_floats. Row
// layout (NHWC with spatial > 1): image n is `spatial` rows of c channels at n*image_floats, and a group is a column
// block of group_channels channels of every row.
struct GroupView {
  bool rows;
  std::size_t n, c, groups, group_channels, spatial;
  std::size_t slabs;         // n * groups
  std::size_t slab_floats;   // group_channels * spatial: the values of one group
  std::size_t image_floats;  // c * spatial
  double count;              // slab_floats, the m of the group's statistics
};
GroupView make_group_view(const Geometry& g, std::size_t groups);

// The walk of floats [begin, end) of one contiguous run of len floats (a slab, a plane), with this machine's
// prefetch limits; fetch_end as in RunWalk.
RunWalk contiguous_walk(std::size_t len, std::size_t begin, std::size_t end, std::size_t fetch_end = 0);

// Whether slabs are shared by the team, one at a time, in kChannelParts parts (a first pass reading `inputs`
// tensors): a slab larger than a core's L2 when there are few of them or the tensors are beyond the cache (the rule
// of shares_channels), or a single slab worth splitting. The parts are fixed by the shape, never the team.
bool shares_group_slabs(const GroupView& v, const Geometry& g, std::size_t inputs);
// Part p of kChannelParts of a shared slab: floats [begin, end), boundaries on 16-float multiples.
Block slab_part(const GroupView& v, std::size_t p);

// Row layout: the chunks of rows of one image (row_tiles of its spatial rows), fixed by the shape.
RowTiles group_row_tiles(const GroupView& v, bool fetch);
// Whether each thread of a team of `image_threads` takes whole images (statistics, then the second pass of an image
// while it is in the core's L2) rather than a team of `chunk_threads` sharing each image by chunks. The chunks and
// their merge tree are the same either way, so this choice (which may depend on the team) never changes a result.
bool group_images_per_thread(const GroupView& v, std::size_t chunks, int image_threads, int chunk_threads);
// streams(), for an op whose kernel calls each write `call_floats` contiguous floats: every call that streams ends in
// a fence, so short calls do not stream however their spans are aligned.
bool streams_in_calls(const float* in, const float* out, const Geometry& g, std::size_t tensors,
                      std::size_t call_floats);

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_PARALLEL_PARTITION_HPP_
