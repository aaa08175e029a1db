// The C++ wrapper (simdnorm.hpp): same bits as the C API it forwards to, simdnorm::Error with the status and the
// message on failure, and NON_FINITE as a returned status rather than an exception. Once per ISA.
#include <simdnorm/simdnorm.hpp>

#include "checkers.hpp"

namespace simdnorm_test {
namespace {

class WrapperTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(WrapperTest);

constexpr std::size_t kN = 2, kC = 5, kS = 9;

struct Data {
  simdnorm::Shape shape{kN, kC, kS, simdnorm::Layout::NHWC};
  std::size_t count = kN * kC * kS;
  std::vector<float> x, dy, gamma, beta, mean, var;
  Data() {
    Rng rng(2024);
    x.resize(count);
    dy.resize(count);
    const simdnorm_shape cs = shape.c_shape();
    FillInput(rng, cs, InputDistribution{}, x.data());
    for (float& v : dy) v = static_cast<float>(rng.normal());
    for (std::size_t c = 0; c < kC; ++c) {
      gamma.push_back(static_cast<float>(rng.signed_uniform(0.5, 2)));
      beta.push_back(static_cast<float>(rng.uniform(-1, 1)));
      mean.push_back(static_cast<float>(rng.uniform(-1, 1)));
      var.push_back(static_cast<float>(rng.uniform(0.5, 2)));
    }
  }
};

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_P(WrapperTest, SameResultsAsTheCApi) {
  const Data d;
  const simdnorm_shape cs = d.shape.c_shape();
  EXPECT_EQ(d.shape.elements(), d.count);
  EXPECT_EQ(cs.layout, SIMDNORM_NHWC);
  const simdnorm::Affine affine{d.gamma.data(), d.beta.data()};

  // Training, with ReLU and every statistic.
  std::vector<float> y(d.count), bm(kC), bi(kC), rm(kC, 0.0f), rv(kC, 1.0f);
  std::vector<float> y_c(d.count), bm_c(kC), bi_c(kC), rm_c(kC, 0.0f), rv_c(kC, 1.0f);
  simdnorm::TrainingOptions options;
  options.activation = simdnorm::Activation::Relu;
  options.momentum = 0.25f;
  EXPECT_EQ(simdnorm::forward_training({d.x.data(), d.shape}, {y.data(), d.shape}, affine,
                                       {bm.data(), bi.data(), rm.data(), rv.data()}, options),
            simdnorm::Status::Success);
  ASSERT_EQ(simdnorm_forward_training(&cs, d.x.data(), y_c.data(), d.gamma.data(), d.beta.data(), 1e-5f, bm_c.data(),
                                      bi_c.data(), rm_c.data(), rv_c.data(), 0.25f, SIMDNORM_FUSE_RELU),
            SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(y, y_c));
  EXPECT_TRUE(SameBits(bm, bm_c));
  EXPECT_TRUE(SameBits(bi, bi_c));
  EXPECT_TRUE(SameBits(rm, rm_c));
  EXPECT_TRUE(SameBits(rv, rv_c));

  // Inference.
  std::vector<float> yi(d.count), yi_c(d.count);
  simdnorm::forward_inference({d.x.data(), d.shape}, {yi.data(), d.shape}, affine, d.mean.data(), d.var.data(), 1e-3f);
  ASSERT_EQ(simdnorm_forward_inference(&cs, d.x.data(), yi_c.data(), d.gamma.data(), d.beta.data(), d.mean.data(),
                                       d.var.data(), 1e-3f, 0),
            SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(yi, yi_c));

  // Backward, dx only through the view, dgamma and dbeta too.
  std::vector<float> dx(d.count), dg(kC), db(kC), dx_c(d.count), dg_c(kC), db_c(kC);
  simdnorm::backward({d.x.data(), d.shape}, {d.dy.data(), d.shape}, affine, bm.data(), bi.data(),
                     {{dx.data(), d.shape}, dg.data(), db.data()}, simdnorm::Activation::Relu);
  ASSERT_EQ(simdnorm_backward(&cs, d.x.data(), d.dy.data(), d.gamma.data(), d.beta.data(), bm.data(), bi.data(),
                              dx_c.data(), dg_c.data(), db_c.data(), SIMDNORM_FUSE_RELU),
            SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(dx, dx_c));
  EXPECT_TRUE(SameBits(dg, dg_c));
  EXPECT_TRUE(SameBits(db, db_c));

  // Fold and affine.
  std::vector<float> scale(kC), shift(kC), scale_c(kC), shift_c(kC), ya(d.count), ya_c(d.count);
  simdnorm::fold(kC, affine, d.mean.data(), d.var.data(), 1e-5f, scale.data(), shift.data());
  ASSERT_EQ(simdnorm_fold(kC, d.gamma.data(), d.beta.data(), d.mean.data(), d.var.data(), 1e-5f, scale_c.data(),
                          shift_c.data()),
            SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(scale, scale_c));
  EXPECT_TRUE(SameBits(shift, shift_c));
  simdnorm::affine({d.x.data(), d.shape}, {ya.data(), d.shape}, scale.data(), shift.data());
  ASSERT_EQ(simdnorm_affine(&cs, d.x.data(), ya_c.data(), scale.data(), shift.data(), 0), SIMDNORM_SUCCESS);
  EXPECT_TRUE(SameBits(ya, ya_c));

  EXPECT_STREQ(simdnorm::version(), simdnorm_version());
  EXPECT_STREQ(simdnorm::isa(), isa());
}

TEST_P(WrapperTest, InvalidArgumentThrowsErrorWithStatusAndMessage) {
  const Data d;
  std::vector<float> y(d.count, 0.0f);
  simdnorm::TrainingOptions options;
  options.eps = -1.0f;
  try {
    simdnorm::forward_training({d.x.data(), d.shape}, {y.data(), d.shape}, {}, {}, options);
    ADD_FAILURE() << "eps = -1 did not throw";
  } catch (const simdnorm::Error& e) {
    EXPECT_EQ(e.status(), simdnorm::Status::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("eps"), std::string::npos) << e.what();
    EXPECT_STREQ(e.what(), simdnorm_last_error()) << "the exception carries the C API's message";
  }
  for (float v : y) ASSERT_EQ(v, 0.0f) << "a rejected call wrote y";

  EXPECT_THROW(simdnorm::fold(kC, {}, nullptr, d.var.data(), 1e-5f, y.data(), y.data() + kC), simdnorm::Error);
  try {
    simdnorm::set_max_isa("bogus");
    ADD_FAILURE() << "set_max_isa(\"bogus\") did not throw";
  } catch (const simdnorm::Error& e) {
    EXPECT_EQ(e.status(), simdnorm::Status::InvalidArgument);
    EXPECT_STRNE(e.what(), "");
  }
  EXPECT_STREQ(simdnorm::isa(), isa()) << "a rejected cap changed the path";

  // One value per channel: training is refused with the documented reason.
  const simdnorm::Shape single{1, kC, 1, simdnorm::Layout::NCHW};
  try {
    simdnorm::forward_training({d.x.data(), single}, {y.data(), single}, {}, {});
    ADD_FAILURE() << "training with one value per channel did not throw";
  } catch (const simdnorm::Error& e) {
    EXPECT_EQ(e.status(), simdnorm::Status::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("need more than one value per channel"), std::string::npos) << e.what();
  }
}

TEST_P(WrapperTest, MismatchedViewsThrow) {
  const Data d;
  std::vector<float> y(d.count, 0.0f);
  simdnorm::Shape other = d.shape;
  other.layout = simdnorm::Layout::NCHW;
  try {
    simdnorm::affine({d.x.data(), d.shape}, {y.data(), other}, d.gamma.data(), d.beta.data());
    ADD_FAILURE() << "views of different layouts did not throw";
  } catch (const simdnorm::Error& e) {
    EXPECT_EQ(e.status(), simdnorm::Status::InvalidArgument);
    EXPECT_STRNE(e.what(), "");
  }
  for (float v : y) ASSERT_EQ(v, 0.0f) << "a rejected call wrote y";
}

TEST_P(WrapperTest, NonFiniteIsAStatusNotAnException) {
  Data d;
  d.x[7] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> y(d.count), rm(kC, 0.0f), rv(kC, 1.0f);
  simdnorm::Status status = simdnorm::Status::Success;
  EXPECT_NO_THROW(status = simdnorm::forward_training({d.x.data(), d.shape}, {y.data(), d.shape}, {},
                                                      {nullptr, nullptr, rm.data(), rv.data()}));
  EXPECT_EQ(status, simdnorm::Status::NonFinite);
}

}  // namespace
}  // namespace simdnorm_test
