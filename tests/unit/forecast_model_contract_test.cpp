// The contract of worker::ForecastModel, typed over the host models make_forecast_model
// builds (SQG, ViT, ViT with online adaptation, Lorenz-96; one process, no MPI:
// worker::Comm::single()):
//   - a zero-length forecast is the identity;
//   - a re-forecast from the same start gives the same bits;
//   - a model restarted from its checkpointed state continues bit for bit (the online-adapted
//     surrogate's weights and optimizer included);
//   - a forecast that is not a whole number of steps is refused, naming the model.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm.hpp"
#include "config/config.hpp"
#include "core/random.hpp"
#include "distributed_ensemble.hpp"
#include "ensemble_buffer.hpp"
#include "forecast_model.hpp"
#include "obs/experiments.hpp"
#include "obs/observation_space.hpp"

#ifndef RTDA_SHIPPED_WEIGHTS
#error "RTDA_SHIPPED_WEIGHTS (configs/weights/vit-n64.h5) must be defined by the build"
#endif

namespace rtda::worker {
namespace {

struct Sqg {
  static constexpr double kScale = 1.0;  // of the test members (SQG PV, m/s)
  static config::Config config() {
    return config::load(std::nullopt, {"model.preset=N32", "model.fft_planning=estimate",
                                       "model.fft_wisdom_file="});
  }
};
struct Vit {
  static constexpr double kScale = 1.0;
  static config::Config config() {
    return config::load(
        std::nullopt, {"model.kind=vit", std::string("surrogate.weights=") + RTDA_SHIPPED_WEIGHTS});
  }
};
struct VitOnline {
  static constexpr double kScale = 1.0;
  static config::Config config() {
    return config::load(
        std::nullopt,
        {"model.kind=vit", std::string("surrogate.weights=") + RTDA_SHIPPED_WEIGHTS,
         "surrogate.online=true", "surrogate.online_steps=2", "surrogate.online_batch=1"});
  }
};

struct Lorenz96 {
  static constexpr double kScale = 0.004;  // values of order 8 +- 1, as on the attractor
  static config::Config config() {
    return config::load(std::nullopt, {"model.kind=lorenz96", "experiment.cycle_hours=6"});
  }
};

template <class M>
class ForecastModelContract : public ::testing::Test {
 protected:
  static constexpr int kMembers = 2;
  config::Config cfg = M::config();

  std::unique_ptr<ForecastModel> model() const {
    return make_forecast_model(cfg, device::Backend::kCpu, 1);
  }
  // Smooth-ish members around the configured grid's zero state, the same on every call.
  std::vector<double> members() const {
    const std::size_t n = cfg.model.grid().state_size();
    std::vector<double> q(kMembers * n);
    RandomStream(7, RandomPurpose::kTest).fill_normal(q, 0.0, 200.0 * M::kScale);
    for (std::size_t e = 0; e < q.size(); ++e)
      q[e] += 2000.0 * M::kScale * std::sin(0.01 * static_cast<double>(e % n));
    return q;
  }
  // Runs `model` for `cycles` cycles (the online hook after each) from `start`.
  std::vector<double> run(ForecastModel& m, const std::vector<double>& start, int cycles,
                          double seconds = -1) const {
    DistributedEnsemble ens(Comm::single(), kMembers, cfg.model.grid());
    ens.scatter(start, 0);
    auto buffer = make_host_buffer(ens);
    const double step = seconds >= 0 ? seconds : cfg.experiment.cycle_hours * 3600.0;
    for (int c = 0; c < cycles; ++c) {
      m.advance(*buffer, step);
      if (m.wants_analysis()) {
        // Observations of the first member's state: an analysis-like mean to learn from.
        const auto state = std::span<const double>(ens.local_states()).first(ens.state_size());
        obs::ObservationSet set;
        obs::append_cycle_observations(cfg.model.sqg, state, 0.0, c, obs::Experiment::kLinear,
                                       cfg.observe, set);
        const obs::ObservationSpace space(cfg.model.sqg, set);
        AnalysisFeedback fb;
        fb.cycle = static_cast<std::uint64_t>(c);
        fb.observations = &space;
        fb.analysis_mean = state;
        m.after_analysis(fb);
      }
    }
    return ens.gather(0);
  }
};
using Models = ::testing::Types<Sqg, Vit, VitOnline, Lorenz96>;
TYPED_TEST_SUITE(ForecastModelContract, Models);

TYPED_TEST(ForecastModelContract, ZeroLengthForecastIsTheIdentity) {
  auto m = this->model();
  const auto start = this->members();
  EXPECT_EQ(this->run(*m, start, 1, 0.0), start);
}

TYPED_TEST(ForecastModelContract, ReforecastIsIdentical) {
  const auto start = this->members();
  auto a = this->model(), b = this->model();
  const auto first = this->run(*a, start, 1);
  EXPECT_NE(first, start);
  EXPECT_EQ(this->run(*b, start, 1), first);
  EXPECT_EQ(a->identity(), b->identity());
}

TYPED_TEST(ForecastModelContract, RestartFromItsStateContinuesBitForBit) {
  const auto start = this->members();
  auto a = this->model();
  const auto mid = this->run(*a, start, 1);
  const ModelState saved = a->save_state();
  const std::uint64_t version = a->version();
  if (a->wants_analysis()) {
    EXPECT_FALSE(saved.empty()) << "the adapted state is checkpointed";
  }
  const auto end = this->run(*a, mid, 1);

  auto b = this->model();
  b->restore_state(saved);
  EXPECT_EQ(b->version(), version);
  EXPECT_EQ(this->run(*b, mid, 1), end);
  EXPECT_EQ(b->identity(), a->identity());
}

TYPED_TEST(ForecastModelContract, PartStepsAreRefusedNamingTheModel) {
  auto m = this->model();
  try {
    this->run(*m, this->members(), 1, 0.5 * m->step_seconds());
    FAIL() << "a forecast of half a step was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.kind"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rtda::worker
