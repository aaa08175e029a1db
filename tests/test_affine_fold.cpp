// simdnorm_affine and simdnorm_fold against the reference, once per ISA.
#include "checkers.hpp"
#include "grids.hpp"

namespace simdnorm_test {
namespace {

class AffineTest : public IsaTest {};
class FoldTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(AffineTest);
SIMDNORM_INSTANTIATE_PER_ISA(FoldTest);

void AffineGrid(simdnorm_layout layout) {
  FailureBudget budget;
  std::uint64_t index = layout == SIMDNORM_NCHW ? 0 : 1000;
  for (std::size_t n : kGridN) {
    for (std::size_t c : kGridC) {
      for (std::size_t s : kGridSpatial) {
        const CaseOptions o = RotateOptions(index++);
        const bool passed = AffineCheck()
                                .n(n)
                                .c(c)
                                .spatial(s)
                                .layout(layout)
                                .inplace(o.inplace)
                                .relu(o.relu)
                                .misalign(o.misalign)
                                .seed(index)
                                .Test();
        if (!budget.Record(passed)) return;
      }
    }
  }
}

TEST_P(AffineTest, GridNCHW) { AffineGrid(SIMDNORM_NCHW); }
TEST_P(AffineTest, GridNHWC) { AffineGrid(SIMDNORM_NHWC); }

TEST_P(AffineTest, Remainders) {
  FailureBudget budget;
  std::uint64_t index = 0;
  for (simdnorm_layout layout : kLayouts) {
    for (std::size_t c : kRemainderSizes) {
      for (std::size_t s : kRemainderSizes) {
        for (unsigned bits = 0; bits < 4; ++bits) {
          const bool passed =
              AffineCheck().n(1).c(c).spatial(s).layout(layout).inplace(bits & 1u).relu(bits & 2u).seed(index++).Test();
          if (!budget.Record(passed)) return;
        }
      }
    }
  }
}

TEST_P(AffineTest, LargeShapes) {
  FailureBudget budget;
  for (const LargeShape& shape : kLargeShapes) {
    for (simdnorm_layout layout : kLayouts) {
      EXPECT_TRUE(budget.Record(
          AffineCheck().n(shape.n).c(shape.c).spatial(shape.spatial).layout(layout).relu().misalign(1).Test()));
      EXPECT_TRUE(
          budget.Record(AffineCheck().n(shape.n).c(shape.c).spatial(shape.spatial).layout(layout).inplace().Test()));
      // Out of place on aligned buffers: the streaming stores of tensors beyond the cache.
      EXPECT_TRUE(budget.Record(
          AffineCheck().n(shape.n).c(shape.c).spatial(shape.spatial).layout(layout).relu().Test()));
    }
  }
}

// simdnorm_affine(simdnorm_fold(...)) is the inference pass: the same bits as simdnorm_forward_inference, which is
// documented to fold exactly as simdnorm_fold does and then apply y = scale*x + shift.
TEST_P(AffineTest, FoldThenAffineEqualsInference) {
  for (simdnorm_layout layout : kLayouts) {
    for (bool relu : {false, true}) {
      const simdnorm_shape shape = MakeShape(2, 35, 50, layout);
      const std::size_t count = Elements(shape);
      Rng rng(MixSeed({11, static_cast<std::uint64_t>(layout), relu}));
      std::vector<float> x(count), y_inf(count), y_aff(count), gamma(35), beta(35), mean(35), var(35), scale(35),
          shift(35);
      FillInput(rng, shape, InputDistribution{}, x.data());
      for (std::size_t c = 0; c < 35; ++c) {
        gamma[c] = static_cast<float>(rng.signed_uniform(0.5, 2));
        beta[c] = static_cast<float>(rng.uniform(-1, 1));
        mean[c] = static_cast<float>(rng.uniform(-3, 3));
        var[c] = static_cast<float>(rng.uniform(0.25, 4));
      }
      const unsigned flags = relu ? SIMDNORM_FUSE_RELU : 0u;
      ASSERT_EQ(
          simdnorm_fold(35, gamma.data(), beta.data(), mean.data(), var.data(), 1e-5f, scale.data(), shift.data()),
          SIMDNORM_SUCCESS);
      ASSERT_EQ(simdnorm_affine(&shape, x.data(), y_aff.data(), scale.data(), shift.data(), flags), SIMDNORM_SUCCESS);
      ASSERT_EQ(simdnorm_forward_inference(&shape, x.data(), y_inf.data(), gamma.data(), beta.data(), mean.data(),
                                           var.data(), 1e-5f, flags),
                SIMDNORM_SUCCESS);
      for (std::size_t i = 0; i < count; ++i) {
        if (FloatBits(y_aff[i]) != FloatBits(y_inf[i])) {
          ADD_FAILURE() << ShapeString(shape) << (relu ? " relu" : "") << " isa=" << isa() << ": at " << i << " "
                        << CoordString(shape, i) << " fold+affine gives " << FloatString(y_aff[i])
                        << ", forward_inference gives " << FloatString(y_inf[i]);
          break;
        }
      }
    }
  }
}

TEST_P(FoldTest, AgainstReference) {
  FailureBudget budget;
  std::uint64_t index = 0;
  for (std::size_t c : {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 64, 130, 1000}) {
    for (bool gamma_beta : {false, true}) {
      for (float eps : {1e-5f, 1e-3f, 1e-12f}) {
        if (!budget.Record(FoldCheck().c(c).gamma_beta(gamma_beta).eps(eps).seed(index++).Test())) return;
      }
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
