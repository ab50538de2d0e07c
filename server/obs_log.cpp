// Observation log: see obs_log.hpp for the format and the recovery rules.
#include "server/obs_log.hpp"

#include <endian.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace rtda::server {

// ---------------------------------------------------------------- CRC32C

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

std::uint64_t load_u64_le(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}

std::uint32_t load_u32_le(const std::byte* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | std::to_integer<std::uint32_t>(p[i]);
  return v;
}

void store_u64_le(std::byte* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<std::byte>(v >> (8 * i));
}

void store_u32_le(std::byte* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<std::byte>(v >> (8 * i));
}

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

std::uint32_t crc32c_extend(std::uint32_t c, const std::byte* p, std::size_t n) {
#if defined(__x86_64__)
  if (crc32c_hardware_available()) return crc32c_extend_sse42(c, p, n);
#endif
  return crc32c_extend_software(c, p, n);
}

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

// crc * x^(8 n) mod P for n <= 2^28: the contribution of a message with CRC `crc` once n more
// bytes follow it. crc32c(A || B) = crc32c_shift(crc32c(A), |B|) ^ crc32c(B) (zlib's
// crc32_combine).
std::uint32_t crc32c_shift(std::uint32_t crc, std::uint32_t n) {
  const Crc32cShiftTables& t = crc32c_shift_tables();
  crc = crc32c_multmod(t.low[n & 0xFFFFu], crc);
  if ((n >> 16) != 0) crc = crc32c_multmod(t.high[n >> 16], crc);
  return crc;
}

using Crc32cFn = std::uint32_t (*)(std::span<const std::byte>);

Crc32cFn select_crc32c() {
  return crc32c_hardware_available() ? &crc32c_hardware : &crc32c_software;
}

}  // namespace

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

// ---------------------------------------------------------------- sync policy

SyncPolicy sync_policy_from_string(std::string_view s) {
  if (s == "always") return SyncPolicy::kAlways;
  if (s == "interval") return SyncPolicy::kInterval;
  if (s == "never") return SyncPolicy::kNever;
  throw std::invalid_argument(fmt::format(
      "observation log sync policy \"{}\" is not one of \"always\", \"interval\", \"never\"", s));
}

std::string_view to_string(SyncPolicy policy) {
  switch (policy) {
    case SyncPolicy::kAlways:
      return "always";
    case SyncPolicy::kInterval:
      return "interval";
    case SyncPolicy::kNever:
      return "never";
  }
  return "unknown";
}

// ---------------------------------------------------------------- POSIX helpers

namespace {

constexpr std::array<char, 8> kMagic = {'R', 'T', 'D', 'A', 'L', 'O', 'G', '1'};
constexpr std::string_view kSegmentPrefix = "segment-";
constexpr std::string_view kSegmentSuffix = ".log";

[[noreturn]] void throw_errno(int err, std::string_view what, const std::filesystem::path& path) {
  throw std::system_error(err, std::generic_category(),
                          fmt::format("observation log: {} {}", what, path.string()));
}

int open_or_throw(const std::filesystem::path& path, int flags, mode_t mode = 0644) {
  for (;;) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    if (errno != EINTR) throw_errno(errno, "cannot open", path);
  }
}

void close_quietly(int fd) {
  if (fd >= 0) ::close(fd);  // after a failed close the descriptor is gone anyway (Linux)
}

// Reads up to n bytes at offset; fewer only at end of file.
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

// Parses "segment-<16 hex>.log"; false for any other name.
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

// Where and why a scan stopped before its limit.
struct ScanResult {
  std::uint64_t valid_end = 0;  // byte offset after the last good record
  std::uint64_t records = 0;    // good records
  std::string problem;          // empty if every byte up to the limit was a good record
};

// Verifies the records of one segment from just after the header up to byte `limit`, calling
// visit (if given) for each good one. Reads sequentially through a buffer that grows to fit the
// largest record.
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

// Byte offset of the first valid record that starts after byte `from` of the file (plausible
// length, inside [0, size), stored CRC32C equal to the payload's), or nullopt. Exact and O(n)
// in the n = size - from bytes it reads; see "Recovery on open" in obs_log.hpp for the method.
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

}  // namespace

// ---------------------------------------------------------------- ObservationLog

ObservationLog::ObservationLog(LogOptions options) : options_(std::move(options)) {
  if (options_.dir.empty()) throw std::invalid_argument("observation log: LogOptions.dir is empty");
  if (options_.segment_bytes <= kHeaderBytes + kRecordOverheadBytes) {
    throw std::invalid_argument(
        fmt::format("observation log: segment_bytes = {} is too small (must exceed {})",
                    options_.segment_bytes, kHeaderBytes + kRecordOverheadBytes));
  }
  if (!(std::isfinite(options_.sync_interval_seconds) && options_.sync_interval_seconds >= 0)) {
    throw std::invalid_argument(
        fmt::format("observation log: sync_interval_seconds = {} must be finite and >= 0",
                    options_.sync_interval_seconds));
  }

  std::error_code ec;
  const bool created_dir = std::filesystem::create_directories(options_.dir, ec);
  if (ec) throw std::system_error(ec, "observation log: cannot create " + options_.dir.string());
  dir_fd_ = open_or_throw(options_.dir, O_RDONLY | O_DIRECTORY);
  try {
    if (::flock(dir_fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        throw std::runtime_error(
            fmt::format("observation log: {} is already open by another ObservationLog (flock)",
                        options_.dir.string()));
      }
      throw_errno(errno, "cannot lock", options_.dir);
    }
    if (created_dir && options_.sync != SyncPolicy::kNever) {
      // Make the new directory's own entry durable.
      const auto parent = std::filesystem::absolute(options_.dir).parent_path();
      const int pfd = open_or_throw(parent, O_RDONLY | O_DIRECTORY);
      const int rc = ::fsync(pfd);
      const int err = errno;
      close_quietly(pfd);
      if (rc != 0) throw_errno(err, "fsync failed on", parent);
    }

    std::vector<std::uint64_t> firsts;
    for (const auto& entry : std::filesystem::directory_iterator(options_.dir)) {
      std::uint64_t first = 0;
      if (entry.is_regular_file() && parse_segment_name(entry.path().filename().string(), first))
        firsts.push_back(first);
    }
    std::sort(firsts.begin(), firsts.end());

    if (firsts.empty()) {
      segments_.push_back(new_segment(0));
      create_segment(0);
    } else {
      open_existing(firsts);
    }
    spdlog::info("observation log {}: {} segment(s), records [{}, {}), {} bytes, sync {}",
                 options_.dir.string(), segments_.size(), first_index(), next_index(), bytes(),
                 to_string(options_.sync));
  } catch (...) {
    close_quietly(fd_);
    close_quietly(dir_fd_);  // also releases the lock
    throw;
  }
}

ObservationLog::Segment ObservationLog::new_segment(std::uint64_t first_index) {
  Segment seg;
  seg.first_index = first_index;
  seg.bytes = kHeaderBytes;
  return seg;
}

void ObservationLog::open_existing(const std::vector<std::uint64_t>& firsts) {
  for (std::size_t i = 0; i < firsts.size(); ++i) {
    const bool last = i + 1 == firsts.size();
    const auto path = segment_path(firsts[i]);
    if (i > 0) {
      const Segment& prev = segments_.back();
      if (prev.first_index + prev.records != firsts[i]) {
        throw std::runtime_error(fmt::format(
            "observation log: {} starts at record index {} but the previous segment ends before "
            "index {} (a segment is missing or the previous one lost records)",
            path.string(), firsts[i], prev.first_index + prev.records));
      }
    }
    const int fd = open_or_throw(path, last ? (O_RDWR | O_APPEND) : O_RDONLY);
    try {
      const std::uint64_t size = file_size(fd, path);
      std::array<std::byte, kHeaderBytes> header{};
      const std::size_t got = pread_full(fd, header.data(), header.size(), 0, path);
      const bool header_zero =
          std::all_of(header.begin(), header.end(), [](std::byte b) { return b == std::byte{0}; });
      Segment seg = new_segment(firsts[i]);
      seg.committed_bytes = kHeaderBytes;
      seg.created = true;

      if (got < kHeaderBytes || header_zero) {
        // A crash between creating the file and its first fdatasync: nothing in it was acked.
        if (!last) {
          throw std::runtime_error(
              corruption_message(path, 0, firsts[i], "missing or zeroed segment header"));
        }
        recover_last_tail(fd, path, seg, size, 0, "missing or zeroed segment header");
        std::array<std::byte, kHeaderBytes> fresh{};
        std::memcpy(fresh.data(), kMagic.data(), kMagic.size());
        store_u64_le(fresh.data() + 8, firsts[i]);
        write_fd_all(fd, fresh.data(), fresh.size(), path);
      } else {
        if (std::memcmp(header.data(), kMagic.data(), kMagic.size()) != 0) {
          throw std::runtime_error(fmt::format(
              "observation log: {} at byte offset 0 (record index {}): bad magic (expected "
              "\"RTDALOG1\"); not a segment file or corrupt",
              path.string(), firsts[i]));
        }
        const std::uint64_t header_first = load_u64_le(header.data() + 8);
        if (header_first != firsts[i]) {
          throw std::runtime_error(fmt::format(
              "observation log: {} at byte offset 8 (record index {}): header says the first "
              "record index is {}, the file name says {}",
              path.string(), firsts[i], header_first, firsts[i]));
        }
        const ScanResult scan = scan_records(fd, path, firsts[i], size, nullptr);
        seg.records = seg.committed_records = scan.records;
        seg.bytes = seg.committed_bytes = scan.valid_end;
        if (!scan.problem.empty()) {
          const std::uint64_t index = firsts[i] + scan.records;
          if (!last)
            throw std::runtime_error(corruption_message(path, scan.valid_end, index, scan.problem));
          recover_last_tail(fd, path, seg, size, scan.valid_end, scan.problem);
        }
      }
      segments_.push_back(seg);
      if (last) {
        fd_ = fd;
        open_ = i;
      } else {
        close_quietly(fd);
      }
    } catch (...) {
      close_quietly(fd);
      throw;
    }
  }
  // Make a truncation durable before anything is appended after it.
  if (unsynced_ && options_.sync != SyncPolicy::kNever) datasync_active();
}

// The last segment has a bad record (or header) at byte offset `records_end`: truncates a torn
// tail there, or throws if a valid record follows (see "Recovery on open" in the header).
void ObservationLog::recover_last_tail(int fd, const std::filesystem::path& path, Segment& seg,
                                       std::uint64_t size, std::uint64_t records_end,
                                       const std::string& problem) {
  const std::uint64_t index = seg.first_index + seg.records;
  const std::optional<std::uint64_t> later = find_later_valid_record(fd, path, records_end, size);
  if (later) {
    const std::string msg = fmt::format(
        "observation log: corrupt segment {} at byte offset {} (record index {}): {}; a valid "
        "record follows at byte offset {}, so this is damage to written (possibly acknowledged) "
        "records, not a torn tail",
        path.string(), records_end, index, problem, *later);
    if (!options_.truncate_corrupt_tail) {
      throw std::runtime_error(
          msg +
          ". Refusing to truncate: restore the file, or reopen with truncate_corrupt_tail to drop "
          "record " +
          std::to_string(index) + " and everything after it");
    }
    spdlog::error("{}; truncating anyway (truncate_corrupt_tail), {} bytes dropped", msg,
                  size - records_end);
  } else {
    spdlog::warn(
        "observation log: torn tail in {} at byte offset {} (record index {}): {}; truncating, "
        "{} bytes dropped",
        path.string(), records_end, index, problem, size - records_end);
  }
  truncate_fd(fd, records_end, path);
  if (!unsynced_) {
    unsynced_ = true;
    unsynced_since_ = std::chrono::steady_clock::now();
  }
  truncated_bytes_ += size - records_end;
}

ObservationLog::~ObservationLog() {
  try {
    if (!broken_) {
      commit();
      sync();
    }
  } catch (const std::exception& e) {
    spdlog::error("observation log {}: closing: {}", options_.dir.string(), e.what());
  }
  close_quietly(fd_);
  close_quietly(dir_fd_);
}

std::filesystem::path ObservationLog::segment_path(std::uint64_t first_index) const {
  return options_.dir / fmt::format("{}{:016x}{}", kSegmentPrefix, first_index, kSegmentSuffix);
}

void ObservationLog::check_usable() const {
  if (broken_) {
    throw std::runtime_error(fmt::format(
        "observation log {}: unusable after an I/O error that could not be rolled back ({}); "
        "reopen it to recover",
        options_.dir.string(), last_error_));
  }
}

void ObservationLog::record_failure(const std::exception& e) {
  healthy_ = false;
  last_error_ = e.what();
}

void ObservationLog::create_segment(std::size_t i) {
  Segment& seg = segments_[i];
  const auto path = segment_path(seg.first_index);
  fd_ = open_or_throw(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL);
  open_ = i;
  seg.created = true;
  std::array<std::byte, kHeaderBytes> header{};
  std::memcpy(header.data(), kMagic.data(), kMagic.size());
  store_u64_le(header.data() + 8, seg.first_index);
  write_all(header.data(), header.size());
  seg.committed_bytes = kHeaderBytes;
  // The header becomes durable with the first data fdatasync; a crash before that leaves a torn
  // header, which open repairs. The directory entry must be durable before data are acked.
  fsync_dir();
}

std::uint64_t ObservationLog::append(std::span<const std::byte> payload) {
  check_usable();
  if (payload.empty() || payload.size() > kMaxRecordBytes) {
    throw std::invalid_argument(
        fmt::format("observation log: record of {} bytes is outside [1, {}] bytes", payload.size(),
                    kMaxRecordBytes));
  }
  const std::size_t total = kRecordOverheadBytes + payload.size();
  if (pending_size_ + total > pending_capacity_) {
    const std::size_t new_cap = std::max(pending_size_ + total, 2 * pending_capacity_);
    auto bigger = std::make_unique_for_overwrite<std::byte[]>(new_cap);
    if (pending_size_ > 0) std::memcpy(bigger.get(), pending_.get(), pending_size_);
    pending_ = std::move(bigger);
    pending_capacity_ = new_cap;
  }
  std::byte* out = pending_.get() + pending_size_;
  store_u32_le(out, static_cast<std::uint32_t>(payload.size()));
  store_u32_le(out + 4, crc32c(payload));
  std::memcpy(out + kRecordOverheadBytes, payload.data(), payload.size());
  pending_size_ += total;

  // Roll on request or rather than exceed segment_bytes, but never leave a segment empty.
  const Segment& back = segments_.back();
  if (back.records > 0 && (roll_requested_ || back.bytes + total > options_.segment_bytes)) {
    Segment next = new_segment(next_index());
    next.by_roll = roll_requested_;
    segments_.push_back(next);
  }
  roll_requested_ = false;
  Segment& seg = segments_.back();
  const std::uint64_t index = seg.first_index + seg.records;
  ++seg.records;
  seg.bytes += total;
  return index;
}

void ObservationLog::roll() {
  if (segments_.back().records > 0) roll_requested_ = true;
}

void ObservationLog::commit() {
  check_usable();
  if (pending_size_ == 0) {
    // Nothing to write; after a failure, retry making what is written durable.
    if (!healthy_ && unsynced_ && options_.sync != SyncPolicy::kNever) sync();
    return;
  }
  // What to return to if anything fails: the active segment (kept open until the end) and its
  // committed size.
  const std::size_t open0 = open_;
  const int fd0 = fd_;
  const std::uint64_t bytes0 = segments_[open0].committed_bytes;
  const std::uint64_t records0 = segments_[open0].committed_records;
  try {
    std::size_t offset = 0;
    for (std::size_t i = open0; i < segments_.size(); ++i) {
      if (i != open0) {
        // Rolling: the finished segment can no longer be synced once closed.
        if (options_.sync != SyncPolicy::kNever) datasync_active();
        if (fd_ != fd0) {
          const int old_fd = std::exchange(fd_, -1);
          if (::close(old_fd) != 0 && errno != EINTR) {
            throw_errno(errno, "close failed on", segment_path(segments_[open_].first_index));
          }
        }
        create_segment(i);
      }
      Segment& seg = segments_[i];
      const std::uint64_t n = seg.bytes - seg.committed_bytes;
      write_all(pending_.get() + offset, static_cast<std::size_t>(n));
      offset += static_cast<std::size_t>(n);
    }
    switch (options_.sync) {
      case SyncPolicy::kAlways:
        datasync_active();
        break;
      case SyncPolicy::kInterval:
        if (unsynced_age_seconds() >= options_.sync_interval_seconds) datasync_active();
        break;
      case SyncPolicy::kNever:
        break;
    }
  } catch (const std::exception& e) {
    record_failure(e);
    spdlog::error("observation log {}: commit of records [{}, {}) failed: {}; rolling back",
                  options_.dir.string(), segments_[open0].first_index + records0, next_index(),
                  e.what());
    rollback_commit(open0, fd0, bytes0, records0);
    throw;
  }
  for (std::size_t i = open0; i < segments_.size(); ++i) {
    segments_[i].committed_bytes = segments_[i].bytes;
    segments_[i].committed_records = segments_[i].records;
  }
  if (fd_ != fd0) close_quietly(fd0);  // finished and synced (unless kNever) above
  pending_size_ = 0;
  healthy_ = true;
}

void ObservationLog::rollback_commit(std::size_t open0, int fd0, std::uint64_t bytes0,
                                     std::uint64_t records0) {
  pending_size_ = 0;
  const auto path0 = segment_path(segments_[open0].first_index);
  try {
    // Segments this commit created go away; the previous one becomes active again.
    if (fd_ != fd0) close_quietly(fd_);
    fd_ = fd0;
    open_ = open0;
    std::vector<std::filesystem::path> created;
    for (std::size_t i = open0 + 1; i < segments_.size(); ++i) {
      if (segments_[i].created) created.push_back(segment_path(segments_[i].first_index));
    }
    if (segments_.size() > open0 + 1 && segments_[open0 + 1].by_roll) roll_requested_ = true;
    segments_.resize(open0 + 1);
    Segment& seg = segments_[open0];
    seg.records = seg.committed_records = records0;
    seg.bytes = seg.committed_bytes = bytes0;
    for (const auto& path : created) {
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno(errno, "cannot remove", path);
    }
    truncate_fd(fd0, bytes0, path0);
    if (!unsynced_) {
      unsynced_ = true;
      unsynced_since_ = std::chrono::steady_clock::now();
    }
    if (options_.sync != SyncPolicy::kNever) {
      if (!created.empty()) fsync_dir();
      // Best effort: make the truncation durable now; if this fails too, the next commit or
      // sync_if_due() tries again (the discarded records were never acknowledged either way).
      try {
        datasync_active();
      } catch (const std::exception& e) {
        spdlog::warn("observation log {}: after rolling back: {}", options_.dir.string(), e.what());
      }
    }
  } catch (const std::exception& e) {
    broken_ = true;
    last_error_ += fmt::format("; rolling back failed too: {}", e.what());
    spdlog::error(
        "observation log {}: rolling back a failed commit failed: {}; the log must be "
        "reopened",
        options_.dir.string(), e.what());
  }
}

void ObservationLog::sync() {
  check_usable();
  if (!unsynced_) return;
  try {
    datasync_active();
  } catch (const std::exception& e) {
    record_failure(e);
    throw;
  }
  healthy_ = true;
}

void ObservationLog::sync_if_due() {
  if (options_.sync == SyncPolicy::kNever || !unsynced_ || broken_) return;
  if (unsynced_age_seconds() < options_.sync_interval_seconds) return;
  sync();
}

double ObservationLog::unsynced_age_seconds() const {
  if (!unsynced_) return 0.0;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - unsynced_since_).count();
}

void ObservationLog::write_all(const std::byte* data, std::size_t n) {
  if (n == 0) return;
  if (!unsynced_) {  // even a failed write may have reached the file
    unsynced_ = true;
    unsynced_since_ = std::chrono::steady_clock::now();
  }
  write_fd_all(fd_, data, n, segment_path(segments_[open_].first_index));
}

void ObservationLog::datasync_active() {
  datasync_fd(fd_, segment_path(segments_[open_].first_index));
  ++syncs_;
  unsynced_ = false;
}

void ObservationLog::fsync_dir() {
  while (::fsync(dir_fd_) != 0) {
    if (errno != EINTR) throw_errno(errno, "fsync failed on directory", options_.dir);
  }
}

void ObservationLog::replay(const Visitor& visit) const {
  replay_from(first_index(), visit);
}

void ObservationLog::replay_from(std::uint64_t first, const Visitor& visit) const {
  const Visitor skip_before = [&](const LogRecordView& r) {
    if (r.index >= first) visit(r);
  };
  for (const Segment& seg : segments_) {
    if (!seg.created) break;
    if (seg.first_index + seg.committed_records <= first) continue;  // wholly before `first`
    const auto path = segment_path(seg.first_index);
    const int fd = open_or_throw(path, O_RDONLY);
    try {
      const Visitor* v = seg.first_index >= first ? &visit : &skip_before;
      const ScanResult scan = scan_records(fd, path, seg.first_index, seg.committed_bytes, v);
      if (!scan.problem.empty()) {
        throw std::runtime_error(fmt::format(
            "observation log: replay: {} at byte offset {} (record index {}): {}", path.string(),
            scan.valid_end, seg.first_index + scan.records, scan.problem));
      }
    } catch (...) {
      close_quietly(fd);
      throw;
    }
    close_quietly(fd);
  }
}

std::uint64_t ObservationLog::records() const {
  return next_index() - first_index();
}

std::uint64_t ObservationLog::bytes() const {
  std::uint64_t total = 0;
  for (const Segment& seg : segments_)
    total += seg.bytes;
  return total;
}

std::size_t ObservationLog::segments() const {
  return segments_.size();
}

std::vector<std::uint64_t> ObservationLog::segment_first_indices() const {
  std::vector<std::uint64_t> firsts;
  firsts.reserve(segments_.size());
  for (const Segment& seg : segments_)
    firsts.push_back(seg.first_index);
  return firsts;
}

std::uint64_t ObservationLog::first_index() const {
  return segments_.front().first_index;
}

std::uint64_t ObservationLog::next_index() const {
  return segments_.back().first_index + segments_.back().records;
}

void ObservationLog::remove_segments_before(std::uint64_t first_kept) {
  check_usable();
  std::size_t removed = 0;
  const auto forget_removed = [&] {
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(removed));
    open_ -= removed;
  };
  while (removed < open_ &&
         segments_[removed].first_index + segments_[removed].records <= first_kept) {
    const auto path = segment_path(segments_[removed].first_index);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      const int err = errno;
      forget_removed();
      throw_errno(err, "cannot remove", path);
    }
    ++removed;
  }
  if (removed == 0) return;
  forget_removed();
  fsync_dir();
  spdlog::info("observation log {}: removed {} segment(s); records now start at index {}",
               options_.dir.string(), removed, first_index());
}

}  // namespace rtda::server
