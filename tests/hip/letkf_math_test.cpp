// The LETKF arithmetic of the HIP kernel (filters/letkf_math.hpp): the round-robin Jacobi
// eigensolver against Eigen, and the kernel's sequence replayed on the CPU (letkf_replay.hpp:
// those header functions in the kernel's order) against the CPU column path
// LetkfAnalysis::analyse_columns. Runs on the CPU.
#include "filters/letkf_math.hpp"

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <set>
#include <utility>
#include <vector>

#include "core/random.hpp"
#include "filter_problems.hpp"
#include "filters/letkf.hpp"
#include "letkf_replay.hpp"

namespace rtda::filters {
namespace {

namespace ts = rtda::test_support;

constexpr std::uint64_t kSeed = 20240712;  // every random input below derives from it

TEST(Jacobi, RoundRobinMeetsEveryPairOncePerSweepWithDisjointPairsPerRound) {
  for (int m = 2; m <= 130; m += 2) {
    std::set<std::pair<int, int>> seen;
    for (int round = 0; round + 1 < m; ++round) {
      std::vector<int> used(m, 0);
      for (int pair = 0; pair < m / 2; ++pair) {
        int p, q;
        jacobi_pair(m, round, pair, p, q);
        ASSERT_LT(p, q);
        ASSERT_LT(q, m);
        ASSERT_EQ(used[p]++ + used[q]++, 0) << "m " << m << " round " << round;
        seen.insert({p, q});
      }
    }
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(m * (m - 1) / 2)) << "m " << m;
  }
}

TEST(Jacobi, BlockItemsDecodeTheLowerTriangle) {
  int item = 0;
  for (int P = 0; P < 70; ++P)
    for (int Q = 0; Q <= P; ++Q, ++item) {
      int p, q;
      jacobi_block_of_item(item, p, q);
      ASSERT_EQ(p, P);
      ASSERT_EQ(q, Q);
    }
}

// Runs jacobi_eigen on a symmetric k × k matrix (padded to m) and checks it against Eigen:
// sorted eigenvalues to `tol` relative to ‖A‖, V orthonormal and A V = V Λ to the same
// tolerance. Double precision, both backward stable: errors are O(k ε ‖A‖), so tol = 1e-12
// leaves two orders of magnitude for k ≤ 128.
void check_against_eigen(const Eigen::MatrixXd& sym, double tol, const char* what) {
  const int k = static_cast<int>(sym.rows());
  const int m = jacobi_size(k);
  std::vector<double> a(static_cast<std::size_t>(m) * m, 0.0), v(a.size());
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j)
      a[i * m + j] = sym(i, j);
  std::vector<JacobiRotation> rot(m / 2);
  const int sweeps = jacobi_eigen(a.data(), v.data(), m, rot.data());
  ASSERT_GT(sweeps, 0) << what << ": no convergence";
  EXPECT_LE(sweeps, 20) << what;
  const double norm = std::max(sym.norm(), 1e-300);
  Eigen::VectorXd lambda(k);
  Eigen::MatrixXd vec(k, k);
  for (int i = 0; i < k; ++i) {
    lambda(i) = a[i * m + i];
    for (int r = 0; r < k; ++r)
      vec(r, i) = v[r * m + i];
  }
  if (m > k) {
    for (int i = 0; i < k; ++i)  // the padding row of V stays zero
      EXPECT_EQ(v[k * m + i], 0.0) << what;
  }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(sym);
  std::vector<double> ours(lambda.data(), lambda.data() + k);
  std::sort(ours.begin(), ours.end());
  for (int i = 0; i < k; ++i)
    EXPECT_NEAR(ours[i], eig.eigenvalues()(i), tol * norm) << what << " eigenvalue " << i;
  EXPECT_LE((vec.transpose() * vec - Eigen::MatrixXd::Identity(k, k)).norm(), tol) << what;
  EXPECT_LE((sym * vec - vec * lambda.asDiagonal()).norm(), tol * norm) << what;
}

Eigen::MatrixXd random_matrix(int rows, int cols, std::uint64_t stream) {
  std::vector<double> values(static_cast<std::size_t>(rows) * cols);
  RandomStream(kSeed, RandomPurpose::kTest, stream).fill_normal(values);
  return Eigen::Map<Eigen::MatrixXd>(values.data(), rows, cols);
}

Eigen::MatrixXd random_orthogonal(int k, std::uint64_t stream) {
  return Eigen::HouseholderQR<Eigen::MatrixXd>(random_matrix(k, k, stream)).householderQ();
}

TEST(Jacobi, MatchesEigenOnRandomSpdMatrices) {
  for (int k : {2, 3, 5, 12, 19, 20, 40, 64, 128}) {
    const Eigen::MatrixXd g = random_matrix(k + 7, k, static_cast<std::uint64_t>(k));
    const Eigen::MatrixXd spd = g.transpose() * g + 0.1 * Eigen::MatrixXd::Identity(k, k);
    check_against_eigen(spd, 1e-12, ("random SPD, k = " + std::to_string(k)).c_str());
  }
}

TEST(Jacobi, MatchesEigenWithDegenerateAndZeroEigenvalues) {
  // Repeated eigenvalues (a 4-fold and a 3-fold cluster), an exact null space as LETKF's C
  // always has (member deviations sum to zero), fewer observations than members, a diagonal
  // matrix, and the zero matrix.
  for (int k : {7, 20, 33}) {
    Eigen::VectorXd d(k);
    for (int i = 0; i < k; ++i)
      d(i) = i < 4 ? 2.0 : (i < 7 ? 5.0 : 1.0 + i);
    const Eigen::MatrixXd q = random_orthogonal(k, 100 + k);
    check_against_eigen(q * d.asDiagonal() * q.transpose(), 1e-12, "clustered eigenvalues");

    Eigen::MatrixXd y = random_matrix(3, k, 200 + k);  // rank 2 after centring: C = Yᵀ Y
    y = y.colwise() - y.rowwise().mean();
    check_against_eigen(y.transpose() * y, 1e-12, "rank-deficient C");
    check_against_eigen(d.asDiagonal(), 1e-12, "diagonal");
    check_against_eigen(Eigen::MatrixXd::Zero(k, k), 1e-12, "zero");
  }
}

TEST(Jacobi, HugeDynamicRangeStillConverges) {
  const int k = 20;
  Eigen::VectorXd d(k);
  for (int i = 0; i < k; ++i)
    d(i) = std::pow(10.0, i - 10);  // 1e-10 .. 1e9
  const Eigen::MatrixXd q = random_orthogonal(k, 300);
  check_against_eigen(q * d.asDiagonal() * q.transpose(), 1e-12, "dynamic range 1e19");
}

// ---------------------------------------------------------------- whole analyses

std::vector<double> hx_of(const ts::FilterProblem& p) {
  std::vector<double> hx(static_cast<std::size_t>(p.members) * p.obs.size());
  for (int m = 0; m < p.members; ++m)
    p.obs.apply(std::span<const double>(p.prior).subspan(m * p.state(), p.state()),
                std::span<double>(hx).subspan(m * p.obs.size(), p.obs.size()));
  return hx;
}

// Kernel replay vs the CPU column path: the same mathematics with different summation
// orders (per-entry sums over the candidates vs sums per observation group, combined with
// the vertical factor) and eigensolvers (Jacobi vs tridiagonal QR), both backward stable in
// double precision. Each eigenvalue carries an absolute error of O(ε ‖C‖), which moves the
// gain 1/(λ + k − 1) of a small eigenvalue by O(ε ‖C‖ / (k − 1)) relative. For σ_o = 1 K
// linear observations ‖C‖ is O(1e3) and the analyses agree to ~1e-13: tolerance 1e-10 of the
// value (m/s values of O(1e3), floor 1). For σ_o = 0.01 arctan observations ‖C‖ reaches
// O(1e7) (deviations in radians over σ² = 1e-4), i.e. ~1e-10 expected: tolerance 1e-9.
void expect_replay_matches_cpu(const LetkfSettings& settings, const ts::FilterProblem& p,
                               double tol) {
  const LetkfAnalysis letkf(settings);
  const auto hx = hx_of(p);
  const std::size_t n2 = p.state() / 2;
  std::vector<double> cpu_post(p.prior.size()), replay_post(p.prior.size());
  LetkfColumnStats cpu_stats, replay_stats;
  letkf.analyse_columns(p.prior, hx, p.members, p.obs, 0, n2, cpu_post, &cpu_stats);
  letkf_kernel_replay(settings, p.prior, hx, p.members, p.obs, 0, n2, replay_post, &replay_stats);
  EXPECT_EQ(cpu_stats.elements, replay_stats.elements);
  EXPECT_EQ(cpu_stats.local_observations, replay_stats.local_observations);
  EXPECT_LT(ts::max_relative_difference(replay_post, cpu_post, 1.0), tol);
  // The analysis did something: it is not the prior.
  EXPECT_GT(ts::max_relative_difference(replay_post, p.prior, 1.0), 1e-3);
}

TEST(LetkfKernelReplay, MatchesTheCpuPathWithLocalizationAndRtps) {
  LetkfSettings s;
  s.localization_radius_km = 3000;
  s.rtps = 0.3;
  expect_replay_matches_cpu(s,
                            ts::make_filter_problem(16, 16, ts::ObsLayout::kBetweenPoints, 400,
                                                    obs::ObsOperator::kLinearK, 1.0, 11),
                            1e-10);
}

TEST(LetkfKernelReplay, MatchesTheCpuPathForArctanObservationsAndOddMembers) {
  LetkfSettings s;
  s.localization_radius_km = 2800;
  s.rtps = 0.8;
  expect_replay_matches_cpu(s,
                            ts::make_filter_problem(16, 13, ts::ObsLayout::kRandomPoints, 300,
                                                    obs::ObsOperator::kArctan, 0.01, 12),
                            1e-9);
}

TEST(LetkfKernelReplay, MatchesTheCpuPathWithoutLocalization) {
  LetkfSettings s;
  s.localize = false;
  s.rtps = 0.0;
  expect_replay_matches_cpu(s,
                            ts::make_filter_problem(8, 10, ts::ObsLayout::kRandomPoints, 60,
                                                    obs::ObsOperator::kIdentity, 300.0, 13),
                            1e-10);
}

TEST(LetkfKernelReplay, ColumnSplitDoesNotChangeTheAnalysisBitwise) {
  LetkfSettings s;
  s.localization_radius_km = 3000;
  const auto p = ts::make_filter_problem(16, 12, ts::ObsLayout::kBetweenPoints, 300,
                                         obs::ObsOperator::kLinearK, 1.0, 14);
  const auto hx = hx_of(p);
  const std::size_t n2 = p.state() / 2;
  std::vector<double> whole(p.prior.size());
  letkf_kernel_replay(s, p.prior, hx, p.members, p.obs, 0, n2, whole);
  const std::size_t cut = 77;  // an arbitrary split
  for (auto [c0, c1] : {std::pair<std::size_t, std::size_t>{0, cut}, {cut, n2}}) {
    const std::size_t nc = c1 - c0;
    std::vector<double> in(2 * nc * p.members), out(in.size());
    for (int m = 0; m < p.members; ++m)
      for (std::size_t lev = 0; lev < 2; ++lev)
        for (std::size_t c = 0; c < nc; ++c)
          in[(m * 2 + lev) * nc + c] = p.prior[m * p.state() + lev * n2 + c0 + c];
    letkf_kernel_replay(s, in, hx, p.members, p.obs, c0, c1, out);
    for (int m = 0; m < p.members; ++m)
      for (std::size_t lev = 0; lev < 2; ++lev)
        for (std::size_t c = 0; c < nc; ++c)
          ASSERT_EQ(out[(m * 2 + lev) * nc + c], whole[m * p.state() + lev * n2 + c0 + c]);
  }
}

}  // namespace
}  // namespace rtda::filters
