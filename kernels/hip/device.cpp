#include "hip/device.hpp"

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include "hip/device_memory.hpp"

#ifndef RTDA_GPU_COMPILER
#define RTDA_GPU_COMPILER ""
#endif

namespace rtda::device {

namespace {

std::string host_compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "GCC " __VERSION__;
#else
  return "unknown compiler";
#endif
}

// The host's processor, from /proc/cpuinfo ("AMD EPYC 7B13"), or "CPU".
std::string host_processor() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) break;
    std::string name = line.substr(colon + 1);
    name.erase(0, name.find_first_not_of(' '));
    return name.empty() ? "CPU" : name;
  }
  return "CPU";
}

}  // namespace

Request parse_request(std::string_view text) {
  if (text == "auto") return Request::kAuto;
  if (text == "cpu") return Request::kCpu;
  if (text == "gpu") return Request::kGpu;
  if (text == "hip" || text == "cuda") {
    const std::string want = text == "hip" ? "HIP" : "CUDA";
    if (gpu_toolchain() != want)
      throw std::invalid_argument("device: '" + std::string(text) + "' asks for a " + want +
                                  " GPU, but this build's GPU backend is " +
                                  std::string(gpu_toolchain()) + " (use gpu, cpu or auto)");
    return Request::kGpu;
  }
  throw std::invalid_argument("device: '" + std::string(text) +
                              "' is not one of auto, cpu, gpu, hip, cuda");
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
  return backend == Backend::kGpu ? "gpu" : "cpu";
}

bool gpu_built() {
  return RTDA_HAVE_GPU != 0;
}

std::string_view gpu_toolchain() {
  return hip::detail::toolchain();
}

std::string_view gpu_compiler() {
  return RTDA_GPU_COMPILER;
}

int gpu_device_count(std::string* why_none) {
  return hip::detail::visible_devices(why_none);
}

Choice choose(Request request, int local_rank) {
  Choice choice;
  choice.device_name = host_processor();
  choice.toolchain = host_compiler();
  if (request == Request::kCpu) {
    choice.reason = "device cpu (requested)";
    return choice;
  }
  std::string why;
  const int count = gpu_device_count(&why);
  if (count == 0) {
    if (request == Request::kGpu)
      throw std::runtime_error("device: gpu was requested but no GPU is usable: " + why);
    choice.reason = "device auto -> cpu (" + why + ")";
    return choice;
  }
  const int index = (local_rank < 0 ? 0 : local_rank) % count;
  const hip::detail::DeviceDescription d = hip::detail::select_device(index);
  choice.backend = Backend::kGpu;
  choice.device_index = index;
  choice.device_name = d.name + " (" + d.arch + ")";
  choice.toolchain = d.toolchain + ", " + std::string(gpu_compiler());
  choice.reason = std::string("device ") + (request == Request::kAuto ? "auto -> " : "") +
                  "gpu: " + d.toolchain + " device " + std::to_string(index) + " " +
                  choice.device_name + ", local rank " + std::to_string(local_rank) + " of " +
                  std::to_string(count) + " visible; kernels built by " +
                  std::string(gpu_compiler());
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
