// Online adaptation of the ViT surrogate while it cycles (docs/surrogate.md, "Online
// adaptation"; docs/science.md §5: "rtda does it for real").
//
// After each analysis k the adapter
//  1. judges the weights in use on data none of them has seen: it forecasts the previous
//     analysis mean x_a(k-1) one cycle with the weights in use ("current") and with the last
//     accepted weights ("reference"), and scores each forecast by the mean squared normalised
//     innovation of the cycle's observations, mean((y - h(M x_a(k-1)))^2 / sigma^2);
//  2. after `window` such cycles since current and reference last agreed, decides:
//     current worse than reference by more than `tolerance` -> roll back to the reference
//     weights (AdamW moments cleared) and halve the learning rate (the guard; below
//     min_lr_scale adaptation stops); current better -> it becomes the reference;
//  3. adds the pair (x_a(k-1) -> x_a(k)) to a bounded replay buffer (newest kept);
//  4. takes `steps` AdamW steps on batches of `batch` pairs drawn from the buffer (with the
//     flow's symmetries as augmentation), and gives the new weights a new version number.
// Every worker rank runs the same adapter on the same data; the batch of each step is split
// over the ranks and the gradients summed by the caller's `reduce` (sum over ranks, identical
// result on every rank), so the weights stay identical on every rank. Randomness (batch
// indices, augmentation) comes from the counter-based stream keyed (seed, cycle, step).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "surrogate/online_settings.hpp"
#include "surrogate/optimizer.hpp"
#include "surrogate/training_data.hpp"
#include "surrogate/vit.hpp"

namespace rtda::surrogate {

// What one after_analysis did (for the analysis diagnostics and the log).
struct OnlineReport {
  bool evaluated = false;           // step 1 ran (there was a previous analysis)
  double innovation_current = 0;    // mean squared normalised innovation, weights in use
  double innovation_reference = 0;  // the same for the last accepted weights
  std::string decision;             // "", "accepted", "rolled back", "kept"
  int steps_taken = 0;
  double loss = 0;            // mean normalised MSE of the steps' batches
  double learning_rate = 0;   // of the last step
  std::uint64_t version = 0;  // weights in use after this call
};

// Everything the adapter needs to continue bit for bit after a restart: float32 and float64
// arrays and string attributes (stored with the ensemble, io::Checkpoint::surrogate_state).
struct OnlineState {
  std::map<std::string, std::vector<float>> arrays;
  std::map<std::string, std::vector<double>> doubles;
  std::map<std::string, std::string> attributes;
};

class OnlineAdapter {
 public:
  // Sums a flat gradient buffer over the worker ranks, in place; the same result on every
  // rank. Empty = one process.
  using Reduce = std::function<void(std::span<float>)>;
  // Mean squared normalised innovation of a forecast state (physical units, 2 N^2) against
  // the current cycle's observations.
  using Score = std::function<double(std::span<const double>)>;

  // `model` (the weights in use) must outlive the adapter; `identity` names the initial
  // weights (e.g. the checkpoint file) and prefixes every version's name.
  OnlineAdapter(Vit& model, Normalisation norm, OnlineSettings settings, std::uint64_t seed,
                std::string identity);
  ~OnlineAdapter();

  // Collective when `reduce` reduces over ranks. `analysis_mean` is the new analysis mean
  // (physical units); `part_index`/`part_count` select this rank's share of each batch.
  OnlineReport after_analysis(std::uint64_t cycle, std::span<const double> analysis_mean,
                              const Score& score, int part_index = 0, int part_count = 1,
                              const Reduce& reduce = {});

  // Forget the previous analysis (a gap in cycling, e.g. a restart without the state).
  void set_previous_analysis(std::span<const double> mean);

  // Version of the weights in use: 0 = the initial weights, then one new number per update
  // (a rollback returns to the accepted version's number).
  std::uint64_t version() const { return version_; }
  std::uint64_t accepted_version() const { return reference_version_; }
  // "<identity>", or "<identity>+online.v<version>" once adapted.
  std::string weights_name() const;
  double learning_rate_scale() const { return lr_scale_; }
  int rollbacks() const { return rollbacks_; }
  std::size_t buffered_pairs() const { return buffer_x_.size(); }

  OnlineState save_state() const;
  // Restores save_state(); throws std::invalid_argument naming what does not fit (another
  // architecture, buffer rows of the wrong size, a missing attribute).
  void restore_state(const OnlineState& state);

 private:
  void copy_weights(const ParameterList& from, const ParameterList& to);
  std::vector<double> forecast(Vit& model, std::span<const double> state);
  void reset_optimizer();
  double train_step(std::uint64_t cycle, int step, int part_index, int part_count,
                    const Reduce& reduce);

  Vit& model_;
  Normalisation norm_;
  OnlineSettings settings_;
  std::uint64_t seed_;
  std::string identity_;
  int grid_n_;
  std::size_t state_size_;
  ParameterList params_;
  std::unique_ptr<Vit> reference_;
  ParameterList reference_params_;
  std::unique_ptr<AdamW> optimizer_;
  std::vector<std::vector<float>> buffer_x_, buffer_y_;  // normalised pairs, oldest first
  std::vector<double> previous_;  // previous analysis mean, physical; empty = none
  std::uint64_t version_ = 0, reference_version_ = 0, next_version_ = 1;
  double lr_scale_ = 1.0;
  double window_current_ = 0, window_reference_ = 0;
  int window_count_ = 0;
  int rollbacks_ = 0;
};

}  // namespace rtda::surrogate
