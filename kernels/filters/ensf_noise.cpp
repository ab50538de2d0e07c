#include "filters/ensf_noise.hpp"

// No contraction of a multiply and an add: the vector and the scalar path must round every
// operation alike (ensf_noise.hpp).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>

#include "core/normal_batch.hpp"
#include "core/philox_hd.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define RTDA_ENSF_NOISE_SIMD 1
#endif

namespace rtda::filters {

namespace {

// Columns [first, first + count) block by block with the host/device functions.
void fill_scalar(std::uint32_t key0, std::uint32_t key1, std::uint32_t cycle, std::uint32_t member,
                 std::uint32_t row, std::uint64_t first, double* out, std::size_t count) {
  const std::uint64_t end = first + count;
  for (std::uint64_t col = first; col < end;) {
    double v[4];
    const std::uint64_t block = col / 4;
    philox_hd::normal_block(key0, key1, cycle, member, row, static_cast<std::uint32_t>(block), v);
    const std::uint64_t stop = std::min(end, 4 * block + 4);
    for (; col < stop; ++col)
      out[col - first] = v[col % 4];
  }
}

#if RTDA_ENSF_NOISE_SIMD

// One namespace per instruction set, each compiled for its set (GCC's target pragma, clang's
// attribute region), with the operations ensf_noise_simd.inc is written in.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
namespace avx2 {

using vi = __m256i;
using vf = __m256;
constexpr int kBlocks = 4;

[[gnu::always_inline]] inline vi set32(std::uint32_t v) {
  return _mm256_set1_epi32(static_cast<int>(v));
}
[[gnu::always_inline]] inline vi set64(std::uint64_t v) {
  return _mm256_set1_epi64x(static_cast<long long>(v));
}
// Blocks b, b + 1, … in the 64-bit lanes.
[[gnu::always_inline]] inline vi block_lanes(std::uint32_t b) {
  return _mm256_add_epi64(set64(b), _mm256_setr_epi64x(0, 1, 2, 3));
}
// Per 64-bit lane: lower 32 bits × lower 32 bits, the 64-bit product.
[[gnu::always_inline]] inline vi mul32(vi a, vi b) {
  return _mm256_mul_epu32(a, b);
}
[[gnu::always_inline]] inline vi hi64(vi a) {  // upper word of each 64-bit lane, moved down
  return _mm256_srli_epi64(a, 32);
}
[[gnu::always_inline]] inline vi lo_to_hi64(vi a) {
  return _mm256_slli_epi64(a, 32);
}
[[gnu::always_inline]] inline vi odd_from(vi even, vi odd) {  // 32-bit lanes 1, 3, … from odd
  return _mm256_blend_epi32(even, odd, 0xAA);
}
[[gnu::always_inline]] inline vi add32(vi a, vi b) {
  return _mm256_add_epi32(a, b);
}
[[gnu::always_inline]] inline vi sub32(vi a, vi b) {
  return _mm256_sub_epi32(a, b);
}
template <int n>
[[gnu::always_inline]] inline vi srl32(vi a) {
  return _mm256_srli_epi32(a, n);
}
[[gnu::always_inline]] inline vf setf(float v) {
  return _mm256_set1_ps(v);
}
[[gnu::always_inline]] inline vf cvt(vi a) {
  return _mm256_cvtepi32_ps(a);
}
// Lane by lane: bit 30 of word set ? if_set : if_clear.
[[gnu::always_inline]] inline vf select_bit30(vi word, vf if_clear, vf if_set) {
  return _mm256_blendv_ps(if_clear, if_set, _mm256_castsi256_ps(_mm256_slli_epi32(word, 1)));
}
// The pairs (re, im) of blocks 0 .. 3 as 16 doubles, block by block.
[[gnu::always_inline]] inline void store_normals(vf re, vf im, double* o) {
  const __m256 lo = _mm256_unpacklo_ps(re, im);  // pairs 0, 1 | 4, 5
  const __m256 hi = _mm256_unpackhi_ps(re, im);  // pairs 2, 3 | 6, 7
  _mm256_storeu_pd(o, _mm256_cvtps_pd(_mm256_castps256_ps128(lo)));
  _mm256_storeu_pd(o + 4, _mm256_cvtps_pd(_mm256_castps256_ps128(hi)));
  _mm256_storeu_pd(o + 8, _mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1)));
  _mm256_storeu_pd(o + 12, _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1)));
}

#include "filters/ensf_noise_simd.inc"

}  // namespace avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif
namespace avx512 {

using vi = __m512i;
using vf = __m512;
constexpr int kBlocks = 8;
// Some operations are written as their zero-masking forms under an all-ones mask (the same
// instruction): GCC 12's unmasked forms read an "undefined" register that -Wall reports as
// maybe uninitialized.
constexpr __mmask8 kAll8 = 0xFF;
constexpr __mmask16 kAll16 = 0xFFFF;

[[gnu::always_inline]] inline vi set32(std::uint32_t v) {
  return _mm512_set1_epi32(static_cast<int>(v));
}
[[gnu::always_inline]] inline vi set64(std::uint64_t v) {
  return _mm512_set1_epi64(static_cast<long long>(v));
}
[[gnu::always_inline]] inline vi block_lanes(std::uint32_t b) {
  return _mm512_add_epi64(set64(b), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
}
[[gnu::always_inline]] inline vi mul32(vi a, vi b) {
  return _mm512_maskz_mul_epu32(kAll8, a, b);
}
[[gnu::always_inline]] inline vi hi64(vi a) {
  return _mm512_maskz_srli_epi64(kAll8, a, 32);
}
[[gnu::always_inline]] inline vi lo_to_hi64(vi a) {
  return _mm512_maskz_slli_epi64(kAll8, a, 32);
}
[[gnu::always_inline]] inline vi odd_from(vi even, vi odd) {
  return _mm512_mask_blend_epi32(0xAAAA, even, odd);
}
[[gnu::always_inline]] inline vi add32(vi a, vi b) {
  return _mm512_add_epi32(a, b);
}
[[gnu::always_inline]] inline vi sub32(vi a, vi b) {
  return _mm512_sub_epi32(a, b);
}
template <int n>
[[gnu::always_inline]] inline vi srl32(vi a) {
  return _mm512_maskz_srli_epi32(kAll16, a, n);
}
[[gnu::always_inline]] inline vf setf(float v) {
  return _mm512_set1_ps(v);
}
[[gnu::always_inline]] inline vf cvt(vi a) {
  return _mm512_maskz_cvtepi32_ps(kAll16, a);
}
[[gnu::always_inline]] inline vf select_bit30(vi word, vf if_clear, vf if_set) {
  return _mm512_mask_blend_ps(_mm512_test_epi32_mask(word, set32(0x40000000u)), if_clear, if_set);
}
// The pairs (re, im) of blocks 0 .. 7 as 32 doubles, block by block: within each 128-bit
// chunk c the unpacks give block 2c (lo) and block 2c + 1 (hi).
[[gnu::always_inline]] inline void store_normals(vf re, vf im, double* o) {
  const __m512 lo = _mm512_maskz_unpacklo_ps(kAll16, re, im);
  const __m512 hi = _mm512_maskz_unpackhi_ps(kAll16, re, im);
  const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i second =
      _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  for (const __m512 blocks :
       {_mm512_permutex2var_ps(lo, first, hi), _mm512_permutex2var_ps(lo, second, hi)}) {
    const __m512d pd = _mm512_castps_pd(blocks);
    const __m256 lower = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, pd, 0));
    const __m256 upper = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, pd, 1));
    _mm512_storeu_pd(o, _mm512_maskz_cvtps_pd(kAll8, lower));
    _mm512_storeu_pd(o + 8, _mm512_maskz_cvtps_pd(kAll8, upper));
    o += 16;
  }
}

#include "filters/ensf_noise_simd.inc"

}  // namespace avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif

}  // namespace

EnsfNoiseStream::EnsfNoiseStream(std::uint64_t seed, std::uint64_t cycle, std::uint64_t member) {
  const NormalBatchStream stream(seed, RandomPurpose::kEnsfNoise, cycle, member);  // checks
  key_[0] = stream.key_word(0);
  key_[1] = stream.key_word(1);
  cycle_ = static_cast<std::uint32_t>(cycle);
  member_ = static_cast<std::uint32_t>(member);
}

EnsfNoiseStream::Isa EnsfNoiseStream::widest_isa() {
#if RTDA_ENSF_NOISE_SIMD
  static const Isa widest = __builtin_cpu_supports("avx512f") ? Isa::kAvx512
                            : __builtin_cpu_supports("avx2")  ? Isa::kAvx2
                                                              : Isa::kScalar;
  return widest;
#else
  return Isa::kScalar;
#endif
}

void EnsfNoiseStream::fill(std::uint32_t row, std::uint64_t first, double* out, std::size_t count,
                           Isa isa) const {
  if (isa > widest_isa()) isa = widest_isa();
  const std::uint64_t end = first + count;
  // The scalar functions up to a block boundary, then the widest vector sets that fit, the
  // narrower ones for what is left, the scalar functions for the rest.
  std::uint64_t at = std::min(end, (first + 3) / 4 * 4);
  fill_scalar(key_[0], key_[1], cycle_, member_, row, first, out, at - first);
#if RTDA_ENSF_NOISE_SIMD
  const auto vector_sets = [&](std::size_t columns, auto fill_sets) {
    const std::size_t sets = static_cast<std::size_t>((end - at) / columns);
    fill_sets(key_[0], key_[1], cycle_, member_, row, static_cast<std::uint32_t>(at / 4), sets,
              out + (at - first));
    at += sets * columns;
  };
  if (isa >= Isa::kAvx512) vector_sets(avx512::kColumns, avx512::fill_sets);
  if (isa >= Isa::kAvx2) vector_sets(avx2::kColumns, avx2::fill_sets);
#endif
  fill_scalar(key_[0], key_[1], cycle_, member_, row, at, out + (at - first), end - at);
}

}  // namespace rtda::filters
