// The observation log's files (obs_log.hpp has the format): POSIX calls that throw
// std::system_error naming the file, segment file names, and the record scans that recovery
// on open runs. Internal to ObservationLog.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "server/obs_log.hpp"

namespace rtda::server::log_io {

inline constexpr std::array<char, 8> kMagic = {'R', 'T', 'D', 'A', 'L', 'O', 'G', '1'};
inline constexpr std::string_view kSegmentPrefix = "segment-";
inline constexpr std::string_view kSegmentSuffix = ".log";

// Where and why a scan stopped before its limit.
struct ScanResult {
  std::uint64_t valid_end = 0;  // byte offset after the last good record
  std::uint64_t records = 0;    // good records
  std::string problem;          // empty if every byte up to the limit was a good record
};

[[noreturn]] void throw_errno(int err, std::string_view what, const std::filesystem::path& path);

int open_or_throw(const std::filesystem::path& path, int flags, mode_t mode = 0644);

void close_quietly(int fd);

// Reads up to n bytes at offset; fewer only at end of file.
std::size_t pread_full(int fd, std::byte* buf, std::size_t n, std::uint64_t offset,
                       const std::filesystem::path& path);

void write_fd_all(int fd, const std::byte* data, std::size_t n, const std::filesystem::path& path);

std::uint64_t file_size(int fd, const std::filesystem::path& path);

void datasync_fd(int fd, const std::filesystem::path& path);

void truncate_fd(int fd, std::uint64_t size, const std::filesystem::path& path);

// Parses "segment-<16 hex>.log"; false for any other name.
bool parse_segment_name(const std::string& name, std::uint64_t& first_index);

// Verifies the records of one segment from just after the header up to byte `limit`, calling
// visit (if given) for each good one. Reads sequentially through a buffer that grows to fit the
// largest record.
ScanResult scan_records(int fd, const std::filesystem::path& path, std::uint64_t first_index,
                        std::uint64_t limit,
                        const std::function<void(const LogRecordView&)>* visit);

std::string corruption_message(const std::filesystem::path& path, std::uint64_t offset,
                               std::uint64_t index, std::string_view problem);

// Byte offset of the first valid record that starts after byte `from` of the file (plausible
// length, inside [0, size), stored CRC32C equal to the payload's), or nullopt. Exact and O(n)
// in the n = size - from bytes it reads; see "Recovery on open" in obs_log.hpp for the method.
std::optional<std::uint64_t> find_later_valid_record(int fd, const std::filesystem::path& path,
                                                     std::uint64_t from, std::uint64_t size);

}  // namespace rtda::server::log_io
