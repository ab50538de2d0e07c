// The configuration keys of [letkf], [ensf] and [inflation] (the registry: config/keys.hpp).
#include "config/keys.hpp"

namespace rtda::config::detail {

void add_filter_keys(std::vector<Key>& r) {
  auto& m = r;
  // [letkf]
  m.push_back(real_key(
      "letkf.localization_radius_km",
      [](Config& c) -> double& { return c.letkf.localization_radius_km; },
      "Gaspari-Cohn cut-off L_h (eq. 7): the taper reaches 0 at this distance, km."));
  m.push_back(real_key(
      "letkf.rtps", [](Config& c) -> double& { return c.letkf.rtps; },
      "Relaxation to prior spread alpha (eq. 10); 0 = off."));
  m.push_back(real_key(
      "letkf.vertical_distance_km",
      [](Config& c) -> double& { return c.letkf.vertical_distance_km; },
      "L_r: other-level observations are weighted by rho(L_r) (eq. 7), km."));
  m.push_back(real_key(
      "letkf.weight_cutoff", [](Config& c) -> double& { return c.letkf.weight_cutoff; },
      "Observations with localization weight <= this are dropped."));
  m.push_back(bool_key(
      "letkf.localize", [](Config& c) -> bool& { return c.letkf.localize; },
      "false: one global domain, every observation weight 1."));
  // [ensf]
  m.push_back(choice_key(
      "ensf.mode", [](Config& c) -> filters::EnsfMode& { return c.ensf.mode; },
      filters::kEnsfModeNames,
      "\"paper\": what [MWR]/[SC] ran (paired score, normalization, stopping rule); "
      "\"standard\": the textbook filter (Monte-Carlo score, to t = 0). Sets that mode's "
      "defaults for every other ensf key before they are read."));
  m.push_back(int_key(
      "ensf.steps", [](Config& c) -> int& { return c.ensf.steps; },
      "Nominal pseudo-time steps, dt = 1/steps (paper 1000, standard 500)."));
  m.push_back(int_key(
      "ensf.max_steps", [](Config& c) -> int& { return c.ensf.max_steps; },
      "Cap on steps taken; 0 = all (to t = 0). Paper 502, standard 0."));
  m.push_back(real_key(
      "ensf.eps_alpha", [](Config& c) -> double& { return c.ensf.eps_alpha; },
      "epsilon_alpha of eq. 11 (paper 0.05, standard 0.5)."));
  m.push_back(real_key(
      "ensf.eps_beta", [](Config& c) -> double& { return c.ensf.eps_beta; },
      "epsilon_beta of eq. 11 (paper 0, standard 0.025)."));
  m.push_back(bool_key(
      "ensf.damping", [](Config& c) -> bool& { return c.ensf.damping; },
      "Damp the likelihood score by h(t) = 1 - t (eq. 14)."));
  m.push_back(bool_key(
      "ensf.early_stopping", [](Config& c) -> bool& { return c.ensf.early_stopping; },
      "The paper's stopping rule on the moving ensemble mean of z."));
  m.push_back(int_key(
      "ensf.stop_window", [](Config& c) -> int& { return c.ensf.stop_window; },
      "W of the stopping rule, steps (paper 200)."));
  m.push_back(real_key(
      "ensf.stop_tolerance", [](Config& c) -> double& { return c.ensf.stop_tolerance; },
      "Per-step tolerance of the stopping rule (threshold tolerance * W)."));
  m.push_back(real_key(
      "ensf.arctan_sigma_factor", [](Config& c) -> double& { return c.ensf.arctan_sigma_factor; },
      "Paper arctan heuristic: sigma' = factor * s_K * sigma_o (5)."));
  m.push_back(real_key(
      "ensf.arctan_clip_sigmas", [](Config& c) -> double& { return c.ensf.arctan_clip_sigmas; },
      "Paper arctan heuristic: clip y to |y| <= pi/2 - this * sigma_o before "
      "tan(y) (rtda's guard against saturated observations; not in the "
      "papers)."));
  m.push_back(bool_key(
      "ensf.normalize", [](Config& c) -> bool& { return c.ensf.normalize; },
      "Work in per-dimension normalized coordinates (prior mean, std)."));
  m.push_back(choice_key(
      "ensf.spread_target",
      [](Config& c) -> filters::EnsfSpreadTarget& { return c.ensf.spread_target; },
      filters::kEnsfSpreadTargetNames,
      "Rescale analysis perturbations per dimension to the first cycle's spread "
      "(\"initial\", what the authors' code does), this cycle's prior spread, or not."));
  m.push_back(real_key(
      "ensf.rtps", [](Config& c) -> double& { return c.ensf.rtps; },
      "Relaxation to prior spread (eq. 10) before the spread target; 0 = off."));
  // [inflation]
  m.push_back(choice_key(
      "inflation.mode", [](Config& c) -> filters::InflationMode& { return c.inflation.mode; },
      filters::kInflationModeNames,
      "Multiplicative prior inflation before every filter: none, the fixed inflation.factor, "
      "or estimated each cycle from the innovations (lambda^2 = (d^T d - tr R) / tr HPH^T, "
      "clamped to [1, inflation.max])."));
  m.push_back(real_key(
      "inflation.factor", [](Config& c) -> double& { return c.inflation.factor; },
      "lambda of inflation.mode = \"fixed\" (>= 1)."));
  m.push_back(real_key(
      "inflation.max", [](Config& c) -> double& { return c.inflation.max; },
      "Upper bound of the adaptive lambda (>= 1); 5 with surrogate.online, whose training "
      "costs ensemble spread (docs/surrogate.md)."));
}

}  // namespace rtda::config::detail
