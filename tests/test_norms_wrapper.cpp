// The C++ wrapper of LayerNorm, RMSNorm and GroupNorm (simdnorm.hpp): the same bits as the C functions it forwards
// to, its defaults (RMSNorm's eps is float's epsilon, as torch.nn.RMSNorm's eps=None), and simdnorm::Error with the
// status and the C API's message on failure, nothing written. Once per ISA.
#include <limits>
#include <simdnorm/simdnorm.hpp>

#include "norm_checkers.hpp"

namespace simdnorm_test {
namespace {

class NormWrapperTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(NormWrapperTest);

constexpr std::size_t kRows = 3, kCols = 37;

struct Data {
  std::size_t count;
  std::vector<float> x, dy, gamma, beta;
  explicit Data(std::size_t n, std::size_t params) : count(n) {
    Rng rng(2025);
    for (std::size_t i = 0; i < n; ++i) {
      x.push_back(static_cast<float>(rng.uniform(-2.0, 3.0)));
      dy.push_back(static_cast<float>(rng.normal()));
    }
    MakeAffineParams(rng, params, gamma, beta);
  }
};

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_P(NormWrapperTest, LayerNormSameBitsAsTheCApi) {
  const Data d(kRows * kCols, kCols);
  std::vector<float> y(d.count), mean(kRows), rstd(kRows), y_c(d.count), mean_c(kRows), rstd_c(kRows);
  simdnorm::layer_norm_forward({d.x.data(), kRows, kCols}, {y.data(), kRows, kCols}, {d.gamma.data(), d.beta.data()},
                               {mean.data(), rstd.data()}, 1e-3f);
  ASSERT_EQ(simdnorm_layer_norm_forward(kRows, kCols, d.x.data(), y_c.data(), d.gamma.data(), d.beta.data(), 1e-3f,
                                        mean_c.data(), rstd_c.data(), 0),
            SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(y, y_c) && SameBits(mean, mean_c) && SameBits(rstd, rstd_c));
  // The defaults: no affine, no statistics, eps 1e-5.
  std::vector<float> y_default(d.count);
  simdnorm::layer_norm_forward({d.x.data(), kRows, kCols}, {y_default.data(), kRows, kCols}, {});
  ASSERT_EQ(
      simdnorm_layer_norm_forward(kRows, kCols, d.x.data(), y_c.data(), nullptr, nullptr, 1e-5f, nullptr, nullptr, 0),
      SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(y_default, y_c));

  std::vector<float> dx(d.count), dg(kCols), db(kCols), dx_c(d.count), dg_c(kCols), db_c(kCols);
  simdnorm::layer_norm_backward({d.x.data(), kRows, kCols}, {d.dy.data(), kRows, kCols}, d.gamma.data(), mean.data(),
                                rstd.data(), {{dx.data(), kRows, kCols}, dg.data(), db.data()});
  ASSERT_EQ(simdnorm_layer_norm_backward(kRows, kCols, d.x.data(), d.dy.data(), d.gamma.data(), mean.data(),
                                         rstd.data(), dx_c.data(), dg_c.data(), db_c.data(), 0),
            SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(dx, dx_c) && SameBits(dg, dg_c) && SameBits(db, db_c));
  // dx not wanted: its view may be empty.
  std::vector<float> dg_only(kCols);
  simdnorm::layer_norm_backward({d.x.data(), kRows, kCols}, {d.dy.data(), kRows, kCols}, d.gamma.data(), mean.data(),
                                rstd.data(), {{}, dg_only.data(), nullptr});
  EXPECT_TRUE(SameBits(dg_only, dg_c));
}

TEST_P(NormWrapperTest, RmsNormSameBitsAsTheCApiAndEpsDefaultsToFloatEpsilon) {
  const Data d(kRows * kCols, kCols);
  std::vector<float> y(d.count), rstd(kRows), y_c(d.count), rstd_c(kRows);
  simdnorm::rms_norm_forward({d.x.data(), kRows, kCols}, {y.data(), kRows, kCols}, d.gamma.data(), rstd.data());
  ASSERT_EQ(simdnorm_rms_norm_forward(kRows, kCols, d.x.data(), y_c.data(), d.gamma.data(),
                                      std::numeric_limits<float>::epsilon(), rstd_c.data(), 0),
            SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(y, y_c) && SameBits(rstd, rstd_c));

  std::vector<float> dx(d.count), dg(kCols), dx_c(d.count), dg_c(kCols);
  simdnorm::rms_norm_backward({d.x.data(), kRows, kCols}, {d.dy.data(), kRows, kCols}, d.gamma.data(), rstd.data(),
                              {dx.data(), kRows, kCols}, dg.data());
  ASSERT_EQ(simdnorm_rms_norm_backward(kRows, kCols, d.x.data(), d.dy.data(), d.gamma.data(), rstd.data(), dx_c.data(),
                                       dg_c.data(), 0),
            SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(dx, dx_c) && SameBits(dg, dg_c));
}

TEST_P(NormWrapperTest, GroupNormSameBitsAsTheCApi) {
  const simdnorm::Shape shape{2, 12, 7, simdnorm::Layout::NHWC};
  const simdnorm_shape cs = shape.c_shape();
  const std::size_t groups = 4, stats = 2 * groups;
  const Data d(shape.elements(), 12);
  const simdnorm::Affine affine{d.gamma.data(), d.beta.data()};
  std::vector<float> y(d.count), mean(stats), rstd(stats), y_c(d.count), mean_c(stats), rstd_c(stats);
  simdnorm::group_norm_forward({d.x.data(), shape}, {y.data(), shape}, groups, affine, {mean.data(), rstd.data()},
                               1e-4f, simdnorm::Activation::Relu);
  ASSERT_EQ(simdnorm_group_norm_forward(&cs, groups, d.x.data(), y_c.data(), d.gamma.data(), d.beta.data(), 1e-4f,
                                        mean_c.data(), rstd_c.data(), SIMDNORM_FUSE_RELU),
            SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(y, y_c) && SameBits(mean, mean_c) && SameBits(rstd, rstd_c));

  std::vector<float> dx(d.count), dg(12), db(12), dx_c(d.count), dg_c(12), db_c(12);
  simdnorm::group_norm_backward({d.x.data(), shape}, {d.dy.data(), shape}, groups, affine, mean.data(), rstd.data(),
                                {{dx.data(), shape}, dg.data(), db.data()}, simdnorm::Activation::Relu);
  ASSERT_EQ(
      simdnorm_group_norm_backward(&cs, groups, d.x.data(), d.dy.data(), d.gamma.data(), d.beta.data(), mean.data(),
                                   rstd.data(), dx_c.data(), dg_c.data(), db_c.data(), SIMDNORM_FUSE_RELU),
      SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(dx, dx_c) && SameBits(dg, dg_c) && SameBits(db, db_c));
}

// Runs `call`, which must throw simdnorm::Error with `status`, a message containing `needle`, and (for the C API's
// failures) the message simdnorm_last_error() holds.
template <class Call>
void ExpectError(const char* what, Call call, simdnorm::Status status, const char* needle, bool from_c_api) {
  try {
    call();
    ADD_FAILURE() << what << ": did not throw";
  } catch (const simdnorm::Error& e) {
    EXPECT_EQ(e.status(), status) << what;
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << what << ": " << e.what();
    if (from_c_api) {
      EXPECT_STREQ(e.what(), simdnorm_last_error()) << what;
    }
  }
}

TEST_P(NormWrapperTest, InvalidArgumentsThrowAndWriteNothing) {
  const Data d(kRows * kCols, kCols);
  std::vector<float> out(d.count, 0.0f), stats(kRows, 0.0f);
  const simdnorm::ConstMatrix x{d.x.data(), kRows, kCols};
  const simdnorm::Status invalid = simdnorm::Status::InvalidArgument;
  ExpectError(
      "layer_norm_forward with eps = -1",
      [&] {
        simdnorm::layer_norm_forward(x, {out.data(), kRows, kCols}, {}, {stats.data(), nullptr}, -1.0f);
      },
      invalid, "eps", true);
  ExpectError(
      "layer_norm_forward with y of other rows",
      [&] {
        simdnorm::layer_norm_forward(x, {out.data(), kRows - 1, kCols}, {});
      },
      invalid, "different sizes", false);
  ExpectError(
      "rms_norm_forward with y of fewer columns",
      [&] {
        simdnorm::rms_norm_forward({out.data(), kRows, kCols}, {out.data() + 1, kRows, kCols - 1}, nullptr);
      },
      invalid, "different sizes", false);
  ExpectError(
      "rms_norm_backward without rstd",
      [&] {
        simdnorm::rms_norm_backward(x, x, nullptr, nullptr, {out.data(), kRows, kCols});
      },
      invalid, "rstd", true);
  ExpectError(
      "layer_norm_backward with dx of other columns",
      [&] {
        simdnorm::layer_norm_backward(x, x, nullptr, stats.data(), stats.data(), {{out.data(), kRows, kCols + 1}});
      },
      invalid, "different sizes", false);
  const simdnorm::Shape shape{1, 6, 5, simdnorm::Layout::NCHW};
  ExpectError(
      "group_norm_forward with 4 groups of 6 channels",
      [&] {
        simdnorm::group_norm_forward({d.x.data(), shape}, {out.data(), shape}, 4, {});
      },
      invalid, "groups", true);
  simdnorm::Shape other = shape;
  other.layout = simdnorm::Layout::NHWC;
  ExpectError(
      "group_norm_backward with dx of another layout",
      [&] {
        simdnorm::group_norm_backward({d.x.data(), shape}, {d.dy.data(), shape}, 2, {}, stats.data(), stats.data(),
                                      {{out.data(), other}, nullptr, nullptr});
      },
      invalid, "different shapes", false);
  for (float v : out) ASSERT_EQ(v, 0.0f) << "a rejected call wrote its output";
  for (float v : stats) ASSERT_EQ(v, 0.0f) << "a rejected call wrote its statistics";
}

}  // namespace
}  // namespace simdnorm_test
