// Batches of standard normal numbers on a 2-D index (row, column), fast enough for EnSF's
// pseudo-time loop (docs/science.md §4: "cost per step is dominated by drawing the normals").
//
// Same contract as RandomStream (docs/architecture.md §4): every number is a pure function of the
// keys (seed, purpose, cycle, member) and its index, so results never depend on how a range
// is split across threads or MPI ranks. The generator differs from RandomStream's:
//   - Philox4x32-10 (Random123's constants) on the counter (column / 4, row, member, cycle)
//     with a 64-bit key derived from (seed, purpose) by one Philox2x64-10 call. Distinct
//     streams need cycle, member, row < 2^32 and column < 2^34 (checked).
//   - Box–Muller on each pair of 32-bit words: radius from u1 = (w0 + 1/2)·2^-32 (so the
//     tails stop at |n| ≈ 6.7, probability 3e-11), angle from w1 (top two bits pick the
//     quadrant, the other 30 bits the angle inside it; any uniform angle is exact).
//   - log, sin and cos are rtda's own branch-free polynomials (fdlibm's log kernel, Taylor
//     sin/cos on |φ| ≤ π/4) built from +, −, ×, ÷ only, so the compiler vectorises them and a
//     number has the same bits in a vector lane, in scalar code and on any x86-64 ISA level.
//     (Compile without floating-point contraction: see the pragma in normal_batch.cpp.)
#pragma once

#include <cstdint>
#include <span>

#include "core/random.hpp"

namespace rtda {

class NormalBatchStream {
 public:
  // Throws std::out_of_range when cycle or member do not fit in 32 bits.
  NormalBatchStream(std::uint64_t seed, RandomPurpose purpose, std::uint64_t cycle = 0,
                    std::uint64_t member = 0);

  // out[k] = normal(row, first + k). Throws std::out_of_range past the index limits.
  void fill(std::uint64_t row, std::uint64_t first, std::span<double> out) const;
  double normal(std::uint64_t row, std::uint64_t column) const;

  // The raw Philox4x32-10 block of (row, block = column / 4); exposed for the oracle test
  // against Random123.
  void block_bits(std::uint64_t row, std::uint64_t block, std::uint32_t out[4]) const;
  std::uint32_t key_word(int i) const { return key_[i]; }

 private:
  std::uint32_t key_[2];
  std::uint32_t cycle_;
  std::uint32_t member_;
};

}  // namespace rtda
