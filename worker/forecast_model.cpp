#include "forecast_model.hpp"

#include <cmath>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "hip/cycle_hip.hpp"
#include "hip/ensf_hip_kernels.hpp"
#include "hip/nn_hip.hpp"
#include "hip/vit_hip.hpp"
#include "l96/lorenz96.hpp"
#include "sqg/fft_wisdom.hpp"
#include "sqg/sqg_model.hpp"
#include "surrogate/checkpoint.hpp"
#include "surrogate/online.hpp"
#include "surrogate/trainer.hpp"
#include "surrogate/vit.hpp"

namespace rtda::worker {

int whole_steps(double seconds, double step_s, const std::string& model) {
  const double steps = seconds / step_s;
  const double whole = std::round(steps);
  if (!std::isfinite(seconds) || seconds < 0 || std::abs(steps - whole) > 1e-9 * (1 + whole) ||
      whole > std::numeric_limits<int>::max()) {
    throw std::invalid_argument(model + ": a forecast of " + std::to_string(seconds) +
                                " s is not a whole number of its " + std::to_string(step_s) +
                                " s steps");
  }
  return static_cast<int>(whole);
}

void share_fft_wisdom(const Comm& comm, const config::Config& cfg) {
  const int rank = comm.rank();
  std::string text;
  std::string error;
  if (rank == 0) {
    // A failure here is sent to every rank (len = -1) instead of leaving them in the Bcast.
    try {
      const std::string path = cfg.model.fft_planning == sqg::FftPlanning::kMeasure
                                   ? sqg::resolve_fft_wisdom_path(cfg.model.fft_wisdom_file)
                                   : std::string();
      const bool automatic = cfg.model.fft_wisdom_file == "auto";
      try {
        if (!path.empty()) sqg::load_fft_wisdom_file(path);
      } catch (const std::runtime_error&) {
        if (!automatic) throw;  // a stale cache is re-measured and overwritten
      }
      sqg::SqgModel<double> probe(cfg.model.sqg, cfg.model.fft_planning);
      text = sqg::export_fft_wisdom();
      try {
        if (!path.empty()) sqg::save_fft_wisdom_file(path);
      } catch (const std::exception&) {
        if (!automatic) throw;
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  int len = error.empty() ? static_cast<int>(text.size()) : -1;
  comm.bcast(&len, 1, MPI_INT, 0);
  if (len < 0) {
    throw config::ConfigError(rank == 0 ? error : "model.fft_wisdom_file: rank 0 failed to plan");
  }
  text.resize(static_cast<std::size_t>(len));
  comm.bcast(text.data(), len, MPI_CHAR, 0);
  if (rank != 0) sqg::import_fft_wisdom(text);
}

namespace {

// The SQG physics (FFTW, host) over this rank's members; the steps of one member do not
// depend on the others, so any split over ranks and threads gives the same bits. The FFTs
// are planned by prepare() or the first forecast (a tool that only analyses never plans).
class SqgForecast final : public ForecastModel {
 public:
  SqgForecast(const config::Config& cfg, int threads, const Comm& comm)
      : cfg_(cfg), threads_(threads), comm_(comm) {}
  std::string identity() const override { return "sqg"; }
  double step_seconds() const override { return cfg_.model.sqg.dt_s; }
  void prepare() override {
    if (stepper_) return;
    share_fft_wisdom(comm_, cfg_);  // collective: every rank prepares or forecasts
    model_ = std::make_unique<sqg::SqgModel<double>>(cfg_.model.sqg, cfg_.model.fft_planning);
    stepper_ = std::make_unique<sqg::EnsembleStepper<double>>(*model_, threads_);
  }
  void advance(EnsembleBuffer& members, double seconds) override {
    const int steps = whole_steps(seconds, step_seconds(), "model.kind = \"sqg\"");
    prepare();
    if (steps == 0) return;
    stepper_->advance_grid(members.host_members(), members.ensemble().local_members(), steps);
  }

 private:
  config::Config cfg_;
  int threads_;
  Comm comm_;
  std::unique_ptr<sqg::SqgModel<double>> model_;
  std::unique_ptr<sqg::EnsembleStepper<double>> stepper_;
};

// The Lorenz-96 toy model (docs/science.md §7) on the host: RK4 over this rank's members, each
// independent of the others, so any split over ranks and threads gives the same bits.
class Lorenz96Forecast final : public ForecastModel {
 public:
  explicit Lorenz96Forecast(const config::Config& cfg) : model_(cfg.model.l96) {}
  std::string identity() const override { return "lorenz96"; }
  double step_seconds() const override { return model_.params().step_seconds(); }
  void advance(EnsembleBuffer& members, double seconds) override {
    const int steps = whole_steps(seconds, step_seconds(), "model.kind = \"lorenz96\"");
    if (steps == 0) return;
    model_.advance_members(members.host_members(), members.ensemble().local_members(), steps);
  }

 private:
  l96::Lorenz96 model_;
};

// The ViT surrogate: one forward pass per cycle length, this rank's members as one batch,
// with the optional online adaptation. Host and device differ in forward().
class VitForecast : public ForecastModel {
 public:
  explicit VitForecast(const config::Config& cfg) : cycle_s_(cfg.experiment.cycle_hours * 3600.0) {
    const std::string& path = cfg.surrogate.weights;
    const surrogate::VitConfig vc =
        surrogate::vit_config_from(surrogate::read_surrogate_architecture(path));
    if (vc.grid_n != cfg.model.sqg.N) {
      throw config::ConfigError("surrogate.weights = \"" + path +
                                "\": trained for N = " + std::to_string(vc.grid_n) +
                                ", the model has N = " + std::to_string(cfg.model.sqg.N));
    }
    grid_n_ = vc.grid_n;
    vit_ = std::make_unique<surrogate::Vit>(vc);
    surrogate::ParameterList params;
    vit_->collect(params);
    const surrogate::SurrogateFile f = surrogate::load_surrogate(path, params);
    if (f.norm_mean.size() != 2 || f.norm_std.size() != 2) {
      throw config::ConfigError("surrogate.weights = \"" + path +
                                "\": no per-level normalisation (norm_mean, norm_std)");
    }
    norm_.mean = {f.norm_mean[0], f.norm_mean[1]};
    norm_.std = {f.norm_std[0], f.norm_std[1]};
    const std::string name = std::filesystem::path(path).filename().string();
    identity_ = "vit:" + name;
    if (cfg.surrogate.online.enabled) {
      online_ = std::make_unique<surrogate::OnlineAdapter>(*vit_, norm_, cfg.surrogate.online,
                                                           cfg.experiment.seed, name);
    }
  }

  std::string identity() const override {
    return online_ ? "vit:" + online_->weights_name() : identity_;
  }
  double step_seconds() const override { return cycle_s_; }
  void advance(EnsembleBuffer& members, double seconds) override {
    const int steps = whole_steps(seconds, step_seconds(), "model.kind = \"vit\"");
    if (members.ensemble().local_members() == 0) return;
    for (int s = 0; s < steps; ++s)
      forward(members);
  }

  ModelState save_state() const override {
    if (!online_) return {};
    surrogate::OnlineState st = online_->save_state();
    return {std::move(st.arrays), std::move(st.doubles), std::move(st.attributes)};
  }
  void restore_state(const ModelState& st) override {
    if (!online_) return;
    // A checkpoint without adapter state (written without surrogate.online) starts the
    // adaptation afresh from the weights file.
    if (!st.attributes.empty()) online_->restore_state({st.arrays, st.doubles, st.attributes});
    weights_changed();
  }
  bool wants_analysis() const override { return online_ != nullptr; }
  std::uint64_t version() const override { return online_ ? online_->version() : 0; }

  // After each analysis: score the weights in use and the accepted ones on that cycle's
  // observations, roll back or accept, then train on the replay buffer (surrogate/online.hpp).
  void after_analysis(const AnalysisFeedback& fb) override {
    if (!online_) return;
    const obs::ObservationSpace& space = *fb.observations;
    // Mean squared normalised innovation of a forecast against the cycle's observations.
    const auto score = [&](std::span<const double> state) {
      const std::size_t po = space.size();
      if (po == 0) return 0.0;
      std::vector<double> hx(po);
      space.apply(state, hx);
      double sum = 0;
      for (std::size_t o = 0; o < po; ++o) {
        const double d = (space.value()[o] - hx[o]) / space.error_sd()[o];
        sum += d * d;
      }
      return sum / static_cast<double>(po);
    };
    last_ = online_->after_analysis(fb.cycle, fb.analysis_mean, score, fb.rank, fb.ranks,
                                    fb.sum_over_ranks);
  }

  void add_diagnostics(std::map<std::string, io::Diagnostic>& diag) const override {
    if (!online_) return;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    // The weights that made this background, and what the adaptation before it found.
    diag["surrogate_version"] = {static_cast<double>(online_->version()), "1",
                                 "version of the surrogate weights that made the background"};
    diag["surrogate_accepted_version"] = {static_cast<double>(online_->accepted_version()), "1",
                                          "last surrogate version accepted by the innovation "
                                          "check"};
    diag["surrogate_rollbacks"] = {static_cast<double>(online_->rollbacks()), "1",
                                   "rollbacks of the online adaptation so far"};
    diag["surrogate_lr_scale"] = {online_->learning_rate_scale(), "1",
                                  "online learning-rate guard (1 = full rate)"};
    // Every cycle carries the same diagnostics (the archive's variables): NaN = not measured.
    diag["surrogate_innovation_current"] = {
        last_.evaluated ? last_.innovation_current : nan, "1",
        "mean squared normalised innovation of the previous weights in use (one-cycle "
        "forecast of the previous analysis mean)"};
    diag["surrogate_innovation_accepted"] = {last_.evaluated ? last_.innovation_reference : nan,
                                             "1", "the same for the accepted weights"};
    diag["surrogate_online_loss"] = {last_.steps_taken > 0 ? last_.loss : nan, "1",
                                     "normalised MSE of the online steps"};
    diag["surrogate_online_lr"] = {last_.steps_taken > 0 ? last_.learning_rate : 0.0, "1",
                                   "learning rate of the online steps (0: none taken)"};
  }

 protected:
  virtual void forward(EnsembleBuffer& members) = 0;
  virtual void weights_changed() {}

  double cycle_s_;
  int grid_n_ = 0;
  std::unique_ptr<surrogate::Vit> vit_;
  surrogate::Normalisation norm_;
  std::string identity_;
  std::unique_ptr<surrogate::OnlineAdapter> online_;
  surrogate::OnlineReport last_;  // the last adaptation, reported with the next analysis
};

// normalise -> forward (Eigen) -> restore, on the host.
class VitForecastHost final : public VitForecast {
 public:
  using VitForecast::VitForecast;

 protected:
  void forward(EnsembleBuffer& members) override {
    const int m = members.ensemble().local_members();
    const std::size_t n = members.ensemble().state_size();
    auto states = members.host_members();
    surrogate::Mat x(m, static_cast<Eigen::Index>(n));
    for (int r = 0; r < m; ++r) {
      norm_.apply(states.subspan(static_cast<std::size_t>(r) * n, n),
                  std::span<float>(x.row(r).data(), n), grid_n_);
    }
    const surrogate::Mat y = vit_->forward(x);
    for (int r = 0; r < m; ++r) {
      norm_.invert(std::span<const float>(y.row(r).data(), n),
                   states.subspan(static_cast<std::size_t>(r) * n, n), grid_n_);
    }
  }
};

// The same step with the members on the device: normalise (double -> float), the forward
// pass (the increment added inside), restore (float -> double), with the per-element
// arithmetic of the host path (surrogate/normalisation_math.hpp). Nothing crosses to the host
// but the weights after online adaptation changed them.
class VitForecastDevice final : public VitForecast {
 public:
  explicit VitForecastDevice(const config::Config& cfg)
      : VitForecast(cfg), device_(std::make_unique<hip::VitForwardHip>(*vit_)) {}

 protected:
  void weights_changed() override { device_version_ = std::numeric_limits<std::uint64_t>::max(); }
  void forward(EnsembleBuffer& members) override {
    if (version() != device_version_) {
      device_->upload_weights(*vit_);
      device_version_ = version();
    }
    double* states = members.device_members();
    const std::size_t m = static_cast<std::size_t>(members.ensemble().local_members());
    const std::size_t n2 = members.ensemble().columns_total();
    if (batch_.size() != m * 2 * n2) batch_ = hip::nn::DeviceArray(m * 2 * n2);
    hip::cycle::LevelScaling scaling;
    for (int l = 0; l < 2; ++l) {
      const std::size_t u = static_cast<std::size_t>(l);
      scaling.mean[l] = norm_.mean[u];
      scaling.std_dev[l] = norm_.std[u];
      scaling.inv_std[l] = 1.0 / norm_.std[u];  // as Normalisation::apply
    }
    hip::cycle::normalise(states, batch_.data(), m, n2, scaling);
    device_->forward_device(batch_.data(), batch_.data(), static_cast<int>(m));
    hip::cycle::denormalise(batch_.data(), states, m, n2, scaling);
    hip::detail::synchronize("the ViT forecast");  // the stage's wall time; errors surface here
  }

 private:
  std::unique_ptr<hip::VitForwardHip> device_;
  std::uint64_t device_version_ = 0;
  hip::nn::DeviceArray batch_;  // the normalised members, float, in and out of the ViT
};

}  // namespace

std::unique_ptr<ForecastModel> make_forecast_model(const config::Config& cfg,
                                                   device::Backend backend, int threads,
                                                   const Comm& comm) {
  switch (cfg.model.kind) {
    case config::ModelKind::kVit:
      if (backend == device::Backend::kGpu) return std::make_unique<VitForecastDevice>(cfg);
      return std::make_unique<VitForecastHost>(cfg);
    case config::ModelKind::kSqg:
      return std::make_unique<SqgForecast>(cfg, threads, comm);
    case config::ModelKind::kLorenz96:
      // The device path indexes the SQG plane only (DeviceEnsemble refuses other grids).
      return std::make_unique<Lorenz96Forecast>(cfg);
  }
  throw std::logic_error("make_forecast_model: a model.kind without a model");
}

}  // namespace rtda::worker
