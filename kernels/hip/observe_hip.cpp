#include "hip/observe_hip.hpp"

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "hip/device_memory.hpp"
#include "obs/observation_space.hpp"

namespace rtda::hip {

void observe_on_device(const obs::ObservationSpace& space, const double* states_device,
                       std::size_t state_size, int members, double* hx_device) {
  const std::size_t p = space.size();
  if (p == 0 || members == 0) return;
#if RTDA_HAVE_GPU
  using detail::DeviceArray;
  std::vector<std::uint32_t> index(4 * p, 0);
  std::vector<double> weight(4 * p, 0.0);
  std::vector<std::int32_t> count(p);
  std::vector<std::int8_t> kind(p);
  for (std::size_t o = 0; o < p; ++o) {
    const auto& st = space.stencil(o);
    count[o] = st.count;
    for (int q = 0; q < st.count; ++q) {
      index[4 * o + static_cast<std::size_t>(q)] = st.index[q];
      weight[4 * o + static_cast<std::size_t>(q)] = st.weight[q];
    }
    kind[o] = static_cast<std::int8_t>(space.op()[o]);
  }
  const DeviceArray<std::uint32_t> d_index(index, "stencil indices");
  const DeviceArray<double> d_weight(weight, "stencil weights");
  const DeviceArray<std::int32_t> d_count(count, "stencil sizes");
  const DeviceArray<std::int8_t> d_kind(kind, "observation operators");
  detail::apply_operators(states_device, state_size, members, p, d_index.get(), d_weight.get(),
                          d_count.get(), d_kind.get(), space.kelvin_per_pv(), hx_device);
#else
  (void)states_device;
  (void)state_size;
  (void)hx_device;
  throw std::runtime_error(std::string("h(x) (gpu): ") + hip::detail::kNoGpuBackend);
#endif
}

}  // namespace rtda::hip
