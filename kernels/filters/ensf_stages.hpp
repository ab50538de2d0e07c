// The EnSF algorithm as one loop over stages (docs/science.md §4, eq. 11–15), with one
// implementation of the stages per backend: CpuEnsfStages (ensf_cpu.cpp, OpenMP) and the
// HIP device stages (hip/ensf_hip.cpp, kernels in hip/ensf_hip.hip). ensf_run is the loop,
// written once: it orders the stages, makes every cross-slab collective (EnsfReducer), applies
// the stopping rule and fills the diagnostics; a backend only computes. Every stage's
// per-element arithmetic is filters/ensf_math.hpp's, summed in the same order on both
// backends, so a backend decides speed, never the result (up to the device's library
// functions, docs/gpu.md).
//
// Not part of the filter's interface: EnsfAnalysis::analyse_slab and
// hip::EnsfAnalysisHip::analyse_slab_device are the entry points.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "filters/ensf.hpp"
#include "filters/ensf_math.hpp"

namespace rtda::filters {

// An element-wise sum over slabs (EnsfReducer::sum); empty for a single slab.
using EnsfSum = std::function<void(std::span<double>)>;

// The stages of one slab analysis on one backend. A stage object is made for one analysis
// (plan, settings, observations, ensembles and noise keys fixed at construction) and its
// stages are called by ensf_run in the order below.
class EnsfStages {
 public:
  virtual ~EnsfStages() = default;

  // Normalise: prior mean μ, spread s (n − 1 divisor) and 1/s (0 without spread) per element,
  // the prior in working coordinates. Returns s on the host (the spread target needs it).
  virtual std::vector<double> prior_statistics() = 0;
  // τ per element for the final rescaling; empty: no rescaling.
  virtual void set_target_spread(const std::vector<double>& target) = 0;

  // Off-grid observations (standard mode): every member's stencil values at the points this
  // slab owns (+0.0 elsewhere), physical units, from the prior or the particles; `sum`
  // completes them over the slabs. Called only when the plan has off-grid observations.
  virtual void gather_off_grid(bool from_prior, const EnsfSum& sum) = 0;
  // y − mean_i h(x_b^(i)) for every observation this slab owns (0 for the others), on the
  // host; off-grid ones need gather_off_grid(true, …) first.
  virtual std::vector<double> innovations() = 0;

  // Paper mode: the per-dimension likelihood coefficients (ensf_add_paper_observation).
  virtual void paper_terms() = 0;
  // z(1) ~ N(0, I): row 0 of every member's noise.
  virtual void initial_particles() = 0;

  // Standard mode, before each step (eq. 13–14): the squared member distances per grid row
  // (completed over the slabs by `sum`), the softmax weights, then Σ_j w_ij x_j and the
  // likelihood gradient (needs gather_off_grid(false, …) first when there are off-grid
  // observations).
  virtual void member_distances(double alpha, const EnsfSum& sum) = 0;
  virtual void softmax_weights(double beta2) = 0;
  virtual void weighted_prior_and_gradient() = 0;

  // Euler–Maruyama steps k_begin .. k_end − 1 (eq. 15) with coefficients c[k] and noise row
  // k + 1. With the stopping rule, the member mean m_k of z after each step goes into the
  // ring of the last W + 1 means; with `compare`, returns max_d |m_{k_end−1} − m_{k_end−1−W}|
  // over the slab's elements (0 otherwise). Paper mode may take many steps per call (its
  // elements are independent); standard mode takes one after its score stages.
  virtual double steps(std::span<const EnsfStepCoefficients> c, int k_begin, int k_end,
                       bool compare) = 0;

  // Restore and rescale: x_i = μ + s ⊙ z_i into the posterior, RTPS, the spread target.
  virtual void finish() = 0;

  // Standard mode: the smallest 1/Σ_j w_ij² over members and steps, and its member mean at
  // the last step (the softmax weight collapse docs/science.md §4 warns about).
  struct EffectiveMembers {
    double min = 0, last_mean = 0;
  };
  virtual EffectiveMembers effective_members() const = 0;
};

// The CPU stages (ensf_cpu.cpp): host ensembles (prior and posterior may alias), OpenMP over
// blocks of elements, the noise from EnsfNoiseStream.
std::unique_ptr<EnsfStages> make_cpu_ensf_stages(
    const EnsfSettings& settings, const EnsfSlabPlan& plan, const obs::ObservationSpace& obs,
    const AnalysisContext& ctx, std::span<const double> prior, std::span<double> posterior);

// The loop over the stages for one slab: normalise, spread target, innovation diagnostics,
// the likelihood terms, z(1), the pseudo-time steps with the stopping rule, restore and
// rescale. Collective over the slabs through `reducer` in the same sequence on every slab.
// initial_spread is the filter's kept "initial" spread target (ensf_target_spread). Returns
// the diagnostics without `seconds`.
AnalysisDiagnostics ensf_run(const EnsfSettings& settings, const EnsfSlabPlan& plan,
                             const obs::ObservationSpace& obs, EnsfStages& stages,
                             const EnsfReducer& reducer, std::vector<double>& initial_spread);

}  // namespace rtda::filters
