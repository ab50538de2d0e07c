#include "hip/device.hpp"

#include <cstdlib>
#include <stdexcept>
#include <string>

#if RTDA_HAVE_HIP
#include <hip/hip_runtime_api.h>
#endif

namespace rtda::device {

Request parse_request(std::string_view text) {
  if (text == "auto") return Request::kAuto;
  if (text == "cpu") return Request::kCpu;
  if (text == "hip") return Request::kHip;
  throw std::invalid_argument("device: '" + std::string(text) + "' is not one of auto, cpu, hip");
}

int sqg_plane_n(const core::Grid& g, const char* who) {
  if (g.levels != 2 || g.nx != g.ny) {
    throw std::invalid_argument(std::string(who) +
                                ": the device path runs on the SQG grid (2 levels of N x N "
                                "points); this grid has " +
                                std::to_string(g.levels) + " level(s) of " + std::to_string(g.nx) +
                                " x " + std::to_string(g.ny) + " (use the CPU backend)");
  }
  return g.nx;
}

std::string_view name(Backend backend) {
  return backend == Backend::kHip ? "hip" : "cpu";
}

bool hip_built() {
  return RTDA_HAVE_HIP != 0;
}

int hip_device_count(std::string* why_none) {
#if RTDA_HAVE_HIP
  int count = 0;
  const hipError_t err = hipGetDeviceCount(&count);
  if (err != hipSuccess) {
    if (why_none) *why_none = hipGetErrorString(err);
    return 0;
  }
  if (count == 0 && why_none) *why_none = "the HIP runtime sees no device";
  return count;
#else
  if (why_none) *why_none = "this build has no HIP backend (RTDA_HIP=OFF or no hipcc)";
  return 0;
#endif
}

Choice choose(Request request, int local_rank) {
  Choice choice;
  if (request == Request::kCpu) {
    choice.reason = "device cpu (requested)";
    return choice;
  }
  std::string why;
  const int count = hip_device_count(&why);
  if (count == 0) {
    if (request == Request::kHip)
      throw std::runtime_error("device: hip was requested but no HIP device is usable: " + why);
    choice.reason = "device auto -> cpu (" + why + ")";
    return choice;
  }
#if RTDA_HAVE_HIP
  const int index = (local_rank < 0 ? 0 : local_rank) % count;
  if (const hipError_t err = hipSetDevice(index); err != hipSuccess)
    throw std::runtime_error("device: hipSetDevice(" + std::to_string(index) +
                             ") failed: " + hipGetErrorString(err));
  hipDeviceProp_t props{};
  std::string gpu = "HIP device " + std::to_string(index);
  if (hipGetDeviceProperties(&props, index) == hipSuccess)
    gpu += std::string(" (") + props.gcnArchName + ")";
  choice.backend = Backend::kHip;
  choice.device_index = index;
  choice.reason = std::string("device ") + (request == Request::kAuto ? "auto -> " : "") +
                  "hip: " + gpu + ", local rank " + std::to_string(local_rank) + " of " +
                  std::to_string(count) + " visible";
#else
  (void)local_rank;
#endif
  return choice;
}

int local_rank_from_environment(int fallback) {
  for (const char* var :
       {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "PMI_LOCAL_RANK"}) {
    if (const char* value = std::getenv(var); value && *value) {
      char* end = nullptr;
      const long v = std::strtol(value, &end, 10);
      if (end && *end == '\0' && v >= 0) return static_cast<int>(v);
    }
  }
  return fallback;
}

}  // namespace rtda::device
