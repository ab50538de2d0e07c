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

#include "server/byte_order.hpp"
#include "server/log_io.hpp"

namespace rtda::server {

using namespace log_io;

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
                 config::kLogSyncNames.name(options_.sync));
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
