// The EnSF noise of one member (docs/filters.md, "Randomness"): the numbers of
// NormalBatchStream(seed, kEnsfNoise, cycle, member) (core/normal_batch.hpp), drawn one run
// of a row at a time in the form the pseudo-time loop consumes them.
//
// Same generator, same bits: Philox4x32-10 on (column / 4, row, member, cycle) and rtda's
// single-precision Box–Muller (core/philox_hd.hpp). On x86-64 with AVX2 the blocks are
// computed eight at a time in vector registers (four 64-bit lanes per Philox word, so one
// vpmuludq gives four 32 × 32 → 64-bit products) and the Box–Muller transform sixteen pairs
// at a time; elsewhere, and for the columns around an unaligned start or end, the scalar
// philox_hd functions. Both use only correctly rounded +, −, ×, ÷ and bit operations without
// contraction, so they agree bit for bit (tests/unit/ensf_test.cpp checks it against
// NormalBatchStream over random ranges).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtda::filters {

class EnsfNoiseStream {
 public:
  // Throws std::out_of_range when cycle or member do not fit in 32 bits (as NormalBatchStream).
  EnsfNoiseStream(std::uint64_t seed, std::uint64_t cycle, std::uint64_t member);

  // out[j] = NormalBatchStream::normal(row, first + j) for j < count. The caller keeps
  // first + count ≤ 2^34 (the stream's column limit; EnSF checks the state size once).
  void fill(std::uint32_t row, std::uint64_t first, double* out, std::size_t count) const;

  std::uint32_t key_word(int i) const { return key_[i]; }

 private:
  std::uint32_t key_[2];
  std::uint32_t cycle_, member_;
};

}  // namespace rtda::filters
