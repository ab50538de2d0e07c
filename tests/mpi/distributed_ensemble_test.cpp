// The member <-> column transposes and collectives of the worker group (docs/architecture.md §5).
#include <gtest/gtest.h>
#include <mpi.h>

#include <vector>

#include "core/random.hpp"
#include "distributed_ensemble.hpp"

namespace rtda::worker {
namespace {

constexpr int kN = 8;
const core::Grid kGrid{2, kN, kN, 1.0, 1.0};  // only the shape matters here
constexpr int kMembers = 5;                   // not a multiple of the rank count: uneven blocks

std::vector<double> full_ensemble() {
  std::vector<double> all(static_cast<std::size_t>(kMembers) * 2 * kN * kN);
  RandomStream(11, RandomPurpose::kTest).fill_normal(all);
  return all;
}

DistributedEnsemble loaded() {
  DistributedEnsemble ens(MPI_COMM_WORLD, kMembers, kGrid);
  const auto all = full_ensemble();
  const std::size_t n = ens.state_size();
  std::copy(all.begin() + ens.first_member() * n,
            all.begin() + (ens.first_member() + ens.local_members()) * n,
            ens.local_states().begin());
  return ens;
}

TEST(BlockRange, CoversEverythingOnceInOrder) {
  for (int parts : {1, 2, 3, 7}) {
    std::size_t next = 0;
    for (int i = 0; i < parts; ++i) {
      const auto [b, e] = block_range(20, parts, i);
      EXPECT_EQ(b, next);
      EXPECT_GE(e, b);
      next = e;
    }
    EXPECT_EQ(next, 20u);
  }
}

TEST(DistributedEnsemble, ColumnLayoutHoldsEveryMembersOwnColumns) {
  const auto ens = loaded();
  std::vector<double> cols;
  ens.to_columns(cols);
  const auto all = full_ensemble();
  const auto [c0, c1] = ens.columns();
  const std::size_t nc = c1 - c0, nn = kN * kN;
  ASSERT_EQ(cols.size(), kMembers * 2 * nc);
  for (int m = 0; m < kMembers; ++m) {
    for (int lev = 0; lev < 2; ++lev) {
      for (std::size_t c = c0; c < c1; ++c) {
        ASSERT_EQ(cols[(m * 2 + lev) * nc + (c - c0)], all[m * 2 * nn + lev * nn + c]);
      }
    }
  }
}

TEST(DistributedEnsemble, ColumnRoundTripIsExact) {
  auto ens = loaded();
  const std::vector<double> before(ens.local_states().begin(), ens.local_states().end());
  std::vector<double> cols;
  ens.to_columns(cols);
  for (auto& v : cols)
    v *= 2;  // an "analysis"
  ens.from_columns(cols);
  for (std::size_t k = 0; k < before.size(); ++k)
    ASSERT_EQ(ens.local_states()[k], 2 * before[k]);
}

TEST(DistributedEnsemble, ObservingAndGatheringAgreeWithTheSerialEnsemble) {
  auto ens = loaded();
  sqg::SqgParams p;
  p.N = kN;
  obs::ObservationSet set;
  for (int k = 0; k < 6; ++k) {
    obs::Observation o;
    o.x_m = (0.7 * k) * p.dx_m();
    o.y_m = (1.3 * k) * p.dx_m();
    o.level = k % 2;
    o.op = obs::ObsOperator::kArctan;
    set.push_back(o);
  }
  obs::ObservationSpace space(p, set);
  const auto hx = ens.observe_all(space);
  const auto all = full_ensemble();
  const std::size_t n = ens.state_size();
  std::vector<double> one(space.size());
  for (int m = 0; m < kMembers; ++m) {
    space.apply(std::span<const double>(all).subspan(m * n, n), one);
    for (std::size_t o = 0; o < one.size(); ++o)
      ASSERT_EQ(hx[m * space.size() + o], one[o]);
  }
  const auto gathered = ens.gather(0);
  if (ens.rank() == 0) {
    EXPECT_EQ(gathered, all);
  }
  DistributedEnsemble other(MPI_COMM_WORLD, kMembers, kGrid);
  other.scatter(gathered, 0);
  EXPECT_TRUE(std::equal(other.local_states().begin(), other.local_states().end(),
                         ens.local_states().begin()));
}

}  // namespace
}  // namespace rtda::worker
