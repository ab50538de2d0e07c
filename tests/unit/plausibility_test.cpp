// Quality control of observations: the ingest plausibility rule the server and the worker share
// (obs/plausibility.hpp) and the gross-error check against the background (obs/gross_error.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "obs/gross_error.hpp"
#include "obs/observation_space.hpp"
#include "obs/plausibility.hpp"
#include "observation_builders.hpp"

namespace rtda::obs {
namespace {

using rtda::test_support::observation;

constexpr int kLinear = 0, kArctan = 1, kIdentity = 2;
const double kS = sqg::SqgParams{}.kelvin_per_pv();  // f theta0 / g, K per m/s

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Plausibility, LinearKelvinBoundsValueAndErrorSd) {
  const PlausibilityLimits lim;  // 500 K, 100 K
  EXPECT_EQ(implausible_observation(kLinear, 12.5, 1.0, lim, kS), "");
  EXPECT_EQ(implausible_observation(kLinear, -500.0, 100.0, lim, kS), "");  // the bounds count
  const std::string huge = implausible_observation(kLinear, 1e300, 1.0, lim, kS);
  EXPECT_EQ(huge,
            "value = 1e+300: expected |value| <= 500 K for linear_K "
            "(qc.max_abs_kelvin)");
  EXPECT_EQ(plausibility_field(huge), "value");
  const std::string sd = implausible_observation(kLinear, 1.0, 150.0, lim, kS);
  EXPECT_TRUE(has(sd, "error_sd = 150")) << sd;
  EXPECT_TRUE(has(sd, "<= 100 K")) << sd;
  EXPECT_TRUE(has(sd, "qc.max_error_sd_kelvin")) << sd;
  EXPECT_EQ(plausibility_field(sd), "error_sd");
  // The configured limits, as plain doubles.
  EXPECT_NE(implausible_observation(kLinear, 60.0, 1.0, 50.0, 100.0, kS), "");
  EXPECT_EQ(implausible_observation(kLinear, 40.0, 1.0, 50.0, 100.0, kS), "");
}

TEST(Plausibility, IdentityUsesTheKelvinBoundsScaledByFThetaOverG) {
  const PlausibilityLimits lim;
  const double max_q = 500.0 / kS;  // about 1.6e5 m/s
  EXPECT_EQ(implausible_observation(kIdentity, 0.99 * max_q, 1.0, lim, kS), "");
  EXPECT_EQ(implausible_observation(kIdentity, -0.99 * max_q, 1.0, lim, kS), "");
  const std::string v = implausible_observation(kIdentity, 1.01 * max_q, 1.0, lim, kS);
  EXPECT_TRUE(has(v, "value = ")) << v;
  EXPECT_TRUE(has(v, "m/s for identity")) << v;
  EXPECT_TRUE(has(v, "qc.max_abs_kelvin")) << v;
  EXPECT_EQ(implausible_observation(kIdentity, 0.0, 0.99 * 100.0 / kS, lim, kS), "");
  const std::string sd = implausible_observation(kIdentity, 0.0, 1.01 * 100.0 / kS, lim, kS);
  EXPECT_EQ(plausibility_field(sd), "error_sd");
  EXPECT_TRUE(has(sd, "qc.max_error_sd_kelvin")) << sd;
}

TEST(Plausibility, ArctanStaysWithinHalfPiWidenedByTenErrorSd) {
  const PlausibilityLimits lim;
  const double half_pi = std::numbers::pi / 2;
  EXPECT_EQ(implausible_observation(kArctan, half_pi + 0.09, 0.01, lim, kS), "");
  EXPECT_EQ(implausible_observation(kArctan, -half_pi - 0.09, 0.01, lim, kS), "");
  const std::string v = implausible_observation(kArctan, half_pi + 0.11, 0.01, lim, kS);
  EXPECT_EQ(plausibility_field(v), "value");
  EXPECT_TRUE(has(v, "pi/2 + 10 error_sd = 1.67")) << v;
  EXPECT_EQ(implausible_observation(kArctan, 0.0, 1.0, lim, kS), "");
  const std::string sd = implausible_observation(kArctan, 0.0, 1.5, lim, kS);
  EXPECT_EQ(plausibility_field(sd), "error_sd");
  EXPECT_TRUE(has(sd, "<= 1 for arctan")) << sd;
}

TEST(Plausibility, IsTotalOverNonFiniteInputsAndUnknownOperators) {
  const PlausibilityLimits lim;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (int op : {kLinear, kArctan, kIdentity}) {
    EXPECT_EQ(plausibility_field(implausible_observation(op, nan, 1.0, lim, kS)), "value");
    EXPECT_EQ(plausibility_field(implausible_observation(op, -inf, 1.0, lim, kS)), "value");
    EXPECT_EQ(plausibility_field(implausible_observation(op, 0.0, nan, lim, kS)), "error_sd");
    EXPECT_EQ(plausibility_field(implausible_observation(op, 0.0, 0.0, lim, kS)), "error_sd");
    EXPECT_EQ(plausibility_field(implausible_observation(op, 0.0, -1.0, lim, kS)), "error_sd");
    EXPECT_EQ(plausibility_field(implausible_observation(op, 0.0, inf, lim, kS)), "error_sd");
  }
  EXPECT_EQ(plausibility_field(implausible_observation(7, 0.0, 1.0, lim, kS)), "operator");
  EXPECT_EQ(plausibility_field(implausible_observation(-1, 0.0, 1.0, lim, kS)), "operator");
  // NaN limits refuse rather than accept.
  EXPECT_NE(implausible_observation(kLinear, 1.0, 1.0, nan, 100.0, kS), "");
}

// Anything with the two members (config::QcConfig) can be passed as it is.
struct FakeQc {
  double gross_error_sigmas = 0;
  double max_abs_kelvin = 10;
  double max_error_sd_kelvin = 2;
};

TEST(Plausibility, TakesTheQcConfigurationDirectly) {
  EXPECT_EQ(implausible_observation(kLinear, 9.0, 1.0, FakeQc{}, kS), "");
  EXPECT_NE(implausible_observation(kLinear, 11.0, 1.0, FakeQc{}, kS), "");
  EXPECT_NE(implausible_observation(kLinear, 1.0, 3.0, FakeQc{}, kS), "");
}

sqg::SqgParams small_grid() {
  sqg::SqgParams p;
  p.N = 8;
  return p;
}

TEST(ObservationSpace, RefusesImplausibleObservationsWithTheSharedRule) {
  const auto p = small_grid();
  const double dx = p.dx_m();
  ObservationSet set;
  set.push_back(observation(0, 0, 0, 5.0, ObsOperator::kLinearK, 1.0, 10));     // good
  set.push_back(observation(dx, 0, 0, 1e300, ObsOperator::kLinearK, 1.0, 11));  // absurd value
  set.push_back(observation(0, dx, 1, 2.0, ObsOperator::kArctan, 0.01, 12));    // outside pi/2
  set.push_back(observation(0, 0, 1, 0.0, ObsOperator::kIdentity, 1e9, 13));    // absurd error
  set.push_back(observation(0, 0, 0, std::numeric_limits<double>::quiet_NaN(),
                            ObsOperator::kLinearK, 1.0, 14));  // invalid before plausible
  set.push_back(observation(dx, dx, 0, 0.5, ObsOperator::kArctan, 0.01, 15));  // good
  std::vector<Rejection> rejected;
  const ObservationSpace space(p, set, PlausibilityLimits{}, &rejected);
  ASSERT_EQ(space.size(), 2u);
  EXPECT_EQ(space.id()[0], 10u);
  EXPECT_EQ(space.id()[1], 15u);
  EXPECT_EQ(space.row()[0], 0u);
  EXPECT_EQ(space.row()[1], 5u);
  ASSERT_EQ(rejected.size(), 4u);
  const char* kinds[] = {"implausible", "implausible", "implausible", "invalid"};
  const char* fields[] = {"value", "value", "error_sd", "value"};
  for (std::size_t k = 0; k < rejected.size(); ++k) {
    EXPECT_EQ(rejected[k].index, k + 1);
    EXPECT_EQ(rejected[k].id, 11 + k);
    EXPECT_EQ(rejected[k].kind, kinds[k]) << rejected[k].reason;
    EXPECT_EQ(rejected[k].field, fields[k]) << rejected[k].reason;
    if (rejected[k].kind == "implausible") {
      // The same words as the server's ingest refusal.
      EXPECT_EQ(
          rejected[k].reason,
          implausible_observation(static_cast<int>(set.op[k + 1]), set.value[k + 1],
                                  set.error_sd[k + 1], PlausibilityLimits{}, p.kelvin_per_pv()));
    }
  }
  // Without limits (the filters' own tests) nothing but validity is checked.
  const ObservationSpace lenient(p, set);
  EXPECT_EQ(lenient.size(), 5u);
}

TEST(ObservationSpace, SubsetKeepsStencilsRowsAndValues) {
  const auto p = small_grid();
  const double dx = p.dx_m();
  ObservationSet set;
  for (int i = 0; i < 5; ++i) {
    set.push_back(observation(i * dx + (i == 2 ? 0.3 * dx : 0.0), 0, i % 2, 1.0 + i,
                              ObsOperator::kLinearK, 1.0, 100 + i));
  }
  const ObservationSpace all(p, set);
  EXPECT_FALSE(all.all_at_grid_points());
  const std::vector<std::size_t> keep = {0, 3, 4};
  const ObservationSpace some = all.subset(keep);
  ASSERT_EQ(some.size(), 3u);
  EXPECT_TRUE(some.all_at_grid_points());
  for (std::size_t j = 0; j < keep.size(); ++j) {
    EXPECT_EQ(some.id()[j], all.id()[keep[j]]);
    EXPECT_EQ(some.row()[j], keep[j]);
    EXPECT_EQ(some.value()[j], all.value()[keep[j]]);
    EXPECT_EQ(some.stencil(j).index, all.stencil(keep[j]).index);
  }
  std::vector<double> state(p.state_size(), 0.0);
  for (std::size_t e = 0; e < state.size(); ++e)
    state[e] = 100.0 * std::sin(0.37 * static_cast<double>(e));
  std::vector<double> h_all(all.size()), h_some(some.size());
  all.apply(state, h_all);
  some.apply(state, h_some);
  for (std::size_t j = 0; j < keep.size(); ++j)
    EXPECT_EQ(h_some[j], h_all[keep[j]]);
}

TEST(GrossError, RefusesInnovationsBeyondMSigmasOfObservationAndEnsembleSpread) {
  const auto p = small_grid();
  const double dx = p.dx_m();
  ObservationSet set;
  // values 10, 20, 30, 40 with error_sd 1; background mean 10 everywhere, var 3 (sigma 2).
  for (int i = 0; i < 4; ++i) {
    set.push_back(observation(i * dx, 0, 0, 10.0 * (i + 1), ObsOperator::kLinearK, 1.0, 7 + i));
  }
  const ObservationSpace space(p, set);
  const std::vector<double> moments = {10, 10, 10, 10, 3, 3, 3, 3};
  // innovations 0, 10, 20, 30; m sqrt(1 + 3) = 2 m.
  const auto at5 = gross_error_check(space, moments, 5.0);  // bound 10: 10 is kept
  EXPECT_EQ(at5.kept, (std::vector<std::size_t>{0, 1}));
  ASSERT_EQ(at5.refused.size(), 2u);
  EXPECT_EQ(at5.refused[0].index, 2u);
  EXPECT_EQ(at5.refused[0].id, 9u);
  EXPECT_EQ(at5.refused[0].field, "innovation");
  EXPECT_EQ(at5.refused[0].kind, "gross_error");
  EXPECT_EQ(at5.refused[0].reason,
            "innovation = 20 exceeds 5 * sqrt(error_sd^2 + var h(x_b)) = 5 * sqrt(1^2 + 3) = 10 "
            "(qc.gross_error_sigmas)");
  EXPECT_EQ(gross_error_check(space, moments, 20.0).refused.size(), 0u);
  // Off: everything kept, nothing refused.
  const auto off = gross_error_check(space, moments, 0.0);
  EXPECT_EQ(off.kept, (std::vector<std::size_t>{0, 1, 2, 3}));
  EXPECT_TRUE(off.refused.empty());
  // Negative innovations count by their size; a NaN innovation is left to the non-finite check.
  const std::vector<double> moments2 = {10, 41, std::numeric_limits<double>::quiet_NaN(), 40, 0, 0,
                                        0,  0};
  const auto r = gross_error_check(space, moments2, 5.0);
  EXPECT_EQ(r.kept, (std::vector<std::size_t>{0, 2, 3}));
  ASSERT_EQ(r.refused.size(), 1u);
  EXPECT_EQ(r.refused[0].index, 1u);
  EXPECT_TRUE(has(r.refused[0].reason, "innovation = -21")) << r.refused[0].reason;
  EXPECT_THROW(gross_error_check(space, std::vector<double>(3), 5.0), std::invalid_argument);
}

TEST(GrossError, SelectsColumnsAndMoments) {
  // [member][obs], 2 members x 4 observations.
  const std::vector<double> hx = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<std::size_t> keep = {1, 3};
  EXPECT_EQ(select_columns(hx, 4, keep), (std::vector<double>{2, 4, 6, 8}));
  const std::vector<double> moments = {1, 2, 3, 4, 10, 20, 30, 40};
  EXPECT_EQ(select_moments(moments, keep), (std::vector<double>{2, 4, 20, 40}));
  EXPECT_TRUE(select_columns({}, 0, {}).empty());
}

}  // namespace
}  // namespace rtda::obs
