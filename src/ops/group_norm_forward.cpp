// GroupNorm forward, as batch norm's phases over another reduction axis: moments of a piece (a slab or a part of
// one in slab layouts; a chunk of an image's rows in NHWC), merge (parts in part order; chunks in two halves, then
// the channels of each group at once, as equal sets), center (the mean in double; a group whose float lanes
// overflowed is recomputed in double), finish (mean and rstd rounded, then a and b of each channel folded from the
// rounded values, which is what backward refolds for the ReLU mask), normalise (y = a*x + b). A slab or an image
// that one core holds is normalised right after its statistics, while it is still in that core's L2. The pieces and
// the merge trees are fixed by the shape and the cache sizes (parallel/partition.cpp), so every team gives the same
// bits.
#include <cmath>
#include <cstring>

#include "core/channel_math.hpp"
#include "core/moments.hpp"
#include "core/scratch.hpp"
#include "kernels/table.hpp"
#include "ops/norms.hpp"
#include "parallel/partition.hpp"

namespace simdnorm {
namespace {

struct Baseline {};  // instantiation tag of the shared arithmetic templates in baseline code

// Per-thread blocks of arrays start whole pages apart (as batch norm backward's copies: same L1 sets relative to the
// data on every core).
constexpr std::size_t kPageFloats = 4096 / sizeof(float);
std::size_t whole_pages(std::size_t floats) { return (floats + kPageFloats - 1) / kPageFloats * kPageFloats; }

// Per-thread padded arrays of the row layout, end to end in one block a thread.
enum RowArray : std::size_t {
  kShiftArray, kGammaArray, kBetaArray, kMeanArray, kRstdArray, kAArray, kBArray, kRowArrays
};

// The state of one forward call and its phases.
class Forward {
 public:
  Forward(const Geometry& g, const GroupNormArgs& args)
      : k_(active_kernels()),
        v_(make_group_view(g, args.groups)),
        args_(args),
        relu_((args.flags & SIMDNORM_FUSE_RELU) != 0u) {}

  const GroupView& view() const { return v_; }
  const RowTiles& tiles() const { return tiles_; }

  // ---- center and finish, for either layout: the statistics of group s = n*groups + g from its moments relative
  // to `shift`; `values` walks the group's values for the recomputation. Sets *recomputed when it ran. ----

  template <class ForEach>
  RoundedStats finish_group(std::size_t s, double shift, const Moments& moments, const ForEach& values, bool publish,
                            bool* recomputed) const {
    double mean = shift + moments.sum / v_.count, m2 = moments.m2;
    if (!std::isfinite(mean) || !std::isfinite(m2)) {
      const ExactMoments exact = two_pass_moments(values, v_.count);
      mean = exact.mean;
      m2 = exact.m2;
      *recomputed = true;
    }
    const RoundedStats st = round_stats(mean, m2, v_.count, args_.eps);
    if (publish && args_.mean != nullptr) args_.mean[s] = st.mean;
    if (publish && args_.rstd != nullptr) args_.rstd[s] = st.invstd;
    return st;
  }

  // ---- slabs: a group is group_channels contiguous planes ----

  // `pairs` pairs of a and b arrays: one a thread, or (shared slabs) one for each of two slabs in flight.
  bool allocate_slabs(std::size_t pairs, bool shared) {
    cgp_ = (v_.group_channels + kMaxLanes - 1) / kMaxLanes * kMaxLanes;
    coeffs_ = scratch<float>(Slot::kGroupCoefficients, pairs * 2 * cgp_);
    if (shared) partials_ = scratch<Moments>(Slot::kGroupPartials, 2 * kChannelParts);
    return coeffs_ != nullptr && (!shared || partials_ != nullptr);
  }

  // Slab s on one thread: moments, finish, then normalisation while the slab is in the core's cache. `fetch_next`:
  // the thread reads slab s + 1 next, whose lines the moments pass requests ahead.
  void slab(std::size_t s, std::size_t pair, bool fetch_next, bool stream) const {
    const std::size_t m = v_.slab_floats;
    const float shift = args_.x[s * m];
    const Moments moments = k_.moments_run(args_.x + s * m, contiguous_walk(m, 0, m, fetch_next ? 2 * m : 0), shift);
    finish_slab(s, pair, shift, moments);
    normalise_slab(s, pair, 0, m, stream);
  }

  // Shared slabs: part p's moments (every part relative to the slab's first value), then the parts merged in part
  // order and finished (one thread), then each thread normalises its parts. Two slabs are in flight at a time (a
  // thread may read the next slab while another still normalises this one): their scratch alternates.
  void part_moments(std::size_t s, std::size_t p) const {
    const std::size_t m = v_.slab_floats;
    const Block r = slab_part(v_, p);
    partials_[s % 2 * kChannelParts + p] =
        k_.moments_run(args_.x + s * m, contiguous_walk(m, r.begin, r.end), args_.x[s * m]);
  }
  void finish_shared(std::size_t s) const {
    Moments total{0.0, 0.0, 0.0};
    for (std::size_t p = 0; p < kChannelParts; ++p) {
      merge_moments<Baseline>(total, partials_[s % 2 * kChannelParts + p]);
    }
    finish_slab(s, s % 2, args_.x[s * v_.slab_floats], total);
  }
  void normalise_part(std::size_t s, std::size_t p, bool stream) const {
    const Block r = slab_part(v_, p);
    normalise_slab(s, s % 2, r.begin, r.end, stream);
  }

  // ---- rows: an image is `spatial` rows of c channels, a group a block of group_channels channels ----

  // kRowArrays padded arrays a thread, and `sets` sets of per-chunk partials (sums, then m2) of an image.
  bool allocate_rows(const RowTiles& tiles, int threads, std::size_t sets) {
    tiles_ = tiles;
    cp_ = padded_channels(v_.c);
    block_ = whole_pages(kRowArrays * cp_);
    arrays_ = scratch<float>(Slot::kGroupArrays, static_cast<std::size_t>(threads) * block_);
    sets_ = sets;
    sums_ = scratch<double>(Slot::kGroupRowSums, (sets * 2 * tiles_.chunks + static_cast<std::size_t>(threads)) * cp_);
    return arrays_ != nullptr && sums_ != nullptr;
  }
  // Thread t's copies of gamma and beta, and the padding of its arrays.
  void prepare(std::size_t t) const {
    clear_padding(array(t, 0), kRowArrays, v_.c, cp_);
    copy_or_fill(array(t, kGammaArray), args_.gamma, v_.c, 1.0f);
    copy_or_fill(array(t, kBetaArray), args_.beta, v_.c, 0.0f);
  }
  // The shift of image n's moments: its first row (a padded copy a thread: moments_rows reads whole vectors of it).
  void begin_image(std::size_t n, std::size_t t) const {
    std::memcpy(array(t, kShiftArray), args_.x + n * v_.image_floats, v_.c * sizeof(float));
  }
  void chunk_moments(std::size_t n, std::size_t i, std::size_t set, std::size_t t) const {
    const RowTiles::Tile tile = tiles_.tile(i);
    k_.moments_rows(args_.x + n * v_.image_floats + tile.offset, tile.walk, array(t, kShiftArray), sums(set) + i * cp_,
                    m2s(set) + i * cp_);
  }
  // Chunks [h.begin + 1, h.end) into chunk h.begin, in chunk order, for channels [c0, c0 + count); then chunk
  // `half` into chunk 0 (batch norm's tree: parallel_row_passes).
  void merge_half(std::size_t set, Block h, std::size_t c0, std::size_t count) const {
    const std::size_t at = h.begin * cp_ + c0;
    for (std::size_t i = h.begin + 1; i < h.end; ++i) {
      k_.merge_rows(sums(set) + at, m2s(set) + at, sums(set) + i * cp_ + c0, m2s(set) + i * cp_ + c0, count,
                    static_cast<double>(tiles_.first_row(i) - tiles_.first_row(h.begin)),
                    static_cast<double>(tiles_.rows_of(i)));
    }
  }
  void merge_halves(std::size_t set, std::size_t c0, std::size_t count) const {
    const std::size_t half = tiles_.chunks / 2;
    k_.merge_rows(sums(set) + c0, m2s(set) + c0, sums(set) + half * cp_ + c0, m2s(set) + half * cp_ + c0, count,
                  static_cast<double>(tiles_.first_row(half)),
                  static_cast<double>(v_.spatial - tiles_.first_row(half)));
  }
  // From the merged moments of every channel of image n (chunk 0 of `set`): each group's channels merged (their sums
  // moved to the group's shift, its first channel's value) and finished, then a and b of every channel into thread
  // t's arrays. Every thread of a team runs it, on the same data, for its own arrays. Returns whether a group was
  // recomputed in double (x was read).
  bool finish_image(std::size_t n, std::size_t set, std::size_t t, bool publish) const {
    const std::size_t cg = v_.group_channels, c = v_.c;
    const double rows = static_cast<double>(v_.spatial);
    const float* const shift = array(t, kShiftArray);
    const float* const image = args_.x + n * v_.image_floats;
    float* const mean = array(t, kMeanArray);
    float* const rstd = array(t, kRstdArray);
    bool recomputed = false;
    double* const moved = moved_sums(t);
    for (std::size_t g = 0; g < v_.groups; ++g) {
      const std::size_t c0 = g * cg;
      const double base = shift[c0];
      for (std::size_t j = c0; j < c0 + cg; ++j) {
        moved[j] = sums(set)[j] + rows * (static_cast<double>(shift[j]) - base);
      }
      // NB: the channels hold `rows` values each, so their spread is taken directly (merge_equal_sets), not by cg - 1
      // Chan merges, whose three divisions each made the finish of a 2048-channel image cost as much as its data.
      const Moments total = merge_equal_sets<Baseline>(moved + c0, m2s(set) + c0, cg, rows);
      const auto values = [&](const auto& visit) {
        for (std::size_t r = 0; r < v_.spatial; ++r) {
          for (std::size_t j = c0; j < c0 + cg; ++j) visit(image[r * c + j]);
        }
      };
      const RoundedStats st = finish_group(n * v_.groups + g, base, total, values, publish, &recomputed);
      std::fill(mean + c0, mean + c0 + cg, st.mean);
      std::fill(rstd + c0, rstd + c0 + cg, st.invstd);
    }
    k_.fold_saved_rows(mean, rstd, array(t, kGammaArray), array(t, kBetaArray), c, array(t, kAArray),
                       array(t, kBArray));
    return recomputed;
  }
  void normalise_chunk(std::size_t n, std::size_t i, std::size_t t, bool stream) const {
    const RowTiles::Tile tile = tiles_.tile(i);
    const std::size_t at = n * v_.image_floats + tile.offset;
    k_.affine_rows(args_.x + at, args_.y + at, tile.walk, array(t, kAArray), array(t, kBArray), relu_, stream);
  }

 private:
  float* slab_a(std::size_t pair) const { return coeffs_ + pair * 2 * cgp_; }
  float* slab_b(std::size_t pair) const { return coeffs_ + pair * 2 * cgp_ + cgp_; }

  // Finish of slab s from its moments about its first value: statistics, then a and b of its channels (pair).
  void finish_slab(std::size_t s, std::size_t pair, float shift, const Moments& moments) const {
    const float* const x = args_.x + s * v_.slab_floats;
    const auto values = [&](const auto& visit) {
      for (std::size_t i = 0; i < v_.slab_floats; ++i) visit(x[i]);
    };
    bool recomputed = false;
    const RoundedStats st = finish_group(s, shift, moments, values, true, &recomputed);
    const std::size_t c0 = s % v_.groups * v_.group_channels;
    float* const a = slab_a(pair);
    float* const b = slab_b(pair);
    for (std::size_t j = 0; j < v_.group_channels; ++j) {
      const Coefficients co = fold_coefficients(args_.gamma, args_.beta, c0 + j, st.mean, st.invstd);
      a[j] = co.a;
      b[j] = co.b;
    }
  }
  // y = a*x + b over floats [begin, end) of slab s: its whole planes in memory order (affine_planes), a plane the
  // range cuts through affine_run.
  void normalise_slab(std::size_t s, std::size_t pair, std::size_t begin, std::size_t end, bool stream) const {
    const std::size_t len = v_.spatial;
    const float* const x = args_.x + s * v_.slab_floats;
    float* const y = args_.y + s * v_.slab_floats;
    const float* const a = slab_a(pair);
    const float* const b = slab_b(pair);
    for (std::size_t i = begin; i < end;) {
      const std::size_t j = i / len, plane = j * len;
      if (i == plane && end - i >= len) {
        const std::size_t planes = (end - i) / len;
        k_.affine_planes(x + i, y + i, len, planes, j, v_.group_channels, a, b, relu_, stream);
        i += planes * len;
      } else {
        const std::size_t stop = end < plane + len ? end : plane + len;
        k_.affine_run(x + plane, y + plane, contiguous_walk(len, i - plane, stop - plane), a[j], b[j], relu_, stream);
        i = stop;
      }
    }
  }

  float* array(std::size_t t, std::size_t which) const { return arrays_ + t * block_ + which * cp_; }
  double* sums(std::size_t set) const { return sums_ + set * 2 * tiles_.chunks * cp_; }
  double* m2s(std::size_t set) const { return sums(set) + tiles_.chunks * cp_; }
  double* moved_sums(std::size_t t) const { return sums_ + (sets_ * 2 * tiles_.chunks + t) * cp_; }

  const KernelTable& k_;
  const GroupView v_;
  const GroupNormArgs& args_;
  const bool relu_;
  std::size_t cgp_ = 0;          // slabs: a and b arrays, group_channels rounded up to whole vectors
  float* coeffs_ = nullptr;      // slabs: pairs of a and b arrays
  Moments* partials_ = nullptr;  // shared slabs: the parts' moments of two slabs
  RowTiles tiles_{};
  std::size_t cp_ = 0, block_ = 0, sets_ = 0;
  float* arrays_ = nullptr;  // rows: kRowArrays padded arrays a thread, block_ floats apart
  // rows: sets of per-chunk sums and m2 (chunk 0 ends up holding the merged moments), then each thread's sums moved
  // to their groups' shifts
  double* sums_ = nullptr;
};

// ---- Schedules ----

// Slabs that one core holds, `threads` taking contiguous blocks of them (each thread's a and b are its own).
// NB: beyond the last-level cache each slab's moments request the thread's next slab (2 threads, 64x128x64x64 and
// 64x512x16x16: 0.81x and 0.96x in place, 0.88x out of place); in that cache the requests only cost (1.01-1.05x).
void run_slabs(const Forward& f, int threads, bool fetch, bool stream) {
  run_team(threads, f.view().slabs, [&](Block mine, Team team) {
    for (std::size_t s = mine.begin; s < mine.end; ++s) f.slab(s, team.thread, fetch && s + 1 < mine.end, stream);
  });
}

// Slabs shared by the team one at a time, in kChannelParts parts: moments of every part; the thread holding part 0
// merges them in part order and finishes the slab; after a barrier each thread normalises its own parts, the last
// first (what it read last is still in its L2).
void run_shared_slabs(const Forward& f, bool stream) {
  for_each_shared_channel(
      f.view().slabs, f.view().slabs * f.view().slab_floats,
      [&](std::size_t s, std::size_t p, std::size_t /*last*/) { f.part_moments(s, p); },
      [&](std::size_t s, Block mine, Team team) {
        if (mine.begin == 0) f.finish_shared(s);
        // The others wait for a and b, and, in place, for a recomputed slab's second read before writing it.
        sync(team);
        for (std::size_t p = mine.end; p-- > mine.begin;) f.normalise_part(s, p, stream);
      });
}

// Image n of the row layout in a team whose threads hold the chunks `mine` (a thread alone: all of them), thread t's
// arrays, partials in `set`: moments of the chunks, the merge (each half in chunk order, then half 1 into half 0: in
// a team of two each thread merges its own half from its own cache), the finish on every thread, the second pass
// over each thread's chunks from the last.
void image_passes(const Forward& f, std::size_t n, Block mine, Team team, std::size_t t, std::size_t set, bool stream) {
  const std::size_t chunks = f.tiles().chunks, half = chunks / 2, c = f.view().c;
  f.begin_image(n, t);
  for (std::size_t i = mine.begin; i < mine.end; ++i) f.chunk_moments(n, i, set, t);
  if (chunks > 1) {
    const bool halves = team.threads == 2;  // run_team's blocks of a team of two are the halves
    if (halves) f.merge_half(set, mine, 0, c);
    sync(team);
    const Block share = channel_share(c, team.thread, team.threads);
    if (share.begin < share.end) {
      if (!halves) {
        f.merge_half(set, Block{0, half}, share.begin, share.end - share.begin);
        f.merge_half(set, Block{half, chunks}, share.begin, share.end - share.begin);
      }
      f.merge_halves(set, share.begin, share.end - share.begin);
    }
  }
  sync(team);
  // A group recomputed in double read x: in place, nobody writes this image before every thread has (the same
  // groups recompute on every thread, so all of them meet this barrier or none).
  if (f.finish_image(n, set, t, team.thread == 0)) sync(team);
  for (std::size_t i = mine.end; i-- > mine.begin;) f.normalise_chunk(n, i, t, stream);
}

}  // namespace

simdnorm_status run_group_norm_forward(const char* fn, const Geometry& g, const GroupNormArgs& args) {
  Forward f(g, args);
  const GroupView& v = f.view();
  if (!v.rows) {
    // y goes out a slab (or a part of a shared one) a kernel call, but for planes that a part cuts.
    const bool stream = streams_in_calls(args.x, args.y, g, 2, v.slab_floats);
    const bool shared = shares_group_slabs(v, g, 1);
    const int threads = team_size(v.slabs, g.elements);  // unshared: one pair of a and b arrays a thread
    if (!f.allocate_slabs(shared ? 2 : static_cast<std::size_t>(threads), shared)) {
      return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
    }
    if (shared) {
      run_shared_slabs(f, stream);
    } else {
      run_slabs(f, threads, beyond_cache(g, 2), stream);
    }
    return SIMDNORM_SUCCESS;
  }
  // Images on their own threads, or each image shared by the team in chunks: the same chunks and merge tree, so the
  // same bits; a team sharing images alternates two sets of partials (a thread may start the next image while
  // another still finishes this one).
  const RowTiles tiles = group_row_tiles(v, beyond_cache(g, 2));
  const bool stream = streams_in_calls(args.x, args.y, g, 2, tiles.rows_of(0) * v.c);
  const int image_threads = team_size(v.n, g.elements), chunk_threads = team_size(tiles.chunks, g.elements);
  const bool per_image = group_images_per_thread(v, tiles.chunks, image_threads, chunk_threads);
  const int threads = per_image ? image_threads : chunk_threads;
  if (!f.allocate_rows(tiles, threads, per_image ? static_cast<std::size_t>(threads) : 2)) {
    return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
  }
  run_team(threads, per_image ? v.n : tiles.chunks, [&](Block mine, Team team) {
    const std::size_t t = team.thread;
    f.prepare(t);
    if (per_image) {
      for (std::size_t n = mine.begin; n < mine.end; ++n) {
        image_passes(f, n, Block{0, tiles.chunks}, Team{0, 1}, t, t, stream);
      }
    } else {
      for (std::size_t n = 0; n < v.n; ++n) image_passes(f, n, mine, team, t, n % 2, stream);
    }
  });
  return SIMDNORM_SUCCESS;
}

}  // namespace simdnorm
