// h(x) of device-resident ensembles (the device's ObservationSpace::apply): the host side, and
// the kernel's launch function (observe_hip.hip). Without the HIP backend observe_on_device
// throws "no HIP backend".
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtda::obs {
class ObservationSpace;
}

namespace rtda::hip {

// hx_device[m p + o] = h(state m) for observation o (p = obs.size()) of `members` device
// states of `state_size` values each ([member][level][y][x]): the stencils and operators go to
// the device and the observation-operator kernel runs there (obs/observation_math.hpp). Used by
// LetkfAnalysisHip::analyse_device and the device-resident cycle (worker/device_ensemble).
void observe_on_device(const obs::ObservationSpace& obs, const double* states_device,
                       std::size_t state_size, int members, double* hx_device);

namespace detail {
// hx[m p + o] = h of member m's state (k members × state values, [member][level][y][x]) at
// observation o's stencil (index, weight: p × 4; count per observation), operator code kind,
// scale s_k.
void apply_operators(const double* states, std::size_t state, int k, std::size_t p,
                     const std::uint32_t* stencil_index, const double* stencil_weight,
                     const std::int32_t* stencil_count, const std::int8_t* kind, double s_k,
                     double* hx);
}  // namespace detail

}  // namespace rtda::hip
