#include "core/normal_batch.hpp"

// No fused multiply-add contraction in this file: a number must get the same bits whether it
// is computed in a vector lane or in scalar code (normal_batch.hpp).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <Random123/philox.h>

#include <algorithm>
#include <bit>
#include <stdexcept>
#include <string>

namespace rtda {
namespace {

constexpr std::uint32_t kM0 = 0xD2511F53u;  // Random123's PHILOX_M4x32_0
constexpr std::uint32_t kM1 = 0xCD9E8D57u;  // PHILOX_M4x32_1
constexpr std::uint32_t kW0 = 0x9E3779B9u;  // PHILOX_W32_0 (key bump)
constexpr std::uint32_t kW1 = 0xBB67AE85u;  // PHILOX_W32_1
constexpr int kLanes = 16;                  // Philox blocks per batch: 64 normals

constexpr std::uint64_t kMaxColumn = std::uint64_t{1} << 34;
constexpr std::uint64_t kMaxWord = std::uint64_t{1} << 32;

// ln(u) for u in (0, 1], single precision, normal numbers only: fdlibm's e_logf.c kernel
// (error below 1 ulp). u = 2^k (1 + f), 1 + f in [√2/2, √2), s = f/(2 + f), log(1 + f) =
// 2 atanh(s) by a short polynomial in s².
inline float log_unit(float u) {
  constexpr float kLn2Hi = 6.9313812256e-01f, kLn2Lo = 9.0580006145e-06f;
  constexpr float kLg1 = 0.66666662693f, kLg2 = 0.40000972152f, kLg3 = 0.28498786688f,
                  kLg4 = 0.24279078841f;
  std::uint32_t ix = std::bit_cast<std::uint32_t>(u);
  std::int32_t k = static_cast<std::int32_t>(ix >> 23) - 127;
  ix &= 0x007FFFFFu;
  const std::uint32_t i = (ix + (0x95F64u << 3)) & 0x800000u;  // set when 1 + f ≥ √2
  k += static_cast<std::int32_t>(i >> 23);
  const float f = std::bit_cast<float>(ix | (i ^ 0x3F800000u)) - 1.0f;
  const float dk = static_cast<float>(k);
  const float s = f / (2.0f + f);
  const float z = s * s;
  const float w = z * z;
  const float r = z * (kLg1 + w * kLg3) + w * (kLg2 + w * kLg4);
  const float hfsq = 0.5f * f * f;
  return dk * kLn2Hi - ((hfsq - (s * (hfsq + r) + dk * kLn2Lo)) - f);
}

// √x for x ≥ 0: std::sqrt would be a library call (errno) that blocks vectorisation.
// Bit-trick estimate of 1/√x (error < 0.2 %), two Newton steps (error < 1e-10 relative).
inline float sqrt_nonnegative(float x) {
  float y = std::bit_cast<float>(0x5F375A86u - (std::bit_cast<std::uint32_t>(x) >> 1));
  const float half_x = 0.5f * x;
  y = y * (1.5f - half_x * y * y);
  y = y * (1.5f - half_x * y * y);
  return x * y;  // 0 for x = 0 (y stays finite)
}

// Taylor polynomials on |φ| ≤ π/4 (remainders below 2e-9, under float resolution).
inline void sincos_quarter(float phi, float& s, float& c) {
  const float p2 = phi * phi;
  s = phi *
      (1.0f + p2 * (-1.0f / 6 + p2 * (1.0f / 120 + p2 * (-1.0f / 5040 + p2 * (1.0f / 362880)))));
  c = 1.0f + p2 * (-0.5f + p2 * (1.0f / 24 + p2 * (-1.0f / 720 +
                                                   p2 * (1.0f / 40320 + p2 * (-1.0f / 3628800)))));
}

// Philox4x32-10 on kLanes consecutive blocks, then Box–Muller: out gets 4·kLanes normals.
inline void philox_normals(std::uint32_t block0, std::uint32_t row, std::uint32_t member,
                           std::uint32_t cycle, const std::uint32_t key[2],
                           double out[4 * kLanes]) {
  // One lane = one whole Philox block, so the compiler vectorises across lanes.
  std::uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
#pragma GCC ivdep
  for (int l = 0; l < kLanes; ++l) {
    std::uint32_t x0 = block0 + static_cast<std::uint32_t>(l), x1 = row, x2 = member, x3 = cycle;
    std::uint32_t k0 = key[0], k1 = key[1];
#pragma GCC unroll 10
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = std::uint64_t{kM0} * x0;
      const std::uint64_t p1 = std::uint64_t{kM1} * x2;
      x0 = static_cast<std::uint32_t>(p1 >> 32) ^ x1 ^ k0;
      x2 = static_cast<std::uint32_t>(p0 >> 32) ^ x3 ^ k1;
      x1 = static_cast<std::uint32_t>(p1);
      x3 = static_cast<std::uint32_t>(p0);
      k0 += kW0;
      k1 += kW1;
    }
    c0[l] = x0;
    c1[l] = x1;
    c2[l] = x2;
    c3[l] = x3;
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
  constexpr float kTwoM32 = 1.0f / 4294967296.0f;
  constexpr float kTwoM23 = 1.0f / 8388608.0f;
  constexpr float kHalfPi = 1.57079632679489661923f;
  float re[2 * kLanes], im[2 * kLanes];
  for (int p = 0; p < 2 * kLanes; ++p) {
    // u1 in (0, 1]: exact for the small words that make the tails (|n| up to 6.7); a word
    // rounding to u1 = 1 gives radius 0. Unsigned to float through int32 (what ISAs have).
    const float w = static_cast<float>(static_cast<std::int32_t>(rad[p] ^ 0x80000000u));
    const float u1 = ((w + 2147483648.0f) + 0.5f) * kTwoM32;
    const float r = sqrt_nonnegative(-2.0f * log_unit(u1));
    const std::uint32_t quadrant = ang[p] >> 30;
    const float f =
        (static_cast<float>(static_cast<std::int32_t>((ang[p] >> 7) & 0x7FFFFFu)) + 0.5f) * kTwoM23;
    float s, c;
    sincos_quarter((f - 0.5f) * kHalfPi, s, c);
    // Rotate (c, s) by quadrant · π/2.
    const bool swap = (quadrant & 1u) != 0;
    const float cr = swap ? -s : c;
    const float sr = swap ? c : s;
    const float sign = (quadrant & 2u) != 0 ? -1.0f : 1.0f;
    re[p] = r * (sign * cr);
    im[p] = r * (sign * sr);
  }
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
