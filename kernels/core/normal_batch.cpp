#include "core/normal_batch.hpp"

// No fused multiply-add contraction in this file: a number must get the same bits whether it
// is computed in a vector lane or in scalar code (normal_batch.hpp).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <Random123/philox.h>

#include "core/philox_hd.hpp"  // after the pragma: its functions compile without contraction too

#include <algorithm>
#include <stdexcept>
#include <string>

namespace rtda {
namespace {

constexpr int kLanes = 16;  // Philox blocks per batch: 64 normals

constexpr std::uint64_t kMaxColumn = std::uint64_t{1} << 34;
constexpr std::uint64_t kMaxWord = std::uint64_t{1} << 32;

// Philox4x32-10 on kLanes consecutive blocks, then Box–Muller: out gets 4·kLanes normals.
inline void philox_normals(std::uint32_t block0, std::uint32_t row, std::uint32_t member,
                           std::uint32_t cycle, const std::uint32_t key[2],
                           double out[4 * kLanes]) {
  // One lane = one whole Philox block, so the compiler vectorises across lanes. The block
  // and the Box–Muller transform are philox_hd.hpp's, the functions the HIP EnSF runs.
  std::uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
#pragma GCC ivdep
  for (int l = 0; l < kLanes; ++l) {
    std::uint32_t ctr[4] = {block0 + static_cast<std::uint32_t>(l), row, member, cycle};
    philox_hd::philox4x32_10(ctr, key[0], key[1]);
    c0[l] = ctr[0];
    c1[l] = ctr[1];
    c2[l] = ctr[2];
    c3[l] = ctr[3];
  }
  // Pairs (c0, c1) and (c2, c3) of each block: radius word, angle word.
  std::uint32_t rad[2 * kLanes], ang[2 * kLanes];
  for (int l = 0; l < kLanes; ++l) {
    rad[2 * l] = c0[l];
    ang[2 * l] = c1[l];
    rad[2 * l + 1] = c2[l];
    ang[2 * l + 1] = c3[l];
  }
  // Box–Muller in single precision: the numbers carry float resolution (relative 6e-8),
  // far below anything a filter's noise term can see, at twice the vector width.
  double re[2 * kLanes], im[2 * kLanes];
  for (int p = 0; p < 2 * kLanes; ++p)
    philox_hd::box_muller(rad[p], ang[p], re[p], im[p]);
  for (int p = 0; p < 2 * kLanes; ++p) {
    out[2 * p] = re[p];
    out[2 * p + 1] = im[p];
  }
}

std::uint32_t checked_word(std::uint64_t v, const char* what) {
  if (v >= kMaxWord)
    throw std::out_of_range(std::string("NormalBatchStream: ") + what + " = " + std::to_string(v) +
                            " does not fit in 32 bits");
  return static_cast<std::uint32_t>(v);
}

}  // namespace

NormalBatchStream::NormalBatchStream(std::uint64_t seed, RandomPurpose purpose, std::uint64_t cycle,
                                     std::uint64_t member)
    : cycle_(checked_word(cycle, "cycle")), member_(checked_word(member, "member")) {
  // A 64-bit Philox4x32 key from (seed, purpose): one Philox2x64-10 block of them.
  r123::Philox2x64 mix;
  const r123::Philox2x64::ctr_type ctr = {{seed, static_cast<std::uint64_t>(purpose)}};
  const r123::Philox2x64::key_type key = {{0x6E6F726D616C6261ull}};  // "normalba"
  const auto out = mix(ctr, key);
  key_[0] = static_cast<std::uint32_t>(out.v[0]);
  key_[1] = static_cast<std::uint32_t>(out.v[0] >> 32);
}

void NormalBatchStream::block_bits(std::uint64_t row, std::uint64_t block,
                                   std::uint32_t out[4]) const {
  r123::Philox4x32 rng;
  const r123::Philox4x32::ctr_type ctr = {
      {checked_word(block, "column / 4"), checked_word(row, "row"), member_, cycle_}};
  const r123::Philox4x32::key_type key = {{key_[0], key_[1]}};
  const auto r = rng(ctr, key);
  std::copy(r.v, r.v + 4, out);
}

namespace {

// The batch loop, compiled once per x86-64 vector ISA and picked at load time (the default
// build targets baseline x86-64). Every clone gives the same bits: no contraction, no
// library math, only correctly rounded +, −, ×, ÷.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void fill_batches(std::uint64_t first, std::uint32_t row, std::uint32_t member,
                  std::uint32_t cycle, const std::uint32_t key[2], double* out,
                  std::size_t count) {
  constexpr std::uint64_t kBatch = 4 * kLanes;
  std::uint64_t column = first - first % 4;
  const std::uint64_t end = first + count;
  alignas(64) double buf[kBatch];
  while (column < end) {
    philox_normals(static_cast<std::uint32_t>(column / 4), row, member, cycle, key, buf);
    const std::uint64_t lo = std::max(column, first);
    const std::uint64_t hi = std::min(column + kBatch, end);
    std::copy(buf + (lo - column), buf + (hi - column), out + (lo - first));
    column += kBatch;
  }
}

}  // namespace

void NormalBatchStream::fill(std::uint64_t row, std::uint64_t first, std::span<double> out) const {
  if (out.empty()) return;
  const std::uint32_t row32 = checked_word(row, "row");
  if (first + out.size() > kMaxColumn)
    throw std::out_of_range("NormalBatchStream: column " + std::to_string(first + out.size()) +
                            " is past 2^34");
  fill_batches(first, row32, member_, cycle_, key_, out.data(), out.size());
}

double NormalBatchStream::normal(std::uint64_t row, std::uint64_t column) const {
  double v;
  fill(row, column, std::span<double>(&v, 1));
  return v;
}

}  // namespace rtda
