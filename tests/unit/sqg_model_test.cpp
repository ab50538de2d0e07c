// Tests that pin the SQG physics (docs/science.md §1) without outside data.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <numbers>
#include <vector>

#include "core/random.hpp"
#include "sqg/fft_wisdom.hpp"
#include "sqg/nature_run.hpp"
#include "sqg/sqg_model.hpp"

namespace rtda::sqg {
namespace {

using Model = SqgModel<double>;
constexpr double kPi = std::numbers::pi;
constexpr double kInf = std::numeric_limits<double>::infinity();

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v)
    m = std::max(m, std::abs(x));
  return m;
}

double max_abs_diff(std::span<const double> a, std::span<const double> b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Grid field of amplitude a * cos(k x + l y + phase) on both levels (amp0, amp1).
std::vector<double> mode_field(const SqgParams& p, int kx, int ly, double amp0, double amp1,
                               double phase = 0.0) {
  const int n = p.N;
  std::vector<double> q(2 * n * n);
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < n; ++i) {
      const double th = 2 * kPi * (kx * i + ly * j) / n + phase;
      q[j * n + i] = amp0 * std::cos(th);
      q[n * n + j * n + i] = amp1 * std::cos(th);
    }
  }
  return q;
}

std::vector<double> grid_of(const Model& m, std::span<const Model::Complex> spec) {
  auto ws = m.make_workspace();
  std::vector<double> g(m.grid_size());
  m.to_grid(spec, g, ws);
  return g;
}

Model::SpectralVector spec_of(const Model& m, const std::vector<double>& g) {
  auto ws = m.make_workspace();
  Model::SpectralVector s(m.spectral_size());
  m.to_spectral(g, s, ws);
  return s;
}

TEST(SqgModel, GridSpectralRoundTripIsIdentity) {
  SqgParams p;
  p.N = 32;
  Model m(p);
  std::vector<double> g(m.grid_size());
  RandomStream(7, RandomPurpose::kTest).fill_normal(g, 0.0, 1000.0);
  const auto back = grid_of(m, spec_of(m, g));
  // Two transforms of a 32x32 field: a few ulps of the 1000-sized values.
  EXPECT_LT(max_abs_diff(g, back), 1e-10);
}

TEST(SqgModel, InversionMatchesClosedFormForSingleModes) {
  SqgParams p;
  p.N = 32;
  Model m(p);
  for (auto [kx, ly] : {std::pair{1, 0}, {0, 3}, {2, -5}, {7, 4}, {15, 1}}) {
    const double a0 = 700.0, a1 = -300.0;
    const auto q = mode_field(p, kx, ly, a0, a1);
    const auto qs = spec_of(m, q);
    Model::SpectralVector psi(m.spectral_size());
    m.invert(qs, psi);
    const auto psi_grid = grid_of(m, psi);
    const double k = 2 * kPi * kx / p.L_m, l = 2 * kPi * ly / p.L_m;
    const double mu = std::sqrt(k * k + l * l) * std::sqrt(p.nsq_per_s2) * p.H_m / p.f_per_s;
    const double c0 = p.H_m / mu * (a1 / std::sinh(mu) - a0 / std::tanh(mu));
    const double c1 = p.H_m / mu * (a1 / std::tanh(mu) - a0 / std::sinh(mu));
    const auto expected = mode_field(p, kx, ly, c0, c1);
    // Closed form evaluated with the same double arithmetic; FFT round-off only.
    EXPECT_LT(max_abs_diff(psi_grid, expected), 1e-12 * max_abs(expected))
        << "mode (" << kx << ", " << ly << ")";
  }
}

TEST(SqgModel, MeanModeHasZeroStreamfunction) {
  SqgParams p;
  p.N = 16;
  Model m(p);
  std::vector<double> q(m.grid_size(), 123.0);
  Model::SpectralVector psi(m.spectral_size());
  m.invert(spec_of(m, q), psi);
  for (auto c : psi)
    EXPECT_EQ(std::abs(c), 0.0);
}

// J(psi, q) = psi_x q_y - psi_y q_x for psi = cos(a), q = sin(b):
// = (l1 k2 - k1 l2) sin(a) cos(b).
std::vector<double> analytic_jacobian(const SqgParams& p, int k1, int l1, int k2, int l2) {
  const int n = p.N;
  const double s = 2 * kPi / p.L_m;
  const double coef = (l1 * s) * (k2 * s) - (k1 * s) * (l2 * s);
  std::vector<double> j(2 * n * n);
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) {
      const double a = 2 * kPi * (k1 * x + l1 * y) / n;
      const double b = 2 * kPi * (k2 * x + l2 * y) / n;
      j[y * n + x] = j[n * n + y * n + x] = coef * std::sin(a) * std::cos(b);
    }
  }
  return j;
}

void check_jacobian(bool dealias, Dynamics dyn, double expected_scale, double rtol) {
  SqgParams p;
  p.N = 32;
  p.dealias = dealias;
  p.dynamics = dyn;
  Model m(p);
  const int k1 = 3, l1 = -2, k2 = 1, l2 = 5;
  const auto psi = mode_field(p, k1, l1, 1.0, 1.0);
  const auto q = mode_field(p, k2, l2, 1.0, 1.0, -kPi / 2);  // sin
  auto ws = m.make_workspace();
  Model::SpectralVector adv(m.spectral_size());
  m.jacobian(spec_of(m, psi), spec_of(m, q), adv, ws);
  const auto got = grid_of(m, adv);
  auto want = analytic_jacobian(p, k1, l1, k2, l2);
  for (auto& v : want)
    v *= expected_scale;
  EXPECT_LT(max_abs_diff(got, want), rtol * max_abs(want));
}

TEST(SqgModel, ExactJacobianOfTwoModesMatchesAnalyticProduct) {
  // Low modes: the product is resolved on the grid, so only round-off remains.
  check_jacobian(true, Dynamics::kExact, 1.0, 1e-12);
  check_jacobian(false, Dynamics::kExact, 1.0, 1e-12);
}

TEST(SqgModel, BenchmarkJacobianIsScaledBy225WithDealiasing) {
  // sqgturb mode: 2.25x the exact product, with float32-rounded derivative factors
  // (relative rounding ~6e-8 per factor, two factors).
  check_jacobian(true, Dynamics::kSqgturb, 2.25, 3e-7);
  check_jacobian(false, Dynamics::kSqgturb, 1.0, 3e-7);
}

TEST(SqgModel, HyperdiffusionDampsAModeAtTheDocumentedRate) {
  SqgParams p;
  p.N = 32;
  p.U_ms = 0.0;      // no jet to relax toward
  p.tdiab_s = kInf;  // no relaxation
  Model m(p);
  // A single mode has J = 0 (psi and q are parallel on each level), so only diffusion acts.
  const int kx = 12, ly = 5, steps = 50;
  auto s = spec_of(m, mode_field(p, kx, ly, 1.0, 0.5));
  auto ws = m.make_workspace();
  m.advance(s, steps, ws);
  const auto got = grid_of(m, s);
  const double k = 2 * kPi * std::hypot(kx, ly) / p.L_m;
  const double kc = kPi * p.N / p.L_m;
  const double decay = std::exp(-steps * p.dt_s / p.diff_efold_s * std::pow(k / kc, 8));
  ASSERT_LT(decay, 0.9);  // the test must see real damping
  const auto want = mode_field(p, kx, ly, decay, 0.5 * decay);
  EXPECT_LT(max_abs_diff(got, want), 1e-12);
}

TEST(SqgModel, RelaxesTowardTheJetWithAdvectionOff) {
  SqgParams p;
  p.N = 32;
  p.advection = false;
  p.tdiab_s = 2.0 * 86400.0;  // short, so a few days show a large change
  Model m(p);
  const int steps = 3 * 72;  // 3 days
  Model::SpectralVector s(m.spectral_size());
  auto ws = m.make_workspace();
  m.advance(s, steps, ws);
  const auto got = grid_of(m, s);
  const auto eq = m.equilibrium_grid();
  // dq/dt = (q_eq - q)/tau from q = 0; the jet's mode (K = 2 pi / L) is damped by
  // hyperdiffusion only at ~1e-13 per step. RK4 on a linear decay with dt/tau ~ 7e-3 is exact
  // to ~1e-13 relative.
  const double frac = 1.0 - std::exp(-steps * p.dt_s / p.tdiab_s);
  std::vector<double> want(eq.begin(), eq.end());
  for (auto& v : want)
    v *= frac;
  EXPECT_LT(max_abs_diff(got, want), 1e-9 * max_abs(want));
  // The jet itself is the symmetric profile of eq. 3: identical on both levels.
  const int n = p.N;
  for (int i = 0; i < n * n; ++i)
    EXPECT_EQ(eq[i], eq[n * n + i]);
}

TEST(SqgModel, AsymmetricJetHasTheDocumentedLidToSurfaceRatio) {
  SqgParams p;
  p.N = 16;
  p.symmetric = false;
  Model m(p);
  const auto eq = m.equilibrium_grid();
  const double l = 2 * kPi / p.L_m;
  const double mu = l * std::sqrt(p.nsq_per_s2) * p.H_m / p.f_per_s;
  const int n = p.N;
  // q_eq,1 / q_eq,0 = cosh(mu_l) at every y (eq. 3).
  EXPECT_NEAR(eq[n * n] / eq[0], std::cosh(mu), 1e-12);
  const double q0_y0 = -(mu * p.U_ms) / (l * p.H_m) / std::sinh(mu);
  EXPECT_NEAR(eq[0], q0_y0, 1e-12 * std::abs(q0_y0));
}

// A smooth, strongly nonlinear initial state for convergence and identity tests.
std::vector<double> smooth_state(const SqgParams& p, double amp) {
  auto q = mode_field(p, 1, 1, amp, 0.6 * amp, 0.3);
  const auto b = mode_field(p, 2, -1, 0.5 * amp, -0.4 * amp, 1.1);
  const auto c = mode_field(p, 0, 2, 0.3 * amp, 0.7 * amp, 2.0);
  for (std::size_t i = 0; i < q.size(); ++i)
    q[i] += b[i] + c[i];
  return q;
}

TEST(SqgModel, Rk4ConvergesAtFourthOrder) {
  SqgParams base;
  base.N = 32;
  base.dynamics = Dynamics::kExact;
  base.diff_efold_s = kInf;  // the integrating factor is exact; test the RK4 part alone
  const double t_end = 2.0 * 86400.0;
  const auto q0 = smooth_state(base, 3000.0);
  auto run = [&](double dt) {
    SqgParams p = base;
    p.dt_s = dt;
    Model m(p);
    auto s = spec_of(m, q0);
    auto ws = m.make_workspace();
    m.advance(s, static_cast<int>(std::lround(t_end / dt)), ws);
    return grid_of(m, s);
  };
  const auto ref = run(3600.0 / 32);
  double prev = 0;
  for (double dt : {7200.0, 3600.0, 1800.0}) {
    const double err = max_abs_diff(run(dt), ref);
    std::printf("dt %g err %g\n", dt, err);
    if (prev > 0) {
      const double ratio = prev / err;
      // Halving dt divides a fourth-order error by 16; allow for the asymptotic regime.
      EXPECT_GT(ratio, 12.0) << "dt = " << dt;
      EXPECT_LT(ratio, 20.0) << "dt = " << dt;
    }
    prev = err;
  }
}

TEST(SqgModel, BenchmarkDynamicsEqualsScaledExactDynamics) {
  // docs/science.md §1: benchmark(U, q) = exact(2.25 U, 2.25 q) / 2.25. The two modes differ
  // otherwise only in the float32 rounding of the derivative factors (~1e-7 relative).
  SqgParams pb;
  pb.N = 32;
  pb.dt_s = 2400;
  pb.diff_efold_s = 3 * 86400.0;
  SqgParams pe = pb;
  pe.dynamics = Dynamics::kExact;
  pe.U_ms = 2.25 * pb.U_ms;
  NatureSettings ns;
  auto q = nature_initial_state(pb, ns);
  for (auto& v : q)
    v *= 10;  // strong turbulence from the first step
  auto qe = q;
  for (auto& v : qe)
    v *= 2.25;
  Model mb(pb), me(pe);
  auto sb = spec_of(mb, q), se = spec_of(me, qe);
  auto wb = mb.make_workspace(), we = me.make_workspace();
  const int steps = 100;
  mb.advance(sb, steps, wb);
  me.advance(se, steps, we);
  const auto gb = grid_of(mb, sb);
  auto ge = grid_of(me, se);
  for (auto& v : ge)
    v /= 2.25;
  const double scale = max_abs(gb);
  std::printf("identity rel %g\n", max_abs_diff(gb, ge) / scale);
  EXPECT_LT(max_abs_diff(gb, ge), 2e-6 * scale);
  // Without the 2.25 mapping the two dynamics are far apart: the test can fail.
  Model me1(pe);
  SqgParams pe_same = pb;
  pe_same.dynamics = Dynamics::kExact;
  Model me2(pe_same);
  auto s2 = spec_of(me2, q);
  auto w2 = me2.make_workspace();
  me2.advance(s2, steps, w2);
  EXPECT_GT(max_abs_diff(gb, grid_of(me2, s2)), 1e-2 * scale);
}

TEST(SqgModel, EnsembleStepperMatchesMemberByMemberBitwise) {
  SqgParams p;
  p.N = 32;
  p.dt_s = 2400;
  Model m(p);
  const int members = 5, steps = 4;
  std::vector<double> grid(members * m.grid_size());
  RandomStream(3, RandomPurpose::kTest).fill_normal(grid, 0.0, 2000.0);
  auto serial = grid;
  EnsembleStepper<double> stepper(m, 2);
  stepper.advance_grid(grid, members, steps);
  auto ws = m.make_workspace();
  for (int k = 0; k < members; ++k) {
    std::span<double> g(serial.data() + k * m.grid_size(), m.grid_size());
    Model::SpectralVector s(m.spectral_size());
    m.to_spectral(g, s, ws);
    m.advance(s, steps, ws);
    m.to_grid(s, g, ws);
  }
  EXPECT_EQ(grid, serial);
}

TEST(SqgModel, Float32TracksFloat64OverADay) {
  SqgParams p;
  p.N = 32;
  p.dt_s = 2400;
  SqgModel<double> md(p);
  SqgModel<float> mf(p);
  const auto q = nature_initial_state(p, NatureSettings{});
  std::vector<float> qf(q.begin(), q.end());
  auto sd = spec_of(md, q);
  auto wf = mf.make_workspace();
  SqgModel<float>::SpectralVector sf(mf.spectral_size());
  mf.to_spectral(qf, sf, wf);
  auto wd = md.make_workspace();
  md.advance(sd, 36, wd);
  mf.advance(sf, 36, wf);
  const auto gd = grid_of(md, sd);
  std::vector<float> gf(mf.grid_size());
  mf.to_grid(sf, gf, wf);
  std::vector<double> gfd(gf.begin(), gf.end());
  // float32 round-off (6e-8) amplified by a day of chaotic growth stays far below 1e-3.
  EXPECT_LT(max_abs_diff(gd, gfd), 1e-3 * max_abs(gd));
}

TEST(SqgModel, RejectsUnusableParameters) {
  SqgParams p;
  p.N = 31;
  EXPECT_THROW(p.validate(), std::invalid_argument);
  p = SqgParams{};
  p.dt_s = -1;
  try {
    p.validate();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dt_s"), std::string::npos);
  }
}

}  // namespace
}  // namespace rtda::sqg

namespace rtda::sqg {
namespace {

TEST(SqgModel, MeasuredAndEstimatedPlansDifferOnlyInRoundOff) {
  SqgParams p;
  p.N = 32;
  p.dt_s = 2400;
  SqgModel<double> est(p, FftPlanning::kEstimate), meas(p, FftPlanning::kMeasure);
  const auto q = nature_initial_state(p, NatureSettings{});
  auto we = est.make_workspace(), wm = meas.make_workspace();
  SqgModel<double>::SpectralVector se(est.spectral_size()), sm(meas.spectral_size());
  est.to_spectral(q, se, we);
  meas.to_spectral(q, sm, wm);
  est.advance(se, 20, we);
  meas.advance(sm, 20, wm);
  std::vector<double> ge(est.grid_size()), gm(meas.grid_size());
  est.to_grid(se, ge, we);
  meas.to_grid(sm, gm, wm);
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < ge.size(); ++i) {
    diff = std::max(diff, std::abs(ge[i] - gm[i]));
    scale = std::max(scale, std::abs(ge[i]));
  }
  // 20 steps from a smooth start amplify double round-off (1e-16) by far less than 1e4.
  EXPECT_LT(diff, 1e-12 * scale);
}

TEST(FftWisdom, ExportedWisdomImportsAndGarbageIsRejected) {
  SqgParams p;
  p.N = 16;
  SqgModel<double> m(p, FftPlanning::kMeasure);
  const std::string w = export_fft_wisdom();
  EXPECT_NE(w.find("fftw"), std::string::npos);
  EXPECT_NO_THROW(import_fft_wisdom(w));
  EXPECT_THROW(import_fft_wisdom("not wisdom"), std::runtime_error);
  const auto path = std::filesystem::temp_directory_path() / "rtda_wisdom_test.txt";
  save_fft_wisdom_file(path);
  EXPECT_TRUE(load_fft_wisdom_file(path));
  EXPECT_FALSE(load_fft_wisdom_file(path.string() + ".absent"));
}

}  // namespace
}  // namespace rtda::sqg

namespace rtda::sqg {
namespace {

TEST(SqgModel, EveryReferencePresetStepsAndStaysFinite) {
  for (int n : reference_preset_resolutions()) {
    if (n > 512) continue;  // N = 1024 works the same way; it only costs more memory and time
    const SqgParams p = reference_preset(n);
    SqgModel<double> m(p, FftPlanning::kEstimate);
    auto ws = m.make_workspace();
    const auto q = nature_initial_state(p, NatureSettings{});
    SqgModel<double>::SpectralVector s(m.spectral_size());
    m.to_spectral(q, s, ws);
    m.advance(s, 2, ws);
    std::vector<double> g(m.grid_size());
    m.to_grid(s, g, ws);
    for (double v : g)
      ASSERT_TRUE(std::isfinite(v)) << "N = " << n;
  }
}

}  // namespace
}  // namespace rtda::sqg
