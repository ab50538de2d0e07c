#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/random.hpp"

namespace rtda {
namespace {

TEST(RandomStream, IsAPureFunctionOfItsKeysAndIndex) {
  RandomStream a(42, RandomPurpose::kEnsfNoise, 3, 7);
  RandomStream b(42, RandomPurpose::kEnsfNoise, 3, 7);
  std::vector<double> va(101), vb(101);
  a.fill_normal(va);
  b.fill_normal(vb);
  EXPECT_EQ(va, vb);
  // Random access and block-offset fills agree with the sequential fill.
  for (std::uint64_t i : {0u, 1u, 3u, 4u, 57u, 100u})
    EXPECT_EQ(a.normal(i), va[i]);
  std::vector<double> tail(30);
  a.fill_normal(tail, 0.0, 1.0, 71);
  for (int i = 0; i < 30; ++i)
    EXPECT_EQ(tail[i], va[71 + i]);
}

TEST(RandomStream, DifferentKeysGiveDifferentStreams) {
  const double base = RandomStream(1, RandomPurpose::kTest, 0, 0).normal(0);
  EXPECT_NE(base, RandomStream(2, RandomPurpose::kTest, 0, 0).normal(0));
  EXPECT_NE(base, RandomStream(1, RandomPurpose::kEnsfNoise, 0, 0).normal(0));
  EXPECT_NE(base, RandomStream(1, RandomPurpose::kTest, 1, 0).normal(0));
  EXPECT_NE(base, RandomStream(1, RandomPurpose::kTest, 0, 1).normal(0));
}

TEST(RandomStream, NormalsHaveUnitVarianceAndUniformsStayInUnitInterval) {
  const int n = 200000;
  std::vector<double> v(n);
  RandomStream s(9, RandomPurpose::kTest);
  s.fill_normal(v, 2.0, 3.0);
  double mean = 0, var = 0;
  for (double x : v)
    mean += x;
  mean /= n;
  for (double x : v)
    var += (x - mean) * (x - mean);
  var /= n - 1;
  // Standard errors: mean 3/sqrt(n) = 0.0067, variance 9*sqrt(2/n) = 0.028; 5 sigma bounds.
  EXPECT_NEAR(mean, 2.0, 0.034);
  EXPECT_NEAR(var, 9.0, 0.15);
  std::vector<double> u(10000);
  s.fill_uniform(u);
  for (double x : u) {
    EXPECT_GT(x, 0.0);
    EXPECT_LE(x, 1.0);
  }
}

}  // namespace
}  // namespace rtda
