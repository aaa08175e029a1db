// LayerNorm and RMSNorm: batch norm's phases over the rows of a matrix. Forward: moments of a row (moments_run, the
// Welford kernel), its statistics (round_stats), normalise (normalize_span), the row normalised right after its
// moments while it is in cache. Backward: reduce (row_grad_sums: the row's sums, and the column sums of dgamma and
// dbeta into its part's arrays), the row's coefficients, apply (row_grad_input: batch norm's dx formula with
// k_in = gamma). Rows are split over threads; a row longer than row_chunk_floats() is cut into fixed chunks that the
// team shares, with a barrier between a row's two passes. Pieces depend on the shape and the caches only, and every
// merge runs in a fixed order, so the results are the same for every thread count.
#include <cmath>

#include "core/channel_math.hpp"
#include "core/moments.hpp"
#include "core/scratch.hpp"
#include "kernels/table.hpp"
#include "ops/norms.hpp"
#include "parallel/partition.hpp"

namespace simdnorm {
namespace {

struct Baseline {};  // instantiation tag of the shared arithmetic templates in baseline code

// The shape of a call and the pieces it is cut into.
struct Rows {
  std::size_t rows, cols;
  Geometry g;                 // rows x 1 x cols, for the partition's shape predicates
  std::size_t chunk, chunks;  // floats per chunk of a row, chunks per row (1: the row is one piece)

  // chunk_floats: the chunk length (row_chunk_floats(), or row_few_chunk_floats() for few rows).
  Rows(std::size_t r, std::size_t c, std::size_t chunk_floats) : rows(r), cols(c) {
    g.n = r;
    g.c = 1;
    g.spatial = c;
    g.elements = r * c;
    g.per_channel = r * c;
    chunk = c > chunk_floats ? chunk_floats : c;
    chunks = (c + chunk - 1) / chunk;
  }
  std::size_t begin(std::size_t k) const { return k * chunk; }
  std::size_t end(std::size_t k) const { return k + 1 == chunks ? cols : (k + 1) * chunk; }
};

// The mean and M2 of a row in double from its moments relative to `shift`; lanes that overflowed on finite data are
// recomputed in double from the row.
ExactMoments centre(const Moments& m, float shift, const float* row, std::size_t cols) {
  const double n = static_cast<double>(cols);
  const ExactMoments fast{static_cast<double>(shift) + m.sum / n, m.m2};
  if (std::isfinite(fast.mean) && std::isfinite(fast.m2)) return fast;
  return two_pass_moments(
      [&](const auto& visit) {
        for (std::size_t j = 0; j < cols; ++j) visit(row[j]);
      },
      n);
}

// The row scalars: LayerNorm's mean (its float and the rest) and rstd = 1/sqrt(var + eps); RMSNorm's
// rstd = 1/sqrt(mean(x²) + eps), with mean(x²) = var + mean² formed in double (it holds the squares of any float).
RowScalars row_scalars(RowNorm norm, const ExactMoments& m, std::size_t cols, float eps) {
  const double n = static_cast<double>(cols);
  if (norm == RowNorm::kRms) {
    const double mean_square = m.m2 / n + m.mean * m.mean;
    return RowScalars{0.0f, 0.0f, static_cast<float>(1.0 / std::sqrt(mean_square + static_cast<double>(eps)))};
  }
  const RoundedStats s = round_stats(m.mean, m.m2, n, eps);
  return RowScalars{s.mean, static_cast<float>(m.mean - static_cast<double>(s.mean)), s.invstd};
}

// The walk of columns [b, e) of a row, for moments_run.
RunWalk row_walk(const Rows& shape, std::size_t b, std::size_t e) {
  RunWalk walk{};
  walk.stride = shape.cols;
  walk.len = shape.cols;
  walk.begin = b;
  walk.end = e;
  return walk;
}

class Forward {
 public:
  Forward(RowNorm norm, const RowNormArgs& args)
      : k_(active_kernels()), norm_(norm), a_(args), shape_(args.rows, args.cols, row_chunk_floats()),
        stream_(streams(args.x, args.y, shape_.g, 2)), fetch_(beyond_cache(shape_.g, 1)) {}

  simdnorm_status run(const char* fn) {
    if (shape_.chunks == 1) {
      for_each_block(shape_.rows, shape_.g.elements, [&](Block mine, Team /*team*/) {
        const std::size_t tile = a_.gamma == nullptr && a_.beta == nullptr ? 1 : row_tile_rows(shape_.cols);
        for (std::size_t r = mine.begin; r < mine.end; r += tile) {
          tile_of_rows(r, mine.end - r < tile ? mine.end - r : tile, mine.end);
        }
      });
      return SIMDNORM_SUCCESS;
    }
    Moments* parts = scratch<Moments>(Slot::kRowSums, shape_.rows * shape_.chunks);
    if (parts == nullptr) return fail(SIMDNORM_OUT_OF_MEMORY, "%s: out of memory for the rows' chunks", fn);
    shared_rows(parts);
    return SIMDNORM_SUCCESS;
  }

 private:
  // Rows [r0, r0 + count) (a tile, row_tile_rows): the moments and statistics of each row, reading the next row
  // ahead beyond the cache; then the normalisation in blocks of columns, each block over every row of the tile, so
  // that the block of gamma and beta stays in L1 while the rows come from L2. (Row by row, gamma and beta went
  // through L1 with every row: 16384x4096 in place, 2 threads, 1.25-1.33x a streaming pass; tiled, 1.02-1.07x.)
  void tile_of_rows(std::size_t r0, std::size_t count, std::size_t end) {
    RowScalars s[kMaxRowTile];
    for (std::size_t i = 0; i < count; ++i) {
      const float* xr = a_.x + (r0 + i) * shape_.cols;
      RunWalk walk = row_walk(shape_, 0, shape_.cols);
      if (fetch_ && r0 + i + 1 < end) walk.fetch_end = 2 * shape_.cols;  // the next row, inside this block
      const Moments m = k_.moments_run(xr, walk, xr[0]);
      s[i] = row_scalars(norm_, centre(m, xr[0], xr, shape_.cols), shape_.cols, a_.eps);
      publish(r0 + i, s[i]);
    }
    const std::size_t block = row_column_block();
    for (std::size_t b = 0; b < shape_.cols; b += block) {
      const std::size_t len = shape_.cols - b < block ? shape_.cols - b : block;
      for (std::size_t i = 0; i < count; ++i) {
        const std::size_t o = (r0 + i) * shape_.cols + b;
        k_.normalize_span(a_.x + o, a_.y + o, len, s[i], at(a_.gamma, b), at(a_.beta, b), stream_);
      }
    }
  }

  // Long rows, one at a time, their chunks shared by the team: the moments of each chunk, then (after the barrier)
  // their merge in chunk order on every thread, and each thread normalises its own chunks.
  void shared_rows(Moments* parts) {
    const std::size_t chunks = shape_.chunks;
    for_each_block(chunks, shape_.g.elements, [&](Block mine, Team team) {
      for (std::size_t r = 0; r < shape_.rows; ++r) {
        const float* xr = a_.x + r * shape_.cols;
        const float shift = xr[0];  // read before the barrier: in place, the row is written after it
        for (std::size_t k = mine.begin; k < mine.end; ++k) {
          parts[r * chunks + k] = k_.moments_run(xr, row_walk(shape_, shape_.begin(k), shape_.end(k)), shift);
        }
        sync(team);  // parts[r] is written once and only read from here on: no barrier after the row
        Moments total{0.0, 0.0, 0.0};
        for (std::size_t k = 0; k < chunks; ++k) merge_moments<Baseline>(total, parts[r * chunks + k]);
        const double n = static_cast<double>(shape_.cols);
        ExactMoments m{static_cast<double>(shift) + total.sum / n, total.m2};
        if (!std::isfinite(m.mean) || !std::isfinite(m.m2)) {
          m = centre(total, shift, xr, shape_.cols);  // every thread comes here alike (the same merged bits)
          sync(team);                                  // before anyone writes the row in place
        }
        const RowScalars s = row_scalars(norm_, m, shape_.cols, a_.eps);
        if (team.thread == 0) publish(r, s);
        for (std::size_t k = mine.begin; k < mine.end; ++k) {
          const std::size_t b = shape_.begin(k);
          k_.normalize_span(xr + b, a_.y + r * shape_.cols + b, shape_.end(k) - b, s, at(a_.gamma, b),
                            at(a_.beta, b), stream_);
        }
      }
    });
  }

  // The caller's mean and rstd of row r.
  void publish(std::size_t r, const RowScalars& s) const {
    if (a_.mean != nullptr) a_.mean[r] = s.mean;
    if (a_.rstd != nullptr) a_.rstd[r] = s.rstd;
  }
  static const float* at(const float* p, std::size_t offset) { return p != nullptr ? p + offset : nullptr; }

  const KernelTable& k_;
  const RowNorm norm_;
  const RowNormArgs& a_;
  const Rows shape_;
  const bool stream_;
  const bool fetch_;
};

class Backward {
 public:
  Backward(const RowNormBackwardArgs& args)
      : k_(active_kernels()), a_(args), shape_(args.rows, args.cols, chunk_floats(args)),
        stream_(args.dx != nullptr && streams(args.dy, args.dx, shape_.g, 3)),
        fetch_(beyond_cache(shape_.g, 2)),
        columns_(args.dgamma != nullptr || args.dbeta != nullptr) {}

  simdnorm_status run(const char* fn) {
    const std::size_t cp = padded_channels(shape_.cols);
    const bool shared = shape_.chunks > 1;
    const std::size_t parts = columns_ && !shared ? row_parts(shape_.rows, shape_.cols) : 1;
    // Per part: two double arrays of column sums, and two float arrays that gather kFlushRows rows between flushes.
    double* sums = columns_ ? scratch<double>(Slot::kRowPartials, 3 * parts * cp) : nullptr;
    double* row_sums = shared ? scratch<double>(Slot::kRowSums, 2 * shape_.rows * shape_.chunks) : nullptr;
    if ((columns_ && sums == nullptr) || (shared && row_sums == nullptr)) {
      return fail(SIMDNORM_OUT_OF_MEMORY, "%s: out of memory for the partial sums", fn);
    }
    Columns cols{};
    if (columns_) {
      clear_padding(sums, 2 * parts, shape_.cols, cp);  // add_rows reads whole vectors; every column is set
      cols = Columns{sums, sums + parts * cp, reinterpret_cast<float*>(sums + 2 * parts * cp), cp};
    }
    if (shared) {
      shared_rows(cols, row_sums);
    } else {
      const std::size_t items = columns_ ? parts : shape_.rows;
      for_each_block(items, shape_.g.elements, [&](Block mine, Team /*team*/) {
        const std::size_t end = shape_.rows * mine.end / items;
        for (std::size_t p = mine.begin; p < mine.end; ++p) {
          const std::size_t r0 = shape_.rows * p / items, r1 = shape_.rows * (p + 1) / items;
          const Columns part = cols.part(p);
          for (std::size_t r = r0; r < r1; ++r) {
            const Step step = step_of(r - r0, r1 - r0);
            row(r, r + 1 < end, part, step.set_gather);
            if (columns_ && step.flush) part.flush(0, shape_.cols, step.first_flush);
          }
        }
      });
    }
    if (columns_) finish_columns(cols, parts);
    return SIMDNORM_SUCCESS;
  }

 private:
  // With dgamma or dbeta, fewer rows than two parts take would run on one thread: their columns are shared instead,
  // in chunks fixed by the shape (row_few_chunk_floats), as long rows are.
  static std::size_t chunk_floats(const RowNormBackwardArgs& args) {
    const bool columns = args.dgamma != nullptr || args.dbeta != nullptr;
    const bool few = columns && row_parts(args.rows, args.cols) == 1;
    return few ? row_few_chunk_floats(args.rows, args.cols) : row_chunk_floats();
  }

  // The column sums of dgamma and dbeta gather kFlushRows rows in float (as batch norm's sums gather a block of
  // vectors), then are added into double: adding every row into double cost more than the rest of the backward pass.
  static constexpr std::size_t kFlushRows = 8;
  // For row i of `count` rows that share column sums: whether it starts a gather (sets the float sums rather than
  // adding to them), whether they are flushed after it, and whether that flush is the first (sets the doubles).
  struct Step {
    bool set_gather, flush, first_flush;
  };
  static Step step_of(std::size_t i, std::size_t count) {
    return Step{i % kFlushRows == 0, i % kFlushRows == kFlushRows - 1 || i + 1 == count, i < kFlushRows};
  }
  struct Columns {
    double *dy, *dy_xhat;  // padded arrays, part p at + p*stride
    float* gather;         // per part: dy at + 2*p*stride, dy*xhat at + (2*p + 1)*stride
    std::size_t stride;

    Columns part(std::size_t p) const {
      if (dy == nullptr) return Columns{};
      return Columns{dy + p * stride, dy_xhat + p * stride, gather + 2 * p * stride, stride};
    }
    float* gather_dy() const { return gather; }
    float* gather_dy_xhat() const { return gather != nullptr ? gather + stride : nullptr; }
    // Adds the gathered columns [b, e) into the double sums (sets them, the first time).
    void flush(std::size_t b, std::size_t e, bool first) const {
      const float* g1 = gather_dy();
      const float* g2 = gather_dy_xhat();
      for (std::size_t j = b; j < e; ++j) {
        dy[j] = (first ? 0.0 : dy[j]) + static_cast<double>(g1[j]);
        dy_xhat[j] = (first ? 0.0 : dy_xhat[j]) + static_cast<double>(g2[j]);
      }
    }
  };

  RowScalars saved(std::size_t r) const {
    return RowScalars{a_.mean != nullptr ? a_.mean[r] : 0.0f, 0.0f, a_.rstd[r]};
  }
  // The row's coefficients from its sums Σg and Σg*xhat: mean(g) (0 for RMSNorm, whose dx has no such term) and
  // mean(g*xhat), in double, each rounded once.
  void coefficients(RowScalars& s, double sum_g, double sum_g_xhat) const {
    const double n = static_cast<double>(shape_.cols);
    s.mean_g = a_.mean != nullptr ? static_cast<float>(sum_g / n) : 0.0f;
    s.mean_g_xhat = static_cast<float>(sum_g_xhat / n);
  }

  // A row that is one piece: its sums (and its columns' into the part's arrays), then dx while it is in cache.
  void row(std::size_t r, bool next, const Columns& part, bool set_gather) const {
    const std::size_t o = r * shape_.cols;
    RowScalars s = saved(r);
    double sums[2];
    k_.row_grad_sums(a_.x + o, a_.dy + o, shape_.cols, s, a_.gamma, sums, part.gather_dy(), part.gather_dy_xhat(),
                     set_gather);
    if (a_.dx == nullptr) return;
    coefficients(s, sums[0], sums[1]);
    k_.row_grad_input(a_.x + o, a_.dy + o, a_.dx + o, shape_.cols, s, a_.gamma, next && fetch_ ? shape_.cols : 0,
                      stream_);
  }

  // Long rows, one at a time, their chunks shared by the team as in the forward pass. Each thread owns its chunks'
  // columns, so the column sums need no parts: every column adds its rows in row order.
  void shared_rows(const Columns& cols, double* row_sums) const {
    const std::size_t chunks = shape_.chunks;
    for_each_block(chunks, shape_.g.elements, [&](Block mine, Team team) {
      for (std::size_t r = 0; r < shape_.rows; ++r) {
        const std::size_t o = r * shape_.cols;
        RowScalars s = saved(r);
        const Step step = step_of(r, shape_.rows);
        for (std::size_t k = mine.begin; k < mine.end; ++k) {
          const std::size_t b = shape_.begin(k);
          k_.row_grad_sums(a_.x + o + b, a_.dy + o + b, shape_.end(k) - b, s, at(a_.gamma, b),
                           row_sums + 2 * (r * chunks + k), columns_ ? cols.gather_dy() + b : nullptr,
                           columns_ ? cols.gather_dy_xhat() + b : nullptr, step.set_gather);
          if (columns_ && step.flush) cols.flush(b, shape_.end(k), step.first_flush);
        }
        if (a_.dx == nullptr) continue;
        sync(team);  // row_sums of row r are written once and only read from here on
        double sum_g = 0.0, sum_g_xhat = 0.0;
        for (std::size_t k = 0; k < chunks; ++k) {
          sum_g += row_sums[2 * (r * chunks + k)];
          sum_g_xhat += row_sums[2 * (r * chunks + k) + 1];
        }
        coefficients(s, sum_g, sum_g_xhat);
        for (std::size_t k = mine.begin; k < mine.end; ++k) {
          const std::size_t b = shape_.begin(k);
          k_.row_grad_input(a_.x + o + b, a_.dy + o + b, a_.dx + o + b, shape_.end(k) - b, s, at(a_.gamma, b), 0,
                            stream_);
        }
      }
    });
  }

  // dgamma and dbeta: the parts' column sums added in part order, rounded once.
  void finish_columns(const Columns& cols, std::size_t parts) const {
    k_.add_rows(cols.dy, cols.dy_xhat, parts, cols.stride, shape_.cols);
    for (std::size_t j = 0; j < shape_.cols; ++j) {
      if (a_.dbeta != nullptr) a_.dbeta[j] = static_cast<float>(cols.dy[j]);
      if (a_.dgamma != nullptr) a_.dgamma[j] = static_cast<float>(cols.dy_xhat[j]);
    }
  }
  static const float* at(const float* p, std::size_t offset) { return p != nullptr ? p + offset : nullptr; }

  const KernelTable& k_;
  const RowNormBackwardArgs& a_;
  const Rows shape_;
  const bool stream_;
  const bool fetch_;
  const bool columns_;
};

}  // namespace

simdnorm_status run_row_norm_forward(const char* fn, RowNorm norm, const RowNormArgs& args) {
  return Forward(norm, args).run(fn);
}

simdnorm_status run_row_norm_backward(const char* fn, RowNorm /*norm*/, const RowNormBackwardArgs& args) {
  return Backward(args).run(fn);
}

}  // namespace simdnorm
