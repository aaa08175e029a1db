// Forward passes (training and inference) against the double-precision reference, once per ISA.
#include "checkers.hpp"
#include "grids.hpp"

namespace simdnorm_test {
namespace {

class TrainingTest : public IsaTest {};
class InferenceTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(TrainingTest);
SIMDNORM_INSTANTIATE_PER_ISA(InferenceTest);

// ---------------------------------------------------------------------------------------------------------------
// Training.

void TrainingGrid(simdnorm_layout layout) {
  FailureBudget budget;
  std::uint64_t index = layout == SIMDNORM_NCHW ? 0 : 1000;
  for (std::size_t n : kGridN) {
    for (std::size_t c : kGridC) {
      for (std::size_t s : kGridSpatial) {
        if (n * s < 2) continue;  // training needs two values per channel
        const CaseOptions o = RotateOptions(index++);
        const bool passed = TrainingCheck()
                                .n(n)
                                .c(c)
                                .spatial(s)
                                .layout(layout)
                                .inplace(o.inplace)
                                .relu(o.relu)
                                .gamma_beta(o.gamma_beta)
                                .running(o.running)
                                .batch_stats(o.batch_stats)
                                .misalign(o.misalign)
                                .seed(index)
                                .Test();
        if (!budget.Record(passed)) return;
      }
    }
  }
}

TEST_P(TrainingTest, GridNCHW) { TrainingGrid(SIMDNORM_NCHW); }
TEST_P(TrainingTest, GridNHWC) { TrainingGrid(SIMDNORM_NHWC); }

// C and spatial below, at and one past each vector width (4, 8, 16 floats), N = 1 (N = 2 where spatial = 1, since
// training needs two values per channel); every case in place and out of place with complementary options.
TEST_P(TrainingTest, Remainders) {
  FailureBudget budget;
  std::uint64_t index = 0;
  for (simdnorm_layout layout : kLayouts) {
    for (std::size_t c : kRemainderSizes) {
      for (std::size_t s : kRemainderSizes) {
        const CaseOptions o = RotateOptions(index++);
        for (bool flip : {false, true}) {
          const bool passed = TrainingCheck()
                                  .n(s == 1 ? 2 : 1)
                                  .c(c)
                                  .spatial(s)
                                  .layout(layout)
                                  .inplace(o.inplace != flip)
                                  .relu(o.relu != flip)
                                  .gamma_beta(o.gamma_beta != flip)
                                  .running(o.running != flip)
                                  .seed(index)
                                  .Test();
          if (!budget.Record(passed)) return;
        }
      }
    }
  }
}

// Every combination of the boolean options on the builder's showcase shape.
TEST_P(TrainingTest, EveryOptionCombination) {
  FailureBudget budget;
  for (simdnorm_layout layout : kLayouts) {
    for (unsigned bits = 0; bits < 32; ++bits) {
      const bool passed = TrainingCheck()
                              .n(3)
                              .c(17)
                              .spatial(49)
                              .layout(layout)
                              .inplace(bits & 1u)
                              .relu(bits & 2u)
                              .gamma_beta(bits & 4u)
                              .running(bits & 8u)
                              .batch_stats(!(bits & 16u))
                              .seed(bits)
                              .Test();
      if (!budget.Record(passed)) return;
    }
  }
}

TEST_P(TrainingTest, LargeShapes) {
  FailureBudget budget;
  for (const LargeShape& shape : kLargeShapes) {
    for (simdnorm_layout layout : kLayouts) {
      // Every option on and out of place, then bare and in place.
      EXPECT_TRUE(budget.Record(TrainingCheck()
                                    .n(shape.n)
                                    .c(shape.c)
                                    .spatial(shape.spatial)
                                    .layout(layout)
                                    .relu()
                                    .gamma_beta()
                                    .running()
                                    .misalign(1)
                                    .seed(7)
                                    .Test()));
      EXPECT_TRUE(budget.Record(
          TrainingCheck().n(shape.n).c(shape.c).spatial(shape.spatial).layout(layout).inplace().seed(8).Test()));
      // Out of place on aligned buffers: the streaming stores of tensors beyond the cache.
      EXPECT_TRUE(budget.Record(
          TrainingCheck().n(shape.n).c(shape.c).spatial(shape.spatial).layout(layout).relu().running().Test()));
    }
  }
}

// The smallest valid batch: two values per channel, from N = 2 or from spatial = 2.
TEST_P(TrainingTest, TwoValuesPerChannel) {
  for (simdnorm_layout layout : kLayouts) {
    EXPECT_TRUE(TrainingCheck().n(2).c(19).spatial(1).layout(layout).gamma_beta().running().Test());
    EXPECT_TRUE(TrainingCheck().n(1).c(19).spatial(2).layout(layout).gamma_beta().running().relu().Test());
    // An N x C matrix, as after a fully connected layer.
    EXPECT_TRUE(TrainingCheck().n(37).c(70).spatial(1).layout(layout).gamma_beta().running().Test());
  }
}

TEST_P(TrainingTest, MomentumAndEpsEdges) {
  for (simdnorm_layout layout : kLayouts) {
    for (float momentum : {0.0f, 1.0f, 0.01f, 0.5f}) {
      EXPECT_TRUE(TrainingCheck().n(2).c(17).spatial(33).layout(layout).running().momentum(momentum).Test());
    }
    for (float eps : {1e-3f, 1e-12f, 0.5f}) {
      EXPECT_TRUE(TrainingCheck().n(2).c(17).spatial(33).layout(layout).gamma_beta().running().eps(eps).Test());
    }
  }
}

// momentum 0 keeps the running statistics bit for bit; momentum 1 replaces them with the batch statistics.
TEST_P(TrainingTest, MomentumZeroAndOneExactly) {
  for (simdnorm_layout layout : kLayouts) {
    const simdnorm_shape shape = MakeShape(2, 21, 30, layout);
    const std::size_t count = Elements(shape);
    std::vector<float> x(count), y(count), bm(21), bi(21), rm(21), rv(21), rm0(21), rv0(21);
    Rng rng(99);
    FillInput(rng, shape, InputDistribution{}, x.data());
    for (std::size_t c = 0; c < 21; ++c) {
      rm0[c] = static_cast<float>(rng.uniform(-1, 1));
      rv0[c] = static_cast<float>(rng.uniform(0.5, 2));
    }
    rm = rm0;
    rv = rv0;
    ASSERT_EQ(simdnorm_forward_training(&shape, x.data(), y.data(), nullptr, nullptr, 1e-5f, bm.data(), bi.data(),
                                        rm.data(), rv.data(), 0.0f, 0),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
    EXPECT_EQ(0, std::memcmp(rm.data(), rm0.data(), sizeof(float) * 21)) << LayoutName(layout);
    EXPECT_EQ(0, std::memcmp(rv.data(), rv0.data(), sizeof(float) * 21)) << LayoutName(layout);
    ASSERT_EQ(simdnorm_forward_training(&shape, x.data(), y.data(), nullptr, nullptr, 1e-5f, bm.data(), bi.data(),
                                        rm.data(), rv.data(), 1.0f, 0),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
    EXPECT_EQ(0, std::memcmp(rm.data(), bm.data(), sizeof(float) * 21))
        << LayoutName(layout) << ": with momentum 1 running_mean must equal batch_mean";
  }
}

// The ReLU output is exactly the non-ReLU output clamped at zero, on the same ISA.
TEST_P(TrainingTest, FusedReluIsClampOfPlainOutput) {
  for (simdnorm_layout layout : kLayouts) {
    const simdnorm_shape shape = MakeShape(3, 33, 61, layout);
    const std::size_t count = Elements(shape);
    std::vector<float> x(count), y(count), y_relu(count), gamma, beta;
    Rng rng(5);
    FillInput(rng, shape, InputDistribution{}, x.data());
    for (std::size_t c = 0; c < 33; ++c) {
      gamma.push_back(static_cast<float>(rng.signed_uniform(0.5, 2.0)));
      beta.push_back(static_cast<float>(rng.uniform(-1, 1)));
    }
    ASSERT_EQ(simdnorm_forward_training(&shape, x.data(), y.data(), gamma.data(), beta.data(), 1e-5f, nullptr, nullptr,
                                        nullptr, nullptr, 0.1f, 0),
              SIMDNORM_SUCCESS);
    ASSERT_EQ(simdnorm_forward_training(&shape, x.data(), y_relu.data(), gamma.data(), beta.data(), 1e-5f, nullptr,
                                        nullptr, nullptr, nullptr, 0.1f, SIMDNORM_FUSE_RELU),
              SIMDNORM_SUCCESS);
    for (std::size_t i = 0; i < count; ++i) {
      const float want = y[i] > 0.0f ? y[i] : 0.0f;
      if (FloatBits(y_relu[i]) != FloatBits(want) && !(want == 0.0f && y_relu[i] == 0.0f)) {
        ADD_FAILURE() << ShapeString(shape) << " isa=" << isa() << ": relu output at " << i << " "
                      << CoordString(shape, i) << " is " << FloatString(y_relu[i]) << ", plain output "
                      << FloatString(y[i]);
        break;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Inference.

void InferenceGrid(simdnorm_layout layout) {
  FailureBudget budget;
  std::uint64_t index = layout == SIMDNORM_NCHW ? 0 : 1000;
  for (std::size_t n : kGridN) {
    for (std::size_t c : kGridC) {
      for (std::size_t s : kGridSpatial) {
        const CaseOptions o = RotateOptions(index++);
        const bool passed = InferenceCheck()
                                .n(n)
                                .c(c)
                                .spatial(s)
                                .layout(layout)
                                .inplace(o.inplace)
                                .relu(o.relu)
                                .gamma_beta(o.gamma_beta)
                                .misalign(o.misalign)
                                .seed(index)
                                .Test();
        if (!budget.Record(passed)) return;
      }
    }
  }
}

TEST_P(InferenceTest, GridNCHW) { InferenceGrid(SIMDNORM_NCHW); }
TEST_P(InferenceTest, GridNHWC) { InferenceGrid(SIMDNORM_NHWC); }

TEST_P(InferenceTest, Remainders) {
  FailureBudget budget;
  std::uint64_t index = 0;
  for (simdnorm_layout layout : kLayouts) {
    for (std::size_t c : kRemainderSizes) {
      for (std::size_t s : kRemainderSizes) {
        const CaseOptions o = RotateOptions(index++);
        for (bool flip : {false, true}) {
          const bool passed = InferenceCheck()
                                  .n(1)
                                  .c(c)
                                  .spatial(s)
                                  .layout(layout)
                                  .inplace(o.inplace != flip)
                                  .relu(o.relu != flip)
                                  .gamma_beta(o.gamma_beta != flip)
                                  .seed(index)
                                  .Test();
          if (!budget.Record(passed)) return;
        }
      }
    }
  }
}

TEST_P(InferenceTest, EveryOptionCombination) {
  FailureBudget budget;
  for (simdnorm_layout layout : kLayouts) {
    for (unsigned bits = 0; bits < 16; ++bits) {
      const bool passed = InferenceCheck()
                              .n(3)
                              .c(17)
                              .spatial(49)
                              .layout(layout)
                              .inplace(bits & 1u)
                              .relu(bits & 2u)
                              .gamma_beta(bits & 4u)
                              .misalign((bits & 8u) ? 3 : 0)
                              .seed(bits)
                              .Test();
      if (!budget.Record(passed)) return;
    }
  }
}

TEST_P(InferenceTest, LargeShapes) {
  FailureBudget budget;
  for (const LargeShape& shape : kLargeShapes) {
    for (simdnorm_layout layout : kLayouts) {
      EXPECT_TRUE(budget.Record(InferenceCheck()
                                    .n(shape.n)
                                    .c(shape.c)
                                    .spatial(shape.spatial)
                                    .layout(layout)
                                    .relu()
                                    .gamma_beta()
                                    .misalign(1)
                                    .seed(3)
                                    .Test()));
      EXPECT_TRUE(budget.Record(
          InferenceCheck().n(shape.n).c(shape.c).spatial(shape.spatial).layout(layout).inplace().seed(4).Test()));
      // Out of place on aligned buffers: the streaming stores of tensors beyond the cache.
      EXPECT_TRUE(budget.Record(
          InferenceCheck().n(shape.n).c(shape.c).spatial(shape.spatial).layout(layout).relu().Test()));
    }
  }
}

// Inference has no batch statistics to estimate, so a single value per channel is fine.
TEST_P(InferenceTest, SingleValuePerChannel) {
  for (simdnorm_layout layout : kLayouts) {
    EXPECT_TRUE(InferenceCheck().n(1).c(1).spatial(1).layout(layout).gamma_beta().Test());
    EXPECT_TRUE(InferenceCheck().n(1).c(130).spatial(1).layout(layout).gamma_beta().relu().Test());
  }
}

TEST_P(InferenceTest, EpsValues) {
  for (simdnorm_layout layout : kLayouts) {
    for (float eps : {1e-3f, 1e-12f, 0.5f, 100.0f}) {
      EXPECT_TRUE(InferenceCheck().n(2).c(17).spatial(33).layout(layout).gamma_beta().eps(eps).Test());
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
