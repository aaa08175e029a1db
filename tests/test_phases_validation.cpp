// Argument checking of the split-phase API, as test_api_validation.cpp does for the one-call functions: every
// invalid argument of simdnorm_moments, _merge_moments, _finish_moments, _normalize, _backward_reduce and
// _backward_apply returns SIMDNORM_INVALID_ARGUMENT, writes nothing (every buffer the call can see lives in one arena,
// compared byte for byte), and leaves a message naming the argument (as a whole word). The reference's split
// functions share the validation: they must reject the same calls with the same messages.
#include <cctype>
#include <cstdint>
#include <functional>
#include <limits>

#include "checkers.hpp"

namespace simdnorm_test {
namespace {

constexpr std::size_t kN = 2, kC = 3, kS = 5, kCount = kN * kC * kS;
constexpr std::size_t kSizeMax = std::numeric_limits<std::size_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Every buffer of a call, inputs and outputs, carved out of one block with gaps between them: "nothing written" is
// one comparison, and an aliasing case can point one argument into (or just before) another.
class Arena {
 public:
  Arena() : storage_(2048, 0.0) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  // `count` values, valid inputs drawn in [lo, hi], at an 8-byte-aligned place 64 bytes past the previous buffer.
  template <class T>
  T* Input(std::size_t count, double lo, double hi) {
    T* p = Take<T>(count);
    for (std::size_t i = 0; i < count; ++i) p[i] = static_cast<T>(rng_.uniform(lo, hi));
    return p;
  }
  // `count` values of a byte pattern that any write would change.
  template <class T>
  T* Output(std::size_t count) {
    T* p = Take<T>(count);
    std::memset(p, 0xA5, count * sizeof(T));
    return p;
  }
  std::vector<double> Snapshot() const { return storage_; }
  bool Unchanged(const std::vector<double>& before) const {
    return std::memcmp(before.data(), storage_.data(), storage_.size() * sizeof(double)) == 0;
  }

 private:
  template <class T>
  T* Take(std::size_t count) {
    used_ += 8;  // the gap
    T* p = reinterpret_cast<T*>(storage_.data() + used_);
    used_ += (count * sizeof(T) + sizeof(double) - 1) / sizeof(double);
    return p;
  }
  std::vector<double> storage_;
  std::size_t used_ = 0;
  Rng rng_{11};
};

// The valid arguments of each function, a 2 x 3 x 5 problem (three parts in the merge); a case changes one thing.
struct MomentsArgs {
  Arena arena;
  simdnorm_shape shape = MakeShape(kN, kC, kS, SIMDNORM_NCHW);
  const simdnorm_shape* shape_ptr = &shape;
  const float* x = arena.Input<float>(kCount, -2, 2);
  double* mean = arena.Output<double>(kC);
  double* m2 = arena.Output<double>(kC);
  simdnorm_status Call(bool ref) const {
    return (ref ? simdnorm_reference_moments : simdnorm_moments)(shape_ptr, x, mean, m2);
  }
};

struct MergeArgs {
  Arena arena;
  std::size_t parts = 3, c = kC;
  double* counts = arena.Input<double>(3, 10, 20);
  const double* means = arena.Input<double>(3 * kC, -1, 1);
  const double* m2s = arena.Input<double>(3 * kC, 1, 10);
  double* mean = arena.Output<double>(kC);
  double* m2 = arena.Output<double>(kC);
  double* total = arena.Output<double>(1);
  MergeArgs() { counts[1] = 0.0; }  // an empty part is valid
  simdnorm_status Call(bool ref) const {
    return (ref ? simdnorm_reference_merge_moments : simdnorm_merge_moments)(parts, c, counts, means, m2s, mean, m2,
                                                                             total);
  }
};

struct FinishArgs {
  Arena arena;
  std::size_t c = kC;
  double count = 20.0;
  const double* mean = arena.Input<double>(kC, -1, 1);
  const double* m2 = arena.Input<double>(kC, 1, 10);
  float eps = 1e-5f;
  float* bm = arena.Output<float>(kC);
  float* bi = arena.Output<float>(kC);
  float* rm = arena.Input<float>(kC, -1, 1);
  float* rv = arena.Input<float>(kC, 0.5, 2);
  float momentum = 0.1f;
  simdnorm_status Call(bool ref) const {
    return (ref ? simdnorm_reference_finish_moments : simdnorm_finish_moments)(c, count, mean, m2, eps, bm, bi, rm, rv,
                                                                               momentum);
  }
};

// What normalize, backward_reduce and backward_apply read.
struct TensorArgs {
  Arena arena;
  simdnorm_shape shape = MakeShape(kN, kC, kS, SIMDNORM_NCHW);
  const simdnorm_shape* shape_ptr = &shape;
  const float* x = arena.Input<float>(kCount, -2, 2);
  const float* gamma = arena.Input<float>(kC, 0.5, 2);
  const float* beta = arena.Input<float>(kC, -1, 1);
  const float* bm = arena.Input<float>(kC, -0.1, 0.1);
  const float* bi = arena.Input<float>(kC, 0.5, 1.5);
  unsigned flags = 0;
};

struct NormalizeArgs : TensorArgs {
  float* y = arena.Output<float>(kCount);
  simdnorm_status Call(bool ref) const {
    return (ref ? simdnorm_reference_normalize : simdnorm_normalize)(shape_ptr, x, y, gamma, beta, bm, bi, flags);
  }
};

struct ReduceArgs : TensorArgs {
  const float* dy = arena.Input<float>(kCount, -1, 1);
  double* sum_dy = arena.Output<double>(kC);
  double* sum_dy_xhat = arena.Output<double>(kC);
  simdnorm_status Call(bool ref) const {
    return (ref ? simdnorm_reference_backward_reduce : simdnorm_backward_reduce)(shape_ptr, x, dy, gamma, beta, bm, bi,
                                                                                 sum_dy, sum_dy_xhat, flags);
  }
};

struct ApplyArgs : TensorArgs {
  float* dy = arena.Input<float>(kCount, -1, 1);
  const double* sum_dy = arena.Input<double>(kC, -3, 3);
  const double* sum_dy_xhat = arena.Input<double>(kC, -3, 3);
  double count = static_cast<double>(kN * kS);
  float* dx = arena.Output<float>(kCount);
  simdnorm_status Call(bool ref) const {
    return (ref ? simdnorm_reference_backward_apply : simdnorm_backward_apply)(shape_ptr, x, dy, gamma, beta, bm, bi,
                                                                               sum_dy, sum_dy_xhat, count, dx, flags);
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Cases.

template <class Args>
struct Case {
  std::string name;                       // gtest name
  std::function<void(Args&)> break_args;  // makes exactly one argument invalid
  std::vector<const char*> names;         // words the message must contain (empty: any non-empty message)
};

template <class Args>
void PrintTo(const Case<Args>& c, std::ostream* os) {
  *os << c.name;
}

template <class Args>
std::string CaseName(const ::testing::TestParamInfo<Case<Args>>& info) {
  return info.param.name;
}

// `word` in `message` not as part of a longer identifier ("m2" is not in "m2s", "mean" not in "batch_mean").
bool HasWord(const std::string& message, const std::string& word) {
  auto in_identifier = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_'; };
  for (std::size_t at = message.find(word); at != std::string::npos; at = message.find(word, at + 1)) {
    const std::size_t end = at + word.size();
    if ((at == 0 || !in_identifier(message[at - 1])) && (end == message.size() || !in_identifier(message[end]))) {
      return true;
    }
  }
  return false;
}

// The shape cases of test_api_validation.cpp.
template <class Args>
void AddShapeCases(std::vector<Case<Args>>& cases) {
  auto dims = [](std::size_t n, std::size_t c, std::size_t s) {
    return [n, c, s](Args& a) { a.shape = MakeShape(n, c, s, SIMDNORM_NCHW); };
  };
  auto layout = [](std::uint32_t value) {
    return [value](Args& a) { std::memcpy(&a.shape.layout, &value, sizeof value); };
  };
  const std::size_t max_floats = static_cast<std::size_t>(PTRDIFF_MAX) / sizeof(float);
  cases.push_back({"ShapeNull", [](Args& a) { a.shape_ptr = nullptr; }, {"shape"}});
  cases.push_back({"NZero", dims(0, kC, kS), {"n"}});
  cases.push_back({"CZero", dims(kN, 0, kS), {"c"}});
  cases.push_back({"SpatialZero", dims(kN, kC, 0), {"spatial"}});
  cases.push_back({"NTimesCOverflows", dims(kSizeMax / 2, 3, 1), {}});
  cases.push_back({"CTimesSpatialOverflows", dims(1, 3, kSizeMax / 2), {}});
  cases.push_back({"ByteCountOverflows", dims(1, 1, kSizeMax / sizeof(float) + 1), {}});
  cases.push_back({"BeyondPtrdiffMax", dims(1, 2, max_floats / 2 + 1), {}});
  cases.push_back({"Layout2", layout(2), {"layout"}});
  cases.push_back({"LayoutMinus1", layout(0xFFFFFFFFu), {"layout"}});
}

template <class Args>
void AddFlagCases(std::vector<Case<Args>>& cases) {
  cases.push_back({"Flags0x2", [](Args& a) { a.flags = 0x2u; }, {"flags"}});
  cases.push_back({"FlagsHighBit", [](Args& a) { a.flags = 0x80000000u; }, {"flags"}});
}

// A case name with the invalid value it sets.
template <class T>
struct Named {
  const char* name;
  T value;
};
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN(), kInff = std::numeric_limits<float>::infinity();

// A total count: finite and at least 2.
template <class Args>
void AddTotalCountCases(std::vector<Case<Args>>& cases) {
  constexpr Named<double> kCounts[] = {{"CountBelowTwo", 1.999}, {"CountOne", 1.0},  {"CountZero", 0.0},
                                       {"CountNegative", -20.0}, {"CountNaN", kNaN}, {"CountInf", kInf},
                                       {"CountMinusInf", -kInf}};
  for (const Named<double>& v : kCounts) cases.push_back({v.name, [=](Args& a) { a.count = v.value; }, {"count"}});
}

std::vector<Case<MomentsArgs>> MomentsCases() {
  using A = MomentsArgs;
  std::vector<Case<A>> cases;
  AddShapeCases(cases);
  cases.push_back({"XNull", [](A& a) { a.x = nullptr; }, {"x"}});
  cases.push_back({"MeanNull", [](A& a) { a.mean = nullptr; }, {"mean"}});
  cases.push_back({"M2Null", [](A& a) { a.m2 = nullptr; }, {"m2"}});
  cases.push_back({"M2IsMean", [](A& a) { a.m2 = a.mean; }, {"m2", "mean"}});
  cases.push_back({"M2OverlapsMean", [](A& a) { a.m2 = a.mean + 2; }, {"m2", "mean"}});
  cases.push_back({"MeanOverlapsM2", [](A& a) { a.mean = a.m2 - 1; }, {"m2", "mean"}});
  return cases;
}

std::vector<Case<MergeArgs>> MergeCases() {
  using A = MergeArgs;
  std::vector<Case<A>> cases;
  cases.push_back({"PartsZero", [](A& a) { a.parts = 0; }, {"parts"}});
  cases.push_back({"CZero", [](A& a) { a.c = 0; }, {"c"}});
  cases.push_back({"CBeyondPtrdiffMax", [](A& a) { a.c = PTRDIFF_MAX / sizeof(double) + 1; }, {"c"}});
  cases.push_back({"PartsTimesCOverflows", [](A& a) { a.parts = kSizeMax / 2; }, {"parts", "c"}});
  cases.push_back(
      {"PartsTimesCBeyondPtrdiffMax", [](A& a) { a.c = PTRDIFF_MAX / sizeof(double) / 2; }, {"parts", "c"}});
  cases.push_back({"CountsNull", [](A& a) { a.counts = nullptr; }, {"counts"}});
  cases.push_back({"MeansNull", [](A& a) { a.means = nullptr; }, {"means"}});
  cases.push_back({"M2sNull", [](A& a) { a.m2s = nullptr; }, {"m2s"}});
  cases.push_back({"MeanNull", [](A& a) { a.mean = nullptr; }, {"mean"}});
  cases.push_back({"M2Null", [](A& a) { a.m2 = nullptr; }, {"m2"}});
  cases.push_back({"TotalNull", [](A& a) { a.total = nullptr; }, {"total"}});
  constexpr Named<double> kCounts[] = {{"CountNegative", -1.0},
                                       {"CountTinyNegative", -1e-300},
                                       {"CountNaN", kNaN},
                                       {"CountInf", kInf},
                                       {"CountMinusInf", -kInf}};
  for (const Named<double>& v : kCounts) cases.push_back({v.name, [=](A& a) { a.counts[2] = v.value; }, {"counts"}});
  // Outputs overlapping inputs other than the exact alias of row 0, or each other.
  cases.push_back({"MeanIsRow1OfMeans", [](A& a) { a.mean = const_cast<double*>(a.means) + kC; }, {"mean", "means"}});
  cases.push_back({"MeanOverlapsRow0", [](A& a) { a.mean = const_cast<double*>(a.means) + 1; }, {"mean", "means"}});
  cases.push_back({"MeanJustBeforeMeans", [](A& a) { a.mean = const_cast<double*>(a.means) - 1; }, {"mean", "means"}});
  cases.push_back({"M2IsRow2OfM2s", [](A& a) { a.m2 = const_cast<double*>(a.m2s) + 2 * kC; }, {"m2", "m2s"}});
  cases.push_back({"MeanIsRow0OfM2s", [](A& a) { a.mean = const_cast<double*>(a.m2s); }, {"mean", "m2s"}});
  cases.push_back({"M2IsRow0OfMeans", [](A& a) { a.m2 = const_cast<double*>(a.means); }, {"m2", "means"}});
  cases.push_back({"M2IsMean", [](A& a) { a.m2 = a.mean; }, {"m2", "mean"}});
  cases.push_back({"TotalInMean", [](A& a) { a.total = a.mean + 2; }, {"total", "mean"}});
  cases.push_back({"TotalInM2", [](A& a) { a.total = a.m2; }, {"total", "m2"}});
  cases.push_back({"MeanOverlapsCounts", [](A& a) { a.mean = a.counts + 2; }, {"mean", "counts"}});
  cases.push_back({"TotalInCounts", [](A& a) { a.total = a.counts + 1; }, {"total", "counts"}});
  cases.push_back({"TotalInMeans", [](A& a) { a.total = const_cast<double*>(a.means); }, {"total", "means"}});
  cases.push_back({"TotalInM2s", [](A& a) { a.total = const_cast<double*>(a.m2s) + 4; }, {"total", "m2s"}});
  return cases;
}

std::vector<Case<FinishArgs>> FinishCases() {
  using A = FinishArgs;
  std::vector<Case<A>> cases;
  AddTotalCountCases(cases);
  cases.push_back({"CZero", [](A& a) { a.c = 0; }, {"c"}});
  cases.push_back({"CBeyondPtrdiffMax", [](A& a) { a.c = PTRDIFF_MAX / sizeof(double) + 1; }, {"c"}});
  cases.push_back({"MeanNull", [](A& a) { a.mean = nullptr; }, {"mean"}});
  cases.push_back({"M2Null", [](A& a) { a.m2 = nullptr; }, {"m2"}});
  constexpr Named<float> kEpsValues[] = {
      {"EpsZero", 0.0f}, {"EpsNegativeZero", -0.0f}, {"EpsNegative", -1.0f}, {"EpsNaN", kNaNf}, {"EpsInf", kInff}};
  for (const Named<float>& v : kEpsValues) cases.push_back({v.name, [=](A& a) { a.eps = v.value; }, {"eps"}});
  constexpr Named<float> kMomenta[] = {{"MomentumNegative", -0.1f},
                                       {"MomentumJustAboveOne", 1.0000001f},
                                       {"MomentumNaN", kNaNf},
                                       {"MomentumInf", kInff}};
  for (const Named<float>& v : kMomenta) cases.push_back({v.name, [=](A& a) { a.momentum = v.value; }, {"momentum"}});
  cases.push_back({"RunningMeanWithoutRunningVar", [](A& a) { a.rv = nullptr; }, {"running_var"}});
  cases.push_back({"RunningVarWithoutRunningMean", [](A& a) { a.rm = nullptr; }, {"running_mean"}});
  // Per-channel outputs overlapping each other or the inputs.
  cases.push_back({"BatchInvstdIsBatchMean", [](A& a) { a.bi = a.bm; }, {"batch_invstd", "batch_mean"}});
  cases.push_back({"BatchMeanOverlapsRunningMean", [](A& a) { a.bm = a.rm + 1; }, {"batch_mean", "running_mean"}});
  cases.push_back({"RunningVarIsRunningMean", [](A& a) { a.rv = a.rm; }, {"running_var", "running_mean"}});
  cases.push_back({"BatchInvstdOverlapsRunningVar", [](A& a) { a.bi = a.rv - 2; }, {"batch_invstd", "running_var"}});
  cases.push_back({"BatchMeanInMean",
                   [](A& a) { a.bm = reinterpret_cast<float*>(const_cast<double*>(a.mean)); },
                   {"batch_mean", "mean"}});
  cases.push_back({"RunningVarInM2",
                   [](A& a) { a.rv = reinterpret_cast<float*>(const_cast<double*>(a.m2)) + 3; },
                   {"running_var", "m2"}});
  return cases;
}

template <class Args>
void AddTensorCases(std::vector<Case<Args>>& cases) {
  AddShapeCases(cases);
  AddFlagCases(cases);
  cases.push_back({"XNull", [](Args& a) { a.x = nullptr; }, {"x"}});
  cases.push_back({"BatchMeanNull", [](Args& a) { a.bm = nullptr; }, {"batch_mean"}});
  cases.push_back({"BatchInvstdNull", [](Args& a) { a.bi = nullptr; }, {"batch_invstd"}});
}

std::vector<Case<NormalizeArgs>> NormalizeCases() {
  using A = NormalizeArgs;
  std::vector<Case<A>> cases;
  AddTensorCases(cases);
  cases.push_back({"YNull", [](A& a) { a.y = nullptr; }, {"y"}});
  cases.push_back({"YOverlapsXAfterIt", [](A& a) { a.y = const_cast<float*>(a.x) + 1; }, {"y", "x"}});
  cases.push_back({"YOverlapsXBeforeIt", [](A& a) { a.y = const_cast<float*>(a.x) - 3; }, {"y", "x"}});
  return cases;
}

std::vector<Case<ReduceArgs>> ReduceCases() {
  using A = ReduceArgs;
  std::vector<Case<A>> cases;
  AddTensorCases(cases);
  cases.push_back({"DyNull", [](A& a) { a.dy = nullptr; }, {"dy"}});
  cases.push_back({"SumDyNull", [](A& a) { a.sum_dy = nullptr; }, {"sum_dy"}});
  cases.push_back({"SumDyXhatNull", [](A& a) { a.sum_dy_xhat = nullptr; }, {"sum_dy_xhat"}});
  cases.push_back({"SumDyXhatIsSumDy", [](A& a) { a.sum_dy_xhat = a.sum_dy; }, {"sum_dy_xhat", "sum_dy"}});
  cases.push_back({"SumDyXhatOverlapsSumDy", [](A& a) { a.sum_dy_xhat = a.sum_dy + 1; }, {"sum_dy_xhat", "sum_dy"}});
  auto into = [](const float* p) { return reinterpret_cast<double*>(const_cast<float*>(p)); };
  cases.push_back({"SumDyInGamma", [into](A& a) { a.sum_dy = into(a.gamma); }, {"sum_dy", "gamma"}});
  cases.push_back({"SumDyXhatInBeta", [into](A& a) { a.sum_dy_xhat = into(a.beta); }, {"sum_dy_xhat", "beta"}});
  cases.push_back({"SumDyInBatchMean", [into](A& a) { a.sum_dy = into(a.bm) - 1; }, {"sum_dy", "batch_mean"}});
  cases.push_back(
      {"SumDyXhatInBatchInvstd", [into](A& a) { a.sum_dy_xhat = into(a.bi); }, {"sum_dy_xhat", "batch_invstd"}});
  return cases;
}

std::vector<Case<ApplyArgs>> ApplyCases() {
  using A = ApplyArgs;
  std::vector<Case<A>> cases;
  AddTensorCases(cases);
  AddTotalCountCases(cases);
  cases.push_back({"DyNull", [](A& a) { a.dy = nullptr; }, {"dy"}});
  cases.push_back({"SumDyNull", [](A& a) { a.sum_dy = nullptr; }, {"sum_dy"}});
  cases.push_back({"SumDyXhatNull", [](A& a) { a.sum_dy_xhat = nullptr; }, {"sum_dy_xhat"}});
  cases.push_back({"DxNull", [](A& a) { a.dx = nullptr; }, {"dx"}});
  cases.push_back({"DxOverlapsDyAfterIt", [](A& a) { a.dx = a.dy + 1; }, {"dx", "dy"}});
  cases.push_back({"DxOverlapsDyBeforeIt", [](A& a) { a.dx = a.dy - 5; }, {"dx", "dy"}});
  cases.push_back({"DxIsX", [](A& a) { a.dx = const_cast<float*>(a.x); }, {"dx", "x"}});
  cases.push_back({"DxOverlapsX", [](A& a) { a.dx = const_cast<float*>(a.x) + 3; }, {"dx", "x"}});
  return cases;
}

// The valid arguments succeed; the broken ones are refused by the fast and the reference function alike, with the
// same message (but for the function's name), writing nothing.
template <class Args>
void ExpectRejected(const Case<Args>& c) {
  for (bool ref : {false, true}) {
    Args valid;
    ASSERT_EQ(valid.Call(ref), SIMDNORM_SUCCESS) << "the unbroken arguments must be valid: " << simdnorm_last_error();
  }
  std::string fast_message;
  for (bool ref : {false, true}) {
    const char* who = ref ? " (reference)" : "";
    Args broken;
    c.break_args(broken);
    const std::vector<double> before = broken.arena.Snapshot();
    EXPECT_EQ(broken.Call(ref), SIMDNORM_INVALID_ARGUMENT) << c.name << who;
    std::string message = simdnorm_last_error();
    EXPECT_TRUE(broken.arena.Unchanged(before)) << c.name << who << ": a buffer was written although the call was "
                                                << "rejected";
    EXPECT_NE(message, "") << c.name << who << ": simdnorm_last_error() must say what was wrong";
    for (const char* word : c.names) {
      EXPECT_TRUE(HasWord(message, word))
          << c.name << who << ": the message \"" << message << "\" should name \"" << word << "\"";
    }
    if (!ref) {
      fast_message = message;
    } else {
      const std::size_t at = message.find("simdnorm_reference_");
      if (at != std::string::npos) message.replace(at, 19, "simdnorm_");
      EXPECT_EQ(message, fast_message) << c.name << ": the reference should refuse with the fast function's message";
    }
  }
}

class MomentsValidation : public ::testing::TestWithParam<Case<MomentsArgs>> {};
class MergeValidation : public ::testing::TestWithParam<Case<MergeArgs>> {};
class FinishValidation : public ::testing::TestWithParam<Case<FinishArgs>> {};
class NormalizeValidation : public ::testing::TestWithParam<Case<NormalizeArgs>> {};
class ReduceValidation : public ::testing::TestWithParam<Case<ReduceArgs>> {};
class ApplyValidation : public ::testing::TestWithParam<Case<ApplyArgs>> {};

TEST_P(MomentsValidation, Rejected) { ExpectRejected(GetParam()); }
TEST_P(MergeValidation, Rejected) { ExpectRejected(GetParam()); }
TEST_P(FinishValidation, Rejected) { ExpectRejected(GetParam()); }
TEST_P(NormalizeValidation, Rejected) { ExpectRejected(GetParam()); }
TEST_P(ReduceValidation, Rejected) { ExpectRejected(GetParam()); }
TEST_P(ApplyValidation, Rejected) { ExpectRejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Phases, MomentsValidation, ::testing::ValuesIn(MomentsCases()), CaseName<MomentsArgs>);
INSTANTIATE_TEST_SUITE_P(Phases, MergeValidation, ::testing::ValuesIn(MergeCases()), CaseName<MergeArgs>);
INSTANTIATE_TEST_SUITE_P(Phases, FinishValidation, ::testing::ValuesIn(FinishCases()), CaseName<FinishArgs>);
INSTANTIATE_TEST_SUITE_P(Phases, NormalizeValidation, ::testing::ValuesIn(NormalizeCases()), CaseName<NormalizeArgs>);
INSTANTIATE_TEST_SUITE_P(Phases, ReduceValidation, ::testing::ValuesIn(ReduceCases()), CaseName<ReduceArgs>);
INSTANTIATE_TEST_SUITE_P(Phases, ApplyValidation, ::testing::ValuesIn(ApplyCases()), CaseName<ApplyArgs>);

// ---------------------------------------------------------------------------------------------------------------
// Valid edge arguments are accepted, by the fast and the reference functions.

template <class Args>
void ExpectAccepted(const char* what, const std::function<void(Args&)>& edit) {
  for (bool ref : {false, true}) {
    Args a;
    edit(a);
    EXPECT_EQ(a.Call(ref), SIMDNORM_SUCCESS) << what << (ref ? " (reference)" : "") << ": " << simdnorm_last_error();
  }
}

TEST(PhasesValidation, ValidEdgesAreAccepted) {
  for (simdnorm_layout layout : {SIMDNORM_NCHW, SIMDNORM_NHWC}) {
    // A part may hold one value per channel; only the totals need two.
    const simdnorm_shape one = MakeShape(1, kC, 1, layout);
    ExpectAccepted<MomentsArgs>("moments of one value", [&](MomentsArgs& a) { a.shape = one; });
    ExpectAccepted<NormalizeArgs>("normalize of one value", [&](NormalizeArgs& a) { a.shape = one; });
    ExpectAccepted<ReduceArgs>("reduce of one value", [&](ReduceArgs& a) { a.shape = one; });
    ExpectAccepted<ApplyArgs>("apply to one value of two", [&](ApplyArgs& a) {
      a.shape = one;
      a.count = 2.0;
    });
  }
  ExpectAccepted<NormalizeArgs>("normalize in place, no gamma/beta", [](NormalizeArgs& a) {
    a.y = const_cast<float*>(a.x);
    a.gamma = a.beta = nullptr;
    a.flags = SIMDNORM_FUSE_RELU;
  });
  ExpectAccepted<ReduceArgs>("reduce without gamma/beta", [](ReduceArgs& a) {
    a.gamma = a.beta = nullptr;
    a.flags = SIMDNORM_FUSE_RELU;
  });
  ExpectAccepted<ApplyArgs>("apply with dx = dy", [](ApplyArgs& a) { a.dx = a.dy; });
  ExpectAccepted<MergeArgs>("merge over row 0", [](MergeArgs& a) {
    a.mean = const_cast<double*>(a.means);
    a.m2 = const_cast<double*>(a.m2s);
  });
  ExpectAccepted<MergeArgs>("merge of one part", [](MergeArgs& a) { a.parts = 1; });
  ExpectAccepted<MergeArgs>("merge with a count of -0", [](MergeArgs& a) { a.counts[1] = -0.0; });
  ExpectAccepted<FinishArgs>("finish of two values, every output NULL", [](FinishArgs& a) {
    a.count = 2.0;
    a.bm = a.bi = a.rm = a.rv = nullptr;
  });
  for (float momentum : {0.0f, 1.0f}) {
    ExpectAccepted<FinishArgs>("finish, momentum 0 or 1", [momentum](FinishArgs& a) { a.momentum = momentum; });
  }
  for (float eps : {std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max()}) {
    ExpectAccepted<FinishArgs>("finish, extreme eps", [eps](FinishArgs& a) { a.eps = eps; });
  }
}

}  // namespace
}  // namespace simdnorm_test
