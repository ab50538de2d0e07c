// Where an element of a rank's forecast members lands in the member → column transpose of
// worker::DistributedEnsemble (docs/architecture.md §5), as a device-safe function (core/hd.hpp),
// so that the device-resident cycle (hip/cycle_hip.hip) packs and unpacks the MPI buffers on
// the GPU in exactly the order DistributedEnsemble::to_columns / from_columns use on the host.
//
// Grid columns are split by whole rows: rank d owns rows block_range(N, ranks, d), i.e.
// columns [c0_d, c1_d). The send buffer of to_columns (and the receive buffer of
// from_columns) holds, for d = 0 … ranks − 1, the block [local member][level][c − c0_d]; block
// d starts at local_members · 2 · c0_d.
#pragma once

#include <cstddef>

#include "core/hd.hpp"

namespace rtda::hip::layout {

// First row of block `part` when `rows` rows are split into `parts` blocks, the first
// rows % parts blocks one row longer (worker::block_range).
RTDA_HD inline std::size_t block_begin(std::size_t rows, int parts, int part) {
  const std::size_t p = static_cast<std::size_t>(parts), i = static_cast<std::size_t>(part);
  const std::size_t base = rows / p, extra = rows % p;
  return i * base + (i < extra ? i : extra);
}

// The block that holds `row`.
RTDA_HD inline int block_owner(std::size_t row, std::size_t rows, int parts) {
  const std::size_t p = static_cast<std::size_t>(parts);
  const std::size_t base = rows / p, extra = rows % p;
  const std::size_t long_rows = extra * (base + 1);
  if (row < long_rows) return static_cast<int>(row / (base + 1));
  return static_cast<int>(extra + (row - long_rows) / base);  // base > 0 here: row < rows
}

// Index in the transpose buffer of element (local member m, level, grid column c) of a rank
// holding `local_members` members, for a grid_n × grid_n grid split over `ranks` ranks.
RTDA_HD inline std::size_t transpose_index(std::size_t m, int level, std::size_t c,
                                           std::size_t local_members, int grid_n, int ranks) {
  const std::size_t n = static_cast<std::size_t>(grid_n);
  const int d = block_owner(c / n, n, ranks);
  const std::size_t c0 = block_begin(n, ranks, d) * n;
  const std::size_t width = block_begin(n, ranks, d + 1) * n - c0;
  return local_members * 2 * c0 + (m * 2 + static_cast<std::size_t>(level)) * width + (c - c0);
}

}  // namespace rtda::hip::layout
