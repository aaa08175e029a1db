// "Results are bitwise identical for every thread count" (simdnorm.h): one call run under several thread counts and
// every output compared byte for byte with the 1-thread run. Shared by test_determinism.cpp (batch norm) and
// test_norms_determinism.cpp (LayerNorm, RMSNorm, GroupNorm).
#ifndef SIMDNORM_TESTS_THREAD_DETERMINISM_HPP_
#define SIMDNORM_TESTS_THREAD_DETERMINISM_HPP_

#include <algorithm>
#include <string>
#include <vector>

#include "checkers.hpp"

namespace simdnorm_test {

inline constexpr int kThreadCounts[] = {2, 3, 4, 7, 16};

// The per-ISA fixture, which also puts the thread count back to the default after each test.
class ThreadCountTest : public IsaTest {
 protected:
  void TearDown() override {
    simdnorm_set_num_threads(0);
    IsaTest::TearDown();
  }
};

// Runs `run(outputs)` with one thread, then with each of kThreadCounts (the outputs refilled with sentinels before
// each run), and compares every output buffer bytewise with the 1-thread run.
template <class Run>
void ExpectSameBitsForAllThreadCounts(const std::string& context, std::vector<std::vector<float>>& outputs,
                                      const std::vector<const char*>& names, Run run) {
  simdnorm_set_num_threads(1);
  ASSERT_EQ(run(outputs), SIMDNORM_SUCCESS) << context << " threads=1: " << simdnorm_last_error();
  const std::vector<std::vector<float>> baseline = outputs;
  for (int threads : kThreadCounts) {
    simdnorm_set_num_threads(threads);
    for (auto& out : outputs) std::fill(out.begin(), out.end(), SentinelFloat());
    ASSERT_EQ(run(outputs), SIMDNORM_SUCCESS) << context << " threads=" << threads << ": " << simdnorm_last_error();
    for (std::size_t k = 0; k < outputs.size(); ++k) {
      const std::string what = std::string(names[k]) + " with " + std::to_string(threads) + " threads vs 1 thread";
      ExpectSameBits(context, what.c_str(), outputs[k].data(), baseline[k].data(), outputs[k].size(), nullptr);
    }
  }
  simdnorm_set_num_threads(0);
}

}  // namespace simdnorm_test

#endif  // SIMDNORM_TESTS_THREAD_DETERMINISM_HPP_
