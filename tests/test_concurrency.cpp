// Many threads calling the API at once, each on its own buffers, get exactly what a lone call gets; error messages
// are per thread.
#include <simdnorm/simdnorm.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "checkers.hpp"

#ifdef SIMDNORM_TESTS_OPENMP
#include <omp.h>
#endif

namespace simdnorm_test {
namespace {

struct Job {
  simdnorm_shape shape;
  std::vector<float> x, dy, gamma, beta;
  // outputs
  std::vector<float> y, mean, invstd, rmean, rvar, dx, dgamma, dbeta;

  Job(std::size_t n, std::size_t c, std::size_t s, simdnorm_layout layout, std::uint64_t seed)
      : shape{n, c, s, layout}, x(n * c * s), dy(n * c * s), gamma(c), beta(c) {
    Rng rng(seed);
    for (float& v : x) v = static_cast<float>(rng.uniform(-2.0, 6.0));
    for (float& v : dy) v = static_cast<float>(rng.uniform(-1.0, 1.0));
    for (float& v : gamma) v = static_cast<float>(rng.uniform(0.5, 1.5));
    for (float& v : beta) v = static_cast<float>(rng.uniform(-0.5, 0.5));
  }

  void Run() {
    const std::size_t c = shape.c;
    y.assign(x.size(), 0.0f);
    dx.assign(x.size(), 0.0f);
    mean.assign(c, 0.0f);
    invstd.assign(c, 0.0f);
    rmean.assign(c, 0.0f);
    rvar.assign(c, 1.0f);
    dgamma.assign(c, 0.0f);
    dbeta.assign(c, 0.0f);
    EXPECT_EQ(SIMDNORM_SUCCESS, simdnorm_forward_training(&shape, x.data(), y.data(), gamma.data(), beta.data(), 1e-5f,
                                                          mean.data(), invstd.data(), rmean.data(), rvar.data(), 0.1f,
                                                          SIMDNORM_FUSE_RELU));
    EXPECT_EQ(SIMDNORM_SUCCESS, simdnorm_backward(&shape, x.data(), dy.data(), gamma.data(), beta.data(), mean.data(),
                                                  invstd.data(), dx.data(), dgamma.data(), dbeta.data(),
                                                  SIMDNORM_FUSE_RELU));
  }

  bool SameOutputs(const Job& other) const {
    auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    return same(y, other.y) && same(mean, other.mean) && same(invstd, other.invstd) && same(rmean, other.rmean) &&
           same(rvar, other.rvar) && same(dx, other.dx) && same(dgamma, other.dgamma) && same(dbeta, other.dbeta);
  }
};

TEST(Concurrency, ThreadsCallingAtOnceMatchLoneCalls) {
  constexpr int kThreads = 8;
  std::vector<Job> lone, shared;
  for (int t = 0; t < kThreads; ++t) {
    const simdnorm_layout layout = t % 2 == 0 ? SIMDNORM_NCHW : SIMDNORM_NHWC;
    const std::size_t n = 2 + t, c = 5 + 7 * t, s = 17 + 13 * t;
    lone.emplace_back(n, c, s, layout, 100 + t);
    shared.emplace_back(n, c, s, layout, 100 + t);
  }
  for (Job& job : lone) job.Run();

  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) {
      }
      for (int round = 0; round < 5; ++round) shared[t].Run();
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(lone[t].SameOutputs(shared[t])) << "thread " << t;
}

#ifdef SIMDNORM_TESTS_OPENMP
// An application's own OpenMP threads, each running simdnorm on a tensor of its own, get what lone calls get: with
// simdnorm told to use one thread (each call then runs on its calling thread, and nothing in it may wait on the
// application's team) and with its default (the nested team it asks for has one thread). The shapes take the paths
// that synchronise inside a call: NHWC row chunks (statistics merged between the passes) and NCHW channels shared
// by the team; the two threads run different shapes, so that calls whose barriers crossed would also disagree.
TEST(Concurrency, InsideAnApplicationsOpenMpTeamMatchLoneCalls) {
  for (int threads : {1, 0}) {
    simdnorm_set_num_threads(threads);
    std::vector<Job> lone, shared;
    const std::size_t shapes[4][3] = {{2, 64, 1000}, {3, 48, 700}, {1, 3, 400000}, {1, 5, 300000}};
    for (int t = 0; t < 4; ++t) {
      const simdnorm_layout layout = t < 2 ? SIMDNORM_NHWC : SIMDNORM_NCHW;
      lone.emplace_back(shapes[t][0], shapes[t][1], shapes[t][2], layout, 200 + t);
      shared.emplace_back(shapes[t][0], shapes[t][1], shapes[t][2], layout, 200 + t);
    }
    for (Job& job : lone) job.Run();
    for (int pair = 0; pair < 2; ++pair) {
#pragma omp parallel num_threads(2)
      {
        const int t = 2 * pair + omp_get_thread_num();
        for (int round = 0; round < 3; ++round) shared[t].Run();
      }
    }
    for (int t = 0; t < 4; ++t) {
      EXPECT_TRUE(lone[t].SameOutputs(shared[t])) << "simdnorm threads " << threads << ", job " << t;
    }
  }
  simdnorm_set_num_threads(0);
}
#endif

TEST(Concurrency, LastErrorIsPerThread) {
  constexpr int kThreads = 6;
  std::vector<std::string> seen(kThreads);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread makes its own distinct mistake, waits until all have, then reads its message.
      const simdnorm_shape shape{static_cast<std::size_t>(t % 2), 3, 4, SIMDNORM_NCHW};
      float buf[12] = {};
      simdnorm_status st = t % 2 == 0
                               ? simdnorm_forward_inference(&shape, buf, buf, nullptr, nullptr, buf, buf, 1e-5f, 0u)
                               : simdnorm_forward_inference(&shape, buf, buf, nullptr, nullptr, nullptr, buf, 1e-5f, 0u);
      EXPECT_EQ(SIMDNORM_INVALID_ARGUMENT, st);
      failed.fetch_add(1);
      while (failed.load() < kThreads) {
      }
      seen[t] = simdnorm_last_error();
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    if (t % 2 == 0) {
      EXPECT_NE(std::string::npos, seen[t].find("shape->n is 0")) << seen[t];
    } else {
      EXPECT_NE(std::string::npos, seen[t].find("mean is NULL")) << seen[t];
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
