// The discrete domain a forecast model's state lives on (docs/architecture.md §7): `levels`
// horizontal layers of nx × ny points with the same spacing in x and y, periodic in both
// directions. A state is levels·nx·ny values laid out [level][y][x]; a grid column is one
// horizontal position (c = y·nx + x) through every level.
//
// The SQG model's grid is the doubly periodic plane, 2 levels of N × N points on a side of
// L metres; the Lorenz-96 model's is a ring, 1 level of n × 1 points (ny = 1, so every
// distance is along x). Everything that depends on positions (observation stencils,
// localization distances, the analysis decomposition) reads this type, never a model's
// physics parameters. Header-only and numerics-free: the coordinator uses it too.
#pragma once

#include <cstddef>

namespace rtda::core {

struct Grid {
  int levels = 2;
  int nx = 64;
  int ny = 64;
  double length_x_m = 20.0e6;  // nx · spacing
  double length_y_m = 20.0e6;  // ny · spacing

  std::size_t columns() const {
    return static_cast<std::size_t>(nx) * static_cast<std::size_t>(ny);
  }
  std::size_t state_size() const { return static_cast<std::size_t>(levels) * columns(); }
  double dx_m() const { return length_x_m / nx; }
  // A 1-D periodic geometry: one row of points.
  bool ring() const { return ny == 1; }

  bool operator==(const Grid&) const = default;
};

}  // namespace rtda::core
