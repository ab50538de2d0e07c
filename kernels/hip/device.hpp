// Which backend a worker rank computes on: --device auto|cpu|hip (docs/architecture.md §6).
//
// One rank per GPU: a rank takes device (local rank modulo visible devices). `auto` picks HIP
// when this build has the backend and a device is visible, and the CPU otherwise; the choice
// is logged. `hip` without a device (or without the backend) is an error, not a silent CPU
// run.
#pragma once

#include <string>
#include <string_view>

#include "core/grid.hpp"

namespace rtda::device {

enum class Backend { kCpu, kHip };

enum class Request { kAuto, kCpu, kHip };

// "auto", "cpu" or "hip"; anything else throws std::invalid_argument naming the value.
Request parse_request(std::string_view text);
std::string_view name(Backend backend);

// The device kernels (kernels/hip) index the SQG plane, 2 levels of N x N points: N of that
// grid, or std::invalid_argument naming `who` and the grid (the CPU path takes any grid).
int sqg_plane_n(const core::Grid& grid, const char* who);

// Whether this binary carries the HIP backend (built with RTDA_HIP on).
bool hip_built();

// HIP devices visible to this process (0 when the backend is not built or the runtime
// reports none). `why_none` receives the runtime's reason when there are none.
int hip_device_count(std::string* why_none = nullptr);

struct Choice {
  Backend backend = Backend::kCpu;
  int device_index = -1;  // the HIP device this rank uses; -1 on the CPU
  std::string reason;     // one line for the log: what was asked, what was found
};

// Decide (and, for HIP, select the device with hipSetDevice) for a rank with this node-local
// rank. Throws std::runtime_error when `hip` is requested but impossible.
Choice choose(Request request, int local_rank);

// The node-local rank from the MPI launcher's environment (Open MPI, MPICH, Slurm), or
// `fallback` when none is set.
int local_rank_from_environment(int fallback);

}  // namespace rtda::device
