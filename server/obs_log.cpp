// Observation log: see obs_log.hpp for the format and the recovery rules.
#include "server/obs_log.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
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

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const std::byte* p, std::size_t n) {
  std::uint64_t c = 0xFFFFFFFFu;
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);  // the instruction takes the word in host (little-endian) order
    c = _mm_crc32_u64(c, w);
  }
  auto c32 = static_cast<std::uint32_t>(c);
  for (; n > 0; ++p, --n)
    c32 = _mm_crc32_u8(c32, std::to_integer<std::uint8_t>(*p));
  return ~c32;
}
#endif

using Crc32cFn = std::uint32_t (*)(std::span<const std::byte>);

Crc32cFn select_crc32c() {
  return crc32c_hardware_available() ? &crc32c_hardware : &crc32c_software;
}

}  // namespace

std::uint32_t crc32c_software(std::span<const std::byte> data) {
  const auto& t = kCrc32cTables;
  const std::byte* p = data.data();
  std::size_t n = data.size();
  std::uint32_t c = 0xFFFFFFFFu;
  for (; n >= 8; p += 8, n -= 8) {
    const std::uint32_t lo = c ^ load_u32_le(p);
    const std::uint32_t hi = load_u32_le(p + 4);
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n)
    c = (c >> 8) ^ t[0][(c ^ std::to_integer<std::uint32_t>(*p)) & 0xFF];
  return ~c;
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
  return crc32c_sse42(data.data(), data.size());
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
      segments_.push_back(Segment{0, 0, kHeaderBytes, 0, false});
      create_segment(0);
    } else {
      open_existing(firsts);
    }
    last_sync_ = std::chrono::steady_clock::now();
    spdlog::info("observation log {}: {} segment(s), records [{}, {}), {} bytes, sync {}",
                 options_.dir.string(), segments_.size(), first_index(), next_index(), bytes(),
                 to_string(options_.sync));
  } catch (...) {
    close_quietly(fd_);
    close_quietly(dir_fd_);  // also releases the lock
    throw;
  }
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
      Segment seg{firsts[i], 0, kHeaderBytes, kHeaderBytes, true};

      if (got < kHeaderBytes || header_zero) {
        // A crash between creating the file and its first fdatasync: nothing in it was acked.
        if (!last) {
          throw std::runtime_error(
              corruption_message(path, 0, firsts[i], "missing or zeroed segment header"));
        }
        spdlog::warn(
            "observation log: {} has a torn header; dropping its {} bytes and rewriting the header",
            path.string(), size);
        truncate_fd(fd, 0, path);
        std::array<std::byte, kHeaderBytes> fresh{};
        std::memcpy(fresh.data(), kMagic.data(), kMagic.size());
        store_u64_le(fresh.data() + 8, firsts[i]);
        write_fd_all(fd, fresh.data(), fresh.size(), path);
        unsynced_ = true;
        truncated_bytes_ += size;
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
        seg.records = scan.records;
        seg.bytes = seg.committed_bytes = scan.valid_end;
        if (!scan.problem.empty()) {
          const std::uint64_t index = firsts[i] + scan.records;
          if (!last)
            throw std::runtime_error(corruption_message(path, scan.valid_end, index, scan.problem));
          const std::uint64_t dropped = size - scan.valid_end;
          spdlog::warn(
              "observation log: torn tail in {} at byte offset {} (record index {}): {}; "
              "truncating, {} bytes dropped",
              path.string(), scan.valid_end, index, scan.problem, dropped);
          truncate_fd(fd, scan.valid_end, path);
          unsynced_ = true;
          truncated_bytes_ += dropped;
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

ObservationLog::~ObservationLog() {
  try {
    if (!failed_) {
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
  if (failed_) {
    throw std::runtime_error(
        fmt::format("observation log {}: unusable after an earlier I/O error; reopen it to recover",
                    options_.dir.string()));
  }
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

  // Roll rather than exceed segment_bytes, but never leave a segment empty.
  if (segments_.back().records > 0 && segments_.back().bytes + total > options_.segment_bytes) {
    const std::uint64_t next = next_index();
    segments_.push_back(Segment{next, 0, kHeaderBytes, 0, false});
  }
  Segment& seg = segments_.back();
  const std::uint64_t index = seg.first_index + seg.records;
  ++seg.records;
  seg.bytes += total;
  return index;
}

void ObservationLog::commit() {
  check_usable();
  if (pending_size_ == 0) return;
  try {
    std::size_t offset = 0;
    for (std::size_t i = open_; i < segments_.size(); ++i) {
      if (i != open_) {
        // Rolling: the finished segment can no longer be synced once closed.
        if (options_.sync != SyncPolicy::kNever) datasync_active();
        const int old_fd = std::exchange(fd_, -1);
        if (::close(old_fd) != 0 && errno != EINTR) {
          throw_errno(errno, "close failed on", segment_path(segments_[open_].first_index));
        }
        create_segment(i);
      }
      Segment& seg = segments_[i];
      const std::uint64_t n = seg.bytes - seg.committed_bytes;
      write_all(pending_.get() + offset, static_cast<std::size_t>(n));
      offset += static_cast<std::size_t>(n);
      seg.committed_bytes = seg.bytes;
    }
    pending_size_ = 0;
    switch (options_.sync) {
      case SyncPolicy::kAlways:
        datasync_active();
        break;
      case SyncPolicy::kInterval:
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - last_sync_).count() >=
            options_.sync_interval_seconds) {
          datasync_active();
        }
        break;
      case SyncPolicy::kNever:
        break;
    }
  } catch (...) {
    // The file tail and our bookkeeping may disagree, and after a failed fdatasync the page
    // cache may have dropped the data: only a reopen (which re-verifies) is safe.
    failed_ = true;
    throw;
  }
}

void ObservationLog::sync() {
  check_usable();
  if (!unsynced_) return;
  try {
    datasync_active();
  } catch (...) {
    failed_ = true;
    throw;
  }
}

void ObservationLog::write_all(const std::byte* data, std::size_t n) {
  if (n == 0) return;
  unsynced_ = true;  // even a failed write may have reached the file
  write_fd_all(fd_, data, n, segment_path(segments_[open_].first_index));
}

void ObservationLog::datasync_active() {
  datasync_fd(fd_, segment_path(segments_[open_].first_index));
  ++syncs_;
  unsynced_ = false;
  last_sync_ = std::chrono::steady_clock::now();
}

void ObservationLog::fsync_dir() {
  while (::fsync(dir_fd_) != 0) {
    if (errno != EINTR) throw_errno(errno, "fsync failed on directory", options_.dir);
  }
}

void ObservationLog::replay(const std::function<void(const LogRecordView&)>& visit) const {
  for (std::size_t i = 0; i < segments_.size(); ++i) {
    const Segment& seg = segments_[i];
    if (!seg.created) break;
    const auto path = segment_path(seg.first_index);
    const int fd = open_or_throw(path, O_RDONLY);
    try {
      const ScanResult scan = scan_records(fd, path, seg.first_index, seg.committed_bytes, &visit);
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

std::uint64_t ObservationLog::first_index() const {
  return segments_.front().first_index;
}

std::uint64_t ObservationLog::next_index() const {
  return segments_.back().first_index + segments_.back().records;
}

void ObservationLog::remove_segments_before(std::uint64_t first_kept) {
  check_usable();
  std::size_t removed = 0;
  while (removed < open_ &&
         segments_[removed].first_index + segments_[removed].records <= first_kept) {
    const auto path = segment_path(segments_[removed].first_index);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno(errno, "cannot remove", path);
    ++removed;
  }
  if (removed == 0) return;
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(removed));
  open_ -= removed;
  fsync_dir();
  spdlog::info("observation log {}: removed {} segment(s); records now start at index {}",
               options_.dir.string(), removed, first_index());
}

}  // namespace rtda::server
