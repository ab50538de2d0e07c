// The EnSF noise of one member (docs/filters.md, "Randomness"): the numbers of
// NormalBatchStream(seed, kEnsfNoise, cycle, member) (core/normal_batch.hpp), drawn one run
// of a row at a time in the form the pseudo-time loop consumes them.
//
// Same generator, same bits: Philox4x32-10 on (column / 4, row, member, cycle) and rtda's
// single-precision Box–Muller (core/philox_hd.hpp). On x86-64 the blocks are computed in
// vector registers, one block per 64-bit lane (so one widening multiply gives a product per
// block) and the Box–Muller transform on a vector of pairs: with AVX-512 eight blocks per
// vector, with AVX2 four (one body for both, ensf_noise_simd.inc); elsewhere, and for the
// columns around an unaligned start or end, the scalar philox_hd functions. All of them use
// only correctly rounded +, −, ×, ÷ and bit operations without contraction, so they agree
// bit for bit (tests/unit/ensf_test.cpp checks every instruction set the CPU has against
// NormalBatchStream over random ranges).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtda::filters {

class EnsfNoiseStream {
 public:
  // Throws std::out_of_range when cycle or member do not fit in 32 bits (as NormalBatchStream).
  EnsfNoiseStream(std::uint64_t seed, std::uint64_t cycle, std::uint64_t member);

  // The vector instruction sets fill can use, narrowest first.
  enum class Isa { kScalar, kAvx2, kAvx512 };
  // The widest this build and this CPU run.
  static Isa widest_isa();

  // out[j] = NormalBatchStream::normal(row, first + j) for j < count. The caller keeps
  // first + count ≤ 2^34 (the stream's column limit; EnSF checks the state size once).
  void fill(std::uint32_t row, std::uint64_t first, double* out, std::size_t count) const {
    fill(row, first, out, count, widest_isa());
  }
  // The same numbers computed with at most isa's vector code (the tests compare them).
  void fill(std::uint32_t row, std::uint64_t first, double* out, std::size_t count, Isa isa) const;

  std::uint32_t key_word(int i) const { return key_[i]; }

 private:
  std::uint32_t key_[2];
  std::uint32_t cycle_, member_;
};

}  // namespace rtda::filters
