// LayerNorm and RMSNorm, forward and backward, against the double-precision reference, once per ISA: the grid
// rows {1, 2, 3, 17, 64} x cols {1, 2, 7, 15, 16, 17, 31, 33, 768, 1000, 4099} (below, at and past each vector width,
// and rows of whole and ragged vectors), every case twice with complementary options (in place or not, gamma and
// beta each present or NULL), the statistics outputs each NULL now and then; every option combination on one shape.
#include "norm_checkers.hpp"

namespace simdnorm_test {
namespace {

class LayerNormTest : public IsaTest {};
class RmsNormTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(LayerNormTest);
SIMDNORM_INSTANTIATE_PER_ISA(RmsNormTest);

constexpr std::size_t kGridRows[] = {1, 2, 3, 17, 64};
constexpr std::size_t kNarrowCols[] = {1, 2, 7, 15, 16, 17, 31, 33};
constexpr std::size_t kWideCols[] = {768, 1000, 4099};

template <std::size_t N>
void ForwardGrid(NormKind kind, const std::size_t (&cols_grid)[N]) {
  FailureBudget budget;
  std::uint64_t index = static_cast<std::uint64_t>(kind) * 10000 + cols_grid[0];
  for (std::size_t rows : kGridRows) {
    for (std::size_t cols : cols_grid) {
      const NormCaseOptions first = RotateNormOptions(index++);
      for (const NormCaseOptions& o : {first, first.Flipped()}) {
        const bool passed = NormForwardCheck(NormGeometry::Row(kind, rows, cols))
                                .inplace(o.inplace)
                                .gamma(o.gamma)
                                .beta(o.beta)
                                .stats(o.mean, o.rstd)
                                .misalign(o.misalign)
                                .seed(index)
                                .Test();
        if (!budget.Record(passed)) return;
      }
    }
  }
}

template <std::size_t N>
void BackwardGrid(NormKind kind, const std::size_t (&cols_grid)[N]) {
  FailureBudget budget;
  std::uint64_t index = static_cast<std::uint64_t>(kind) * 10000 + 5000 + cols_grid[0];
  for (std::size_t rows : kGridRows) {
    for (std::size_t cols : cols_grid) {
      const NormCaseOptions first = RotateNormOptions(index++);
      for (const NormCaseOptions& o : {first, first.Flipped()}) {
        const bool passed = NormBackwardCheck(NormGeometry::Row(kind, rows, cols))
                                .inplace(o.inplace)
                                .gamma(o.gamma)
                                .outputs(o.dx, o.dgamma, o.dbeta)
                                .misalign(o.misalign)
                                .seed(index)
                                .Test();
        if (!budget.Record(passed)) return;
      }
    }
  }
}

TEST_P(LayerNormTest, ForwardGridNarrowRows) { ForwardGrid(NormKind::kLayer, kNarrowCols); }
TEST_P(LayerNormTest, ForwardGridWideRows) { ForwardGrid(NormKind::kLayer, kWideCols); }
TEST_P(LayerNormTest, BackwardGridNarrowRows) { BackwardGrid(NormKind::kLayer, kNarrowCols); }
TEST_P(LayerNormTest, BackwardGridWideRows) { BackwardGrid(NormKind::kLayer, kWideCols); }
TEST_P(RmsNormTest, ForwardGridNarrowRows) { ForwardGrid(NormKind::kRms, kNarrowCols); }
TEST_P(RmsNormTest, ForwardGridWideRows) { ForwardGrid(NormKind::kRms, kWideCols); }
TEST_P(RmsNormTest, BackwardGridNarrowRows) { BackwardGrid(NormKind::kRms, kNarrowCols); }
TEST_P(RmsNormTest, BackwardGridWideRows) { BackwardGrid(NormKind::kRms, kWideCols); }

// Every combination of in place, gamma, beta, and the statistics each requested or NULL, on a ragged shape; then
// backward's in place, gamma and each subset of dx, dgamma, dbeta (none included).
void EveryOptionCombination(NormKind kind) {
  FailureBudget budget;
  const NormGeometry g = NormGeometry::Row(kind, 17, 33);
  for (unsigned bits = 0; bits < 32; ++bits) {
    const bool passed = NormForwardCheck(g)
                            .inplace(bits & 1u)
                            .gamma(bits & 2u)
                            .beta(bits & 4u)
                            .stats(!(bits & 8u), !(bits & 16u))
                            .misalign(bits % 3)
                            .seed(bits)
                            .Test();
    if (!budget.Record(passed)) return;
  }
  for (unsigned bits = 0; bits < 32; ++bits) {
    const bool passed = NormBackwardCheck(g)
                            .inplace(bits & 1u)
                            .gamma(bits & 2u)
                            .outputs(bits & 4u, bits & 8u, bits & 16u)
                            .misalign(bits % 3)
                            .seed(bits)
                            .Test();
    if (!budget.Record(passed)) return;
  }
}

TEST_P(LayerNormTest, EveryOptionCombination) { EveryOptionCombination(NormKind::kLayer); }
TEST_P(RmsNormTest, EveryOptionCombination) { EveryOptionCombination(NormKind::kRms); }

// eps from negligible to dominant (0.5 against variances of 0.25 to 4), the largest float included.
void EpsEdges(NormKind kind) {
  for (float eps : {1e-12f, 1e-3f, 0.5f, 1e30f}) {
    for (std::size_t cols : {7u, 1000u}) {
      const NormGeometry g = NormGeometry::Row(kind, 3, cols);
      EXPECT_TRUE(NormForwardCheck(g).gamma().beta().eps(eps).Test());
      EXPECT_TRUE(NormBackwardCheck(g).gamma().eps(eps).Test());
    }
  }
}

TEST_P(LayerNormTest, EpsEdges) { EpsEdges(NormKind::kLayer); }
TEST_P(RmsNormTest, EpsEdges) { EpsEdges(NormKind::kRms); }

// Rows beyond the grid: many short rows (split over threads by rows), and few long ones (split inside a row).
void TallAndLongRows(NormKind kind) {
  const std::size_t long_cols = SIMDNORM_TESTS_SANITIZED ? 20011 : 100003;
  for (const auto& rc :
       {std::pair<std::size_t, std::size_t>{4096, 5}, {1000, 33}, {2, long_cols}, {1, 3 * long_cols}}) {
    const NormGeometry g = NormGeometry::Row(kind, rc.first, rc.second);
    EXPECT_TRUE(NormForwardCheck(g).gamma().beta().misalign(1).seed(3).Test());
    EXPECT_TRUE(NormForwardCheck(g).inplace().seed(4).Test());
    EXPECT_TRUE(NormBackwardCheck(g).gamma().misalign(1).seed(5).Test());
    EXPECT_TRUE(NormBackwardCheck(g).inplace().seed(6).Test());
  }
}

TEST_P(LayerNormTest, TallAndLongRows) { TallAndLongRows(NormKind::kLayer); }
TEST_P(RmsNormTest, TallAndLongRows) { TallAndLongRows(NormKind::kRms); }

}  // namespace
}  // namespace simdnorm_test
