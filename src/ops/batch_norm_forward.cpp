// Batch norm forward training, as phases: moments (per channel, per piece of the partition), merge (pieces in a
// fixed order), center (the mean in double, a channel whose float lanes overflowed recomputed in double), finish
// (mean and invstd rounded, a and b), publish (the caller's per-channel outputs and running statistics), normalise
// (y = a*x + b). The fused call runs them piece by piece while the data is in cache; simdnorm_moments and
// simdnorm_finish_moments run the same phases, on the same pieces in the same order, so they give the same bits.
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/channel_math.hpp"
#include "core/scratch.hpp"
#include "kernels/table.hpp"
#include "core/moments.hpp"
#include "ops/batch_norm.hpp"
#include "parallel/partition.hpp"

namespace simdnorm {
namespace {

struct Baseline {};  // instantiation tag of the shared arithmetic templates in baseline code

// Calls visit(value) for every value of channel c, in memory order of the layout.
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

// The state of one forward call: its partition, its scratch, and the phases as member functions.
class Forward {
 public:
  Forward(const Geometry& g, const float* x) : k_(active_kernels()), g_(g), v_(make_view(g)), x_(x) {
    c_ = v_.channels;
    cp_ = padded_channels(c_);
    m_ = static_cast<double>(v_.per_channel);
  }

  // Scratch of the moments phases (and, with `normalise`, of finish and normalise); false when it cannot be had.
  bool allocate(bool normalise) {
    shift_ = per_channel_scratch<float>(Slot::kShift, 1, c_, cp_);
    mean_d_ = per_channel_scratch<double>(Slot::kMeanD, 1, c_, cp_);
    if (v_.rows) {
      tiles_ = row_tiles(v_, beyond_cache(g_, 2));
      sums_ = scratch<double>(Slot::kSums, tiles_.chunks * cp_);
      m2_ = scratch<double>(Slot::kM2, tiles_.chunks * cp_);
    } else {
      sums_ = per_channel_scratch<double>(Slot::kSums, 1, c_, cp_);
      m2_ = per_channel_scratch<double>(Slot::kM2, 1, c_, cp_);
      if (shares_channels(v_, g_, 1)) partials_ = scratch<Moments>(Slot::kPartials, c_ * kChannelParts);
    }
    if (!shift_ || !mean_d_ || !sums_ || !m2_ || (!v_.rows && shares_channels(v_, g_, 1) && !partials_)) return false;
    if (v_.rows) {
      std::memcpy(shift_, x_, c_ * sizeof(float));  // the first row
    } else {
      for (std::size_t c = 0; c < c_; ++c) shift_[c] = x_[c * v_.channel_stride];
    }
    if (!normalise) return true;
    stats_ = per_channel_scratch<float>(Slot::kStatistics, 2, c_, cp_);
    params_ = per_channel_scratch<float>(Slot::kParameters, 2, c_, cp_);
    coeffs_ = per_channel_scratch<float>(Slot::kCoefficients, 2, c_, cp_);
    return stats_ && params_ && coeffs_;
  }

  // The caller's arrays this call writes besides y (forward training), or nothing (the moments alone).
  void set_outputs(const TrainingArgs* args) { args_ = args; }

  // ---- moments, merge and center ----

  void channel_moments(std::size_t c, const RunWalk& walk) {
    const Moments moments = k_.moments_run(x_ + c * v_.channel_stride, walk, shift_[c]);
    sums_[c] = moments.sum;
    m2_[c] = moments.m2;
  }
  void part_moments(std::size_t c, std::size_t p, std::size_t last) {
    partials_[c * kChannelParts + p] = k_.moments_run(x_ + c * v_.channel_stride, channel_part(v_, p, last), shift_[c]);
  }
  // The parts of a shared channel, merged in part order (by one thread: see run_shared_channels).
  void merge_parts(std::size_t c) {
    Moments total{0.0, 0.0, 0.0};
    for (std::size_t p = 0; p < kChannelParts; ++p) merge_moments<Baseline>(total, partials_[c * kChannelParts + p]);
    sums_[c] = total.sum;
    m2_[c] = total.m2;
  }
  void chunk_moments(std::size_t i) {
    const RowTiles::Tile t = tiles_.tile(i);
    k_.moments_rows(x_ + t.offset, t.walk, shift_, sums_ + t.chunk * cp_, m2_ + t.chunk * cp_);
  }
  // Chunks [h.begin + 1, h.end) into chunk h.begin, in order; then chunk `half` into chunk 0.
  void merge_chunks(Block h, std::size_t c0, std::size_t count) {
    const std::size_t at = h.begin * cp_ + c0;
    for (std::size_t i = h.begin + 1; i < h.end; ++i) {
      k_.merge_rows(sums_ + at, m2_ + at, sums_ + i * cp_ + c0, m2_ + i * cp_ + c0, count,
                    static_cast<double>(tiles_.first_row(i) - tiles_.first_row(h.begin)),
                    static_cast<double>(tiles_.rows_of(i)));
    }
  }
  void merge_halves(std::size_t half, std::size_t c0, std::size_t count) {
    k_.merge_rows(sums_ + c0, m2_ + c0, sums_ + half * cp_ + c0, m2_ + half * cp_ + c0, count,
                  static_cast<double>(tiles_.first_row(half)), static_cast<double>(v_.row_count - tiles_.first_row(half)));
  }

  // mean_d of channels [c0, c0 + count), vectorised: whole vectors from c0, so callers pass c0 a multiple of
  // kMaxLanes and own the channels up to the next multiple (or the padding).
  void center(std::size_t c0, std::size_t count) {
    k_.center_rows(sums_ + c0, shift_ + c0, count, m_, mean_d_ + c0);
    if (all_finite(mean_d_ + c0, m2_ + c0, count)) return;
    for (std::size_t c = c0; c < c0 + count; ++c) recompute_if_overflowed(c);
  }
  // The same for one channel, in scalar (the same division and addition as center_rows).
  void center_channel(std::size_t c) {
    mean_d_[c] = static_cast<double>(shift_[c]) + sums_[c] / m_;
    recompute_if_overflowed(c);
  }

  // ---- finish, publish, normalise ----

  // Mean, invstd, a and b of channels [c0, c0 + count), vectorised (see center). gamma and beta are copied here, by
  // the thread that finishes the channels, which alone reads them.
  void finish(std::size_t c0, std::size_t count) {
    copy_or_fill(gamma() + c0, args_->gamma != nullptr ? args_->gamma + c0 : nullptr, count, 1.0f);
    copy_or_fill(beta() + c0, args_->beta != nullptr ? args_->beta + c0 : nullptr, count, 0.0f);
    k_.stats_rows(mean_d_ + c0, m2_ + c0, gamma() + c0, beta() + c0, count, m_, args_->eps, mean_f() + c0,
                  invstd_f() + c0, a() + c0, b() + c0);
  }
  void finish_channel(std::size_t c) {
    const RoundedStats st = round_stats(mean_d_[c], m2_[c], m_, args_->eps);
    const Coefficients co = fold_coefficients(args_->gamma, args_->beta, c, st.mean, st.invstd);
    mean_f()[c] = st.mean;
    invstd_f()[c] = st.invstd;
    a()[c] = co.a;
    b()[c] = co.b;
  }
  // The caller's per-channel outputs of channels [c0, c0 + count), written by the thread that finished them, from its
  // own cache. Channels whose statistics are not finite keep their running statistics (update_running).
  void publish(std::size_t c0, std::size_t count) {
    if (args_->batch_mean != nullptr) std::memcpy(args_->batch_mean + c0, mean_f() + c0, count * sizeof(float));
    if (args_->batch_invstd != nullptr) std::memcpy(args_->batch_invstd + c0, invstd_f() + c0, count * sizeof(float));
    if (args_->running_mean != nullptr) {
      k_.update_running(mean_d_ + c0, m2_ + c0, count, m_, args_->momentum, args_->running_mean + c0,
                        args_->running_var + c0);
    }
  }
  void normalise_channel(std::size_t c, const RunWalk& walk, bool stream) {
    const std::size_t at = c * v_.channel_stride;
    k_.affine_run(x_ + at, args_->y + at, second_pass(walk), a()[c], b()[c], relu(), stream);
  }
  void normalise_chunk(std::size_t i, bool stream) {
    const RowTiles::Tile t = tiles_.tile(i);
    k_.affine_rows(x_ + t.offset, args_->y + t.offset, t.walk, a(), b(), relu(), stream);
  }

  // ---- what the schedules need to know ----

  const View& view() const { return v_; }
  const Geometry& geometry() const { return g_; }
  const RowTiles& tiles() const { return tiles_; }
  bool non_finite() const { return non_finite_.load(std::memory_order_relaxed); }
  const double* mean_d() const { return mean_d_; }
  const double* m2() const { return m2_; }

 private:
  // A channel whose float lanes overflowed on finite data (|x - shift| near 1e19 and beyond: squares past FLT_MAX) is
  // recomputed in double, two passes, so that every variance double can hold comes out right; non-finite data stays
  // non-finite, and is flagged.
  void recompute_if_overflowed(std::size_t c) {
    if (std::isfinite(mean_d_[c]) && std::isfinite(m2_[c])) return;
    const ExactMoments exact =
        two_pass_moments([&](const auto& visit) { for_each_value(x_, v_, c, visit); }, m_);
    mean_d_[c] = exact.mean;
    m2_[c] = exact.m2;
    if (!std::isfinite(exact.mean) || !std::isfinite(exact.m2)) non_finite_.store(true, std::memory_order_relaxed);
  }
  bool relu() const { return (args_->flags & SIMDNORM_FUSE_RELU) != 0u; }
  float* mean_f() const { return stats_; }
  float* invstd_f() const { return stats_ + cp_; }
  float* gamma() const { return params_; }
  float* beta() const { return params_ + cp_; }
  float* a() const { return coeffs_; }
  float* b() const { return coeffs_ + cp_; }

  const KernelTable& k_;
  const Geometry& g_;
  const View v_;
  const float* const x_;
  std::size_t c_ = 0, cp_ = 0;
  double m_ = 0.0;
  RowTiles tiles_{};
  const TrainingArgs* args_ = nullptr;
  float* shift_ = nullptr;
  double* sums_ = nullptr;  // per chunk of rows for row walks; chunk 0 ends up holding the merged moments
  double* m2_ = nullptr;
  double* mean_d_ = nullptr;
  Moments* partials_ = nullptr;
  float* stats_ = nullptr;   // mean_f, invstd_f
  float* params_ = nullptr;  // gamma, beta
  float* coeffs_ = nullptr;  // a, b
  std::atomic<bool> non_finite_{false};
};

// ---- Schedules. `normalise` runs finish, publish and normalise after the moments of each piece (forward training);
// without it, only the moments, merged and centred (simdnorm_moments). ----

// NCHW channels that one core holds: statistics, then normalisation of the same channels while they are still in the
// core's L2, a group at a time. Grouped short channels have their per-channel arithmetic vectorised; a long
// channel's, in scalar, costs nothing next to its data.
void run_channels(Forward& f, bool normalise, bool stream) {
  const View& v = f.view();
  const std::size_t group = channel_group(v, 1);
  const RunWalk walk = whole_channel(v);
  // update_running reads whole vectors of statistics from c0 (publish): groups that are not a whole number of the
  // widest vectors would read those of channels another thread is finishing, so they publish after the join.
  const bool publish_in_groups = group % kMaxLanes == 0;
  const bool short_channels = groups_are_short(v);
  for_each_channel_group(v.channels, group, v.elements, [&](std::size_t c0, std::size_t count) {
    for (std::size_t c = c0; c < c0 + count; ++c) f.channel_moments(c, group_walk(walk, v, 1, c, c0, count));
    if (short_channels) {  // groups of kChannelGroup (channel_group)
      f.center(c0, count);
      if (normalise) f.finish(c0, count);
    } else {
      for (std::size_t c = c0; c < c0 + count; ++c) {
        f.center_channel(c);
        if (normalise) f.finish_channel(c);
      }
    }
    if (!normalise) return;
    if (publish_in_groups) f.publish(c0, count);
    for (std::size_t c = c0; c < c0 + count; ++c) f.normalise_channel(c, walk, stream);
  });
  if (normalise && !publish_in_groups) f.publish(0, v.channels);
}

// NCHW channels shared by the team: moments of every part; the thread holding part 0 merges them in part order and
// finishes the channel; after a barrier every thread normalises its own parts.
void run_shared_channels(Forward& f, bool normalise, bool stream) {
  const View& v = f.view();
  for_each_shared_channel(
      v.channels, v.elements, [&](std::size_t c, std::size_t p, std::size_t last) { f.part_moments(c, p, last); },
      [&](std::size_t c, Block mine, Team team) {
        if (mine.begin == 0) {
          f.merge_parts(c);
          f.center_channel(c);
          if (normalise) {
            f.finish_channel(c);
            f.publish(c, 1);
          }
        }
        if (!normalise) return;
        // The others wait for a and b, and, in place, for a recomputed channel's second read before writing it.
        sync(team);
        for (std::size_t p = mine.end; p-- > mine.begin;) f.normalise_channel(c, channel_part(v, p, p + 1), stream);
      });
}

// NHWC rows: chunks of rows, their partials merged in two halves, then normalised (parallel_row_passes); a tensor
// of one chunk runs on the calling thread, normalised right after its statistics while it is in cache.
void run_rows(Forward& f, bool normalise, bool stream) {
  const std::size_t C = f.view().channels;
  const RowTiles& rt = f.tiles();
  auto finish = [&](std::size_t c0, std::size_t count) {
    f.center(c0, count);
    if (!normalise) return;
    f.finish(c0, count);
    f.publish(c0, count);
  };
  if (rt.chunks == 1) {
    f.chunk_moments(0);
    finish(0, C);
    if (normalise) f.normalise_chunk(0, stream);
    return;
  }
  parallel_row_passes(
      exchanging_team_size(rt.chunks, f.geometry(), true), rt.chunks, C, [](std::size_t) {},
      [&](std::size_t i, std::size_t) { f.chunk_moments(i); },
      [&](Block h, std::size_t c0, std::size_t count) { f.merge_chunks(h, c0, count); },
      [&](std::size_t half, std::size_t c0, std::size_t count, std::size_t) {
        f.merge_halves(half, c0, count);
        finish(c0, count);
      },
      [&](std::size_t i, std::size_t) {
        if (normalise) f.normalise_chunk(i, stream);
      });
}

void run_schedule(Forward& f, bool normalise, bool stream) {
  if (f.view().rows) {
    run_rows(f, normalise, stream);
  } else if (shares_channels(f.view(), f.geometry(), 1)) {
    run_shared_channels(f, normalise, stream);
  } else {
    run_channels(f, normalise, stream);
  }
}

simdnorm_status out_of_memory(const char* fn) { return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn); }

// SIMDNORM_NON_FINITE naming the first channel whose mean or m2 is not finite (`cause` says why), or success.
simdnorm_status non_finite_status(const char* fn, const double* mean, const double* m2, std::size_t c,
                                  const char* cause) {
  for (std::size_t i = 0; i < c; ++i) {
    if (std::isfinite(mean[i]) && std::isfinite(m2[i])) continue;
    return fail(SIMDNORM_NON_FINITE,
                "%s: the statistics of channel %zu are not finite (%s); its running statistics were left unchanged", fn,
                i, cause);
  }
  return SIMDNORM_SUCCESS;
}

}  // namespace

simdnorm_status run_forward_training(const char* fn, const Geometry& g, const TrainingArgs& args) {
  Forward f(g, args.x);
  if (!f.allocate(true)) return out_of_memory(fn);
  f.set_outputs(&args);
  run_schedule(f, true, streams(args.x, args.y, g, 2));
  return f.non_finite() ? non_finite_status(fn, f.mean_d(), f.m2(), g.c, "NaN or Inf in x") : SIMDNORM_SUCCESS;
}

simdnorm_status run_moments(const char* fn, const Geometry& g, const MomentsArgs& args) {
  Forward f(g, args.x);
  if (!f.allocate(false)) return out_of_memory(fn);
  run_schedule(f, false, false);
  std::memcpy(args.mean, f.mean_d(), g.c * sizeof(double));
  std::memcpy(args.m2, f.m2(), g.c * sizeof(double));
  return SIMDNORM_SUCCESS;
}

simdnorm_status run_finish_moments(const char* fn, const FinishArgs& args) {
  const KernelTable& k = active_kernels();
  const std::size_t c = args.c, cp = padded_channels(c);
  double* const mean = per_channel_scratch<double>(Slot::kMeanD, 1, c, cp);
  double* const m2 = per_channel_scratch<double>(Slot::kM2, 1, c, cp);
  float* const stats = per_channel_scratch<float>(Slot::kStatistics, 2, c, cp);
  float* const params = per_channel_scratch<float>(Slot::kParameters, 2, c, cp);
  float* const coeffs = per_channel_scratch<float>(Slot::kCoefficients, 2, c, cp);
  if (!mean || !m2 || !stats || !params || !coeffs) return out_of_memory(fn);
  std::memcpy(mean, args.mean, c * sizeof(double));
  std::memcpy(m2, args.m2, c * sizeof(double));
  copy_or_fill(params, nullptr, c, 1.0f);  // a and b are not wanted here: any finite gamma and beta do
  copy_or_fill(params + cp, nullptr, c, 0.0f);
  k.stats_rows(mean, m2, params, params + cp, c, args.count, args.eps, stats, stats + cp, coeffs, coeffs + cp);
  if (args.batch_mean != nullptr) std::memcpy(args.batch_mean, stats, c * sizeof(float));
  if (args.batch_invstd != nullptr) std::memcpy(args.batch_invstd, stats + cp, c * sizeof(float));
  if (args.running_mean != nullptr) {
    k.update_running(mean, m2, c, args.count, args.momentum, args.running_mean, args.running_var);
  }
  return non_finite_status(fn, mean, m2, c, "NaN or Inf in its moments");
}

simdnorm_status run_merge_moments(const MergeArgs& args) {
  for (std::size_t j = 0; j < args.c; ++j) {
    double total = 0.0, mean = 0.0, m2 = 0.0;
    for (std::size_t p = 0; p < args.parts; ++p) {
      const double n = args.counts[p];
      if (n == 0.0) continue;
      const double part_mean = args.means[p * args.c + j], part_m2 = args.m2s[p * args.c + j];
      if (total == 0.0) {
        mean = part_mean;
        m2 = part_m2;
      } else {
        chan_merge_means<Baseline>(mean, m2, total, part_mean, part_m2, n);
      }
      total += n;
    }
    args.mean[j] = mean;  // after every read of channel j: mean and m2 may alias row 0
    args.m2[j] = m2;
  }
  double total = 0.0;
  for (std::size_t p = 0; p < args.parts; ++p) total += args.counts[p];
  *args.total = total;
  return SIMDNORM_SUCCESS;
}

}  // namespace simdnorm
