#include "surrogate/trainer.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <stdexcept>

#include "surrogate/checkpoint.hpp"

namespace rtda::surrogate {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Row `r` of `m` <- the normalised state `q` after the symmetry (shift, flip).
void load_row(Mat& m, Eigen::Index r, std::span<const double> q, const Normalisation& norm, int n,
              int shift, bool flip, std::vector<double>& scratch) {
  std::span<const double> src = q;
  if (shift != 0 || flip) {
    scratch.resize(q.size());
    apply_symmetry(q, scratch, n, shift, flip);
    src = scratch;
  }
  norm.apply(src, std::span<float>(m.row(r).data(), q.size()), n);
}

}  // namespace

std::string resume_path_of(const std::string& out) {
  const std::filesystem::path p(out);
  return (p.parent_path() / (p.stem().string() + "-resume" + p.extension().string())).string();
}

std::map<std::string, std::string> architecture_of(const VitConfig& c) {
  return {{"model", "vit"},
          {"grid_n", std::to_string(c.grid_n)},
          {"patch", std::to_string(c.patch)},
          {"dim", std::to_string(c.dim)},
          {"depth", std::to_string(c.depth)},
          {"heads", std::to_string(c.heads)},
          {"mlp_ratio", std::to_string(c.mlp_ratio)},
          {"predict_increment", c.predict_increment ? "true" : "false"},
          {"seed", std::to_string(c.seed)},
          {"embedding", std::string(kPatchEmbeddingNames.name(c.embedding))}};
}

VitConfig vit_config_from(const std::map<std::string, std::string>& a) {
  const auto get = [&](const char* key) -> const std::string& {
    auto it = a.find(key);
    if (it == a.end()) {
      throw std::invalid_argument(std::string("surrogate checkpoint: architecture attribute '") +
                                  key + "' missing");
    }
    return it->second;
  };
  VitConfig c;
  c.grid_n = std::stoi(get("grid_n"));
  c.patch = std::stoi(get("patch"));
  c.dim = std::stoi(get("dim"));
  c.depth = std::stoi(get("depth"));
  c.heads = std::stoi(get("heads"));
  c.mlp_ratio = std::stoi(get("mlp_ratio"));
  c.predict_increment = get("predict_increment") == "true";
  c.seed = std::stoull(get("seed"));
  // Checkpoints from before the per-level embedding have no "embedding": they are joint.
  const auto embedding = a.find("embedding");
  c.embedding = embedding == a.end()
                    ? PatchEmbedding::kJoint
                    : kPatchEmbeddingNames.parse(embedding->second, "surrogate.embedding");
  c.validate();
  return c;
}

double forecast_rmse_K(Vit& model, const io::NatureRun& run, const Normalisation& norm, int steps,
                       int pairs, bool persistence) {
  const int n = run.params.N;
  const std::size_t state = run.params.state_size();
  if (run.size() <= static_cast<std::size_t>(steps)) return std::nan("");
  const std::size_t available = run.size() - static_cast<std::size_t>(steps);
  const std::size_t count =
      pairs <= 0 ? available : std::min<std::size_t>(available, static_cast<std::size_t>(pairs));
  const int chunk = 16;
  double sum = 0;
  std::vector<double> scratch, forecast(state);
  for (std::size_t start = 0; start < count; start += chunk) {
    const std::size_t rows = std::min<std::size_t>(chunk, count - start);
    Mat x(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(state));
    std::vector<std::size_t> index(rows);
    for (std::size_t r = 0; r < rows; ++r) {
      index[r] = (start + r) * available / count;  // evenly spaced over the run
      load_row(x, static_cast<Eigen::Index>(r), run.state(index[r]), norm, n, 0, false, scratch);
    }
    const Mat y = persistence ? x : model.forward(x);
    for (std::size_t r = 0; r < rows; ++r) {
      norm.invert(std::span<const float>(y.row(static_cast<Eigen::Index>(r)).data(), state),
                  forecast, n);
      const auto truth = run.state(index[r] + static_cast<std::size_t>(steps));
      double s = 0;
      for (std::size_t e = 0; e < state; ++e)
        s += (forecast[e] - truth[e]) * (forecast[e] - truth[e]);
      sum += s / static_cast<double>(state);
    }
  }
  return std::sqrt(sum / static_cast<double>(count)) * run.params.kelvin_per_pv();
}

std::vector<double> autoregressive_rmse_K(Vit& model, const io::NatureRun& run,
                                          const Normalisation& norm, int steps, int leads,
                                          int starts, bool persistence) {
  const int n = run.params.N;
  const std::size_t state = run.params.state_size();
  const std::size_t span = static_cast<std::size_t>(steps) * static_cast<std::size_t>(leads);
  if (run.size() <= span) throw std::invalid_argument("autoregressive RMSE: run too short");
  const std::size_t available = run.size() - span;
  const std::size_t count = std::min<std::size_t>(available, static_cast<std::size_t>(starts));
  Mat x(static_cast<Eigen::Index>(count), static_cast<Eigen::Index>(state));
  std::vector<std::size_t> first(count);
  std::vector<double> scratch, forecast(state), sums(static_cast<std::size_t>(leads), 0.0);
  for (std::size_t r = 0; r < count; ++r) {
    first[r] = r * available / count;
    load_row(x, static_cast<Eigen::Index>(r), run.state(first[r]), norm, n, 0, false, scratch);
  }
  for (int lead = 1; lead <= leads; ++lead) {
    if (!persistence) x = model.forward(x);
    for (std::size_t r = 0; r < count; ++r) {
      norm.invert(std::span<const float>(x.row(static_cast<Eigen::Index>(r)).data(), state),
                  forecast, n);
      const auto truth = run.state(first[r] + static_cast<std::size_t>(lead * steps));
      double s2 = 0;
      for (std::size_t e = 0; e < state; ++e)
        s2 += (forecast[e] - truth[e]) * (forecast[e] - truth[e]);
      sums[static_cast<std::size_t>(lead - 1)] += s2 / static_cast<double>(state);
    }
  }
  for (auto& v : sums)
    v = std::sqrt(v / static_cast<double>(count)) * run.params.kelvin_per_pv();
  return sums;
}

TrainReport train_surrogate(Vit& model, const std::vector<io::NatureRun>& train,
                            const io::NatureRun& validation, const Normalisation& norm,
                            int pair_steps, const TrainSettings& s, const std::string& out,
                            const std::map<std::string, std::string>& provenance,
                            const std::string& resume_from,
                            const std::function<void(const EvalPoint&, int total)>& progress) {
  const int n = model.config().grid_n;
  for (const auto& r : train) {
    if (r.params.N != n) {
      throw std::invalid_argument("training nature run has N = " + std::to_string(r.params.N) +
                                  ", the surrogate N = " + std::to_string(n));
    }
  }
  const auto pairs = make_pairs(train, pair_steps);
  if (pairs.empty()) throw std::invalid_argument("training data: no pairs one cycle apart");
  ParameterList params;
  model.collect(params);
  AdamW opt(params, s.adamw);

  SurrogateFile file;
  file.architecture = architecture_of(model.config());
  file.norm_mean = {norm.mean[0], norm.mean[1]};
  file.norm_std = {norm.std[0], norm.std[1]};
  file.provenance = provenance;
  TrainReport report;
  if (!resume_from.empty()) {
    const SurrogateFile old = load_surrogate(resume_from, params, &opt);
    if (!old.has_optimizer_state) {
      throw std::invalid_argument(resume_from + ": no optimizer state to resume from");
    }
    file.train_loss = old.train_loss;
    file.val_rmse_K = old.val_rmse_K;
  }
  report.persistence_rmse_K =
      forecast_rmse_K(model, validation, norm, pair_steps, s.validation_pairs, true);

  const std::size_t state = static_cast<std::size_t>(model.state_size());
  const auto t0 = Clock::now();
  double best = file.val_rmse_K.empty()
                    ? INFINITY
                    : *std::min_element(file.val_rmse_K.begin(), file.val_rmse_K.end());
  report.best_val_rmse_K = best;
  int since_best = 0;
  double loss_sum = 0;
  int loss_count = 0;
  std::vector<double> scratch;
  Mat x(s.batch, static_cast<Eigen::Index>(state)),
      target(s.batch, static_cast<Eigen::Index>(state));
  report.stop_reason = "step budget (adamw total_steps) reached";
  for (int step = opt.steps(); step < s.adamw.total_steps; ++step) {
    // Batch `step` depends only on (seed, step): resuming continues the same sequence.
    std::mt19937_64 rng(s.seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(step));
    std::uniform_int_distribution<std::size_t> pick(0, pairs.size() - 1);
    std::uniform_int_distribution<int> shift(0, n - 1), coin(0, 1);
    for (int b = 0; b < s.batch; ++b) {
      const PairIndex& pi = pairs[pick(rng)];
      const int sh = s.augment ? shift(rng) : 0;
      const bool fl = s.augment && coin(rng) == 1;
      const auto& run = train[pi.run];
      load_row(x, b, run.state(pi.first), norm, n, sh, fl, scratch);
      load_row(target, b, run.state(pi.first + static_cast<std::uint32_t>(pair_steps)), norm, n, sh,
               fl, scratch);
    }
    opt.zero_grad();
    const Mat y = model.forward(x);
    const Mat diff = y - target;
    const double count = static_cast<double>(diff.size());
    const double loss = static_cast<double>(diff.cast<double>().squaredNorm()) / count;
    model.backward(diff * static_cast<Real>(2.0 / count));
    const double norm_before = opt.clip_gradients();
    if (std::isfinite(norm_before)) opt.step();
    loss_sum += loss;
    ++loss_count;
    const int done = step + 1;
    const bool last = done == s.adamw.total_steps || done == s.stop_after;
    const bool out_of_time = seconds_since(t0) > s.max_minutes * 60.0;
    if (done % s.eval_every == 0 || last || out_of_time) {
      EvalPoint p{done, loss_sum / std::max(1, loss_count),
                  forecast_rmse_K(model, validation, norm, pair_steps, s.validation_pairs),
                  seconds_since(t0)};
      loss_sum = 0;
      loss_count = 0;
      report.curve.push_back(p);
      file.train_loss.push_back(p.train_loss);
      file.val_rmse_K.push_back(p.val_rmse_K);
      if (p.val_rmse_K < best) {
        best = p.val_rmse_K;
        report.best_val_rmse_K = best;
        report.best_step = done;
        since_best = 0;
        file.provenance["steps"] = std::to_string(done);
        file.provenance["val_rmse_K"] = std::to_string(p.val_rmse_K);
        file.provenance["train_loss"] = std::to_string(p.train_loss);
        file.provenance["persistence_rmse_K"] = std::to_string(report.persistence_rmse_K);
        // The weights alone (what the cycle loads; small enough to ship), and a resume file
        // with the optimizer state next to it.
        save_surrogate(out, params, file);
        save_surrogate(resume_path_of(out), params, file, &opt);
      } else {
        ++since_best;
      }
      if (progress) progress(p, s.adamw.total_steps);
      if (since_best >= s.patience) {
        report.stop_reason = "early stopping: no validation improvement in " +
                             std::to_string(s.patience) + " evaluations";
        report.steps = done;
        break;
      }
      if (out_of_time || done == s.stop_after) {
        report.stop_reason = out_of_time ? "time budget reached" : "stop_after reached";
        report.steps = done;
        break;
      }
    }
    report.steps = done;
  }
  return report;
}

}  // namespace rtda::surrogate
