// The C API's argument checking: every invalid argument of every entry point returns SIMDNORM_INVALID_ARGUMENT, leaves
// a message naming it, and writes nothing (every buffer compared byte for byte). Also the small functions: version,
// isa, set_max_isa, last_error.
#include <cstdint>
#include <functional>
#include <limits>
#include <regex>
#include <thread>

#include "checkers.hpp"

namespace simdnorm_test {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// Valid argument sets for each entry point, with every buffer owned here so it can be compared after the call.
// Each is a small 2 x 3 x 5 problem; a case changes one thing and the call must reject it.

constexpr std::size_t kN = 2, kC = 3, kS = 5, kCount = kN * kC * kS;

// Writes an arbitrary value into the layout field without forming an out-of-range enum value in C++ code.
void SetRawLayout(simdnorm_shape& shape, std::uint32_t value) {
  static_assert(sizeof(shape.layout) == sizeof(value), "simdnorm_layout is expected to be 32 bits wide");
  std::memcpy(&shape.layout, &value, sizeof value);
}

std::vector<float> Values(std::size_t count, std::uint64_t seed, double lo, double hi) {
  Rng rng(seed);
  std::vector<float> v(count);
  for (float& f : v) f = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

// Output buffers start as this byte pattern, so that any write shows.
std::vector<float> Untouched(std::size_t count) {
  std::vector<float> v(count);
  std::memset(v.data(), 0xA5, count * sizeof(float));
  return v;
}

struct ArgsBase {
  simdnorm_shape shape = MakeShape(kN, kC, kS, SIMDNORM_NCHW);
  const simdnorm_shape* shape_ptr = &shape;
  std::vector<std::vector<float>*> buffers;  // every buffer the call can see, inputs and outputs

  ArgsBase() = default;
  ArgsBase(const ArgsBase&) = delete;
  ArgsBase& operator=(const ArgsBase&) = delete;
  std::vector<std::vector<float>> Snapshot() const {
    std::vector<std::vector<float>> copy;
    for (const auto* b : buffers) copy.push_back(*b);
    return copy;
  }
};

struct TrainingArgs : ArgsBase {
  std::vector<float> x = Values(kCount, 1, -2, 2), y = Untouched(kCount), gamma = Values(kC, 2, 0.5, 2),
                     beta = Values(kC, 3, -1, 1), bm = Untouched(kC), bi = Untouched(kC), rm = Values(kC, 4, -1, 1),
                     rv = Values(kC, 5, 0.5, 2);
  const float* x_ptr = x.data();
  float* y_ptr = y.data();
  float eps = 1e-5f;
  float* rm_ptr = rm.data();
  float* rv_ptr = rv.data();
  float momentum = 0.1f;
  unsigned flags = 0;
  TrainingArgs() { buffers = {&x, &y, &gamma, &beta, &bm, &bi, &rm, &rv}; }
  simdnorm_status Call() {
    return simdnorm_forward_training(shape_ptr, x_ptr, y_ptr, gamma.data(), beta.data(), eps, bm.data(), bi.data(),
                                     rm_ptr, rv_ptr, momentum, flags);
  }
};

struct InferenceArgs : ArgsBase {
  std::vector<float> x = Values(kCount, 1, -2, 2), y = Untouched(kCount), gamma = Values(kC, 2, 0.5, 2),
                     beta = Values(kC, 3, -1, 1), mean = Values(kC, 4, -1, 1), var = Values(kC, 5, 0.5, 2);
  const float* x_ptr = x.data();
  float* y_ptr = y.data();
  const float* mean_ptr = mean.data();
  const float* var_ptr = var.data();
  float eps = 1e-5f;
  unsigned flags = 0;
  InferenceArgs() { buffers = {&x, &y, &gamma, &beta, &mean, &var}; }
  simdnorm_status Call() {
    return simdnorm_forward_inference(shape_ptr, x_ptr, y_ptr, gamma.data(), beta.data(), mean_ptr, var_ptr, eps,
                                      flags);
  }
};

struct BackwardArgs : ArgsBase {
  std::vector<float> x = Values(kCount, 1, -2, 2), dy = Values(kCount, 6, -1, 1), gamma = Values(kC, 2, 0.5, 2),
                     beta = Values(kC, 3, -1, 1), bm = Values(kC, 4, -0.1, 0.1), bi = Values(kC, 5, 0.5, 1.5),
                     dx = Untouched(kCount), dg = Untouched(kC), db = Untouched(kC);
  const float* x_ptr = x.data();
  const float* dy_ptr = dy.data();
  const float* bm_ptr = bm.data();
  const float* bi_ptr = bi.data();
  unsigned flags = 0;
  BackwardArgs() { buffers = {&x, &dy, &gamma, &beta, &bm, &bi, &dx, &dg, &db}; }
  simdnorm_status Call() {
    return simdnorm_backward(shape_ptr, x_ptr, dy_ptr, gamma.data(), beta.data(), bm_ptr, bi_ptr, dx.data(), dg.data(),
                             db.data(), flags);
  }
};

struct FoldArgs : ArgsBase {
  std::vector<float> gamma = Values(kC, 2, 0.5, 2), beta = Values(kC, 3, -1, 1), mean = Values(kC, 4, -1, 1),
                     var = Values(kC, 5, 0.5, 2), scale = Untouched(kC), shift = Untouched(kC);
  std::size_t c = kC;
  const float* mean_ptr = mean.data();
  const float* var_ptr = var.data();
  float eps = 1e-5f;
  float* scale_ptr = scale.data();
  float* shift_ptr = shift.data();
  FoldArgs() { buffers = {&gamma, &beta, &mean, &var, &scale, &shift}; }
  simdnorm_status Call() {
    return simdnorm_fold(c, gamma.data(), beta.data(), mean_ptr, var_ptr, eps, scale_ptr, shift_ptr);
  }
};

struct AffineArgs : ArgsBase {
  std::vector<float> x = Values(kCount, 1, -2, 2), y = Untouched(kCount), scale = Values(kC, 2, -2, 2),
                     shift = Values(kC, 3, -1, 1);
  const float* x_ptr = x.data();
  float* y_ptr = y.data();
  const float* scale_ptr = scale.data();
  const float* shift_ptr = shift.data();
  unsigned flags = 0;
  AffineArgs() { buffers = {&x, &y, &scale, &shift}; }
  simdnorm_status Call() { return simdnorm_affine(shape_ptr, x_ptr, y_ptr, scale_ptr, shift_ptr, flags); }
};

// ---------------------------------------------------------------------------------------------------------------
// Cases.

template <class Args>
struct Case {
  std::string name;                       // gtest name
  std::function<void(Args&)> break_args;  // makes exactly one argument invalid
  const char* message_must_contain;       // nullptr: any non-empty message
};

template <class Args>
void PrintTo(const Case<Args>& c, std::ostream* os) {
  *os << c.name;
}

template <class Args>
std::string CaseName(const ::testing::TestParamInfo<Case<Args>>& info) {
  return info.param.name;
}

constexpr std::size_t kSizeMax = std::numeric_limits<std::size_t>::max();
constexpr std::size_t kMaxFloats = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(float);

// Shape cases common to every tensor entry point.
template <class Args>
void AddShapeCases(std::vector<Case<Args>>& cases) {
  auto dims = [](std::size_t n, std::size_t c, std::size_t s) {
    return [n, c, s](Args& a) {
      a.shape.n = n;
      a.shape.c = c;
      a.shape.spatial = s;
    };
  };
  cases.push_back({"ShapeNull", [](Args& a) { a.shape_ptr = nullptr; }, "shape"});
  cases.push_back({"NZero", dims(0, kC, kS), nullptr});
  cases.push_back({"CZero", dims(kN, 0, kS), nullptr});
  cases.push_back({"SpatialZero", dims(kN, kC, 0), nullptr});
  cases.push_back({"NTimesCOverflows", dims(kSizeMax / 2, 3, 1), nullptr});
  cases.push_back({"CTimesSpatialOverflows", dims(1, 3, kSizeMax / 2), nullptr});
  cases.push_back({"NTimesSpatialOverflows", dims(kSizeMax / 2, 1, 3), nullptr});
  cases.push_back(
      {"AllDimensionsHuge", dims(std::size_t{1} << 22, std::size_t{1} << 22, std::size_t{1} << 22), nullptr});
  cases.push_back({"ByteCountOverflows", dims(1, 1, kSizeMax / sizeof(float) + 1), nullptr});
  cases.push_back({"BeyondPtrdiffMax", dims(1, 2, kMaxFloats / 2 + 1), nullptr});
  cases.push_back({"SizeMaxSpatial", dims(2, 2, kSizeMax), nullptr});
  cases.push_back({"Layout2", [](Args& a) { SetRawLayout(a.shape, 2); }, "layout"});
  cases.push_back({"Layout7", [](Args& a) { SetRawLayout(a.shape, 7); }, "layout"});
  cases.push_back({"LayoutMinus1", [](Args& a) { SetRawLayout(a.shape, 0xFFFFFFFFu); }, "layout"});
}

template <class Args>
void AddEpsCases(std::vector<Case<Args>>& cases) {
  cases.push_back({"EpsZero", [](Args& a) { a.eps = 0.0f; }, "eps"});
  cases.push_back({"EpsNegativeZero", [](Args& a) { a.eps = -0.0f; }, "eps"});
  cases.push_back({"EpsNegative", [](Args& a) { a.eps = -1.0f; }, "eps"});
  cases.push_back({"EpsNaN", [](Args& a) { a.eps = std::numeric_limits<float>::quiet_NaN(); }, "eps"});
  cases.push_back({"EpsInf", [](Args& a) { a.eps = std::numeric_limits<float>::infinity(); }, "eps"});
  cases.push_back({"EpsMinusInf", [](Args& a) { a.eps = -std::numeric_limits<float>::infinity(); }, "eps"});
}

template <class Args>
void AddFlagCases(std::vector<Case<Args>>& cases) {
  cases.push_back({"Flags0x2", [](Args& a) { a.flags = 0x2u; }, "flags"});
  cases.push_back({"Flags0x3", [](Args& a) { a.flags = 0x3u; }, "flags"});
  cases.push_back({"FlagsHighBit", [](Args& a) { a.flags = 0x80000000u; }, "flags"});
}

// One value per channel: training statistics (and so backward) are undefined.
template <class Args>
void AddSingleValueCases(std::vector<Case<Args>>& cases) {
  constexpr const char* kMessage = "need more than one value per channel";
  cases.push_back({"OneValuePerChannelNCHW", [](Args& a) { a.shape = MakeShape(1, kC, 1, SIMDNORM_NCHW); }, kMessage});
  cases.push_back({"OneValuePerChannelNHWC", [](Args& a) { a.shape = MakeShape(1, kC, 1, SIMDNORM_NHWC); }, kMessage});
}

std::vector<Case<TrainingArgs>> TrainingCases() {
  using A = TrainingArgs;
  std::vector<Case<A>> cases;
  AddShapeCases(cases);
  AddEpsCases(cases);
  AddFlagCases(cases);
  AddSingleValueCases(cases);
  cases.push_back({"XNull", [](A& a) { a.x_ptr = nullptr; }, "x"});
  cases.push_back({"YNull", [](A& a) { a.y_ptr = nullptr; }, "y"});
  cases.push_back({"MomentumNegative", [](A& a) { a.momentum = -0.1f; }, "momentum"});
  cases.push_back({"MomentumAboveOne", [](A& a) { a.momentum = 1.5f; }, "momentum"});
  cases.push_back({"MomentumJustAboveOne", [](A& a) { a.momentum = 1.0000001f; }, "momentum"});
  cases.push_back({"MomentumNaN", [](A& a) { a.momentum = std::numeric_limits<float>::quiet_NaN(); }, "momentum"});
  cases.push_back({"MomentumInf", [](A& a) { a.momentum = std::numeric_limits<float>::infinity(); }, "momentum"});
  cases.push_back({"RunningMeanWithoutRunningVar", [](A& a) { a.rv_ptr = nullptr; }, "running"});
  cases.push_back({"RunningVarWithoutRunningMean", [](A& a) { a.rm_ptr = nullptr; }, "running"});
  return cases;
}

std::vector<Case<InferenceArgs>> InferenceCases() {
  using A = InferenceArgs;
  std::vector<Case<A>> cases;
  AddShapeCases(cases);
  AddEpsCases(cases);
  AddFlagCases(cases);
  cases.push_back({"XNull", [](A& a) { a.x_ptr = nullptr; }, "x"});
  cases.push_back({"YNull", [](A& a) { a.y_ptr = nullptr; }, "y"});
  cases.push_back({"MeanNull", [](A& a) { a.mean_ptr = nullptr; }, "mean"});
  cases.push_back({"VarNull", [](A& a) { a.var_ptr = nullptr; }, "var"});
  return cases;
}

std::vector<Case<BackwardArgs>> BackwardCases() {
  using A = BackwardArgs;
  std::vector<Case<A>> cases;
  AddShapeCases(cases);
  AddFlagCases(cases);
  AddSingleValueCases(cases);
  cases.push_back({"XNull", [](A& a) { a.x_ptr = nullptr; }, "x"});
  cases.push_back({"DyNull", [](A& a) { a.dy_ptr = nullptr; }, "dy"});
  cases.push_back({"BatchMeanNull", [](A& a) { a.bm_ptr = nullptr; }, "batch_mean"});
  cases.push_back({"BatchInvstdNull", [](A& a) { a.bi_ptr = nullptr; }, "batch_invstd"});
  return cases;
}

std::vector<Case<FoldArgs>> FoldCases() {
  using A = FoldArgs;
  std::vector<Case<A>> cases;
  AddEpsCases(cases);
  cases.push_back({"CZero", [](A& a) { a.c = 0; }, nullptr});
  cases.push_back({"CSizeMax", [](A& a) { a.c = kSizeMax; }, nullptr});
  cases.push_back({"CByteCountOverflows", [](A& a) { a.c = kSizeMax / sizeof(float) + 1; }, nullptr});
  cases.push_back({"CBeyondPtrdiffMax", [](A& a) { a.c = kMaxFloats + 1; }, nullptr});
  cases.push_back({"MeanNull", [](A& a) { a.mean_ptr = nullptr; }, "mean"});
  cases.push_back({"VarNull", [](A& a) { a.var_ptr = nullptr; }, "var"});
  cases.push_back({"ScaleNull", [](A& a) { a.scale_ptr = nullptr; }, "scale"});
  cases.push_back({"ShiftNull", [](A& a) { a.shift_ptr = nullptr; }, "shift"});
  return cases;
}

std::vector<Case<AffineArgs>> AffineCases() {
  using A = AffineArgs;
  std::vector<Case<A>> cases;
  AddShapeCases(cases);
  AddFlagCases(cases);
  cases.push_back({"XNull", [](A& a) { a.x_ptr = nullptr; }, "x"});
  cases.push_back({"YNull", [](A& a) { a.y_ptr = nullptr; }, "y"});
  cases.push_back({"ScaleNull", [](A& a) { a.scale_ptr = nullptr; }, "scale"});
  cases.push_back({"ShiftNull", [](A& a) { a.shift_ptr = nullptr; }, "shift"});
  return cases;
}

template <class Args>
void ExpectRejected(const Case<Args>& c) {
  Args args;
  ASSERT_EQ(args.Call(), SIMDNORM_SUCCESS) << "the unbroken arguments must be valid: " << simdnorm_last_error();
  // Fresh arguments again (the valid call wrote its outputs), then break one.
  Args broken;
  c.break_args(broken);
  const std::vector<std::vector<float>> before = broken.Snapshot();
  EXPECT_EQ(broken.Call(), SIMDNORM_INVALID_ARGUMENT) << c.name;
  const char* message = simdnorm_last_error();
  ASSERT_NE(message, nullptr);
  EXPECT_STRNE(message, "") << c.name << ": simdnorm_last_error() must say what was wrong";
  if (c.message_must_contain != nullptr) {
    EXPECT_NE(std::string(message).find(c.message_must_contain), std::string::npos)
        << c.name << ": the message \"" << message << "\" should name \"" << c.message_must_contain << "\"";
  }
  const std::vector<std::vector<float>> after = broken.Snapshot();
  for (std::size_t k = 0; k < before.size(); ++k) {
    EXPECT_EQ(0, std::memcmp(before[k].data(), after[k].data(), before[k].size() * sizeof(float)))
        << c.name << ": buffer " << k << " was written although the call was rejected";
  }
}

class TrainingValidation : public ::testing::TestWithParam<Case<TrainingArgs>> {};
class InferenceValidation : public ::testing::TestWithParam<Case<InferenceArgs>> {};
class BackwardValidation : public ::testing::TestWithParam<Case<BackwardArgs>> {};
class FoldValidation : public ::testing::TestWithParam<Case<FoldArgs>> {};
class AffineValidation : public ::testing::TestWithParam<Case<AffineArgs>> {};

TEST_P(TrainingValidation, Rejected) { ExpectRejected(GetParam()); }
TEST_P(InferenceValidation, Rejected) { ExpectRejected(GetParam()); }
TEST_P(BackwardValidation, Rejected) { ExpectRejected(GetParam()); }
TEST_P(FoldValidation, Rejected) { ExpectRejected(GetParam()); }
TEST_P(AffineValidation, Rejected) { ExpectRejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Api, TrainingValidation, ::testing::ValuesIn(TrainingCases()), CaseName<TrainingArgs>);
INSTANTIATE_TEST_SUITE_P(Api, InferenceValidation, ::testing::ValuesIn(InferenceCases()), CaseName<InferenceArgs>);
INSTANTIATE_TEST_SUITE_P(Api, BackwardValidation, ::testing::ValuesIn(BackwardCases()), CaseName<BackwardArgs>);
INSTANTIATE_TEST_SUITE_P(Api, FoldValidation, ::testing::ValuesIn(FoldCases()), CaseName<FoldArgs>);
INSTANTIATE_TEST_SUITE_P(Api, AffineValidation, ::testing::ValuesIn(AffineCases()), CaseName<AffineArgs>);

// ---------------------------------------------------------------------------------------------------------------
// Valid edge arguments are accepted.

TEST(ApiValidation, OptionalPointersMayBeNull) {
  {
    TrainingArgs a;
    EXPECT_EQ(simdnorm_forward_training(&a.shape, a.x.data(), a.y.data(), nullptr, nullptr, 1e-5f, nullptr, nullptr,
                                        nullptr, nullptr, 0.1f, 0),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
    // Without running statistics momentum is not read.
    EXPECT_EQ(simdnorm_forward_training(&a.shape, a.x.data(), a.y.data(), nullptr, nullptr, 1e-5f, nullptr, nullptr,
                                        nullptr, nullptr, 0.5f, SIMDNORM_FUSE_RELU),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
  }
  {
    InferenceArgs a;
    EXPECT_EQ(simdnorm_forward_inference(&a.shape, a.x.data(), a.y.data(), nullptr, nullptr, a.mean.data(),
                                         a.var.data(), 1e-5f, 0),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
  }
  {
    BackwardArgs a;
    EXPECT_EQ(simdnorm_backward(&a.shape, a.x.data(), a.dy.data(), nullptr, nullptr, a.bm.data(), a.bi.data(), nullptr,
                                nullptr, nullptr, 0),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
    EXPECT_EQ(simdnorm_backward(&a.shape, a.x.data(), a.dy.data(), nullptr, nullptr, a.bm.data(), a.bi.data(),
                                a.dx.data(), nullptr, nullptr, SIMDNORM_FUSE_RELU),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
  }
  {
    FoldArgs a;
    EXPECT_EQ(simdnorm_fold(kC, nullptr, nullptr, a.mean.data(), a.var.data(), 1e-5f, a.scale.data(), a.shift.data()),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
  }
}

TEST(ApiValidation, BoundaryValuesAreAccepted) {
  for (float momentum : {0.0f, 1.0f}) {
    TrainingArgs a;
    a.momentum = momentum;
    EXPECT_EQ(a.Call(), SIMDNORM_SUCCESS) << "momentum " << momentum << ": " << simdnorm_last_error();
  }
  for (float eps : {std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                    std::numeric_limits<float>::max()}) {
    TrainingArgs t;
    t.eps = eps;
    EXPECT_EQ(t.Call(), SIMDNORM_SUCCESS) << "eps " << eps << ": " << simdnorm_last_error();
    InferenceArgs i;
    i.eps = eps;
    EXPECT_EQ(i.Call(), SIMDNORM_SUCCESS) << "eps " << eps << ": " << simdnorm_last_error();
    FoldArgs f;
    f.eps = eps;
    EXPECT_EQ(f.Call(), SIMDNORM_SUCCESS) << "eps " << eps << ": " << simdnorm_last_error();
  }
  for (simdnorm_layout layout : {SIMDNORM_NCHW, SIMDNORM_NHWC}) {
    // Two values per channel is the minimum for training and backward; one is fine for inference and affine.
    TrainingArgs t;
    t.shape = MakeShape(2, kC, 1, layout);
    EXPECT_EQ(t.Call(), SIMDNORM_SUCCESS) << simdnorm_last_error();
    BackwardArgs b;
    b.shape = MakeShape(1, kC, 2, layout);
    EXPECT_EQ(b.Call(), SIMDNORM_SUCCESS) << simdnorm_last_error();
    InferenceArgs i;
    i.shape = MakeShape(1, kC, 1, layout);
    EXPECT_EQ(i.Call(), SIMDNORM_SUCCESS) << simdnorm_last_error();
    AffineArgs f;
    f.shape = MakeShape(1, kC, 1, layout);
    EXPECT_EQ(f.Call(), SIMDNORM_SUCCESS) << simdnorm_last_error();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// version, isa, set_max_isa, last_error.

TEST(Api, VersionIsMajorMinorPatchOfTheHeader) {
  const char* version = simdnorm_version();
  ASSERT_NE(version, nullptr);
  EXPECT_TRUE(std::regex_match(version, std::regex("[0-9]+\\.[0-9]+\\.[0-9]+"))) << version;
  const std::string header = std::to_string(SIMDNORM_VERSION_MAJOR) + "." + std::to_string(SIMDNORM_VERSION_MINOR) +
                             "." + std::to_string(SIMDNORM_VERSION_PATCH);
  EXPECT_EQ(header, version) << "the linked library and the header disagree";
}

bool IsKnownIsa(const char* name) {
  return name != nullptr &&
         (std::string(name) == "avx512" || std::string(name) == "avx2" || std::string(name) == "sse2");
}

TEST(Api, IsaIsOneOfTheThreePaths) {
  EXPECT_TRUE(IsKnownIsa(simdnorm_isa())) << (simdnorm_isa() ? simdnorm_isa() : "NULL");
}

TEST(Api, SetMaxIsaRejectsUnknownNames) {
  const std::string before = simdnorm_isa();
  for (const char* bad : {static_cast<const char*>(nullptr), "bogus", "", "avx", "sse2 ", "avx512f"}) {
    EXPECT_EQ(simdnorm_set_max_isa(bad), SIMDNORM_INVALID_ARGUMENT) << (bad ? bad : "NULL");
    EXPECT_STRNE(simdnorm_last_error(), "") << (bad ? bad : "NULL");
    EXPECT_EQ(before, simdnorm_isa()) << "a rejected cap must not change the path";
  }
}

TEST(Api, SetMaxIsaCapsThePath) {
  const std::string before = simdnorm_isa();
  // SSE2 is part of x86-64, so capping at it always lands on it.
  ASSERT_EQ(simdnorm_set_max_isa("sse2"), SIMDNORM_SUCCESS) << simdnorm_last_error();
  EXPECT_STREQ(simdnorm_isa(), "sse2");
  ASSERT_EQ(simdnorm_set_max_isa("avx2"), SIMDNORM_SUCCESS) << simdnorm_last_error();
  EXPECT_TRUE(std::string(simdnorm_isa()) == "avx2" || std::string(simdnorm_isa()) == "sse2") << simdnorm_isa();
  ASSERT_EQ(simdnorm_set_max_isa("avx512"), SIMDNORM_SUCCESS) << simdnorm_last_error();
  EXPECT_TRUE(IsKnownIsa(simdnorm_isa()));
  EXPECT_EQ(simdnorm_set_max_isa(before.c_str()), SIMDNORM_SUCCESS);
}

TEST(Api, LastErrorIsNeverNullAndPerThread) {
  // A thread that has had no failure sees "".
  std::string fresh = "<not run>";
  std::thread([&] {
    const char* m = simdnorm_last_error();
    fresh = m == nullptr ? "<NULL>" : m;
  }).join();
  EXPECT_EQ(fresh, "");

  // A failure here leaves a message here...
  ASSERT_EQ(simdnorm_set_max_isa("bogus"), SIMDNORM_INVALID_ARGUMENT);
  const std::string mine = simdnorm_last_error();
  EXPECT_FALSE(mine.empty());

  // ...that another thread neither sees nor overwrites with its own failure.
  std::string other_before = "<not run>", other_after;
  std::thread([&] {
    other_before = simdnorm_last_error();
    EXPECT_EQ(simdnorm_fold(0, nullptr, nullptr, nullptr, nullptr, -1.0f, nullptr, nullptr), SIMDNORM_INVALID_ARGUMENT);
    other_after = simdnorm_last_error();
  }).join();
  EXPECT_EQ(other_before, "") << "another thread's failure leaked into a fresh thread";
  EXPECT_FALSE(other_after.empty());
  EXPECT_NE(other_after, mine);
  ASSERT_NE(simdnorm_last_error(), nullptr);
  EXPECT_EQ(mine, simdnorm_last_error()) << "another thread's failure replaced this thread's message";
}

// Several threads failing at once each read back their own message.
TEST(Api, ConcurrentFailuresKeepTheirOwnMessages) {
  constexpr int kThreads = 4;
  std::vector<std::string> got(kThreads), want(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &got, &want] {
      // Each thread fails on a different argument, 200 times, checking its message each time.
      for (int round = 0; round < 200; ++round) {
        FoldArgs a;
        if (t == 0) a.mean_ptr = nullptr;
        if (t == 1) a.var_ptr = nullptr;
        if (t == 2) a.scale_ptr = nullptr;
        if (t == 3) a.eps = -1.0f;
        if (a.Call() != SIMDNORM_INVALID_ARGUMENT) return;
        const std::string m = simdnorm_last_error();
        if (round == 0) want[t] = m;
        if (m != want[t]) return;
      }
      got[t] = want[t];
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_FALSE(got[t].empty()) << "thread " << t << " saw a missing, changing or foreign message";
  }
  EXPECT_NE(want[0], want[3]);
}

}  // namespace
}  // namespace simdnorm_test
