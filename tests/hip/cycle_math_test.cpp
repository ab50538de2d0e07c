// The shared arithmetic of the device-resident cycle on the CPU: the ViT forecast's
// normalisation (surrogate/normalisation_math.hpp), which the HIP kernels run per element,
// gives Normalisation::apply / invert exactly the bits they had before it was shared; and the
// device transposes' index map (hip/cycle_layout.hpp) is DistributedEnsemble's member ->
// column send order (and so, inverted, its receive order) for every rank count.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "distributed_ensemble.hpp"
#include "hip/cycle_layout.hpp"
#include "surrogate/normalisation_math.hpp"
#include "surrogate/training_data.hpp"

namespace rtda {
namespace {

constexpr std::uint64_t kSeed = 20261129;

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}
bool same_bits(float a, float b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// The per-level statistics of a trained surrogate (m/s), and states of SQG magnitude.
surrogate::Normalisation sample_normalisation() {
  surrogate::Normalisation norm;
  norm.mean = {3.7, -12.25};
  norm.std = {1234.5, 987.6};
  return norm;
}

TEST(CycleMath, NormaliseGivesTheCpuPathsBits) {
  SCOPED_TRACE(kSeed);
  std::mt19937_64 rng(kSeed);
  std::normal_distribution<double> q_dist(0.0, 2000.0);
  const int n = 16;
  const std::size_t n2 = static_cast<std::size_t>(n) * n;
  const surrogate::Normalisation norm = sample_normalisation();
  std::vector<double> q(2 * n2);
  for (auto& v : q)
    v = q_dist(rng);
  std::vector<float> z(2 * n2);
  norm.apply(q, z, n);
  for (std::size_t l = 0; l < 2; ++l) {
    const double inv = 1.0 / norm.std[l];
    for (std::size_t e = 0; e < n2; ++e) {
      // The expression Normalisation::apply evaluated before the arithmetic was shared.
      const float before = static_cast<float>((q[l * n2 + e] - norm.mean[l]) * inv);
      ASSERT_TRUE(same_bits(z[l * n2 + e], before)) << "level " << l << " element " << e;
      ASSERT_TRUE(same_bits(surrogate::normalise_value(q[l * n2 + e], norm.mean[l], inv), before));
    }
  }
}

TEST(CycleMath, DenormaliseGivesTheCpuPathsBits) {
  SCOPED_TRACE(kSeed + 1);
  std::mt19937_64 rng(kSeed + 1);
  std::normal_distribution<float> z_dist(0.0f, 1.5f);
  const int n = 16;
  const std::size_t n2 = static_cast<std::size_t>(n) * n;
  const surrogate::Normalisation norm = sample_normalisation();
  std::vector<float> z(2 * n2);
  for (auto& v : z)
    v = z_dist(rng);
  std::vector<double> q(2 * n2);
  norm.invert(z, q, n);
  for (std::size_t l = 0; l < 2; ++l) {
    for (std::size_t e = 0; e < n2; ++e) {
      const double before = static_cast<double>(z[l * n2 + e]) * norm.std[l] + norm.mean[l];
      ASSERT_TRUE(same_bits(q[l * n2 + e], before)) << "level " << l << " element " << e;
      ASSERT_TRUE(same_bits(surrogate::denormalise_value(z[l * n2 + e], norm.std[l], norm.mean[l]),
                            before));
    }
  }
}

TEST(CycleMath, RoundTripIsWithinFloatRounding) {
  // q -> float z -> q: the only loss is z's rounding to float (2^-24 relative of z), i.e.
  // |dq| <= 2^-24 |z| std + the ulps of the double operations.
  const surrogate::Normalisation norm = sample_normalisation();
  for (double q : {-5000.0, -1.0, 0.0, 3.7, 123.456, 4999.5}) {
    for (std::size_t l = 0; l < 2; ++l) {
      const float z = surrogate::normalise_value(q, norm.mean[l], 1.0 / norm.std[l]);
      const double back = surrogate::denormalise_value(z, norm.std[l], norm.mean[l]);
      EXPECT_NEAR(back, q, 0x1.0p-23 * (std::abs(q - norm.mean[l]) + 1.0)) << q;
    }
  }
}

TEST(CycleLayout, BlocksAreTheWorkersBlocks) {
  for (std::size_t rows : {1u, 2u, 7u, 32u, 64u, 65u}) {
    for (int parts : {1, 2, 3, 4, 7}) {
      if (static_cast<std::size_t>(parts) > rows) continue;
      for (int d = 0; d <= parts; ++d) {
        const std::size_t begin = d < parts ? worker::block_range(rows, parts, d).first : rows;
        EXPECT_EQ(hip::layout::block_begin(rows, parts, d), begin) << rows << " " << parts;
      }
      for (std::size_t r = 0; r < rows; ++r) {
        const int owner = hip::layout::block_owner(r, rows, parts);
        const auto [b, e] = worker::block_range(rows, parts, owner);
        EXPECT_TRUE(r >= b && r < e) << "row " << r << " of " << rows << ", " << parts << " parts";
      }
    }
  }
}

// DistributedEnsemble::to_columns' send buffer, built as it builds it: for each destination d,
// each local member, each level, d's columns in order.
std::vector<double> host_send_order(const std::vector<double>& states, std::size_t my_k, int grid_n,
                                    int ranks) {
  const std::size_t nn = static_cast<std::size_t>(grid_n) * grid_n;
  std::vector<double> send;
  for (int d = 0; d < ranks; ++d) {
    const auto [c0, c1] = worker::column_range(core::Grid{2, grid_n, grid_n, 1.0, 1.0}, ranks, d);
    for (std::size_t m = 0; m < my_k; ++m)
      for (int lev = 0; lev < 2; ++lev) {
        const double* src = states.data() + m * 2 * nn + static_cast<std::size_t>(lev) * nn;
        send.insert(send.end(), src + c0, src + c1);
      }
  }
  return send;
}

TEST(CycleLayout, TransposeIndexIsTheHostSendOrder) {
  for (int grid : {4, 6, 8, 10}) {
    for (int ranks : {1, 2, 3, 4}) {
      for (std::size_t my_k : {1u, 2u, 5u}) {
        const std::size_t nn = static_cast<std::size_t>(grid) * grid;
        // Distinct values: each element's own index.
        std::vector<double> states(my_k * 2 * nn);
        for (std::size_t i = 0; i < states.size(); ++i)
          states[i] = static_cast<double>(i);
        const std::vector<double> want = host_send_order(states, my_k, grid, ranks);
        ASSERT_EQ(want.size(), states.size());
        std::vector<double> got(states.size(), -1.0);
        for (std::size_t m = 0; m < my_k; ++m)
          for (int lev = 0; lev < 2; ++lev)
            for (std::size_t c = 0; c < nn; ++c) {
              const std::size_t j = hip::layout::transpose_index(m, lev, c, my_k, grid, ranks);
              ASSERT_LT(j, got.size());
              got[j] = states[(m * 2 + static_cast<std::size_t>(lev)) * nn + c];
            }
        // Equal values everywhere also proves the map is a bijection (no slot left at -1).
        EXPECT_EQ(got, want) << "N " << grid << ", " << ranks << " ranks, " << my_k << " members";
      }
    }
  }
}

}  // namespace
}  // namespace rtda
