// Which model a file's fields belong to, and so their grid (io/conventions.hpp writes and
// reads it as root attributes). HDF5-free: the configuration names the model's files with it.
#pragma once

#include <cstdio>
#include <functional>
#include <optional>
#include <string>

#include "core/grid.hpp"
#include "core/time_units.hpp"
#include "l96/lorenz96_params.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::io {

// The model a file's fields belong to: the SQG physics (the default), or Lorenz-96.
struct FieldModel {
  sqg::SqgParams sqg;
  std::optional<l96::Lorenz96Params> l96;
  // The instant model time 0 stands for (model.epoch): time variables are "seconds since" it.
  std::string epoch = std::string(core::kDefaultEpoch);

  FieldModel() = default;
  FieldModel(const sqg::SqgParams& p) : sqg(p) {}  // NOLINT: an SQG file
  explicit FieldModel(const l96::Lorenz96Params& p) : l96(p) {}
  core::Grid grid() const { return l96 ? l96->grid() : sqg.grid(); }
  // The operators' scale (obs::ObsOperator): f theta0 / g for SQG, 1 for Lorenz-96.
  double kelvin_per_pv() const { return l96 ? 1.0 : sqg.kelvin_per_pv(); }
  // Throws std::invalid_argument naming the bad parameter.
  void validate() const {
    if (l96) {
      l96->validate();
    } else {
      sqg.validate();
    }
  }
  // "N = 64" or "a Lorenz-96 ring of 40 variables", for messages.
  std::string describe_grid() const {
    if (l96) return "a Lorenz-96 ring of " + std::to_string(l96->n) + " variables";
    return "N = " + std::to_string(sqg.N);
  }
};

// What a file reader takes from the run when a file made by another tool leaves something out:
// the run's model, whose parameters stand in for missing root attributes and whose epoch
// times are converted to, and where to say so (one warning per file naming what was
// assumed; stderr when `warn` is empty).
struct RunDefaults {
  FieldModel model;
  std::function<void(const std::string&)> warn;
  void warning(const std::string& text) const {
    if (warn) {
      warn(text);
    } else {
      std::fprintf(stderr, "warning: %s\n", text.c_str());
    }
  }
};

}  // namespace rtda::io
