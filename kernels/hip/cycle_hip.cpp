// The device-resident cycle's kernels in a build without the HIP backend (RTDA_HIP=OFF or no
// hipcc): every entry point of cycle_hip.hpp exists, so the worker links, and throws
// std::runtime_error saying why. With the backend on, cycle_hip.hip defines them instead (and
// CMake does not compile this file).
#include <stdexcept>
#include <string>

#include "hip/cycle_hip.hpp"
#include "hip/device_memory.hpp"

#if RTDA_HAVE_GPU
#error "cycle_hip.cpp is the no-GPU stand-in; with a GPU backend cycle_hip.hip defines these"
#endif

namespace rtda::hip::cycle {

namespace {
[[noreturn]] void no_backend(const char* function) {
  throw std::runtime_error(std::string(function) + ": " + detail::kNoGpuBackend);
}
}  // namespace

void normalise(const double*, float*, std::size_t, std::size_t, const LevelScaling&) {
  no_backend("rtda::hip::cycle::normalise");
}
void denormalise(const float*, double*, std::size_t, std::size_t, const LevelScaling&) {
  no_backend("rtda::hip::cycle::denormalise");
}
void mean_and_spread(const double*, std::size_t, std::size_t, double*) {
  no_backend("rtda::hip::cycle::mean_and_spread");
}
void observation_mean_and_variance(const double*, std::size_t, std::size_t, double*) {
  no_backend("rtda::hip::cycle::observation_mean_and_variance");
}
void inflate(double*, int, std::size_t, double) {
  no_backend("rtda::hip::cycle::inflate");
}
void pack_columns(const double*, std::size_t, int, int, double*) {
  no_backend("rtda::hip::cycle::pack_columns");
}
void unpack_columns(const double*, std::size_t, int, int, double*) {
  no_backend("rtda::hip::cycle::unpack_columns");
}

}  // namespace rtda::hip::cycle
