// NormalBatchStream's numbers (normal_batch.hpp) as host/device functions, so that the HIP
// EnSF draws exactly the normals the CPU EnSF draws for the same (seed, purpose, cycle, member,
// row, column) (docs/architecture.md §4).
//
// The generator is the one of normal_batch.cpp, written once more with nothing a GPU cannot
// run: Philox4x32-10 on the counter (column / 4, row, member, cycle) under the stream's
// 64-bit key (NormalBatchStream::key_word), then the single-precision Box–Muller transform
// with rtda's own log, square root and sin/cos built from +, −, ×, ÷ and bit operations.
// Correctly rounded IEEE arithmetic gives the same bits on both sides, provided nothing
// contracts a multiply and an add into a fused operation: .hip files that include this header
// declare `#pragma clang fp contract(off)` before it, and g++ does not contract in ISO C++
// mode (the project builds with -std=c++20, no extensions). tests/hip/philox_hd_test.cpp
// checks the identity bit for bit against NormalBatchStream.
#pragma once

#include <cstdint>

#include "core/hd.hpp"

namespace rtda::philox_hd {

// One Philox4x32-10 block (Random123's round constants and key schedule).
RTDA_HD inline void philox4x32_10(std::uint32_t ctr[4], std::uint32_t key0, std::uint32_t key1) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // PHILOX_M4x32_0/1
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // PHILOX_W32_0/1
  std::uint32_t x0 = ctr[0], x1 = ctr[1], x2 = ctr[2], x3 = ctr[3];
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t{kM0} * x0;
    const std::uint64_t p1 = std::uint64_t{kM1} * x2;
    x0 = static_cast<std::uint32_t>(p1 >> 32) ^ x1 ^ key0;
    x2 = static_cast<std::uint32_t>(p0 >> 32) ^ x3 ^ key1;
    x1 = static_cast<std::uint32_t>(p1);
    x3 = static_cast<std::uint32_t>(p0);
    key0 += kW0;
    key1 += kW1;
  }
  ctr[0] = x0;
  ctr[1] = x1;
  ctr[2] = x2;
  ctr[3] = x3;
}

RTDA_HD inline std::uint32_t float_bits(float f) {
  return __builtin_bit_cast(std::uint32_t, f);
}
RTDA_HD inline float bits_float(std::uint32_t u) {
  return __builtin_bit_cast(float, u);
}

// ln(u) for normal u in (0, 1]: fdlibm's e_logf.c kernel, as normal_batch.cpp's log_unit.
RTDA_HD inline float log_unit(float u) {
  constexpr float kLn2Hi = 6.9313812256e-01f, kLn2Lo = 9.0580006145e-06f;
  constexpr float kLg1 = 0.66666662693f, kLg2 = 0.40000972152f, kLg3 = 0.28498786688f,
                  kLg4 = 0.24279078841f;
  std::uint32_t ix = float_bits(u);
  std::int32_t k = static_cast<std::int32_t>(ix >> 23) - 127;
  ix &= 0x007FFFFFu;
  const std::uint32_t i = (ix + (0x95F64u << 3)) & 0x800000u;  // set when 1 + f ≥ √2
  k += static_cast<std::int32_t>(i >> 23);
  const float f = bits_float(ix | (i ^ 0x3F800000u)) - 1.0f;
  const float dk = static_cast<float>(k);
  const float s = f / (2.0f + f);
  const float z = s * s;
  const float w = z * z;
  const float r = z * (kLg1 + w * kLg3) + w * (kLg2 + w * kLg4);
  const float hfsq = 0.5f * f * f;
  return dk * kLn2Hi - ((hfsq - (s * (hfsq + r) + dk * kLn2Lo)) - f);
}

// √x for x ≥ 0: bit-trick estimate of 1/√x and two Newton steps (normal_batch.cpp).
RTDA_HD inline float sqrt_nonnegative(float x) {
  float y = bits_float(0x5F375A86u - (float_bits(x) >> 1));
  const float half_x = 0.5f * x;
  y = y * (1.5f - half_x * y * y);
  y = y * (1.5f - half_x * y * y);
  return x * y;
}

// Taylor sin and cos on |φ| ≤ π/4 (normal_batch.cpp).
RTDA_HD inline void sincos_quarter(float phi, float& s, float& c) {
  const float p2 = phi * phi;
  s = phi *
      (1.0f + p2 * (-1.0f / 6 + p2 * (1.0f / 120 + p2 * (-1.0f / 5040 + p2 * (1.0f / 362880)))));
  c = 1.0f + p2 * (-0.5f + p2 * (1.0f / 24 + p2 * (-1.0f / 720 +
                                                   p2 * (1.0f / 40320 + p2 * (-1.0f / 3628800)))));
}

// Box–Muller on one (radius word, angle word) pair: the two normals (re, im).
RTDA_HD inline void box_muller(std::uint32_t radius_word, std::uint32_t angle_word, double& re,
                               double& im) {
  constexpr float kTwoM32 = 1.0f / 4294967296.0f;
  constexpr float kTwoM23 = 1.0f / 8388608.0f;
  constexpr float kHalfPi = 1.57079632679489661923f;
  const float w = static_cast<float>(static_cast<std::int32_t>(radius_word ^ 0x80000000u));
  const float u1 = ((w + 2147483648.0f) + 0.5f) * kTwoM32;
  const float r = sqrt_nonnegative(-2.0f * log_unit(u1));
  const std::uint32_t quadrant = angle_word >> 30;
  const float f =
      (static_cast<float>(static_cast<std::int32_t>((angle_word >> 7) & 0x7FFFFFu)) + 0.5f) *
      kTwoM23;
  float s, c;
  sincos_quarter((f - 0.5f) * kHalfPi, s, c);
  const bool swap = (quadrant & 1u) != 0;
  const float cr = swap ? -s : c;
  const float sr = swap ? c : s;
  const float sign = (quadrant & 2u) != 0 ? -1.0f : 1.0f;
  re = static_cast<double>(r * (sign * cr));
  im = static_cast<double>(r * (sign * sr));
}

// The four normals of columns 4·block .. 4·block + 3 of one row of a NormalBatchStream with
// key words key0, key1 (NormalBatchStream::key_word) and the stream's cycle and member:
// out[j] == NormalBatchStream::normal(row, 4·block + j). All counters must fit in 32 bits
// (the host checks, as NormalBatchStream does).
RTDA_HD inline void normal_block(std::uint32_t key0, std::uint32_t key1, std::uint32_t cycle,
                                 std::uint32_t member, std::uint32_t row, std::uint32_t block,
                                 double out[4]) {
  std::uint32_t ctr[4] = {block, row, member, cycle};
  philox4x32_10(ctr, key0, key1);
  box_muller(ctr[0], ctr[1], out[0], out[1]);
  box_muller(ctr[2], ctr[3], out[2], out[3]);
}

}  // namespace rtda::philox_hd
