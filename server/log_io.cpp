// The observation log's files (log_io.hpp): POSIX calls that name the file on failure, segment
// names, and the record scans of recovery.
#include "server/log_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "server/byte_order.hpp"
#include "server/crc32c.hpp"

namespace rtda::server::log_io {

[[noreturn]] void throw_errno(int err, std::string_view what, const std::filesystem::path& path) {
  throw std::system_error(err, std::generic_category(),
                          fmt::format("observation log: {} {}", what, path.string()));
}

int open_or_throw(const std::filesystem::path& path, int flags, mode_t mode) {
  for (;;) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    if (errno != EINTR) throw_errno(errno, "cannot open", path);
  }
}

void close_quietly(int fd) {
  if (fd >= 0) ::close(fd);  // after a failed close the descriptor is gone anyway (Linux)
}

std::size_t pread_full(int fd, std::byte* buf, std::size_t n, std::uint64_t offset,
                       const std::filesystem::path& path) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, buf + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "cannot read", path);
    }
    if (r == 0) break;
    done += static_cast<std::size_t>(r);
  }
  return done;
}

void write_fd_all(int fd, const std::byte* data, std::size_t n, const std::filesystem::path& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "write failed on", path);
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
}

std::uint64_t file_size(int fd, const std::filesystem::path& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(errno, "cannot stat", path);
  return static_cast<std::uint64_t>(st.st_size);
}

void datasync_fd(int fd, const std::filesystem::path& path) {
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) throw_errno(errno, "fdatasync failed on", path);
  }
}

void truncate_fd(int fd, std::uint64_t size, const std::filesystem::path& path) {
  while (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    if (errno != EINTR) throw_errno(errno, "cannot truncate", path);
  }
}

bool parse_segment_name(const std::string& name, std::uint64_t& first_index) {
  if (name.size() != kSegmentPrefix.size() + 16 + kSegmentSuffix.size()) return false;
  if (!name.starts_with(kSegmentPrefix) || !name.ends_with(kSegmentSuffix)) return false;
  std::uint64_t v = 0;
  for (std::size_t i = kSegmentPrefix.size(); i < kSegmentPrefix.size() + 16; ++i) {
    const char ch = name[i];
    int d;
    if (ch >= '0' && ch <= '9') {
      d = ch - '0';
    } else if (ch >= 'a' && ch <= 'f') {
      d = ch - 'a' + 10;
    } else {
      return false;
    }
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  first_index = v;
  return true;
}

ScanResult scan_records(int fd, const std::filesystem::path& path, std::uint64_t first_index,
                        std::uint64_t limit,
                        const std::function<void(const LogRecordView&)>* visit) {
  constexpr std::size_t kMinBuffer = 1 << 20;
  std::size_t cap = kMinBuffer;
  auto buf = std::make_unique_for_overwrite<std::byte[]>(cap);
  std::uint64_t buf_offset = ObservationLog::kHeaderBytes;  // file offset of buf[0]
  std::size_t have = 0, pos = 0;

  // Makes at least `need` unread bytes available; false if the file (or limit) ends first.
  auto fill = [&](std::size_t need) -> bool {
    if (have - pos >= need) return true;
    std::memmove(buf.get(), buf.get() + pos, have - pos);
    buf_offset += pos;
    have -= pos;
    pos = 0;
    if (need > cap) {
      const std::size_t new_cap = std::max(need, 2 * cap);
      auto bigger = std::make_unique_for_overwrite<std::byte[]>(new_cap);
      std::memcpy(bigger.get(), buf.get(), have);
      buf = std::move(bigger);
      cap = new_cap;
    }
    while (have < need) {
      const std::uint64_t remaining = limit - (buf_offset + have);
      if (remaining == 0) return false;
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(cap - have, remaining));
      const std::size_t got = pread_full(fd, buf.get() + have, want, buf_offset + have, path);
      have += got;
      if (got < want) return have >= need;  // end of file before the limit
    }
    return true;
  };

  ScanResult r;
  r.valid_end = ObservationLog::kHeaderBytes;
  while (r.valid_end < limit) {
    if (!fill(ObservationLog::kRecordOverheadBytes)) {
      r.problem = fmt::format("incomplete record header ({} bytes left)", limit - r.valid_end);
      break;
    }
    const std::uint32_t length = load_u32_le(buf.get() + pos);
    const std::uint32_t stored_crc = load_u32_le(buf.get() + pos + 4);
    if (length == 0 || length > ObservationLog::kMaxRecordBytes) {
      // Length 0 is never written: a zero-filled tail would otherwise parse as empty records
      // (the CRC32C of nothing is 0).
      r.problem = fmt::format("record length {} is outside [1, {}]", length,
                              ObservationLog::kMaxRecordBytes);
      break;
    }
    const std::size_t total = ObservationLog::kRecordOverheadBytes + length;
    if (!fill(total)) {
      r.problem = fmt::format("record of {} bytes extends past the end of the file", length);
      break;
    }
    const std::span<const std::byte> payload(buf.get() + pos + ObservationLog::kRecordOverheadBytes,
                                             length);
    const std::uint32_t crc = crc32c(payload);
    if (crc != stored_crc) {
      r.problem =
          fmt::format("CRC32C mismatch (stored {:#010x}, computed {:#010x})", stored_crc, crc);
      break;
    }
    if (visit != nullptr) (*visit)(LogRecordView{first_index + r.records, payload});
    pos += total;
    r.valid_end += total;
    ++r.records;
  }
  return r;
}

std::string corruption_message(const std::filesystem::path& path, std::uint64_t offset,
                               std::uint64_t index, std::string_view problem) {
  return fmt::format(
      "observation log: corrupt segment {} at byte offset {} (record index {}): {}; this is not "
      "the last segment, so it cannot be repaired automatically (restore the file, or move it and "
      "the earlier segments away after a checkpoint covers them)",
      path.string(), offset, index, problem);
}

std::optional<std::uint64_t> find_later_valid_record(int fd, const std::filesystem::path& path,
                                                     std::uint64_t from, std::uint64_t size) {
  constexpr std::size_t kOverhead = ObservationLog::kRecordOverheadBytes;
  if (size <= from + 1 + kOverhead) return std::nullopt;  // no room for a record after `from`
  if (size - from > std::numeric_limits<std::size_t>::max() / 2) {
    throw std::runtime_error(
        fmt::format("observation log: {} is too large to scan ({} bytes)", path.string(), size));
  }
  auto buf = std::make_unique_for_overwrite<std::byte[]>(static_cast<std::size_t>(size - from));
  const std::size_t n =
      pread_full(fd, buf.get(), static_cast<std::size_t>(size - from), from, path);
  if (n <= 1 + kOverhead) return std::nullopt;

  // reg[k]: the CRC32C register after the first 16 k bytes (the prefix CRC is its complement).
  constexpr std::size_t kStride = 16;
  const std::size_t blocks = n / kStride;
  static_assert(ObservationLog::kMaxRecordBytes <= (1u << 28), "crc32c_shift covers 2^28 bytes");
  auto reg = std::make_unique_for_overwrite<std::uint32_t[]>(blocks + 1);
  reg[0] = 0xFFFFFFFFu;
  for (std::size_t k = 0; k < blocks; ++k)
    reg[k + 1] = crc32c_extend(reg[k], buf.get() + k * kStride, kStride);
  // CRC32C of buf[0, i).
  const auto prefix_crc = [&](std::size_t i) {
    const std::size_t k = i / kStride;
    return ~crc32c_extend(reg[k], buf.get() + k * kStride, i - k * kStride);
  };

  // Candidates wait in a short FIFO while their record's end (a random place in a buffer of up
  // to hundreds of MiB: cache and TLB misses) is prefetched; checked in offset order.
  struct Candidate {
    std::size_t p, end;
    std::uint32_t length, stored_crc;
  };
  constexpr std::size_t kDepth = 16;
  std::array<Candidate, kDepth> fifo{};
  std::size_t head = 0, queued = 0;
  const auto check = [&](const Candidate& c) {
    // crc(buf[begin, end)) from the prefix CRCs: crc(A || B) = shift(crc(A), |B|) ^ crc(B).
    const std::uint32_t crc =
        prefix_crc(c.end) ^ crc32c_shift(prefix_crc(c.p + kOverhead), c.length);
    return crc == c.stored_crc;
  };
  const std::uint32_t max_length = static_cast<std::uint32_t>(ObservationLog::kMaxRecordBytes);
  // Pre-screen 8 offsets at a time: a plausible length has its top byte (at p + 3) at most
  // room_max >> 24, and random bytes rarely are that small.
  const std::size_t room_max = std::min<std::size_t>(max_length, n - 1 - kOverhead);
  const std::uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
  const std::uint64_t below = kOnes * ((room_max >> 24) + 1);  // <= 17: hasless() is exact
  for (std::size_t p = 1; p + kOverhead < n; ++p) {
    while (p + 3 + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, buf.get() + p + 3, 8);
      w = le64toh(w);
      if ((((w - below) & ~w) & kHighs) != 0) break;  // some byte < (room_max >> 24) + 1
      p += 8;
    }
    if (p + kOverhead >= n) break;
    std::uint32_t length;
    std::memcpy(&length, buf.get() + p, 4);
    length = le32toh(length);
    // 1 <= length <= min(kMaxRecordBytes, n - p - 8), as one unsigned comparison.
    const std::size_t room = std::min<std::size_t>(max_length, n - p - kOverhead);
    if (static_cast<std::size_t>(length) - 1 >= room) continue;
    Candidate c{p, p + kOverhead + length, length, load_u32_le(buf.get() + p + 4)};
    __builtin_prefetch(buf.get() + (c.end & ~(kStride - 1)));
    __builtin_prefetch(&reg[c.end / kStride]);
    if (queued == kDepth) {
      if (check(fifo[head])) return from + fifo[head].p;
      fifo[head] = c;
      head = (head + 1) % kDepth;
    } else {
      fifo[(head + queued++) % kDepth] = c;
    }
  }
  for (; queued > 0; --queued, head = (head + 1) % kDepth) {
    if (check(fifo[head])) return from + fifo[head].p;
  }
  return std::nullopt;
}

}  // namespace rtda::server::log_io
