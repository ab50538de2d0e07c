// Training the ViT surrogate on nature-run pairs one cycle apart (docs/science.md §5): random
// batches of normalised states, symmetry augmentation, MSE loss, AdamW with warm-up and
// cosine decay, validation RMSE in kelvin on a held-out run, early stopping, checkpoints that
// resume exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/fields.hpp"
#include "surrogate/optimizer.hpp"
#include "surrogate/training_data.hpp"
#include "surrogate/vit.hpp"

namespace rtda::surrogate {

struct TrainSettings {
  int batch = 16;
  AdamWSettings adamw;        // total_steps = the step budget of the schedule
  double max_minutes = 60;    // wall-clock budget; the best checkpoint so far is kept
  int eval_every = 250;       // steps between validations (and checkpoints)
  int patience = 8;           // validations without improvement before stopping
  bool augment = true;        // random x shift and flip (training_data.hpp) per sample
  std::uint64_t seed = 1;     // batch order and augmentation
  int validation_pairs = 64;  // pairs of the validation run per evaluation (0 = all)
  int stop_after = 0;         // stop once this step is done (0: at adamw.total_steps); for resuming
};

struct EvalPoint {
  int step;
  double train_loss;  // mean normalised MSE over the steps since the previous point
  double val_rmse_K;  // 12-hour forecast RMSE on the validation run
  double elapsed_seconds;
};

struct TrainReport {
  std::vector<EvalPoint> curve;
  int steps = 0;
  int best_step = 0;
  double best_val_rmse_K = 0;
  double persistence_rmse_K = 0;  // validation run, for comparison
  std::string stop_reason;
};

// RMSE in K of one-cycle forecasts x_{k+steps} ~ model(x_k) over `pairs` pairs of `run`
// (0 = all), evenly spaced; with `persistence` the forecast is x_k itself.
double forecast_rmse_K(Vit& model, const io::NatureRun& run, const Normalisation& norm, int steps,
                       int pairs, bool persistence = false);

// RMSE in K after 1..leads autoregressive steps (each `steps` states long) from `starts`
// evenly spaced states of `run` (the forecast fed back as the next input); with
// `persistence`, of the initial state itself.
std::vector<double> autoregressive_rmse_K(Vit& model, const io::NatureRun& run,
                                          const Normalisation& norm, int steps, int leads,
                                          int starts, bool persistence = false);

// Trains `model` in place; after every improvement writes the weights to `out` and weights
// plus optimizer state to resume_path_of(out) (what `resume_from` takes). `progress` gets
// every eval point.
TrainReport train_surrogate(Vit& model, const std::vector<io::NatureRun>& train,
                            const io::NatureRun& validation, const Normalisation& norm,
                            int pair_steps, const TrainSettings& settings, const std::string& out,
                            const std::map<std::string, std::string>& provenance,
                            const std::string& resume_from = "",
                            const std::function<void(const EvalPoint&, int total)>& progress = {});

// "vit.h5" -> "vit-resume.h5".
std::string resume_path_of(const std::string& out);

// The architecture attributes of a checkpoint, and the model they describe.
std::map<std::string, std::string> architecture_of(const VitConfig& c);
VitConfig vit_config_from(const std::map<std::string, std::string>& architecture);

}  // namespace rtda::surrogate
