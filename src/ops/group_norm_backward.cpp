// GroupNorm backward, as batch norm's backward phases over another reduction axis: reduce (Σdy' and Σdy'(x − mean)
// of each channel of a group, per piece: a plane or part of one in slab layouts, a chunk of an image's rows in
// NHWC), merge (parts in part order; chunks in two halves), finish (the group's Σgamma*dy' and Σgamma*dy'(x − mean)
// in double, in channel order, then the coefficients of dx through grad_scalars), apply (dx by the kernels' formula
// with k_in = gamma: dx = rstd*((gamma*dy' − mean_dy) − xhat*mean_dy_xhat)). All sums of a group come before its
// dx, so dx may be dy. dgamma and dbeta add each channel's sums over the images, in image order, at the end. The
// pieces and the merge trees are fixed by the shape and the cache sizes, so every team gives the same bits.
#include <cstring>

#include "core/channel_math.hpp"
#include "core/scratch.hpp"
#include "kernels/table.hpp"
#include "ops/norms.hpp"
#include "parallel/partition.hpp"

namespace simdnorm {
namespace {

struct GradSums {
  double dy;
  double dy_xc;
};

constexpr std::size_t kPageFloats = 4096 / sizeof(float);
std::size_t whole_pages(std::size_t floats) { return (floats + kPageFloats - 1) / kPageFloats * kPageFloats; }

// Per-thread padded arrays of the row layout, end to end in one block a thread: the saved statistics of the image's
// groups spread over their channels, the forward's a and b folded from them, gamma and beta, and the coefficients of
// dx the finish writes.
enum RowArray : std::size_t {
  kMeanArray, kRstdArray, kAArray, kBArray, kGammaArray, kBetaArray, kKdyArray, kMeanDyArray, kMeanDyXhatArray,
  kRowArrays
};

// Σgamma*dy' and Σgamma*dy'(x − mean) of a group, its channels added in channel order.
struct GroupSums {
  double dy = 0.0, dy_xc = 0.0;
};

class Backward {
 public:
  Backward(const Geometry& g, const GroupNormBackwardArgs& args)
      : k_(active_kernels()), v_(make_group_view(g, args.groups)), args_(args),
        relu_((args.flags & SIMDNORM_FUSE_RELU) != 0u) {}

  const GroupView& view() const { return v_; }
  const RowTiles& tiles() const { return tiles_; }

  // The sums of every (image, channel), which dgamma and dbeta add up at the end; none when neither is wanted.
  bool allocate_channels() {
    if (args_.dgamma == nullptr && args_.dbeta == nullptr) return true;
    channel_sums_ = scratch<double>(Slot::kGroupChannels, 2 * v_.n * v_.c);
    return channel_sums_ != nullptr;
  }

  // ---- finish, for either layout ----

  double gamma(std::size_t channel) const { return args_.gamma != nullptr ? args_.gamma[channel] : 1.0; }
  // Channel j of group s's sums: into the group's, and (publish) kept for dgamma and dbeta.
  void add_channel(std::size_t s, std::size_t j, const GradSums& sums, GroupSums* group, bool publish) const {
    const std::size_t channel = s % v_.groups * v_.group_channels + j;
    group->dy += gamma(channel) * sums.dy;
    group->dy_xc += gamma(channel) * sums.dy_xc;
    if (!publish || channel_sums_ == nullptr) return;
    const std::size_t at = s / v_.groups * v_.c + channel;
    channel_sums_[at] = sums.dy;
    channel_sums_[v_.n * v_.c + at] = sums.dy_xc;
  }
  // k_dy = rstd, mean_dy = Σgamma*dy'/m, mean_dy_xhat = Σgamma*dy'(x − mean)*rstd/m (batch norm's roundings, with
  // the group's sums in place of a channel's and gamma inside them).
  GradScalars group_scalars(std::size_t s, const GroupSums& sums) const {
    const double rstd = args_.rstd[s];
    return grad_scalars(1.0, rstd, sums.dy, sums.dy_xc * rstd, v_.count);
  }

  // dgamma[c] = Σ over images of Σdy'(x − mean)*rstd, dbeta[c] = Σ over images of Σdy', in double, image order.
  void finish_parameters() const {
    if (channel_sums_ == nullptr) return;
    const std::size_t c = v_.c, cg = v_.group_channels;
    for (std::size_t j = 0; j < c; ++j) {
      double dbeta = 0.0, dgamma = 0.0;
      for (std::size_t n = 0; n < v_.n; ++n) {
        dbeta += channel_sums_[n * c + j];
        dgamma += channel_sums_[v_.n * c + n * c + j] * static_cast<double>(args_.rstd[n * v_.groups + j / cg]);
      }
      if (args_.dbeta != nullptr) args_.dbeta[j] = static_cast<float>(dbeta);
      if (args_.dgamma != nullptr) args_.dgamma[j] = static_cast<float>(dgamma);
    }
  }

  // ---- slabs: channel j of group s is the plane at s*slab_floats + j*spatial ----

  // NB: requesting the next slab's plane while a plane is read (the forward's fetch_next) gained nothing here: 0.99x
  // on 1 KiB planes beyond the cache, 1.08x on 16 KiB planes, 1.04-1.08x in the last-level cache.
  GradSums plane_sums(std::size_t s, std::size_t j, std::size_t begin, std::size_t end) const {
    const std::size_t at = s * v_.slab_floats + j * v_.spatial;
    GradSums sums{0.0, 0.0};
    k_.grad_sums_run(args_.x + at, args_.dy + at, contiguous_walk(v_.spatial, begin, end), plane_coefficients(s, j),
                     relu_, &sums.dy, &sums.dy_xc);
    return sums;
  }
  void plane_apply(std::size_t s, std::size_t j, std::size_t begin, std::size_t end, const GradScalars& gs,
                   bool stream) const {
    const std::size_t at = s * v_.slab_floats + j * v_.spatial;
    GradCoefficients co = plane_coefficients(s, j);
    co.k_dy = gs.k_dy;
    co.mean_dy = gs.mean_dy;
    co.mean_dy_xhat = gs.mean_dy_xhat;
    co.k_in = static_cast<float>(gamma(s % v_.groups * v_.group_channels + j));
    k_.grad_input_run(args_.x + at, args_.dy + at, args_.dx + at, contiguous_walk(v_.spatial, begin, end), co, relu_,
                      stream);
  }

  // Slab s on one thread: the sums of its planes, then (dx wanted) dx of its planes while they are in its cache.
  void slab(std::size_t s, bool stream) const {
    GroupSums group;
    for (std::size_t j = 0; j < v_.group_channels; ++j) {
      add_channel(s, j, plane_sums(s, j, 0, v_.spatial), &group, true);
    }
    if (args_.dx == nullptr) return;
    const GradScalars gs = group_scalars(s, group);
    for (std::size_t j = 0; j < v_.group_channels; ++j) plane_apply(s, j, 0, v_.spatial, gs, stream);
  }

  // Shared slabs: part p's sums of each plane (0 for the planes it does not reach), two slabs' worth in flight; then
  // on every thread each channel's parts added in part order, and dx of the thread's own parts.
  bool allocate_partials() {
    partials_ = scratch<GradSums>(Slot::kGroupPartials, 2 * kChannelParts * v_.group_channels);
    return partials_ != nullptr;
  }
  void part_sums(std::size_t s, std::size_t p) const {
    GradSums* const out = partial(s, p);
    for (std::size_t j = 0; j < v_.group_channels; ++j) {
      const Block r = plane_range(p, j);
      out[j] = r.begin < r.end ? plane_sums(s, j, r.begin, r.end) : GradSums{0.0, 0.0};
    }
  }
  GradScalars shared_scalars(std::size_t s, bool publish) const {
    GroupSums group;
    for (std::size_t j = 0; j < v_.group_channels; ++j) {
      GradSums total{0.0, 0.0};
      for (std::size_t p = 0; p < kChannelParts; ++p) {
        total.dy += partial(s, p)[j].dy;
        total.dy_xc += partial(s, p)[j].dy_xc;
      }
      add_channel(s, j, total, &group, publish);
    }
    return group_scalars(s, group);
  }
  void part_apply(std::size_t s, std::size_t p, const GradScalars& gs, bool stream) const {
    for (std::size_t j = 0; j < v_.group_channels; ++j) {
      const Block r = plane_range(p, j);
      if (r.begin < r.end) plane_apply(s, j, r.begin, r.end, gs, stream);
    }
  }

  // ---- rows: an image is `spatial` rows of c channels, a group a block of group_channels channels ----

  bool allocate_rows(const RowTiles& tiles, int threads, std::size_t sets) {
    tiles_ = tiles;
    cp_ = padded_channels(v_.c);
    block_ = whole_pages(kRowArrays * cp_);
    arrays_ = scratch<float>(Slot::kGroupArrays, static_cast<std::size_t>(threads) * block_);
    sums_ = scratch<double>(Slot::kGroupRowSums, sets * 2 * tiles_.chunks * cp_);
    return arrays_ != nullptr && sums_ != nullptr;
  }
  void prepare(std::size_t t) const {
    clear_padding(array(t, 0), kRowArrays, v_.c, cp_);
    copy_or_fill(array(t, kGammaArray), args_.gamma, v_.c, 1.0f);
    copy_or_fill(array(t, kBetaArray), args_.beta, v_.c, 0.0f);
  }
  // Thread t's arrays of image n: its groups' saved statistics over their channels, the forward's a and b.
  void begin_image(std::size_t n, std::size_t t) const {
    const std::size_t cg = v_.group_channels;
    for (std::size_t g = 0; g < v_.groups; ++g) {
      std::fill(array(t, kMeanArray) + g * cg, array(t, kMeanArray) + (g + 1) * cg, args_.mean[n * v_.groups + g]);
      std::fill(array(t, kRstdArray) + g * cg, array(t, kRstdArray) + (g + 1) * cg, args_.rstd[n * v_.groups + g]);
    }
    k_.fold_saved_rows(array(t, kMeanArray), array(t, kRstdArray), array(t, kGammaArray), array(t, kBetaArray), v_.c,
                       array(t, kAArray), array(t, kBArray));
  }
  void chunk_sums(std::size_t n, std::size_t i, std::size_t set, std::size_t t) const {
    const RowTiles::Tile tile = tiles_.tile(i);
    double* const s1 = sum_dy(set) + i * cp_;
    double* const s2 = sum_dy_xc(set) + i * cp_;
    std::fill(s1, s1 + cp_, 0.0);
    std::fill(s2, s2 + cp_, 0.0);
    const std::size_t at = n * v_.image_floats + tile.offset;
    k_.grad_sums_rows(args_.x + at, args_.dy + at, tile.walk, arrays(t), relu_, s1, s2);
  }
  // Chunks [h.begin + 1, h.end) into chunk h.begin, in chunk order; then chunk `half` into chunk 0.
  void merge_half(std::size_t set, Block h, std::size_t c0, std::size_t count) const {
    k_.add_rows(sum_dy(set) + h.begin * cp_ + c0, sum_dy_xc(set) + h.begin * cp_ + c0, h.end - h.begin, cp_, count);
  }
  void merge_halves(std::size_t set, std::size_t c0, std::size_t count) const {
    k_.add_rows(sum_dy(set) + c0, sum_dy_xc(set) + c0, 2, tiles_.chunks / 2 * cp_, count);
  }
  // The coefficients of dx of every group of image n into thread t's arrays, from the merged sums (chunk 0 of
  // `set`); every thread of a team runs it for its own arrays, and the one that publishes keeps the sums.
  void finish_image(std::size_t n, std::size_t set, std::size_t t, bool publish) const {
    const std::size_t cg = v_.group_channels;
    for (std::size_t g = 0; g < v_.groups; ++g) {
      const std::size_t s = n * v_.groups + g, c0 = g * cg;
      GroupSums group;
      for (std::size_t j = 0; j < cg; ++j) {
        add_channel(s, j, GradSums{sum_dy(set)[c0 + j], sum_dy_xc(set)[c0 + j]}, &group, publish);
      }
      const GradScalars gs = group_scalars(s, group);
      std::fill(array(t, kKdyArray) + c0, array(t, kKdyArray) + c0 + cg, gs.k_dy);
      std::fill(array(t, kMeanDyArray) + c0, array(t, kMeanDyArray) + c0 + cg, gs.mean_dy);
      std::fill(array(t, kMeanDyXhatArray) + c0, array(t, kMeanDyXhatArray) + c0 + cg, gs.mean_dy_xhat);
    }
  }
  void chunk_apply(std::size_t n, std::size_t i, std::size_t t, bool stream) const {
    const RowTiles::Tile tile = tiles_.tile(i);
    const std::size_t at = n * v_.image_floats + tile.offset;
    k_.grad_input_rows(args_.x + at, args_.dy + at, args_.dx + at, tile.walk, arrays(t), relu_, stream);
  }

 private:
  // The saved statistics of slab s and the forward's a and b of its channel j (the coefficients of dx left 0).
  GradCoefficients plane_coefficients(std::size_t s, std::size_t j) const {
    const float mean = args_.mean[s], rstd = args_.rstd[s];
    const Coefficients fwd =
        fold_coefficients(args_.gamma, args_.beta, s % v_.groups * v_.group_channels + j, mean, rstd);
    return GradCoefficients{mean, rstd, fwd.a, fwd.b, 0.0f, 0.0f, 0.0f};
  }
  // The floats of plane j that part p of a shared slab holds, relative to the plane.
  Block plane_range(std::size_t p, std::size_t j) const {
    const Block r = slab_part(v_, p);
    const std::size_t lo = j * v_.spatial, hi = lo + v_.spatial;
    const std::size_t begin = r.begin > lo ? r.begin : lo, end = r.end < hi ? r.end : hi;
    return begin < end ? Block{begin - lo, end - lo} : Block{0, 0};
  }
  GradSums* partial(std::size_t s, std::size_t p) const {
    return partials_ + (s % 2 * kChannelParts + p) * v_.group_channels;
  }

  float* array(std::size_t t, std::size_t which) const { return arrays_ + t * block_ + which * cp_; }
  GradCoefficientArrays arrays(std::size_t t) const {
    return GradCoefficientArrays{array(t, kMeanArray),       array(t, kRstdArray),
                                 array(t, kAArray),          array(t, kBArray),
                                 array(t, kKdyArray),        array(t, kMeanDyArray),
                                 array(t, kMeanDyXhatArray), args_.gamma != nullptr ? array(t, kGammaArray) : nullptr};
  }
  double* sum_dy(std::size_t set) const { return sums_ + set * 2 * tiles_.chunks * cp_; }
  double* sum_dy_xc(std::size_t set) const { return sum_dy(set) + tiles_.chunks * cp_; }

  const KernelTable& k_;
  const GroupView v_;
  const GroupNormBackwardArgs& args_;
  const bool relu_;
  double* channel_sums_ = nullptr;  // Σdy' of every (image, channel), then Σdy'(x − mean)
  GradSums* partials_ = nullptr;    // shared slabs: each part's sums of each plane, two slabs
  RowTiles tiles_{};
  std::size_t cp_ = 0, block_ = 0;
  float* arrays_ = nullptr;  // rows: kRowArrays padded arrays a thread, block_ floats apart
  double* sums_ = nullptr;   // rows: sets of per-chunk Σdy' then Σdy'(x − mean); chunk 0 ends up holding the total
};

// ---- Schedules ----

void run_slabs(const Backward& b, bool stream) {
  const GroupView& v = b.view();
  run_team(team_size(v.slabs, v.slabs * v.slab_floats), v.slabs, [&](Block mine, Team /*team*/) {
    for (std::size_t s = mine.begin; s < mine.end; ++s) b.slab(s, stream);
  });
}

// Slabs shared by the team one at a time, in kChannelParts parts: sums of every part, then on every thread the
// parts added in part order (the thread holding part 0 keeps the sums) and dx of its own parts, the last first.
void run_shared_slabs(const Backward& b, bool apply, bool stream) {
  const GroupView& v = b.view();
  for_each_shared_channel(
      v.slabs, v.slabs * v.slab_floats, [&](std::size_t s, std::size_t p, std::size_t /*last*/) { b.part_sums(s, p); },
      [&](std::size_t s, Block mine, Team /*team*/) {
        const GradScalars gs = b.shared_scalars(s, mine.begin == 0);
        if (!apply) return;
        for (std::size_t p = mine.end; p-- > mine.begin;) b.part_apply(s, p, gs, stream);
      });
}

// Image n of the row layout (forward's image_passes, with backward's phases): the sums of the chunks `mine`, the
// merge (each half in chunk order, then half 1 into half 0), the finish on every thread, dx of the thread's chunks.
void image_passes(const Backward& b, std::size_t n, Block mine, Team team, std::size_t t, std::size_t set, bool apply,
                  bool stream) {
  const std::size_t chunks = b.tiles().chunks, half = chunks / 2, c = b.view().c;
  b.begin_image(n, t);
  for (std::size_t i = mine.begin; i < mine.end; ++i) b.chunk_sums(n, i, set, t);
  if (chunks > 1) {
    const bool halves = team.threads == 2;  // run_team's blocks of a team of two are the halves
    if (halves) b.merge_half(set, mine, 0, c);
    sync(team);
    const Block share = channel_share(c, team.thread, team.threads);
    if (share.begin < share.end) {
      if (!halves) {
        b.merge_half(set, Block{0, half}, share.begin, share.end - share.begin);
        b.merge_half(set, Block{half, chunks}, share.begin, share.end - share.begin);
      }
      b.merge_halves(set, share.begin, share.end - share.begin);
    }
  }
  sync(team);
  b.finish_image(n, set, t, team.thread == 0);
  if (!apply) return;
  for (std::size_t i = mine.end; i-- > mine.begin;) b.chunk_apply(n, i, t, stream);
}

}  // namespace

simdnorm_status run_group_norm_backward(const char* fn, const Geometry& g, const GroupNormBackwardArgs& args) {
  if (args.dx == nullptr && args.dgamma == nullptr && args.dbeta == nullptr) return SIMDNORM_SUCCESS;
  Backward b(g, args);
  const GroupView& v = b.view();
  const bool apply = args.dx != nullptr;
  const std::size_t tensors = apply ? 3 : 2;
  if (!b.view().rows) {
    // dx goes out a plane (or a part of one) a kernel call.
    const bool stream = apply && streams_in_calls(args.dy, args.dx, g, tensors, v.spatial);
    const bool shared = shares_group_slabs(v, g, 2);
    if (!b.allocate_channels() || (shared && !b.allocate_partials())) {
      return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
    }
    if (shared) {
      run_shared_slabs(b, apply, stream);
    } else {
      run_slabs(b, stream);
    }
    b.finish_parameters();
    return SIMDNORM_SUCCESS;
  }
  // As forward: images on their own threads, or each image shared by the team in chunks, with the same chunks and
  // merge tree.
  const RowTiles tiles = group_row_tiles(v, beyond_cache(g, tensors));
  const bool stream = apply && streams_in_calls(args.dy, args.dx, g, tensors, tiles.rows_of(0) * v.c);
  const int image_threads = team_size(v.n, g.elements), chunk_threads = team_size(tiles.chunks, g.elements);
  const bool per_image = group_images_per_thread(v, tiles.chunks, image_threads, chunk_threads);
  const int threads = per_image ? image_threads : chunk_threads;
  if (!b.allocate_channels() || !b.allocate_rows(tiles, threads, per_image ? static_cast<std::size_t>(threads) : 2)) {
    return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn);
  }
  run_team(threads, per_image ? v.n : tiles.chunks, [&](Block mine, Team team) {
    const std::size_t t = team.thread;
    b.prepare(t);
    if (per_image) {
      for (std::size_t n = mine.begin; n < mine.end; ++n) {
        image_passes(b, n, Block{0, tiles.chunks}, Team{0, 1}, t, t, apply, stream);
      }
    } else {
      for (std::size_t n = 0; n < v.n; ++n) image_passes(b, n, mine, team, t, n % 2, apply, stream);
    }
  });
  b.finish_parameters();
  return SIMDNORM_SUCCESS;
}

}  // namespace simdnorm
