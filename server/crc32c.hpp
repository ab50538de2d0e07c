// CRC32C (Castagnoli), the observation log's record checksum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace rtda::server {

// CRC32C (Castagnoli). crc32c() dispatches once to the SSE4.2 instruction when the CPU has it,
// else to the table-driven version; the two are exposed so tests can compare them.
std::uint32_t crc32c(std::span<const std::byte> data);
std::uint32_t crc32c_software(std::span<const std::byte> data);
bool crc32c_hardware_available();
// Precondition: crc32c_hardware_available().
std::uint32_t crc32c_hardware(std::span<const std::byte> data);

// The raw register forms the log's recovery scan combines (obs_log.cpp): crc32c_extend
// continues register c over n bytes (no pre- or post-inversion); crc32c_shift(crc, n) is crc
// times x^(8 n) mod P for n <= 2^28, so crc32c(A || B) = crc32c_shift(crc32c(A), |B|) ^
// crc32c(B).
std::uint32_t crc32c_extend(std::uint32_t c, const std::byte* p, std::size_t n);
std::uint32_t crc32c_shift(std::uint32_t crc, std::uint32_t n);

}  // namespace rtda::server
