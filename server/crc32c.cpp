// CRC32C (crc32c.hpp): slicing-by-8 tables, SSE4.2 when the CPU has it, and the shift that
// combines CRCs.
#include "server/crc32c.hpp"

#include <array>
#include <cstddef>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include "server/byte_order.hpp"

namespace rtda::server {

namespace {

constexpr std::uint32_t kCrc32cPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

// Slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_crc32c_tables() {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t c = b;
    for (int k = 0; k < 8; ++k)
      c = (c >> 1) ^ ((c & 1u) ? kCrc32cPoly : 0u);
    t[0][b] = c;
  }
  for (std::uint32_t b = 0; b < 256; ++b) {
    for (std::size_t k = 1; k < 8; ++k)
      t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFFu];
  }
  return t;
}

constexpr auto kCrc32cTables = make_crc32c_tables();

// CRC32C register after feeding n bytes to register c (no initial or final inversion).
std::uint32_t crc32c_extend_software(std::uint32_t c, const std::byte* p, std::size_t n) {
  const auto& t = kCrc32cTables;
  for (; n >= 8; p += 8, n -= 8) {
    const std::uint32_t lo = c ^ load_u32_le(p);
    const std::uint32_t hi = load_u32_le(p + 4);
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n)
    c = (c >> 8) ^ t[0][(c ^ std::to_integer<std::uint32_t>(*p)) & 0xFF];
  return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_extend_sse42(std::uint32_t c32,
                                                                    const std::byte* p,
                                                                    std::size_t n) {
  std::uint64_t c = c32;
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);  // the instruction takes the word in host (little-endian) order
    c = _mm_crc32_u64(c, w);
  }
  c32 = static_cast<std::uint32_t>(c);
  for (; n > 0; ++p, --n)
    c32 = _mm_crc32_u8(c32, std::to_integer<std::uint8_t>(*p));
  return c32;
}
#endif

// a * b modulo the CRC32C polynomial, in the CRC's reflected bit order (x^0 is bit 31).
// Branch-free: the scan below calls it on random data.
std::uint32_t crc32c_multmod(std::uint32_t a, std::uint32_t b) {
  std::uint32_t prod = 0;
  for (int i = 31; i >= 0; --i) {
    prod ^= b & (0u - ((a >> i) & 1u));
    b = (b >> 1) ^ (kCrc32cPoly & (0u - (b & 1u)));
  }
  return prod;
}

// low[d] = x^(8 d) mod P for d < 2^16 and high[d] = x^(8 d 2^16) mod P for d <= 2^12, so
// x^(8 L) for any L <= 2^28 (kMaxRecordBytes) is one entry or the product of two. Built on first
// use (about 70 000 multiplications, a few milliseconds).
struct Crc32cShiftTables {
  std::vector<std::uint32_t> low, high;
};

const Crc32cShiftTables& crc32c_shift_tables() {
  static const Crc32cShiftTables tables = [] {
    Crc32cShiftTables t;
    t.low.resize(1u << 16);
    t.high.resize((1u << 12) + 1);
    t.low[0] = t.high[0] = 1u << 31;  // x^0
    const std::uint32_t x8 = 1u << 23;
    for (std::size_t d = 1; d < t.low.size(); ++d)
      t.low[d] = crc32c_multmod(t.low[d - 1], x8);
    const std::uint32_t step = crc32c_multmod(t.low.back(), x8);  // x^(8 2^16)
    for (std::size_t d = 1; d < t.high.size(); ++d)
      t.high[d] = crc32c_multmod(t.high[d - 1], step);
    return t;
  }();
  return tables;
}

using Crc32cFn = std::uint32_t (*)(std::span<const std::byte>);

Crc32cFn select_crc32c() {
  return crc32c_hardware_available() ? &crc32c_hardware : &crc32c_software;
}

}  // namespace

std::uint32_t crc32c_extend(std::uint32_t c, const std::byte* p, std::size_t n) {
#if defined(__x86_64__)
  if (crc32c_hardware_available()) return crc32c_extend_sse42(c, p, n);
#endif
  return crc32c_extend_software(c, p, n);
}

// crc * x^(8 n) mod P for n <= 2^28: the contribution of a message with CRC `crc` once n more
// bytes follow it. crc32c(A || B) = crc32c_shift(crc32c(A), |B|) ^ crc32c(B) (zlib's
// crc32_combine).
std::uint32_t crc32c_shift(std::uint32_t crc, std::uint32_t n) {
  const Crc32cShiftTables& t = crc32c_shift_tables();
  crc = crc32c_multmod(t.low[n & 0xFFFFu], crc);
  if ((n >> 16) != 0) crc = crc32c_multmod(t.high[n >> 16], crc);
  return crc;
}

std::uint32_t crc32c_software(std::span<const std::byte> data) {
  return ~crc32c_extend_software(0xFFFFFFFFu, data.data(), data.size());
}

bool crc32c_hardware_available() {
#if defined(__x86_64__)
  static const bool available = __builtin_cpu_supports("sse4.2");
  return available;
#else
  return false;
#endif
}

std::uint32_t crc32c_hardware(std::span<const std::byte> data) {
#if defined(__x86_64__)
  return ~crc32c_extend_sse42(0xFFFFFFFFu, data.data(), data.size());
#else
  return crc32c_software(data);
#endif
}

std::uint32_t crc32c(std::span<const std::byte> data) {
  static const Crc32cFn fn = select_crc32c();
  return fn(data);
}

}  // namespace rtda::server
