// Which model a file's fields belong to, and so their grid (io/conventions.hpp writes and
// reads it as root attributes). HDF5-free: the configuration names the model's files with it.
#pragma once

#include <optional>
#include <string>

#include "core/grid.hpp"
#include "l96/lorenz96_params.hpp"
#include "sqg/sqg_params.hpp"

namespace rtda::io {

// The model a file's fields belong to: the SQG physics (the default), or Lorenz-96.
struct FieldModel {
  sqg::SqgParams sqg;
  std::optional<l96::Lorenz96Params> l96;

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

}  // namespace rtda::io
