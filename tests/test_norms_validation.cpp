// Argument checking of LayerNorm, RMSNorm and GroupNorm: every invalid argument of every entry point returns
// SIMDNORM_INVALID_ARGUMENT, names the argument in simdnorm_last_error(), and writes nothing (every buffer the call
// can see is compared byte for byte); the reference rejects the same call with the same message (its own function
// name aside). The rules (src/status.cpp, from simdnorm.h): rows, cols, the shape and groups; x, y, dy, the saved
// statistics required; eps finite and > 0; flags 0 (GroupNorm: SIMDNORM_FUSE_RELU); y either x or apart from it, dx
// either dy or apart from it and apart from x; every other output apart from every other buffer.
#include <functional>
#include <limits>

#include "norm_checkers.hpp"

namespace simdnorm_test {
namespace {

enum class Fn { kLayerForward, kLayerBackward, kRmsForward, kRmsBackward, kGroupForward, kGroupBackward };

bool IsForward(Fn f) { return f == Fn::kLayerForward || f == Fn::kRmsForward || f == Fn::kGroupForward; }
bool IsGroup(Fn f) { return f == Fn::kGroupForward || f == Fn::kGroupBackward; }
bool IsRms(Fn f) { return f == Fn::kRmsForward || f == Fn::kRmsBackward; }
const char* FnName(Fn f) {
  switch (f) {
    case Fn::kLayerForward:
      return "LayerNormForward";
    case Fn::kLayerBackward:
      return "LayerNormBackward";
    case Fn::kRmsForward:
      return "RmsNormForward";
    case Fn::kRmsBackward:
      return "RmsNormBackward";
    case Fn::kGroupForward:
      return "GroupNormForward";
    case Fn::kGroupBackward:
      return "GroupNormBackward";
  }
  return "?";
}

// A valid small call (3 x 5 rows; GroupNorm 2 x 6 x 5 NCHW in 3 groups) whose every buffer lies in one arena, so that
// a case can point one argument into another and "nothing was written" is one comparison. Slots of kSlot floats.
constexpr std::size_t kSlot = 96;
enum Slot { kX, kY, kGamma, kBeta, kMean, kRstd, kDy, kDx, kDgamma, kDbeta, kSlots };

struct Args {
  Fn fn;
  std::size_t rows = 3, cols = 5;
  simdnorm_shape shape = MakeShape(2, 6, 5, SIMDNORM_NCHW);
  const simdnorm_shape* shape_ptr = &shape;
  std::size_t groups = 3;
  float eps = 1e-5f;
  unsigned flags = 0;
  std::vector<float> arena = std::vector<float>(kSlots * kSlot);
  float* p[kSlots];

  explicit Args(Fn f) : fn(f) {
    Rng rng(17);
    for (float& v : arena) v = static_cast<float>(rng.uniform(-2.0, 2.0));
    for (int s = 0; s < kSlots; ++s) p[s] = arena.data() + s * kSlot;
    for (std::size_t i = 0; i < kSlot; ++i) p[kRstd][i] = static_cast<float>(rng.uniform(0.5, 1.5));
    // Outputs hold a byte pattern no call writes by accident (forward's mean and rstd are outputs too).
    for (Slot out : {kY, kDx, kDgamma, kDbeta, kMean, kRstd}) {
      if (IsForward(fn) || (out != kMean && out != kRstd)) std::memset(p[out], 0xA5, kSlot * sizeof(float));
    }
  }
  Args(const Args&) = delete;
  Args& operator=(const Args&) = delete;

  simdnorm_status Call(bool reference) {
    const float* const* c = p;
    switch (fn) {
      case Fn::kLayerForward:
        return (reference ? simdnorm_reference_layer_norm_forward : simdnorm_layer_norm_forward)(
            rows, cols, c[kX], p[kY], c[kGamma], c[kBeta], eps, p[kMean], p[kRstd], flags);
      case Fn::kLayerBackward:
        return (reference ? simdnorm_reference_layer_norm_backward : simdnorm_layer_norm_backward)(
            rows, cols, c[kX], c[kDy], c[kGamma], c[kMean], c[kRstd], p[kDx], p[kDgamma], p[kDbeta], flags);
      case Fn::kRmsForward:
        return (reference ? simdnorm_reference_rms_norm_forward : simdnorm_rms_norm_forward)(
            rows, cols, c[kX], p[kY], c[kGamma], eps, p[kRstd], flags);
      case Fn::kRmsBackward:
        return (reference ? simdnorm_reference_rms_norm_backward : simdnorm_rms_norm_backward)(
            rows, cols, c[kX], c[kDy], c[kGamma], c[kRstd], p[kDx], p[kDgamma], flags);
      case Fn::kGroupForward:
        return (reference ? simdnorm_reference_group_norm_forward : simdnorm_group_norm_forward)(
            shape_ptr, groups, c[kX], p[kY], c[kGamma], c[kBeta], eps, p[kMean], p[kRstd], flags);
      case Fn::kGroupBackward:
        return (reference ? simdnorm_reference_group_norm_backward : simdnorm_group_norm_backward)(
            shape_ptr, groups, c[kX], c[kDy], c[kGamma], c[kBeta], c[kMean], c[kRstd], p[kDx], p[kDgamma], p[kDbeta],
            flags);
    }
    return SIMDNORM_UNSUPPORTED;
  }
};

struct Case {
  std::string name;  // <function>_<what>
  Fn fn;
  std::function<void(Args&)> break_args;
  const char* message_must_contain;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
std::string CaseName(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }

constexpr std::size_t kSizeMax = std::numeric_limits<std::size_t>::max();
constexpr std::size_t kMaxFloats = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(float);
constexpr Fn kFns[] = {Fn::kLayerForward, Fn::kLayerBackward, Fn::kRmsForward,
                       Fn::kRmsBackward,  Fn::kGroupForward,  Fn::kGroupBackward};

// The invalid values of one argument, each a case named `what`; the message must contain `message`.
struct BadRows {
  const char* what;
  std::size_t rows, cols;
  const char* message;
};
constexpr BadRows kBadRows[] = {{"RowsZero", 0, 5, "rows"},
                                {"ColsZero", 3, 0, "cols"},
                                {"RowsTimesColsOverflows", kSizeMax / 2, 3, "overflows"},
                                {"ByteCountOverflows", 1, kSizeMax / sizeof(float) + 1, "addressable"},
                                {"BeyondPtrdiffMax", 2, kMaxFloats / 2 + 1, "addressable"},
                                {"SizeMaxBoth", kSizeMax, kSizeMax, "overflows"}};
struct BadDims {
  const char* what;
  std::size_t n, c, spatial;
  const char* message;
};
constexpr BadDims kBadDims[] = {{"NZero", 0, 6, 5, "shape->n"},
                                {"CZero", 2, 0, 5, "shape->c"},
                                {"SpatialZero", 2, 6, 0, "shape->spatial"},
                                {"NTimesCOverflows", kSizeMax / 2, 6, 1, "overflows"},
                                {"CTimesSpatialOverflows", 1, 6, kSizeMax / 4, "overflows"},
                                {"BeyondPtrdiffMax", 1, 6, kMaxFloats / 6 + 1, "addressable"}};
template <class T>
struct Bad {
  const char* what;
  T value;
};
constexpr Bad<std::size_t> kBadGroups[] = {
    {"GroupsZero", 0}, {"GroupsNotDividingC", 4}, {"GroupsAboveC", 12}, {"GroupsSizeMax", kSizeMax}};
constexpr Bad<float> kBadEps[] = {{"EpsZero", 0.0f},
                                  {"EpsNegativeZero", -0.0f},
                                  {"EpsNegative", -1e-5f},
                                  {"EpsNaN", std::numeric_limits<float>::quiet_NaN()},
                                  {"EpsInf", std::numeric_limits<float>::infinity()},
                                  {"EpsMinusInf", -std::numeric_limits<float>::infinity()}};
constexpr Bad<unsigned> kBadFlags[] = {{"Flags0x2", 0x2u}, {"Flags0x3", 0x3u}, {"FlagsHighBit", 0x80000000u}};

// One argument pointed `offset` floats into another (`into`), in the functions `in` names.
enum class In { kForward, kCentredForward, kBackward, kCentredBackward };  // centred: LayerNorm and GroupNorm
struct Overlap {
  In in;
  const char* what;
  Slot slot, into;
  std::size_t offset;
  const char* message;
};
constexpr Overlap kOverlaps[] = {
    {In::kForward, "YOverlapsXByOneFloat", kY, kX, 1, "y overlaps x"},
    {In::kForward, "YIsGamma", kY, kGamma, 0, "y overlaps gamma"},
    {In::kForward, "RstdInsideY", kRstd, kY, 2, "rstd overlaps y"},
    {In::kForward, "RstdInsideX", kRstd, kX, 3, "rstd overlaps x"},
    {In::kForward, "RstdOverlapsGammaEnd", kRstd, kGamma, 4, "rstd overlaps gamma"},
    {In::kCentredForward, "MeanIsRstd", kRstd, kMean, 0, "rstd overlaps mean"},
    {In::kCentredForward, "RstdOverlapsMeanByOne", kRstd, kMean, 1, "rstd overlaps mean"},
    {In::kCentredForward, "MeanInsideY", kMean, kY, 5, "mean overlaps y"},
    {In::kCentredForward, "MeanInsideX", kMean, kX, 7, "mean overlaps x"},
    {In::kCentredForward, "MeanIsBeta", kMean, kBeta, 0, "mean overlaps beta"},
    {In::kCentredForward, "YOverlapsBeta", kY, kBeta, 2, "y overlaps beta"},
    {In::kBackward, "DxOverlapsDyByOneFloat", kDx, kDy, 1, "dx overlaps dy"},
    {In::kBackward, "DxIsX", kDx, kX, 0, "dx overlaps x"},
    {In::kBackward, "DxOverlapsXByOneFloat", kDx, kX, 1, "dx overlaps x"},
    {In::kBackward, "DxIsGamma", kDx, kGamma, 0, "dx overlaps gamma"},
    {In::kBackward, "DxIsRstd", kDx, kRstd, 0, "dx overlaps rstd"},
    {In::kBackward, "DgammaIsGamma", kDgamma, kGamma, 0, "dgamma overlaps gamma"},
    {In::kBackward, "DgammaInsideRstd", kDgamma, kRstd, 1, "dgamma overlaps rstd"},
    {In::kBackward, "DgammaInsideDx", kDgamma, kDx, 3, "dgamma overlaps dx"},
    {In::kBackward, "DgammaInsideX", kDgamma, kX, 6, "dgamma overlaps x"},
    {In::kBackward, "DgammaInsideDy", kDgamma, kDy, 6, "dgamma overlaps dy"},
    {In::kCentredBackward, "DxIsMean", kDx, kMean, 0, "dx overlaps mean"},
    {In::kCentredBackward, "DbetaIsDgamma", kDbeta, kDgamma, 0, "dbeta overlaps dgamma"},
    {In::kCentredBackward, "DbetaOverlapsDgammaByOne", kDbeta, kDgamma, 1, "dbeta overlaps dgamma"},
    {In::kCentredBackward, "DbetaIsMean", kDbeta, kMean, 0, "dbeta overlaps mean"},
    {In::kCentredBackward, "DbetaInsideDy", kDbeta, kDy, 9, "dbeta overlaps dy"},
};

std::vector<Case> CasesFor(Fn f) {
  std::vector<Case> cases;
  auto add = [&](const char* what, const char* message, std::function<void(Args&)> b) {
    cases.push_back({std::string(FnName(f)) + "_" + what, f, std::move(b), message});
  };
  auto null = [](Slot slot) { return [slot](Args& a) { a.p[slot] = nullptr; }; };
  const bool forward = IsForward(f), group = IsGroup(f), rms = IsRms(f);
  auto add_overlaps = [&](In in) {
    for (const Overlap& o : kOverlaps) {
      if (o.in != in) continue;
      add(o.what, o.message, [o](Args& a) { a.p[o.slot] = a.p[o.into] + o.offset; });
    }
  };

  // Sizes.
  if (group) {
    add("ShapeNull", "shape", [](Args& a) { a.shape_ptr = nullptr; });
    for (const BadDims& d : kBadDims) {
      add(d.what, d.message, [d](Args& a) { a.shape.n = d.n, a.shape.c = d.c, a.shape.spatial = d.spatial; });
    }
    add("Layout2", "layout", [](Args& a) {
      std::uint32_t v = 2;
      std::memcpy(&a.shape.layout, &v, sizeof v);
    });
    for (const auto& g : kBadGroups) add(g.what, "groups", [g](Args& a) { a.groups = g.value; });
  } else {
    for (const BadRows& r : kBadRows) add(r.what, r.message, [r](Args& a) { a.rows = r.rows, a.cols = r.cols; });
  }
  // Required pointers, eps, flags.
  add("XNull", "x is NULL", null(kX));
  if (forward) {
    add("YNull", "y is NULL", null(kY));
    for (const auto& e : kBadEps) add(e.what, "eps", [e](Args& a) { a.eps = e.value; });
  } else {
    add("DyNull", "dy is NULL", null(kDy));
    if (!rms) add("MeanNull", "mean is NULL", null(kMean));
    add("RstdNull", "rstd is NULL", null(kRstd));
  }
  if (!group) add("FuseReluRefused", "flags", [](Args& a) { a.flags = SIMDNORM_FUSE_RELU; });
  for (const auto& fl : kBadFlags) add(fl.what, "flags", [fl](Args& a) { a.flags = fl.value; });

  // Aliasing.
  if (forward) {
    add_overlaps(In::kForward);
    add("YStartsBeforeX", "y overlaps x", [](Args& a) { a.p[kX] = a.p[kY] + 1; });
    if (!rms) {
      add_overlaps(In::kCentredForward);
      add("MeanInsideXInPlace", "mean overlaps y", [](Args& a) { a.p[kY] = a.p[kX], a.p[kMean] = a.p[kX] + 4; });
    }
  } else {
    add_overlaps(In::kBackward);
    add("DgammaInsideDyWhenDxIsDy", "dgamma overlaps dx",
        [](Args& a) { a.p[kDx] = a.p[kDy], a.p[kDgamma] = a.p[kDy] + 2; });
    if (!rms) add_overlaps(In::kCentredBackward);
    if (group) {
      add("DxIsBeta", "dx overlaps beta", [](Args& a) { a.p[kDx] = a.p[kBeta]; });
      add("DgammaIsBetaWithRelu", "dgamma overlaps beta",
          [](Args& a) { a.flags = SIMDNORM_FUSE_RELU, a.p[kDgamma] = a.p[kBeta]; });
    }
  }
  return cases;
}

std::vector<Case> AllCases() {
  std::vector<Case> all;
  for (Fn f : kFns) {
    const std::vector<Case> cases = CasesFor(f);
    all.insert(all.end(), cases.begin(), cases.end());
  }
  return all;
}

// The message after "function_name: ", which the fast path and the reference share.
std::string Reason(const std::string& message) {
  const std::size_t colon = message.find(": ");
  return colon == std::string::npos ? message : message.substr(colon + 2);
}

class NormValidation : public ::testing::TestWithParam<Case> {};

TEST_P(NormValidation, RejectedWithTheArgumentNamedAndNothingWritten) {
  const Case& c = GetParam();
  {
    Args valid(c.fn);
    ASSERT_EQ(valid.Call(true), SIMDNORM_SUCCESS) << "the unbroken arguments must be valid: " << simdnorm_last_error();
  }
  std::string messages[2];
  for (const bool reference : {false, true}) {
    Args broken(c.fn);
    c.break_args(broken);
    const std::vector<float> before = broken.arena;
    const char* who = reference ? "reference" : "fast path";
    EXPECT_EQ(broken.Call(reference), SIMDNORM_INVALID_ARGUMENT) << c.name << " (" << who << ")";
    const std::string message = simdnorm_last_error();
    messages[reference] = message;
    EXPECT_NE(message.find(c.message_must_contain), std::string::npos)
        << c.name << " (" << who << "): the message \"" << message << "\" should say \"" << c.message_must_contain
        << "\"";
    EXPECT_EQ(std::memcmp(before.data(), broken.arena.data(), before.size() * sizeof(float)), 0)
        << c.name << " (" << who << "): a rejected call wrote memory";
  }
  EXPECT_EQ(Reason(messages[0]), Reason(messages[1]))
      << c.name << ": the fast path and the reference give different reasons:\n  " << messages[0] << "\n  "
      << messages[1];
  EXPECT_NE(messages[0].find("simdnorm_"), std::string::npos) << "the message names the function: " << messages[0];
}

INSTANTIATE_TEST_SUITE_P(Api, NormValidation, ::testing::ValuesIn(AllCases()), CaseName);

// Valid edge arguments are accepted, by both: every optional pointer NULL, in place, groups == c and 1, the ReLU with
// beta NULL in GroupNorm's backward, eps at the ends of the float range.
TEST(NormValidationEdges, ValidEdgesAreAccepted) {
  const std::vector<std::pair<const char*, std::function<void(Args&)>>> edits = {
      {"unchanged", [](Args&) {}},
      {"optional pointers NULL",
       [](Args& a) {
         for (Slot s : {kGamma, kBeta, kDx, kDgamma, kDbeta}) a.p[s] = nullptr;
         if (IsForward(a.fn)) a.p[kMean] = a.p[kRstd] = nullptr;
       }},
      {"in place", [](Args& a) { a.p[kY] = a.p[kX], a.p[kDx] = a.p[kDy]; }},
      {"groups == c", [](Args& a) { a.groups = 6; }},
      {"groups == 1", [](Args& a) { a.groups = 1; }},
      {"one row, one column",
       [](Args& a) { a.rows = 1, a.cols = 1, a.shape = MakeShape(1, 1, 1, SIMDNORM_NHWC), a.groups = 1; }},
      {"eps = denorm_min", [](Args& a) { a.eps = std::numeric_limits<float>::denorm_min(); }},
      {"eps = FLT_MAX", [](Args& a) { a.eps = std::numeric_limits<float>::max(); }},
      {"NHWC", [](Args& a) { a.shape.layout = SIMDNORM_NHWC; }},
  };
  for (Fn f : kFns) {
    for (const auto& edit : edits) {
      for (const bool reference : {false, true}) {
        Args a(f);
        edit.second(a);
        EXPECT_EQ(a.Call(reference), SIMDNORM_SUCCESS)
            << FnName(f) << " " << edit.first << (reference ? " (reference)" : " (fast path)") << ": "
            << simdnorm_last_error();
      }
      if (IsGroup(f)) {
        Args a(f);
        edit.second(a);
        a.flags = SIMDNORM_FUSE_RELU;
        if (!IsForward(f)) a.p[kBeta] = nullptr;
        EXPECT_EQ(a.Call(false), SIMDNORM_SUCCESS)
            << FnName(f) << " " << edit.first << " relu: " << simdnorm_last_error();
      }
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
