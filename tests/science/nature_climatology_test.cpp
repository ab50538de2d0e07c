// The nature-run recipe of docs/science.md §1 reproduces the published climatology.
#include <gtest/gtest.h>

#include <cstdio>

#include "sqg/nature_run.hpp"
#include "sqg/sqg_model.hpp"

namespace rtda::sqg {
namespace {

TEST(NatureRun, RecipeReproducesThePublishedClimatology) {
  // Full recipe: N = 64 reference parameters, seed 42, 300 days of spin-up, 600 states every
  // 12 h. docs/science.md quotes ~2660 (surface) and ~2710 m/s (lid) averaged over days 300-600,
  // with single states between ~2100 and ~3500 m/s. Our noise realisation differs from the
  // authors' (different generator), so the check is a tolerance band, 2300-3100 m/s, which
  // is the published value +- ~15 %: state-to-state spread of about 10 %, averaged over 600
  // correlated states.
  const SqgParams params = reference_preset(64);
  SqgModel<double> model(params);
  NatureSettings s;
  double sum[2] = {0, 0};
  double lo = 1e300, hi = 0;
  run_nature(model, s, [&](int, double, std::span<const double> q) {
    const auto sd = level_std(q, params.N);
    for (int l = 0; l < 2; ++l) {
      sum[l] += sd[l];
      lo = std::min(lo, sd[l]);
      hi = std::max(hi, sd[l]);
    }
  });
  const double surface = sum[0] / s.states, lid = sum[1] / s.states;
  std::printf("nature climatology: surface %.1f m/s, lid %.1f m/s (%.2f K), states %.0f..%.0f\n",
              surface, lid, 0.5 * (surface + lid) * params.kelvin_per_pv(), lo, hi);
  EXPECT_GT(surface, 2300.0);
  EXPECT_LT(surface, 3100.0);
  EXPECT_GT(lid, 2300.0);
  EXPECT_LT(lid, 3100.0);
  // Single states stay in a plausible turbulent range (published: ~2100-3500 m/s).
  EXPECT_GT(lo, 1500.0);
  EXPECT_LT(hi, 4500.0);
}

}  // namespace
}  // namespace rtda::sqg
