// The 1-D periodic geometry (core::Grid with ny = 1, the Lorenz-96 ring) through the parts
// that depend on positions: the intake check, the observation stencils, LETKF's localization
// and its column split.
#include <gtest/gtest.h>

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "filters/letkf.hpp"
#include "l96/lorenz96.hpp"
#include "obs/observation_space.hpp"

namespace rtda {
namespace {

const core::Grid kRing = l96::Lorenz96Params{}.grid();  // 40 variables, 1 km apart

obs::Observation at(double x_m, double value = 0.0, int level = 0, double y_m = 0.0) {
  obs::Observation o;
  o.x_m = x_m;
  o.y_m = y_m;
  o.level = level;
  o.value = value;
  o.error_sd = 1.0;
  o.op = obs::ObsOperator::kIdentity;
  return o;
}

TEST(RingGrid, IsOneLevelOfFortyPoints) {
  EXPECT_EQ(kRing.levels, 1);
  EXPECT_EQ(kRing.nx, 40);
  EXPECT_EQ(kRing.ny, 1);
  EXPECT_TRUE(kRing.ring());
  EXPECT_EQ(kRing.state_size(), 40u);
  EXPECT_DOUBLE_EQ(kRing.dx_m(), 1000.0);
}

TEST(RingGrid, InterpolationWrapsAroundTheRing) {
  obs::ObservationSet set;
  set.push_back(at(39500.0));  // half-way between the last variable and the first
  set.push_back(at(2000.0));   // on variable 2
  const obs::ObservationSpace space(kRing, 1.0, set);
  ASSERT_EQ(space.size(), 2u);
  std::vector<double> x(40);
  for (int i = 0; i < 40; ++i)
    x[static_cast<std::size_t>(i)] = i;
  std::vector<double> hx(2);
  space.apply(x, hx);
  EXPECT_DOUBLE_EQ(hx[0], 0.5 * (39 + 0));
  EXPECT_DOUBLE_EQ(hx[1], 2.0);
  EXPECT_FALSE(space.all_at_grid_points());
}

TEST(RingGrid, IntakeNamesTheFieldAndTheRing) {
  obs::ObservationSet set;
  set.push_back(at(1000.0, 0.0, 1));         // a second level
  set.push_back(at(1000.0, 0.0, 0, 500.0));  // off the ring
  set.push_back(at(40000.0));                // past the circumference
  set.push_back(at(0.0));                    // fine
  std::vector<obs::Rejection> why;
  const obs::ObservationSpace space(kRing, 1.0, set, &why);
  EXPECT_EQ(space.size(), 1u);
  ASSERT_EQ(why.size(), 3u);
  EXPECT_EQ(why[0].field, "level");
  EXPECT_NE(why[0].reason.find("[0, 1)"), std::string::npos) << why[0].reason;
  EXPECT_EQ(why[1].field, "y_m");
  EXPECT_NE(why[1].reason.find("ring"), std::string::npos) << why[1].reason;
  EXPECT_EQ(why[2].field, "x_m");
  EXPECT_NE(why[2].reason.find("L_x = 40000"), std::string::npos) << why[2].reason;
}

// One observation of variable 0; LETKF with a localization support of 3 km changes the
// variables within 2 km along the ring (38, 39, 0, 1, 2) and leaves every other one exactly.
TEST(RingGrid, LetkfLocalizationWrapsAroundTheRing) {
  constexpr int kMembers = 10;
  std::vector<double> prior(kMembers * 40);
  RandomStream(3, RandomPurpose::kTest).fill_normal(prior, 8.0, 1.0);
  obs::ObservationSet set;
  set.push_back(at(0.0, 12.0));
  const obs::ObservationSpace space(kRing, 1.0, set);
  filters::LetkfSettings s;
  s.localization_radius_km = 3.0;
  s.rtps = 0.0;
  filters::LetkfAnalysis letkf(s);
  std::vector<double> post(prior.size());
  letkf.analyse({kMembers, 40, prior}, space, {}, {kMembers, 40, post});
  for (int i = 0; i < 40; ++i) {
    const int d = std::min(i, 40 - i);
    bool changed = false;
    for (int m = 0; m < kMembers; ++m)
      changed = changed || post[m * 40 + i] != prior[m * 40 + i];
    EXPECT_EQ(changed, d <= 2) << "variable " << i;
  }
}

// Any split of the ring's columns gives the whole ring's bits (the unit of parallel work is
// a column).
TEST(RingGrid, LetkfColumnSplitIsInvariant) {
  constexpr int kMembers = 8;
  std::vector<double> prior(kMembers * 40);
  RandomStream(4, RandomPurpose::kTest).fill_normal(prior, 8.0, 1.0);
  obs::ObservationSet set;
  for (int i = 0; i < 40; i += 3)
    set.push_back(at(i * 1000.0 + 250.0, 8.5));
  const obs::ObservationSpace space(kRing, 1.0, set);
  filters::LetkfSettings s;
  s.localization_radius_km = 14.56;
  filters::LetkfAnalysis letkf(s);
  std::vector<double> hx(kMembers * space.size());
  for (int m = 0; m < kMembers; ++m)
    space.apply(std::span<const double>(prior).subspan(m * 40, 40),
                std::span<double>(hx).subspan(m * space.size(), space.size()));
  std::vector<double> whole(prior.size());
  letkf.analyse_columns(prior, hx, kMembers, space, 0, 40, whole);
  for (std::size_t cut : {1u, 17u, 39u}) {
    std::vector<double> a(kMembers * cut), b(kMembers * (40 - cut));
    std::vector<double> pa(a.size()), pb(b.size());
    for (int m = 0; m < kMembers; ++m)
      for (std::size_t i = 0; i < 40; ++i)
        (i < cut ? pa[m * cut + i] : pb[m * (40 - cut) + i - cut]) = prior[m * 40 + i];
    letkf.analyse_columns(pa, hx, kMembers, space, 0, cut, a);
    letkf.analyse_columns(pb, hx, kMembers, space, cut, 40, b);
    for (int m = 0; m < kMembers; ++m)
      for (std::size_t i = 0; i < 40; ++i)
        ASSERT_EQ(i < cut ? a[m * cut + i] : b[m * (40 - cut) + i - cut], whole[m * 40 + i])
            << "cut " << cut << ", member " << m << ", variable " << i;
  }
}

}  // namespace
}  // namespace rtda
