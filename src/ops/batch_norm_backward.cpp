// Batch norm backward, as phases: reduce (Σdy' and Σdy'(x − mean) per channel, per piece of the partition), merge
// (pieces in a fixed order), finish (dgamma, dbeta and the coefficients of dx), apply (dx). The fused call runs them
// piece by piece while x and dy are in cache; simdnorm_backward_reduce and simdnorm_backward_apply run the same
// phases on the same pieces, so that with one part they give the same bits.
#include <cstring>

#include "core/channel_math.hpp"
#include "core/scratch.hpp"
#include "kernels/table.hpp"
#include "ops/batch_norm.hpp"
#include "parallel/partition.hpp"

namespace simdnorm {
namespace {

struct GradSums {
  double dy;
  double dy_xc;
};

// Per-channel arrays of the row walks, end to end: first what the finish writes for the second pass (k_dy, mean_dy,
// mean_dy_xhat, dbeta, dgamma); then one copy a thread, made by that thread, of the saved statistics and parameters
// (mean, invstd, gamma, beta, and the forward's a and b folded from them), which the passes and the finish read.
// Copies that the calling thread made for all made the other core fetch six arrays from its cache on every call.
constexpr std::size_t kFinished = 5, kSaved = 6;

class Backward {
 public:
  Backward(const Geometry& g, const BackwardArgs& args) : k_(active_kernels()), g_(g), v_(make_view(g)), args_(args) {
    c_ = v_.channels;
    cp_ = padded_channels(c_);
    m_ = static_cast<double>(v_.per_channel);
    relu_ = (args.flags & SIMDNORM_FUSE_RELU) != 0u;
  }

  const View& view() const { return v_; }
  const Geometry& geometry() const { return g_; }
  const RowTiles& tiles() const { return tiles_; }
  int threads() const { return threads_; }

  // ---- NCHW: one channel, or a part of one, with scalar coefficients ----

  // The coefficients of channel c from its sums Σdy' and Σdy'*xhat over `count` values (zeros for the reduction,
  // which reads only the mean and the forward's a and b).
  GradCoefficients coefficients(std::size_t c, double sum_dy, double sum_dy_xhat, double count) const {
    const double invstd = args_.batch_invstd[c];
    const Coefficients fwd = fold_coefficients(args_.gamma, args_.beta, c, args_.batch_mean[c], invstd);
    const double gamma = args_.gamma != nullptr ? args_.gamma[c] : 1.0;
    const GradScalars gs = grad_scalars(gamma, invstd, sum_dy, sum_dy_xhat, count);
    return GradCoefficients{args_.batch_mean[c], args_.batch_invstd[c], fwd.a, fwd.b, gs.k_dy, gs.mean_dy,
                            gs.mean_dy_xhat};
  }
  GradSums channel_sums(std::size_t c, const RunWalk& walk) const {
    const std::size_t at = c * v_.channel_stride;
    GradSums s{0.0, 0.0};
    k_.grad_sums_run(args_.x + at, args_.dy + at, walk, coefficients(c, 0.0, 0.0, m_), relu_, &s.dy, &s.dy_xc);
    return s;
  }
  // Σdy' and Σdy'*xhat of channel c from its sums (Σdy'*xhat = Σdy'(x − mean) * invstd, in double).
  GradSums with_xhat(std::size_t c, const GradSums& s) const {
    return GradSums{s.dy, s.dy_xc * static_cast<double>(args_.batch_invstd[c])};
  }
  // dbeta and dgamma of channel c from its sums Σdy' and Σdy'*xhat (with_xhat); the coefficients of its dx.
  void write_grads(std::size_t c, const GradSums& h) const {
    if (args_.dbeta != nullptr) args_.dbeta[c] = static_cast<float>(h.dy);
    if (args_.dgamma != nullptr) args_.dgamma[c] = static_cast<float>(h.dy_xc);
  }
  GradCoefficients dx_coefficients(std::size_t c, const GradSums& h) const { return coefficients(c, h.dy, h.dy_xc, m_); }
  void channel_apply(std::size_t c, const RunWalk& walk, const GradCoefficients& co, bool stream) const {
    const std::size_t at = c * v_.channel_stride;
    k_.grad_input_run(args_.x + at, args_.dy + at, args_.dx + at, walk, co, relu_, stream);
  }

  // ---- NHWC: chunks of rows, with padded per-channel arrays ----

  bool allocate_rows(bool split_team) {
    tiles_ = row_tiles(v_, beyond_cache(g_, args_.dx != nullptr ? 3 : 2));
    threads_ = tiles_.chunks == 1 || !split_team ? 1 : team_size(tiles_.chunks, g_.elements);
    sums_ = scratch<double>(Slot::kGradSums, 2 * tiles_.chunks * cp_);
    // Each thread's copies start a whole number of pages after thread 0's, at the same offsets within a page and so
    // in the same L1 sets relative to the data (at a stride of 6*cp floats, 16x2048x7x7 backward in place took
    // 1.04-1.05x the time of one shared copy; at whole pages, 0.97-0.99x).
    constexpr std::size_t kPageFloats = 4096 / sizeof(float);
    block_ = (kSaved * cp_ + kPageFloats - 1) / kPageFloats * kPageFloats;
    finished_ = scratch<float>(Slot::kGradArrays, kFinished * cp_ + static_cast<std::size_t>(threads_) * block_);
    if (!sums_ || !finished_) return false;
    clear_padding(finished_, kFinished, c_, cp_);
    return true;
  }
  // Thread t's copies of channels [c0, c0 + count) of the saved statistics and parameters.
  void prepare(std::size_t t, std::size_t c0, std::size_t count) const {
    const Saved s = saved(t);
    clear_padding(s.mean, kSaved, c_, cp_);  // the six arrays, end to end from mean
    std::memcpy(s.mean + c0, args_.batch_mean + c0, count * sizeof(float));
    std::memcpy(s.invstd + c0, args_.batch_invstd + c0, count * sizeof(float));
    copy_or_fill(s.gamma + c0, args_.gamma != nullptr ? args_.gamma + c0 : nullptr, count, 1.0f);
    copy_or_fill(s.beta + c0, args_.beta != nullptr ? args_.beta + c0 : nullptr, count, 0.0f);
    k_.fold_saved_rows(s.mean + c0, s.invstd + c0, s.gamma + c0, s.beta + c0, count, s.a + c0, s.b + c0);
  }
  // Chunk i's sums of channels [c0, c0 + count), from thread t's copies, cleared first; the share that ends at C
  // owns the padding past it.
  void chunk_sums(std::size_t i, std::size_t t, std::size_t c0, std::size_t count) const {
    const RowTiles::Tile tile = tiles_.tile(i);
    const std::size_t at = tile.chunk * cp_ + c0;
    const std::size_t cleared = c0 + count == c_ ? cp_ - c0 : count;
    std::fill(sum_dy() + at, sum_dy() + at + cleared, 0.0);
    std::fill(sum_dy_xc() + at, sum_dy_xc() + at + cleared, 0.0);
    k_.grad_sums_rows(args_.x + tile.offset + c0, args_.dy + tile.offset + c0,
                      RowWalk{tile.walk.rows, c_, count, tile.walk.fetch}, arrays(t, c0), relu_, sum_dy() + at,
                      sum_dy_xc() + at);
  }
  // Chunks [h.begin + 1, h.end) into chunk h.begin, in order; then chunk `half` into chunk 0.
  void merge_chunks(Block h, std::size_t c0, std::size_t count) const {
    k_.add_rows(sum_dy() + h.begin * cp_ + c0, sum_dy_xc() + h.begin * cp_ + c0, h.end - h.begin, cp_, count);
  }
  void merge_halves(std::size_t half, std::size_t c0, std::size_t count) const {
    k_.add_rows(sum_dy() + c0, sum_dy_xc() + c0, 2, half * cp_, count);
  }
  // dgamma, dbeta and the dx coefficients of channels [c0, c0 + count), c0 a multiple of kMaxLanes, from thread t's
  // copies.
  void finish(std::size_t c0, std::size_t count, std::size_t t) const {
    const Saved s = saved(t);
    float* const dbeta = finished_ + 3 * cp_;
    float* const dgamma = finished_ + 4 * cp_;
    k_.grad_finish_rows(sum_dy() + c0, sum_dy_xc() + c0, s.invstd + c0, s.gamma + c0, count, m_, dbeta + c0,
                        dgamma + c0, finished_ + c0, finished_ + cp_ + c0, finished_ + 2 * cp_ + c0);
    if (args_.dbeta != nullptr) std::memcpy(args_.dbeta + c0, dbeta + c0, count * sizeof(float));
    if (args_.dgamma != nullptr) std::memcpy(args_.dgamma + c0, dgamma + c0, count * sizeof(float));
  }
  // The dx coefficients of every channel from sums over `count` values given by the caller (backward_apply).
  void finish_from(const double* sum_dy_in, const double* sum_dy_xhat, double count) const {
    const Saved s = saved(0);
    for (std::size_t c = 0; c < c_; ++c) {
      const GradScalars gs = grad_scalars(s.gamma[c], s.invstd[c], sum_dy_in[c], sum_dy_xhat[c], count);
      finished_[c] = gs.k_dy;
      finished_[cp_ + c] = gs.mean_dy;
      finished_[2 * cp_ + c] = gs.mean_dy_xhat;
    }
  }
  // The merged sums of channel c (row walks), as the split API returns them.
  GradSums merged(std::size_t c) const { return with_xhat(c, GradSums{sum_dy()[c], sum_dy_xc()[c]}); }
  // dx of chunk i (or of all rows of channels [c0, c0 + count)) from thread t's copies.
  void chunk_apply(std::size_t i, std::size_t t, bool stream) const {
    const RowTiles::Tile tile = tiles_.tile(i);
    k_.grad_input_rows(args_.x + tile.offset, args_.dy + tile.offset, args_.dx + tile.offset, tile.walk, arrays(t, 0),
                       relu_, stream);
  }
  void share_apply(std::size_t c0, std::size_t count, std::size_t t, bool stream) const {
    k_.grad_input_rows(args_.x + c0, args_.dy + c0, args_.dx + c0, RowWalk{v_.row_count, c_, count}, arrays(t, c0),
                       relu_, stream);
  }

 private:
  struct Saved {
    float *mean, *invstd, *gamma, *beta, *a, *b;
  };
  Saved saved(std::size_t t) const {
    float* const at = finished_ + kFinished * cp_ + t * block_;
    return Saved{at, at + cp_, at + 2 * cp_, at + 3 * cp_, at + 4 * cp_, at + 5 * cp_};
  }
  // Thread t's coefficient arrays, from channel c0 on.
  GradCoefficientArrays arrays(std::size_t t, std::size_t c0) const {
    const Saved s = saved(t);
    return GradCoefficientArrays{s.mean + c0,          s.invstd + c0,           s.a + c0,
                                 s.b + c0,             finished_ + c0,          finished_ + cp_ + c0,
                                 finished_ + 2 * cp_ + c0};
  }
  double* sum_dy() const { return sums_; }
  double* sum_dy_xc() const { return sums_ + tiles_.chunks * cp_; }

  const KernelTable& k_;
  const Geometry& g_;
  const View v_;
  const BackwardArgs& args_;
  std::size_t c_ = 0, cp_ = 0, block_ = 0;
  double m_ = 0.0;
  bool relu_ = false;
  RowTiles tiles_{};
  int threads_ = 1;
  double* sums_ = nullptr;     // Σdy' then Σdy'(x − mean), per chunk; chunk 0 ends up holding the merged sums
  float* finished_ = nullptr;  // kFinished arrays, then kSaved arrays per thread
};

simdnorm_status out_of_memory(const char* fn) { return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn); }

// ---- Schedules. With `sink` non-NULL the merged sums of each channel go there instead of dgamma, dbeta and dx
// (simdnorm_backward_reduce). ----

struct Sink {
  double* sum_dy;
  double* sum_dy_xhat;
  void put(std::size_t c, const GradSums& s) const {
    sum_dy[c] = s.dy;
    sum_dy_xhat[c] = s.dy_xc;
  }
};

// NCHW channels that one core holds: both reductions, then dx from the same channel while x and dy are still in the
// core's L2, a group of channels at a time.
void run_channels(const Backward& b, const BackwardArgs& args, const Sink* sink, bool stream) {
  const View& v = b.view();
  const std::size_t group = channel_group(v, 2);
  const RunWalk walk = whole_channel(v);
  for_each_channel_group(v.channels, group, v.elements, [&](std::size_t c0, std::size_t count) {
    for (std::size_t c = c0; c < c0 + count; ++c) {
      const GradSums s = b.channel_sums(c, group_walk(walk, v, 2, c, c0, count));
      if (sink != nullptr) {
        sink->put(c, b.with_xhat(c, s));
        continue;
      }
      const GradSums h = b.with_xhat(c, s);
      b.write_grads(c, h);
      if (args.dx != nullptr) b.channel_apply(c, second_pass(walk), b.dx_coefficients(c, h), stream);
    }
  });
}

// NCHW channels shared by the team: sums of every part, added in part order by every thread, then each thread
// writes dx of its own parts.
simdnorm_status run_shared_channels(const char* fn, const Backward& b, const BackwardArgs& args, const Sink* sink,
                                    bool stream) {
  const View& v = b.view();
  GradSums* const partial = scratch<GradSums>(Slot::kPartials, v.channels * kChannelParts);
  if (!partial) return out_of_memory(fn);
  for_each_shared_channel(
      v.channels, v.elements,
      [&](std::size_t c, std::size_t p, std::size_t last) {
        partial[c * kChannelParts + p] = b.channel_sums(c, channel_part(v, p, last));
      },
      [&](std::size_t c, Block mine, Team /*team*/) {
        GradSums s{0.0, 0.0};
        for (std::size_t p = 0; p < kChannelParts; ++p) {
          s.dy += partial[c * kChannelParts + p].dy;
          s.dy_xc += partial[c * kChannelParts + p].dy_xc;
        }
        const GradSums h = b.with_xhat(c, s);
        if (mine.begin == 0) {  // the per-channel outputs are written once, by the thread holding part 0
          if (sink != nullptr) sink->put(c, h);
          if (sink == nullptr) b.write_grads(c, h);
        }
        if (sink != nullptr || args.dx == nullptr) return;
        const GradCoefficients co = b.dx_coefficients(c, h);
        for (std::size_t p = mine.end; p-- > mine.begin;) {
          b.channel_apply(c, second_pass(channel_part(v, p, p + 1)), co, stream);
        }
      });
  return SIMDNORM_SUCCESS;
}

// NHWC rows: chunks, their sums added in two halves (parallel_row_passes), or shares of whole channels for each
// thread (splits_channels); a tensor of one chunk on the calling thread.
void run_rows(const Backward& b, const BackwardArgs& args, const Sink* sink, bool stream) {
  const std::size_t C = b.view().channels;
  const RowTiles& rt = b.tiles();
  const bool apply = sink == nullptr && args.dx != nullptr;
  auto finish = [&](std::size_t c0, std::size_t count, std::size_t t) {
    if (sink == nullptr) {
      b.finish(c0, count, t);
      return;
    }
    for (std::size_t c = c0; c < c0 + count; ++c) sink->put(c, b.merged(c));
  };
  if (rt.chunks == 1) {
    b.prepare(0, 0, C);
    b.chunk_sums(0, 0, 0, C);
    finish(0, C, 0);
    if (apply) b.chunk_apply(0, 0, stream);
    return;
  }
  const std::size_t half = rt.chunks / 2;
  if (splits_channels(b.view(), b.geometry(), b.threads(), args.dx == args.dy, args.dx != nullptr ? 3 : 2)) {
    for_each_channel_share(C, b.threads(), [&](std::size_t c0, std::size_t count, std::size_t t) {
      b.prepare(t, c0, count);
      for (std::size_t i = 0; i < rt.chunks; ++i) b.chunk_sums(i, t, c0, count);
      b.merge_chunks(Block{0, half}, c0, count);
      b.merge_chunks(Block{half, rt.chunks}, c0, count);
      b.merge_halves(half, c0, count);
      finish(c0, count, t);
      if (apply) b.share_apply(c0, count, t, stream);
    });
    return;
  }
  parallel_row_passes(
      exchanging_team_size(rt.chunks, b.geometry(), false), rt.chunks, C,
      [&](std::size_t t) { b.prepare(t, 0, C); },
      [&](std::size_t i, std::size_t t) { b.chunk_sums(i, t, 0, C); },
      [&](Block h, std::size_t c0, std::size_t count) { b.merge_chunks(h, c0, count); },
      [&](std::size_t h, std::size_t c0, std::size_t count, std::size_t t) {
        b.merge_halves(h, c0, count);
        finish(c0, count, t);
      },
      [&](std::size_t i, std::size_t t) {
        if (apply) b.chunk_apply(i, t, stream);
      });
}

simdnorm_status run_schedule(const char* fn, const Geometry& g, const BackwardArgs& args, const Sink* sink) {
  Backward b(g, args);
  const bool stream = sink == nullptr && args.dx != nullptr && streams(args.dy, args.dx, g, 3);
  if (!b.view().rows) {
    if (shares_channels(b.view(), g, 2)) return run_shared_channels(fn, b, args, sink, stream);
    run_channels(b, args, sink, stream);
    return SIMDNORM_SUCCESS;
  }
  if (!b.allocate_rows(true)) return out_of_memory(fn);
  run_rows(b, args, sink, stream);
  return SIMDNORM_SUCCESS;
}

}  // namespace

simdnorm_status run_backward(const char* fn, const Geometry& g, const BackwardArgs& args) {
  return run_schedule(fn, g, args, nullptr);
}

simdnorm_status run_backward_reduce(const char* fn, const Geometry& g, const ReduceArgs& args) {
  const Sink sink{args.sum_dy, args.sum_dy_xhat};
  return run_schedule(fn, g, args.backward, &sink);
}

simdnorm_status run_backward_apply(const char* fn, const Geometry& g, const ApplyArgs& args) {
  const BackwardArgs& a = args.backward;
  Backward b(g, a);
  const View& v = b.view();
  const bool stream = streams(a.dy, a.dx, g, 3);
  if (!v.rows) {
    const std::size_t chunks = run_chunks(v);
    parallel_for(v.channels * chunks, g.elements, [&](std::size_t i) {
      const std::size_t c = i / chunks;
      const GradCoefficients co = b.coefficients(c, args.sum_dy[c], args.sum_dy_xhat[c], args.count);
      b.channel_apply(c, run_chunk(v, i % chunks, chunks), co, stream);
    });
    return SIMDNORM_SUCCESS;
  }
  if (!b.allocate_rows(false)) return out_of_memory(fn);
  b.prepare(0, 0, v.channels);
  b.finish_from(args.sum_dy, args.sum_dy_xhat, args.count);
  parallel_for(b.tiles().chunks, g.elements, [&](std::size_t i) { b.chunk_apply(i, 0, stream); });
  return SIMDNORM_SUCCESS;
}

}  // namespace simdnorm
