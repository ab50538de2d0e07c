// The coordinator's durable observation log (architecture.md §4): append-only, segmented,
// every record length-prefixed and checksummed, a torn tail truncated on open, acks after
// fdatasync according to a configurable policy, and group commit (one write + one fdatasync
// for any number of appends).
//
// On-disk format (all integers little-endian):
//
//   <dir>/segment-<first record index, 16 lower-case hex digits>.log
//
//   segment  := header record*
//   header   := "RTDALOG1" (8 bytes)  u64 first record index            (16 bytes)
//   record   := u32 payload length    u32 CRC32C(payload)   payload      (8 + length bytes)
//
// Record indices are global over segments: segment k+1 starts at the index after the last
// record of segment k. A payload is 1 to kMaxRecordBytes (256 MiB) bytes; any other length field
// in a file is corruption. (Empty payloads are refused because the CRC32C of nothing is 0: a
// zero-filled tail, which some file systems leave after a power loss, would otherwise parse as a
// run of valid empty records.) CRC32C is the Castagnoli CRC (iSCSI, RFC 3720): initial value
// and final xor 0xFFFFFFFF, reflected, polynomial 0x82F63B78.
//
// Recovery on open: every record of every segment is verified. A short, torn or corrupt tail of
// the LAST segment is what a crash during a write leaves behind; it is truncated (with a
// warning) and appending continues after the last good record. Anything wrong in an earlier
// segment was durable once and cannot be repaired automatically, so open throws.
//
// Not thread-safe: one writer (the coordinator's ingest thread) owns the object. The directory
// is locked (flock) while open, so a second ObservationLog on it, in this or another process, is
// refused.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace rtda::server {

enum class SyncPolicy {
  kAlways,    // commit() returns only after fdatasync
  kInterval,  // commit() write()s; fdatasync at most every sync_interval_seconds
  kNever      // leave write-back to the OS (data survive a process crash, not a power loss)
};

// Parses the configuration strings "always" | "interval" | "never"; anything else throws
// std::invalid_argument naming the value and the choices.
SyncPolicy sync_policy_from_string(std::string_view s);
std::string_view to_string(SyncPolicy policy);

struct LogOptions {
  std::filesystem::path dir;                  // created if missing
  std::uint64_t segment_bytes = 64ull << 20;  // roll to a new segment rather than exceed this
  SyncPolicy sync = SyncPolicy::kAlways;
  // kInterval only. There is no background thread: the interval is checked at commit(); an
  // owner that may go idle calls sync() from its own timer.
  double sync_interval_seconds = 0.05;
};

struct LogRecordView {
  std::uint64_t index;
  std::span<const std::byte> payload;
};

class ObservationLog {
 public:
  static constexpr std::uint64_t kMaxRecordBytes = 256ull << 20;
  static constexpr std::uint64_t kHeaderBytes = 16;
  static constexpr std::uint64_t kRecordOverheadBytes = 8;

  // Opens or creates the log in options.dir (see the recovery rules above). Throws
  // std::invalid_argument for bad options, std::runtime_error for unrecoverable corruption
  // (naming the file, byte offset and record index) and std::system_error for I/O errors
  // (naming the path).
  explicit ObservationLog(LogOptions options);
  // Commits what is buffered and fdatasyncs, whatever the policy. Errors are logged, not thrown.
  ~ObservationLog();
  ObservationLog(const ObservationLog&) = delete;
  ObservationLog& operator=(const ObservationLog&) = delete;

  // Visits every committed record in index order, re-reading and re-verifying the files.
  // Records appended but not yet committed are not visited.
  void replay(const std::function<void(const LogRecordView&)>& visit) const;

  // Buffers one record (one memcpy); returns its index (0-based, global over segments).
  // Throws std::invalid_argument if the payload is empty or exceeds kMaxRecordBytes.
  std::uint64_t append(std::span<const std::byte> payload);

  // Writes all buffered records (one write() per segment touched) and makes them durable
  // according to the policy: under kAlways it returns once they are on stable storage.
  void commit();

  // Forces an fdatasync of the active segment if anything written is not yet synced.
  void sync();

  // Records and bytes (headers included) in the retained segments, counting appended records
  // that are not yet committed.
  std::uint64_t records() const;
  std::uint64_t bytes() const;
  std::size_t segments() const;
  std::uint64_t first_index() const;  // index of the oldest retained record
  std::uint64_t next_index() const;   // index the next append() will return
  std::uint64_t truncated_bytes() const { return truncated_bytes_; }  // dropped at open
  std::uint64_t syncs() const { return syncs_; }  // fdatasync calls on segment files so far

  // Deletes whole segments whose records all have index < first_kept (retention after a
  // checkpoint), oldest first. Never deletes the active segment.
  void remove_segments_before(std::uint64_t first_kept);

 private:
  struct Segment {
    std::uint64_t first_index = 0;
    std::uint64_t records = 0;          // including appended, not yet committed ones
    std::uint64_t bytes = 0;            // including the header and uncommitted records
    std::uint64_t committed_bytes = 0;  // what is in the file
    bool created = false;               // the file exists
  };

  std::filesystem::path segment_path(std::uint64_t first_index) const;
  void open_existing(const std::vector<std::uint64_t>& firsts);
  void create_segment(std::size_t i);
  void write_all(const std::byte* data, std::size_t n);
  void datasync_active();
  void fsync_dir();
  void check_usable() const;

  LogOptions options_;
  int dir_fd_ = -1;  // held open for the lock and for directory fsyncs
  int fd_ = -1;      // the active (open) segment, segments_[open_]
  std::size_t open_ = 0;
  std::vector<Segment> segments_;

  // Records appended since the last commit, already in on-disk form.
  std::unique_ptr<std::byte[]> pending_;
  std::size_t pending_size_ = 0;
  std::size_t pending_capacity_ = 0;

  bool unsynced_ = false;  // written to fd_ since its last fdatasync
  bool failed_ = false;    // an I/O error left the tail state unknown; reopen to recover
  std::chrono::steady_clock::time_point last_sync_;
  std::uint64_t truncated_bytes_ = 0;
  std::uint64_t syncs_ = 0;
};

// CRC32C (Castagnoli). crc32c() dispatches once to the SSE4.2 instruction when the CPU has it,
// else to the table-driven version; the two are exposed so tests can compare them.
std::uint32_t crc32c(std::span<const std::byte> data);
std::uint32_t crc32c_software(std::span<const std::byte> data);
bool crc32c_hardware_available();
// Precondition: crc32c_hardware_available().
std::uint32_t crc32c_hardware(std::span<const std::byte> data);

}  // namespace rtda::server
