// Training the surrogate: the loss falls, the best checkpoint is written, and a run resumed
// from its checkpoint continues exactly where an uninterrupted run would be.
#include "surrogate/trainer.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "surrogate/checkpoint.hpp"

namespace rtda::surrogate {
namespace {

constexpr int kN = 8;

// A "nature run" whose next state is a fixed smooth map of the previous one (learnable).
io::NatureRun synthetic_run(std::uint64_t seed, int states) {
  io::NatureRun run;
  run.params = sqg::reference_preset(32);
  run.params.N = kN;
  const std::size_t n = 2 * kN * kN;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0.0, 1000.0);
  std::vector<double> q(n);
  for (auto& v : q)
    v = g(rng);
  for (int k = 0; k < states; ++k) {
    run.times_seconds.push_back(k * 43200.0);
    run.q.insert(run.q.end(), q.begin(), q.end());
    std::vector<double> next(n);
    for (std::size_t e = 0; e < n; ++e)
      next[e] = 0.8 * q[e] + 0.2 * q[(e + 1) % n] + 100.0 * g(rng) * 0.01;
    q = next;
  }
  return run;
}

VitConfig tiny() {
  VitConfig c;
  c.grid_n = kN;
  c.patch = 2;
  c.dim = 16;
  c.depth = 1;
  c.heads = 2;
  return c;
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("rtda-trainer-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TrainSettings settings(int total) {
  TrainSettings s;
  s.batch = 4;
  s.adamw.lr = 3e-3;
  s.adamw.warmup_steps = 10;
  s.adamw.total_steps = total;
  s.eval_every = 20;
  s.patience = 100;
  s.validation_pairs = 8;
  return s;
}

TEST(SurrogateTrainer, ValidationErrorFallsBelowPersistenceAndTheBestIsSaved) {
  TempDir dir;
  const std::vector<io::NatureRun> train = {synthetic_run(1, 40), synthetic_run(2, 40)};
  const io::NatureRun val = synthetic_run(3, 20);
  Vit model(tiny());
  const auto norm = normalisation_of(train);
  const auto out = (dir.path / "vit.h5").string();
  const TrainReport r =
      train_surrogate(model, train, val, norm, 1, settings(200), out, {{"test", "1"}});
  ASSERT_FALSE(r.curve.empty());
  EXPECT_LT(r.best_val_rmse_K, r.persistence_rmse_K);
  EXPECT_LT(r.curve.back().train_loss, r.curve.front().train_loss);
  EXPECT_TRUE(std::filesystem::exists(out));
  EXPECT_TRUE(std::filesystem::exists(resume_path_of(out)));
  // The saved weights reproduce the best validation RMSE.
  const auto arch = read_surrogate_architecture(out);
  Vit loaded(vit_config_from(arch));
  ParameterList params;
  loaded.collect(params);
  load_surrogate(out, params);
  EXPECT_NEAR(forecast_rmse_K(loaded, val, norm, 1, 8), r.best_val_rmse_K,
              1e-9 * r.best_val_rmse_K);
}

TEST(SurrogateTrainer, ResumedRunEqualsUninterruptedRunBitwise) {
  TempDir dir;
  const std::vector<io::NatureRun> train = {synthetic_run(1, 40)};
  const io::NatureRun val = synthetic_run(3, 20);
  const auto norm = normalisation_of(train);
  // Patience and improvement do not matter: every evaluation saves when it improves, so make
  // the interruption point an evaluation that saved (checked below).
  Vit straight(tiny());
  train_surrogate(straight, train, val, norm, 1, settings(80), (dir.path / "a.h5").string(), {});
  Vit first(tiny());
  TrainSettings half = settings(80);
  half.stop_after = 40;
  const auto r1 =
      train_surrogate(first, train, val, norm, 1, half, (dir.path / "b.h5").string(), {});
  ASSERT_EQ(r1.best_step, 40) << "the interruption must be at a saved checkpoint";
  Vit resumed(tiny());
  train_surrogate(resumed, train, val, norm, 1, settings(80), (dir.path / "c.h5").string(), {},
                  resume_path_of((dir.path / "b.h5").string()));
  Mat x = Mat::Random(2, 2 * kN * kN);
  EXPECT_EQ(straight.forward(x), resumed.forward(x));
}

}  // namespace
}  // namespace rtda::surrogate
