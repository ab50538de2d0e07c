// Checkpoints of the cycling ensemble (docs/architecture.md §4): an ensemble file (`q` with
// dimensions member, level, y, x; file_kind "ensemble", so every tool that reads ensembles
// reads it) plus what a restart needs to continue bit for bit:
//   root attributes  cycle (int64, the analysis the ensemble is), config_hash (string)
//   ensf_initial_spread (level, y, x), m s-1, optional: EnSF's spread target of
//                    spread_target = "initial" (NaN where not yet set)
//   surrogate_online/  optional group: float32 and float64 1-D datasets and string attributes
//                    of the online-adapted surrogate (docs/surrogate.md)
// Written under a temporary name, made durable and renamed, so a checkpoint that exists under
// its final name is complete.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/conventions.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::io {

struct Checkpoint {
  sqg::SqgParams params;                   // the SQG model's (defaults for Lorenz-96)
  std::optional<l96::Lorenz96Params> l96;  // set for a Lorenz-96 ensemble
  FieldModel model() const {
    FieldModel m(params);
    m.l96 = l96;
    return m;
  }
  std::int64_t cycle = -1;
  double time_seconds = 0;
  int members = 0;
  std::vector<double> q;                    // [member][level][y][x]
  std::vector<double> ensf_initial_spread;  // empty or [level][y][x]
  std::string config_hash;
  Provenance provenance;
  // The online-adapted surrogate's state (group "surrogate_online": its weights in use and
  // accepted, optimizer moments, replay buffer, version; surrogate/online.hpp). Empty when
  // the cycle does not adapt a surrogate.
  struct SurrogateState {
    std::map<std::string, std::vector<float>> arrays;
    std::map<std::string, std::vector<double>> doubles;
    std::map<std::string, std::string> attributes;
    bool empty() const { return arrays.empty() && doubles.empty() && attributes.empty(); }
  } surrogate_online;
};

void write_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint);

// Reads and checks a checkpoint; a file without the `cycle` attribute is not a checkpoint.
Checkpoint read_checkpoint(const std::filesystem::path& path);

}  // namespace rtda::io
