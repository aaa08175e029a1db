// The per-channel affine y = a*x + b with given coefficients: inference (folded from running statistics),
// simdnorm_affine (the caller's), and simdnorm_normalize (folded from a training pass's batch statistics, exactly as
// training folds them). One schedule walks every layout.
#include <cstring>

#include "core/scratch.hpp"
#include "kernels/table.hpp"
#include "ops/batch_norm.hpp"
#include "parallel/partition.hpp"

namespace simdnorm {
namespace {

// y = a[c]*x + b[c] over the whole tensor; a and b are per channel, padded for row walks.
void apply_affine(const Geometry& g, const float* x, float* y, const float* a, const float* b, bool relu) {
  const KernelTable& k = active_kernels();
  const View v = make_view(g);
  const bool stream = streams(x, y, g, 2);
  if (!v.rows && v.len < plane_item_floats()) {
    // Short planes in memory order, a run of whole planes per work item: one stream through memory instead of N
    // strided runs per channel.
    const std::size_t planes = v.runs * v.channels;
    const std::size_t per = plane_item_floats() / v.len;
    parallel_for((planes + per - 1) / per, g.elements, [&](std::size_t i) {
      const std::size_t p0 = i * per;
      const std::size_t count = planes - p0 < per ? planes - p0 : per;
      k.affine_planes(x + p0 * v.len, y + p0 * v.len, v.len, count, p0 % v.channels, v.channels, a, b, relu, stream);
    });
  } else if (!v.rows) {
    const std::size_t chunks = run_chunks(v);
    parallel_for(v.channels * chunks, g.elements, [&](std::size_t i) {
      const std::size_t c = i / chunks;
      const std::size_t at = c * v.channel_stride;
      k.affine_run(x + at, y + at, run_chunk(v, i % chunks, chunks), a[c], b[c], relu, stream);
    });
  } else {
    const RowTiles rt = row_tiles(v, false);  // affine_rows prefetches nothing
    parallel_for(rt.chunks, g.elements, [&](std::size_t i) {
      const RowTiles::Tile t = rt.tile(i);
      k.affine_rows(x + t.offset, y + t.offset, t.walk, a, b, relu, stream);
    });
  }
}

bool relu_of(unsigned flags) { return (flags & SIMDNORM_FUSE_RELU) != 0u; }

simdnorm_status out_of_memory(const char* fn) { return fail(SIMDNORM_OUT_OF_MEMORY, "%s: cannot allocate scratch", fn); }

// Padded copies of gamma and beta (ones and zeros for NULL) and two padded arrays (a, b) for the folded
// coefficients, in `in` and `out`; false when the memory cannot be had.
struct FoldArrays {
  float *gamma, *beta, *first, *second, *a, *b;
};
bool fold_arrays(std::size_t c, const float* gamma, const float* beta, FoldArrays* arrays) {
  const std::size_t cp = padded_channels(c);
  float* const in = per_channel_scratch<float>(Slot::kParameters, 4, c, cp);
  float* const out = per_channel_scratch<float>(Slot::kCoefficients, 2, c, cp);
  if (!in || !out) return false;
  *arrays = FoldArrays{in, in + cp, in + 2 * cp, in + 3 * cp, out, out + cp};
  copy_or_fill(arrays->gamma, gamma, c, 1.0f);
  copy_or_fill(arrays->beta, beta, c, 0.0f);
  return true;
}

// scale and shift of every channel from running statistics (fold_rows, vectorised) into padded arrays.
simdnorm_status fold_running(const char* fn, std::size_t c, const float* gamma, const float* beta, const float* mean,
                             const float* var, float eps, FoldArrays* f) {
  if (!fold_arrays(c, gamma, beta, f)) return out_of_memory(fn);
  std::memcpy(f->first, mean, c * sizeof(float));
  std::memcpy(f->second, var, c * sizeof(float));
  active_kernels().fold_rows(f->first, f->second, f->gamma, f->beta, c, static_cast<double>(eps), f->a, f->b);
  return SIMDNORM_SUCCESS;
}

}  // namespace

simdnorm_status run_forward_inference(const char* fn, const Geometry& g, const InferenceArgs& args) {
  FoldArrays f;
  const simdnorm_status status = fold_running(fn, g.c, args.gamma, args.beta, args.mean, args.var, args.eps, &f);
  if (status != SIMDNORM_SUCCESS) return status;
  apply_affine(g, args.x, args.y, f.a, f.b, relu_of(args.flags));
  return SIMDNORM_SUCCESS;
}

simdnorm_status run_fold(const FoldArgs& args) {
  FoldArrays f;
  const simdnorm_status status =
      fold_running("simdnorm_fold", args.c, args.gamma, args.beta, args.mean, args.var, args.eps, &f);
  if (status != SIMDNORM_SUCCESS) return status;
  std::memcpy(args.scale, f.a, args.c * sizeof(float));
  std::memcpy(args.shift, f.b, args.c * sizeof(float));
  return SIMDNORM_SUCCESS;
}

simdnorm_status run_affine(const char* fn, const Geometry& g, const AffineArgs& args) {
  if (!make_view(g).rows) {
    apply_affine(g, args.x, args.y, args.scale, args.shift, relu_of(args.flags));
    return SIMDNORM_SUCCESS;
  }
  // Row kernels read per-channel arrays in whole vectors: give them padded copies.
  FoldArrays f;
  if (!fold_arrays(g.c, nullptr, nullptr, &f)) return out_of_memory(fn);
  std::memcpy(f.a, args.scale, g.c * sizeof(float));
  std::memcpy(f.b, args.shift, g.c * sizeof(float));
  apply_affine(g, args.x, args.y, f.a, f.b, relu_of(args.flags));
  return SIMDNORM_SUCCESS;
}

simdnorm_status run_normalize(const char* fn, const Geometry& g, const NormalizeArgs& args) {
  FoldArrays f;
  if (!fold_arrays(g.c, args.gamma, args.beta, &f)) return out_of_memory(fn);
  std::memcpy(f.first, args.batch_mean, g.c * sizeof(float));
  std::memcpy(f.second, args.batch_invstd, g.c * sizeof(float));
  // a and b as training folds them from its rounded statistics (fold_saved_rows rounds as stats_rows does).
  active_kernels().fold_saved_rows(f.first, f.second, f.gamma, f.beta, g.c, f.a, f.b);
  apply_affine(g, args.x, args.y, f.a, f.b, relu_of(args.flags));
  return SIMDNORM_SUCCESS;
}

}  // namespace simdnorm
