// Training data of the surrogate (docs/science.md §5): pairs of nature states one cycle apart,
// normalised by one mean and standard deviation per level, augmented with the flow's exact
// symmetries.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "io/fields.hpp"

namespace rtda::surrogate {

// One mean and standard deviation per level, m s-1: z = (q - mean[level]) / std[level].
struct Normalisation {
  std::array<double, 2> mean{0, 0};
  std::array<double, 2> std{1, 1};
  void apply(std::span<const double> q, std::span<float> z, int grid_n) const;
  void invert(std::span<const float> z, std::span<double> q, int grid_n) const;
};
Normalisation normalisation_of(const std::vector<io::NatureRun>& runs);

// The symmetries of the symmetric-jet configuration, on the grid (N even):
//   shift:  q(x, y) -> q(x - s dx, y)                      any integer s
//   flip:   q(x, y) -> -q(-x, y + L/2), both levels
// Applied as flip (optional) then shift; `out` may not alias `in`.
void apply_symmetry(std::span<const double> in, std::span<double> out, int grid_n, int shift_x,
                    bool flip);

// Pairs (state k, state k + steps) of nature runs, a fixed list in a deterministic order.
struct PairIndex {
  std::uint32_t run;
  std::uint32_t first;  // state index; the target is first + steps
};
std::vector<PairIndex> make_pairs(const std::vector<io::NatureRun>& runs, int steps);

}  // namespace rtda::surrogate
