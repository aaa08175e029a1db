// "Results are bitwise identical for every thread count" (simdnorm.h), once per ISA: every output of training,
// inference, backward and affine under 2, 3, 4, 7 and 16 threads is compared byte for byte with the 1-thread run, on
// shapes large enough to be split across threads along each axis a driver might split (batch, channel, spatial).
#include "checkers.hpp"
#include "grids.hpp"
#include "thread_determinism.hpp"

namespace simdnorm_test {
namespace {

class DeterminismTest : public ThreadCountTest {};
SIMDNORM_INSTANTIATE_PER_ISA(DeterminismTest);

struct SplitShape {
  std::size_t n, c, spatial;
};
// Many images; many channels per pixel row; one huge image (spatial must be split); NCHW channels of over 1 MiB,
// which the whole team shares (their parts end inside runs); a matrix of many rows; NHWC rows wide enough for
// backward to split the channels among teams of two to four instead (shares of at least 1024 channels).
constexpr SplitShape kSplitShapes[] = {{8, 64, 784},   {16, 100, 196}, {1, 3, 200000}, {2, 3, 150001},
                                       {2048, 40, 1}, {1, 4096, 49},  {2, 2100, 37}};

// Data shared by the four tests for one shape.
struct Problem {
  simdnorm_shape shape;
  std::size_t count;
  std::vector<float> x, dy, gamma, beta, rm0, rv0, mean, var, scale, shift;

  Problem(const SplitShape& s, simdnorm_layout layout) : shape(MakeShape(s.n, s.c, s.spatial, layout)) {
    count = Elements(shape);
    Rng rng(MixSeed({s.n, s.c, s.spatial, 0xde7}));
    x.resize(count);
    dy.resize(count);
    FillInput(rng, shape, InputDistribution{}, x.data());
    for (float& v : dy) v = static_cast<float>(rng.normal());
    for (std::size_t c = 0; c < s.c; ++c) {
      gamma.push_back(static_cast<float>(rng.signed_uniform(0.5, 2.0)));
      beta.push_back(static_cast<float>(rng.uniform(-1, 1)));
      rm0.push_back(static_cast<float>(rng.uniform(-1, 1)));
      rv0.push_back(static_cast<float>(rng.uniform(0.5, 2)));
      mean.push_back(static_cast<float>(rng.uniform(-3, 3)));
      var.push_back(static_cast<float>(rng.uniform(0.25, 4)));
      scale.push_back(static_cast<float>(rng.signed_uniform(0.25, 2)));
      shift.push_back(static_cast<float>(rng.uniform(-2, 2)));
    }
  }
};

std::string Context(const char* what, const simdnorm_shape& shape) {
  return std::string(what) + " " + ShapeString(shape) + " isa=" + CurrentIsa();
}

TEST_P(DeterminismTest, Training) {
  for (const SplitShape& s : kSplitShapes) {
    for (simdnorm_layout layout : kLayouts) {
      const Problem p(s, layout);
      std::vector<std::vector<float>> out = {std::vector<float>(p.count), std::vector<float>(s.c),
                                             std::vector<float>(s.c), std::vector<float>(s.c), std::vector<float>(s.c)};
      ExpectSameBitsForAllThreadCounts(
          Context("training", p.shape), out, {"y", "batch_mean", "batch_invstd", "running_mean", "running_var"},
          [&](std::vector<std::vector<float>>& o) {
            o[3] = p.rm0;
            o[4] = p.rv0;
            return simdnorm_forward_training(&p.shape, p.x.data(), o[0].data(), p.gamma.data(), p.beta.data(), 1e-5f,
                                             o[1].data(), o[2].data(), o[3].data(), o[4].data(), 0.1f,
                                             SIMDNORM_FUSE_RELU);
          });
    }
  }
}

TEST_P(DeterminismTest, Inference) {
  for (const SplitShape& s : kSplitShapes) {
    for (simdnorm_layout layout : kLayouts) {
      const Problem p(s, layout);
      std::vector<std::vector<float>> out = {std::vector<float>(p.count)};
      ExpectSameBitsForAllThreadCounts(
          Context("inference", p.shape), out, {"y"}, [&](std::vector<std::vector<float>>& o) {
            return simdnorm_forward_inference(&p.shape, p.x.data(), o[0].data(), p.gamma.data(), p.beta.data(),
                                              p.mean.data(), p.var.data(), 1e-5f, 0);
          });
    }
  }
}

TEST_P(DeterminismTest, Backward) {
  for (const SplitShape& s : kSplitShapes) {
    for (simdnorm_layout layout : kLayouts) {
      const Problem p(s, layout);
      // Saved statistics from the reference, the same for every run.
      std::vector<float> y(p.count), bm(s.c), bi(s.c);
      ASSERT_EQ(simdnorm_reference_forward_training(&p.shape, p.x.data(), y.data(), p.gamma.data(), p.beta.data(),
                                                    1e-5f, bm.data(), bi.data(), nullptr, nullptr, 0.1f, 0),
                SIMDNORM_SUCCESS);
      std::vector<std::vector<float>> out = {std::vector<float>(p.count), std::vector<float>(s.c),
                                             std::vector<float>(s.c)};
      ExpectSameBitsForAllThreadCounts(
          Context("backward", p.shape), out, {"dx", "dgamma", "dbeta"}, [&](std::vector<std::vector<float>>& o) {
            return simdnorm_backward(&p.shape, p.x.data(), p.dy.data(), p.gamma.data(), p.beta.data(), bm.data(),
                                     bi.data(), o[0].data(), o[1].data(), o[2].data(), SIMDNORM_FUSE_RELU);
          });
    }
  }
}

TEST_P(DeterminismTest, Affine) {
  for (const SplitShape& s : kSplitShapes) {
    for (simdnorm_layout layout : kLayouts) {
      const Problem p(s, layout);
      std::vector<std::vector<float>> out = {std::vector<float>(p.count)};
      ExpectSameBitsForAllThreadCounts(Context("affine", p.shape), out, {"y"}, [&](std::vector<std::vector<float>>& o) {
        return simdnorm_affine(&p.shape, p.x.data(), o[0].data(), p.scale.data(), p.shift.data(), SIMDNORM_FUSE_RELU);
      });
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
