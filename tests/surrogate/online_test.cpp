// Online adaptation of the surrogate (surrogate/online.hpp): it learns from analysis pairs,
// rolls back updates the innovations reject, stops when the guard has halved the learning
// rate too often, continues bit for bit from its saved state, and splits batches over ranks.
#include "surrogate/online.hpp"

#include <gtest/gtest.h>

#include <barrier>
#include <cmath>
#include <random>
#include <thread>

#include "surrogate_test_support.hpp"

namespace rs = rtda::surrogate;

namespace {

rs::VitConfig tiny() {
  rs::VitConfig c = rs::test_support::tiny_vit_config();
  c.depth = 1;
  c.mlp_ratio = 2;
  return c;
}

rs::OnlineSettings fast() {
  rs::OnlineSettings s;
  s.enabled = true;
  s.lr = 3e-3;
  s.steps = 4;
  s.batch = 4;
  s.buffer = 16;
  s.warmup_steps = 0;
  s.window = 2;
  return s;
}

// Random states whose "dynamics" is x -> 0.8 x: it commutes with the flow's symmetries used
// as augmentation (shift; flip = negate, mirror x, shift y by half), as the real flow does.
std::vector<double> state(std::mt19937_64& rng) {
  const rs::Mat m = rs::test_support::random_normal(1, 128, rng);
  return std::vector<double>(m.data(), m.data() + m.size());
}
std::vector<double> scaled(const std::vector<double>& x, double f) {
  std::vector<double> y(x);
  for (double& v : y)
    v *= f;
  return y;
}
double mse(std::span<const double> a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < b.size(); ++i)
    s += (a[i] - b[i]) * (a[i] - b[i]);
  return s / static_cast<double>(b.size());
}

// One-cycle forecast error of `model` against the decay dynamics, over fresh states.
double forecast_error(rs::Vit& model, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  double e = 0;
  for (int i = 0; i < 8; ++i) {
    const auto x = state(rng);
    rs::Mat in(1, 128);
    for (int j = 0; j < 128; ++j)
      in(0, j) = static_cast<float>(x[static_cast<std::size_t>(j)]);
    const rs::Mat out = model.forward(in);
    std::vector<double> y(out.data(), out.data() + out.size());
    e += mse(y, scaled(x, 0.8));
  }
  return e / 8;
}

// Feeds `cycles` analysis pairs (x, 0.8 x); `judge_by` is the dynamics the innovations
// score against (0.8: the truth agrees with the training pairs; 1.0: persistence is right).
void cycle(rs::OnlineAdapter& a, std::mt19937_64& rng, int first, int cycles, double judge_by,
           std::vector<rs::OnlineReport>* reports = nullptr, int part = 0, int parts = 1,
           const rs::OnlineAdapter::Reduce& reduce = {}) {
  for (int c = first; c < first + cycles; ++c) {
    const auto x = state(rng);
    a.set_previous_analysis(x);
    const auto target = scaled(x, judge_by);
    const auto score = [&](std::span<const double> f) { return mse(f, target); };
    const auto r =
        a.after_analysis(static_cast<std::uint64_t>(c), scaled(x, 0.8), score, part, parts, reduce);
    if (reports) reports->push_back(r);
  }
}

std::vector<float> weights(rs::Vit& v) {
  rs::ParameterList p;
  v.collect(p);
  std::vector<float> w;
  for (const auto* q : p)
    w.insert(w.end(), q->value.data(), q->value.data() + q->value.size());
  return w;
}

}  // namespace

TEST(OnlineAdapter, LearnsTheDynamicsOfTheAnalysesAndAcceptsTheBetterWeights) {
  rs::Vit model(tiny());
  const double before = forecast_error(model, 99);  // zero head: persistence, error 0.04
  rs::OnlineAdapter a(model, {}, fast(), 7, "tiny.h5");
  std::mt19937_64 rng(1);
  std::vector<rs::OnlineReport> reps;
  cycle(a, rng, 0, 40, 0.8, &reps);
  const double after = forecast_error(model, 99);
  EXPECT_LT(after, 0.5 * before) << "before " << before << " after " << after;
  EXPECT_EQ(a.rollbacks(), 0);
  EXPECT_GT(a.accepted_version(), 0u);
  EXPECT_EQ(a.version(), 40u);  // one new version per cycle with steps
  EXPECT_EQ(a.weights_name(), "tiny.h5+online.v40");
  EXPECT_TRUE(reps.back().evaluated);
  EXPECT_EQ(reps.back().steps_taken, 4);
  EXPECT_TRUE(std::isfinite(reps.back().loss));
}

TEST(OnlineAdapter, RollsBackWhatTheInnovationsRejectAndTheGuardStopsIt) {
  rs::Vit model(tiny());
  const std::vector<float> initial = weights(model);
  rs::OnlineSettings s = fast();
  s.min_lr_scale = 1.0 / 16;
  rs::OnlineAdapter a(model, {}, s, 7, "tiny.h5");
  std::mt19937_64 rng(2);
  std::vector<rs::OnlineReport> reps;
  // The truth is persistence, which the initial (zero-head) weights forecast exactly; the
  // analysis pairs pull the weights away from it, so every window ends in a rollback.
  cycle(a, rng, 0, 60, 1.0, &reps);
  int rolled = 0;
  for (const auto& r : reps)
    rolled += r.decision == "rolled back";
  // lr scale 1 -> 1/2 -> 1/4 -> 1/8 -> 1/16 (still allowed) -> 1/32: stopped.
  EXPECT_EQ(rolled, 5);
  EXPECT_EQ(a.rollbacks(), 5);
  EXPECT_DOUBLE_EQ(a.learning_rate_scale(), 1.0 / 32);
  EXPECT_EQ(a.version(), 0u);
  EXPECT_EQ(a.accepted_version(), 0u);
  EXPECT_EQ(reps.back().steps_taken, 0);
  EXPECT_EQ(weights(model), initial) << "after the last rollback the weights are the initial ones";
}

TEST(OnlineAdapter, ContinuesBitForBitFromItsSavedState) {
  rs::Vit m1(tiny()), m2(tiny());
  rs::OnlineAdapter a(m1, {}, fast(), 7, "tiny.h5");
  std::mt19937_64 rng(3);
  cycle(a, rng, 0, 6, 0.8);
  const rs::OnlineState saved = a.save_state();
  rs::OnlineAdapter b(m2, {}, fast(), 7, "tiny.h5");
  b.restore_state(saved);
  EXPECT_EQ(weights(m1), weights(m2));
  std::mt19937_64 rng_a(4), rng_b(4);
  cycle(a, rng_a, 6, 5, 0.8);
  cycle(b, rng_b, 6, 5, 0.8);
  EXPECT_EQ(weights(m1), weights(m2));
  EXPECT_EQ(a.version(), b.version());
  EXPECT_EQ(a.accepted_version(), b.accepted_version());
  EXPECT_EQ(a.buffered_pairs(), b.buffered_pairs());
}

TEST(OnlineAdapter, RefusesTheStateOfAnotherArchitectureNamingWhatDiffers) {
  rs::VitConfig other = tiny();
  other.dim = 8;
  other.heads = 2;
  rs::Vit m_other(other), m(tiny());
  rs::OnlineAdapter a_other(m_other, {}, fast(), 7, "other.h5");
  rs::OnlineAdapter a(m, {}, fast(), 7, "tiny.h5");
  const std::vector<float> before = weights(m);
  try {
    a.restore_state(a_other.save_state());
    FAIL() << "accepted another architecture's state";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'current'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("parameters"), std::string::npos) << e.what();
  }
  EXPECT_EQ(weights(m), before) << "a refused state changes nothing";
  rs::OnlineState bad = a.save_state();
  bad.attributes.erase("version");
  EXPECT_THROW(a.restore_state(bad), std::invalid_argument);
}

TEST(OnlineAdapter, BatchesSplitOverRanksMatchOneProcessToRoundOff) {
  // Two "ranks" as threads: each takes every other pair of a batch; gradients are summed by
  // the reduce hook (the worker uses MPI_Reduce + MPI_Bcast). The weights must agree with
  // one process doing the whole batch to float round-off (sums in another order).
  rs::Vit one(tiny()), r0(tiny()), r1(tiny());
  rs::OnlineAdapter a(one, {}, fast(), 7, "tiny.h5");
  rs::OnlineAdapter b0(r0, {}, fast(), 7, "tiny.h5"), b1(r1, {}, fast(), 7, "tiny.h5");
  std::mt19937_64 rng(5);
  cycle(a, rng, 0, 5, 0.8);
  std::barrier sync(2);
  std::vector<float> slot[2];
  const auto reduce_for = [&](int me) {
    return [&, me](std::span<float> g) {
      slot[me].assign(g.begin(), g.end());
      sync.arrive_and_wait();
      for (std::size_t i = 0; i < g.size(); ++i)
        g[i] = slot[0][i] + slot[1][i];
      sync.arrive_and_wait();
    };
  };
  std::thread t0([&] {
    std::mt19937_64 r(5);
    cycle(b0, r, 0, 5, 0.8, nullptr, 0, 2, reduce_for(0));
  });
  std::thread t1([&] {
    std::mt19937_64 r(5);
    cycle(b1, r, 0, 5, 0.8, nullptr, 1, 2, reduce_for(1));
  });
  t0.join();
  t1.join();
  const auto w = weights(one), w0 = weights(r0), w1 = weights(r1);
  EXPECT_EQ(w0, w1) << "both ranks hold the same bits";
  double max_diff = 0, max_abs = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(static_cast<double>(w[i]) - w0[i]));
    max_abs = std::max(max_abs, std::abs(static_cast<double>(w[i])));
  }
  // 20 Adam steps of lr 3e-3: round-off in the gradient sums changes each update by far less
  // than the step itself; 1e-4 of the largest weight bounds it with a wide margin.
  EXPECT_LT(max_diff, 1e-4 * max_abs) << "max |one - split| " << max_diff;
}
