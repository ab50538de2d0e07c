// Which backend a worker rank computes on: --device auto|cpu|gpu (docs/gpu.md).
//
// One rank per GPU: a rank takes device (local rank modulo visible devices). `auto` picks the
// GPU when this build has a GPU backend (HIP or CUDA, kernels/hip) and a device is visible,
// and the CPU otherwise; the choice is logged. `gpu` without a device (or without a backend)
// is an error, not a silent CPU run. `hip` and `cuda` are `gpu` that also insist on this
// build's toolchain.
#pragma once

#include <string>
#include <string_view>

#include "core/grid.hpp"

namespace rtda::device {

enum class Backend { kCpu, kGpu };

enum class Request { kAuto, kCpu, kGpu };

// The values --device takes, for the programs' help and checks.
inline constexpr const char* kRequestNames[] = {"auto", "cpu", "gpu", "hip", "cuda"};

// "auto", "cpu", "gpu", or "hip" / "cuda" (a GPU of this build's toolchain); anything else,
// or the other vendor's toolchain, throws std::invalid_argument naming the value.
Request parse_request(std::string_view text);
std::string_view name(Backend backend);  // "cpu" or "gpu"

// The device kernels (kernels/hip) index the SQG plane, 2 levels of N x N points: N of that
// grid, or std::invalid_argument naming `who` and the grid (the CPU path takes any grid).
int sqg_plane_n(const core::Grid& grid, const char* who);

// Whether this binary carries a GPU backend, and which: "HIP", "CUDA" or "none".
bool gpu_built();
std::string_view gpu_toolchain();
// The compiler that built the GPU kernels ("nvcc 11.8.89", "hipcc 5.2.3"), empty without.
std::string_view gpu_compiler();

// GPU devices visible to this process (0 when no backend is built or the runtime reports
// none). `why_none` receives the runtime's reason when there are none.
int gpu_device_count(std::string* why_none = nullptr);

struct Choice {
  Backend backend = Backend::kCpu;
  int device_index = -1;  // the GPU this rank uses; -1 on the CPU
  std::string reason;     // one line for the log: what was asked, what was found
  // What ran, for the hello and the lineage: the device ("NVIDIA H200 (sm_90)", or the
  // host's processor on the CPU) and the toolchain that built its code ("CUDA, nvcc
  // 11.8.89", or the host compiler on the CPU).
  std::string device_name;
  std::string toolchain;
};

// Decide (and, for the GPU, select the device) for a rank with this node-local rank. Throws
// std::runtime_error when a GPU is requested but impossible.
Choice choose(Request request, int local_rank);

// The node-local rank from the MPI launcher's environment (Open MPI, MPICH, Slurm), or
// `fallback` when none is set.
int local_rank_from_environment(int fallback);

}  // namespace rtda::device
