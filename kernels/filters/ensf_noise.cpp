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
#define RTDA_ENSF_NOISE_AVX2 1
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

#if RTDA_ENSF_NOISE_AVX2

#define RTDA_AVX2 __attribute__((target("avx2")))
#define RTDA_AVX2_INLINE __attribute__((target("avx2"), always_inline)) inline

RTDA_AVX2_INLINE __m256 c1(float v) {
  return _mm256_set1_ps(v);
}
RTDA_AVX2_INLINE __m256i ci(int v) {
  return _mm256_set1_epi32(v);
}

// philox_hd::box_muller on N × 8 (radius word, angle word) pairs, operation for operation;
// writes 16 N normals (re, im of pair 0, re, im of pair 1, … of each set in turn) as doubles.
// Every step is done for the N sets before the next, so that the N dependency chains (each
// well over a hundred cycles long) lie side by side in the instruction stream and the CPU
// overlaps them.
template <int N>
RTDA_AVX2_INLINE void box_muller(const __m256i* radius, const __m256i* angle, double* out) {
  constexpr float kLn2Hi = 6.9313812256e-01f, kLn2Lo = 9.0580006145e-06f;
  constexpr float kLg1 = 0.66666662693f, kLg2 = 0.40000972152f, kLg3 = 0.28498786688f,
                  kLg4 = 0.24279078841f;
  __m256 u1[N], f[N], s[N], z[N], w[N], r[N], hfsq[N], dk[N], lg[N];
  __m256i ix[N], k[N], i[N];
  // u1 = ((w + 2^31) + 1/2) 2^-32 from the radius word
  for (int n = 0; n < N; ++n) {
    const __m256 wv =
        _mm256_cvtepi32_ps(_mm256_xor_si256(radius[n], ci(static_cast<int>(0x80000000u))));
    u1[n] = _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(wv, c1(2147483648.0f)), c1(0.5f)),
                          c1(1.0f / 4294967296.0f));
  }
  // log_unit(u1)
  for (int n = 0; n < N; ++n) {
    ix[n] = _mm256_castps_si256(u1[n]);
    k[n] = _mm256_sub_epi32(_mm256_srli_epi32(ix[n], 23), ci(127));
    ix[n] = _mm256_and_si256(ix[n], ci(0x007FFFFF));
    i[n] = _mm256_and_si256(_mm256_add_epi32(ix[n], ci(0x95F64 << 3)), ci(0x800000));
    k[n] = _mm256_add_epi32(k[n], _mm256_srli_epi32(i[n], 23));
    f[n] = _mm256_sub_ps(
        _mm256_castsi256_ps(_mm256_or_si256(ix[n], _mm256_xor_si256(i[n], ci(0x3F800000)))),
        c1(1.0f));
    dk[n] = _mm256_cvtepi32_ps(k[n]);
  }
  for (int n = 0; n < N; ++n)
    s[n] = _mm256_div_ps(f[n], _mm256_add_ps(c1(2.0f), f[n]));
  for (int n = 0; n < N; ++n) {
    z[n] = _mm256_mul_ps(s[n], s[n]);
    w[n] = _mm256_mul_ps(z[n], z[n]);
  }
  for (int n = 0; n < N; ++n)
    r[n] =
        _mm256_add_ps(_mm256_mul_ps(z[n], _mm256_add_ps(c1(kLg1), _mm256_mul_ps(w[n], c1(kLg3)))),
                      _mm256_mul_ps(w[n], _mm256_add_ps(c1(kLg2), _mm256_mul_ps(w[n], c1(kLg4)))));
  for (int n = 0; n < N; ++n)
    hfsq[n] = _mm256_mul_ps(_mm256_mul_ps(c1(0.5f), f[n]), f[n]);
  for (int n = 0; n < N; ++n) {
    const __m256 inner = _mm256_sub_ps(
        _mm256_sub_ps(hfsq[n], _mm256_add_ps(_mm256_mul_ps(s[n], _mm256_add_ps(hfsq[n], r[n])),
                                             _mm256_mul_ps(dk[n], c1(kLn2Lo)))),
        f[n]);
    lg[n] = _mm256_sub_ps(_mm256_mul_ps(dk[n], c1(kLn2Hi)), inner);
  }
  // r = sqrt_nonnegative(−2 log u1)
  __m256 x[N], y[N], half_x[N];
  for (int n = 0; n < N; ++n) {
    x[n] = _mm256_mul_ps(c1(-2.0f), lg[n]);
    y[n] = _mm256_castsi256_ps(
        _mm256_sub_epi32(ci(0x5F375A86), _mm256_srli_epi32(_mm256_castps_si256(x[n]), 1)));
    half_x[n] = _mm256_mul_ps(c1(0.5f), x[n]);
  }
  for (int step = 0; step < 2; ++step)
    for (int n = 0; n < N; ++n)
      y[n] = _mm256_mul_ps(
          y[n], _mm256_sub_ps(c1(1.5f), _mm256_mul_ps(_mm256_mul_ps(half_x[n], y[n]), y[n])));
  for (int n = 0; n < N; ++n)
    r[n] = _mm256_mul_ps(x[n], y[n]);
  // The angle: sincos_quarter((f − 1/2) π/2), f from the low 23 bits above bit 7.
  __m256 phi[N], p2[N], sn[N], cs[N];
  for (int n = 0; n < N; ++n) {
    const __m256 fa = _mm256_mul_ps(
        _mm256_add_ps(
            _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(angle[n], 7), ci(0x7FFFFF))),
            c1(0.5f)),
        c1(1.0f / 8388608.0f));
    phi[n] = _mm256_mul_ps(_mm256_sub_ps(fa, c1(0.5f)), c1(1.57079632679489661923f));
    p2[n] = _mm256_mul_ps(phi[n], phi[n]);
  }
  for (int n = 0; n < N; ++n)
    sn[n] = _mm256_mul_ps(
        phi[n],
        _mm256_add_ps(
            c1(1.0f),
            _mm256_mul_ps(
                p2[n],
                _mm256_add_ps(
                    c1(-1.0f / 6),
                    _mm256_mul_ps(
                        p2[n], _mm256_add_ps(
                                   c1(1.0f / 120),
                                   _mm256_mul_ps(
                                       p2[n], _mm256_add_ps(
                                                  c1(-1.0f / 5040),
                                                  _mm256_mul_ps(p2[n], c1(1.0f / 362880))))))))));
  for (int n = 0; n < N; ++n)
    cs[n] = _mm256_add_ps(
        c1(1.0f),
        _mm256_mul_ps(
            p2[n],
            _mm256_add_ps(
                c1(-0.5f),
                _mm256_mul_ps(
                    p2[n],
                    _mm256_add_ps(
                        c1(1.0f / 24),
                        _mm256_mul_ps(
                            p2[n],
                            _mm256_add_ps(
                                c1(-1.0f / 720),
                                _mm256_mul_ps(
                                    p2[n], _mm256_add_ps(
                                               c1(1.0f / 40320),
                                               _mm256_mul_ps(p2[n], c1(-1.0f / 3628800)))))))))));
  // Quadrant: bit 30 of the angle word swaps (c, s) -> (−s, c), bit 31 flips both signs.
  for (int n = 0; n < N; ++n) {
    const __m256 swap = _mm256_castsi256_ps(_mm256_slli_epi32(angle[n], 1));
    const __m256 sign_bit =
        _mm256_castsi256_ps(_mm256_and_si256(angle[n], ci(static_cast<int>(0x80000000u))));
    const __m256 neg_s = _mm256_xor_ps(sn[n], c1(-0.0f));
    const __m256 cr = _mm256_xor_ps(_mm256_blendv_ps(cs[n], neg_s, swap), sign_bit);
    const __m256 sr = _mm256_xor_ps(_mm256_blendv_ps(sn[n], cs[n], swap), sign_bit);
    const __m256 re = _mm256_mul_ps(r[n], cr);
    const __m256 im = _mm256_mul_ps(r[n], sr);
    const __m256 lo = _mm256_unpacklo_ps(re, im);  // pairs 0, 1 | 4, 5
    const __m256 hi = _mm256_unpackhi_ps(re, im);  // pairs 2, 3 | 6, 7
    double* o = out + 16 * n;
    _mm256_storeu_pd(o, _mm256_cvtps_pd(_mm256_castps256_ps128(lo)));
    _mm256_storeu_pd(o + 4, _mm256_cvtps_pd(_mm256_castps256_ps128(hi)));
    _mm256_storeu_pd(o + 8, _mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1)));
    _mm256_storeu_pd(o + 12, _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1)));
  }
}

// The Philox4x32-10 constants of one call (one member, row and cycle), with rounds 1 and 2
// folded: the counter is (block, row, member, cycle), so those rounds depend on the block only
// through word 0.
//   round 1: x0 = c0, x1 = c1 (constants), x2 = hi(M0 b) ^ cycle ^ k1[0], x3 = lo(M0 b)
//   round 2: x0 = hi(M1 x2) ^ c1 ^ k0[1], x1 = lo(M1 x2), x2 = x3 ^ hi(M0 c0) ^ k1[1],
//            x3 = lo(M0 c0)
struct PhiloxCall {
  __m256i m0, m1, r1_x2, r2_x0, r2_x2, r3_x2, rk0[10], rk1[10];
};

RTDA_AVX2_INLINE PhiloxCall philox_call(std::uint32_t key0, std::uint32_t key1, std::uint32_t cycle,
                                        std::uint32_t member, std::uint32_t row) {
  // philox_hd::philox4x32_10's constants and key schedule.
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  std::uint32_t k0[10], k1[10];
  for (int r = 0; r < 10; ++r) {
    k0[r] = key0 + static_cast<std::uint32_t>(r) * kW0;
    k1[r] = key1 + static_cast<std::uint32_t>(r) * kW1;
  }
  const auto hi = [](std::uint64_t p) { return static_cast<std::uint32_t>(p >> 32); };
  const auto lo = [](std::uint64_t p) { return static_cast<std::uint32_t>(p); };
  const std::uint64_t p_member = std::uint64_t{kM1} * member;
  const std::uint32_t c0 = hi(p_member) ^ row ^ k0[0], c1v = lo(p_member);
  const std::uint64_t p_c0 = std::uint64_t{kM0} * c0;
  PhiloxCall pc;
  pc.m0 = _mm256_set1_epi64x(kM0);
  pc.m1 = _mm256_set1_epi64x(kM1);
  pc.r1_x2 = _mm256_set1_epi64x(cycle ^ k1[0]);
  pc.r2_x0 = _mm256_set1_epi64x(c1v ^ k0[1]);
  pc.r2_x2 = _mm256_set1_epi64x(hi(p_c0) ^ k1[1]);
  pc.r3_x2 = _mm256_set1_epi64x(lo(p_c0) ^ k1[2]);  // x3 after round 2, keyed
  for (int r = 0; r < 10; ++r) {
    pc.rk0[r] = _mm256_set1_epi64x(k0[r]);
    pc.rk1[r] = _mm256_set1_epi64x(k1[r]);
  }
  return pc;
}

// 16 S normals: Philox blocks block0 .. block0 + 4 S − 1 as S sets of four blocks (one block
// per 64-bit lane; a word's upper 32 bits are don't-care: vpmuludq reads the lower ones, and
// xor never mixes halves), then Box–Muller. The sets advance together, step by step.
template <int S>
RTDA_AVX2_INLINE void philox_normals(const PhiloxCall& pc, std::uint32_t block0, double* out) {
  const __m256i lanes = _mm256_setr_epi64x(0, 1, 2, 3);
  __m256i x0[S], x1[S], x2[S], x3[S];
  // Rounds 1 and 2.
  for (int n = 0; n < S; ++n) {
    const __m256i b =
        _mm256_add_epi64(_mm256_set1_epi64x(block0 + static_cast<std::uint32_t>(4 * n)), lanes);
    const __m256i p = _mm256_mul_epu32(b, pc.m0);
    const __m256i q = _mm256_mul_epu32(_mm256_xor_si256(_mm256_srli_epi64(p, 32), pc.r1_x2), pc.m1);
    x0[n] = _mm256_xor_si256(_mm256_srli_epi64(q, 32), pc.r2_x0);
    x1[n] = q;
    x2[n] = _mm256_xor_si256(p, pc.r2_x2);
  }
  // Round 3 (x3 is still the constant lo(M0 c0)).
  for (int n = 0; n < S; ++n) {
    const __m256i p0 = _mm256_mul_epu32(x0[n], pc.m0), p1 = _mm256_mul_epu32(x2[n], pc.m1);
    x0[n] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), x1[n]), pc.rk0[2]);
    x2[n] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), pc.r3_x2);
    x1[n] = p1;
    x3[n] = p0;
  }
  // Rounds 4 to 10.
#pragma GCC unroll 7
  for (int r = 3; r < 10; ++r)
    for (int n = 0; n < S; ++n) {
      const __m256i p0 = _mm256_mul_epu32(x0[n], pc.m0), p1 = _mm256_mul_epu32(x2[n], pc.m1);
      x0[n] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), x1[n]), pc.rk0[r]);
      x2[n] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), x3[n]), pc.rk1[r]);
      x1[n] = p1;
      x3[n] = p0;
    }
  // Pair p = 2 (block) + h takes words (0, 1) for h = 0 and (2, 3) for h = 1.
  __m256i rad[S], ang[S];
  for (int n = 0; n < S; ++n) {
    rad[n] = _mm256_blend_epi32(x0[n], _mm256_slli_epi64(x2[n], 32), 0xAA);
    ang[n] = _mm256_blend_epi32(x1[n], _mm256_slli_epi64(x3[n], 32), 0xAA);
  }
  box_muller<S>(rad, ang, out);
}

// Columns 4 block0 .. 4 block0 + 16 sets − 1.
RTDA_AVX2 void fill_avx2(std::uint32_t key0, std::uint32_t key1, std::uint32_t cycle,
                         std::uint32_t member, std::uint32_t row, std::uint32_t block0,
                         std::size_t sets, double* out) {
  constexpr std::size_t kSets = 4;  // four chains in flight, 64 normals per step
  const PhiloxCall pc = philox_call(key0, key1, cycle, member, row);
  std::size_t set = 0;
  for (; set + kSets <= sets; set += kSets)
    philox_normals<kSets>(pc, block0 + static_cast<std::uint32_t>(4 * set), out + 16 * set);
  for (; set < sets; ++set)
    philox_normals<1>(pc, block0 + static_cast<std::uint32_t>(4 * set), out + 16 * set);
}

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}

#endif

}  // namespace

EnsfNoiseStream::EnsfNoiseStream(std::uint64_t seed, std::uint64_t cycle, std::uint64_t member) {
  const NormalBatchStream stream(seed, RandomPurpose::kEnsfNoise, cycle, member);  // checks
  key_[0] = stream.key_word(0);
  key_[1] = stream.key_word(1);
  cycle_ = static_cast<std::uint32_t>(cycle);
  member_ = static_cast<std::uint32_t>(member);
}

void EnsfNoiseStream::fill(std::uint32_t row, std::uint64_t first, double* out,
                           std::size_t count) const {
#if RTDA_ENSF_NOISE_AVX2
  if (have_avx2()) {
    constexpr std::uint64_t kSet = 16;  // columns per set of four Philox blocks
    const std::uint64_t end = first + count;
    const std::uint64_t aligned = std::min(end, (first + 3) / 4 * 4);
    fill_scalar(key_[0], key_[1], cycle_, member_, row, first, out, aligned - first);
    const std::size_t sets = static_cast<std::size_t>((end - aligned) / kSet);
    fill_avx2(key_[0], key_[1], cycle_, member_, row, static_cast<std::uint32_t>(aligned / 4), sets,
              out + (aligned - first));
    const std::uint64_t done = aligned + sets * kSet;
    fill_scalar(key_[0], key_[1], cycle_, member_, row, done, out + (done - first), end - done);
    return;
  }
#endif
  fill_scalar(key_[0], key_[1], cycle_, member_, row, first, out, count);
}

}  // namespace rtda::filters
