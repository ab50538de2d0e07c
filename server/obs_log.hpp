// The coordinator's durable observation log (docs/architecture.md §4): append-only, segmented,
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
// Recovery on open: every record of every segment is verified. Anything wrong in an earlier
// segment was durable once and cannot be repaired automatically, so open throws. In the LAST
// segment, a bad record (short, bad length field, CRC mismatch) at byte offset B is classified:
//
//   * torn tail: no valid record starts at any byte offset after B. This is what a crash during
//     a write leaves behind (a partial record, a zero-filled tail, stale or random bytes after
//     the last good record). The file is truncated to B (with a warning) and appending continues.
//   * corruption: some offset P > B holds a valid record (length 1..kMaxRecordBytes that fits
//     in the file, stored CRC32C == CRC32C of its payload). Records after a damaged one were
//     written, and possibly acknowledged, after it, so truncating would silently drop acked
//     data: open throws std::runtime_error naming the file, B, the record index of the damaged
//     record and P, and leaves the file untouched (unless LogOptions::truncate_corrupt_tail).
//
// The scan for a later valid record considers every byte offset after B, exactly (no sampling,
// no budget), in O(n) time and about 1.25 n bytes of memory for an n-byte remainder, however
// large the candidate lengths: one pass computes the CRC32C of every prefix of the remainder
// (kept every 16 bytes, the rest recomputed from the nearest one), and the CRC of any span
// [a, b) then follows from the prefix CRCs by the CRC combination rule,
//   crc(data[a, b)) = crc(data[0, b)) xor (crc(data[0, a)) * x^(8 (b - a)) mod P),
// with x^(8 L) mod P from two tables (x^(8 d) for d < 2^16 and x^(8 d 2^16) for d <= 2^12: one
// or two carry-less multiplications modulo P per candidate). Only offsets whose length field
// is plausible (1..kMaxRecordBytes and inside the file) are candidates, about n / 128 of them
// in random bytes; offsets are pre-screened 8 at a time on the length's top byte, and each
// candidate's record end is prefetched a few candidates ahead. A 64 MiB tail of random garbage
// is classified in 0.15-0.3 s on a loaded 2-core VM (reading it included). False
// positive: random bytes pass a candidate's CRC with probability 2^-32, so a garbage tail of
// n bytes is taken for corruption with probability about n / 2^39 (1e-4 for 64 MiB). That
// errs on the safe side (open refuses; nothing is dropped). Note that a power loss under
// "interval"/"never" sync (or a device that reorders the pages of one unsynced write) can leave
// a zero-filled hole followed by valid records that were never acknowledged; this is reported
// as corruption too, since the log cannot tell it from damage to acknowledged records.
//
// I/O errors (disk full, EFBIG, EIO) leave the log usable. A failed commit() throws
// std::system_error naming the file and the errno text; none of its records count as
// committed: every file it touched is truncated back to its committed size, segment files it
// created are removed, and the pending buffer is discarded, so the next append() reuses the
// indices of the discarded records. The log stays consistent (healthy() is false until the next
// successful commit or sync; last_error() says what happened) and a later commit() works once
// the disk has room again. Only if that rollback itself fails (truncating the file, or removing
// a segment file it created) does the log become unusable: needs_reopen() is true and
// every append/commit/sync throws until the owner destroys and reopens it (reopening repairs
// the tail as above).
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
#include <string>
#include <string_view>
#include <vector>

#include "config/log_sync.hpp"
#include "server/crc32c.hpp"

namespace rtda::server {

// When commit() makes the records durable (config/log_sync.hpp: the setting server.log_sync).
using SyncPolicy = config::LogSync;

struct LogOptions {
  std::filesystem::path dir;                  // created if missing
  std::uint64_t segment_bytes = 64ull << 20;  // roll to a new segment rather than exceed this
  SyncPolicy sync = SyncPolicy::kAlways;
  // kInterval only: the longest a written record stays without fdatasync, provided the owner
  // calls sync_if_due() at least that often (there is no background thread; commit() also syncs
  // when the interval has passed).
  double sync_interval_seconds = 0.05;
  // Operator override for the corruption case of the recovery rules: truncate the last segment
  // at the damaged record even though valid records follow it (they are dropped, with an error
  // logged). Off by default: open throws instead.
  bool truncate_corrupt_tail = false;
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

  using Visitor = std::function<void(const LogRecordView&)>;

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
  // Records appended but not yet committed are not visited. Same as replay_from(first_index()).
  void replay(const Visitor& visit) const;
  // Visits the committed records with index >= first, in index order. Segments that end before
  // `first` are not read at all; in the segment containing it, the earlier records are read and
  // verified but not visited. A `first` below first_index() starts at first_index(); one at or
  // past the last committed record visits nothing.
  void replay_from(std::uint64_t first, const Visitor& visit) const;

  // Buffers one record (one memcpy); returns its index (0-based, global over segments).
  // Throws std::invalid_argument if the payload is empty or exceeds kMaxRecordBytes, and
  // std::runtime_error if needs_reopen().
  std::uint64_t append(std::span<const std::byte> payload);

  // Writes all buffered records (one write() per segment touched) and makes them durable
  // according to the policy: under kAlways it returns once they are on stable storage. On an
  // I/O error (write, fdatasync, creating a segment) it throws std::system_error naming the
  // file and the errno text, and rolls back: none of the buffered records is committed, the
  // files are truncated back to their committed size, and the buffer is discarded (the next
  // append() gets the index the first discarded record had). The log stays usable. With nothing
  // buffered it does no I/O, except that when !healthy() and something written is unsynced
  // (kAlways/kInterval) it retries the fdatasync, so a successful commit() means "durable again".
  void commit();

  // Forces an fdatasync of the active segment if anything written is not yet synced (any
  // policy). Throws std::system_error on failure (the records stay committed; see healthy()).
  void sync();
  // kAlways/kInterval: fdatasync if something written is unsynced and sync_interval_seconds
  // have passed since the write that made it unsynced; otherwise (and always under kNever)
  // nothing. Cheap when nothing is due (a clock read); meant for the owner's event loop.
  // Throws like sync().
  void sync_if_due();
  // Seconds since the first write that is not yet synced; 0 when everything written is synced.
  double unsynced_age_seconds() const;

  // Makes the next append() start a new segment (compaction: a base record at the start of a
  // segment, so the older segments can go). No-op if the active segment has no records. The
  // new segment file is created by the commit() that writes its first record.
  void roll();

  // State for the owner: healthy() is false after a failed commit()/sync() until the next
  // successful one; last_error() is the message of the most recent failure (empty if none).
  // needs_reopen() is true only if rolling back a failure failed too (see the header comment).
  bool healthy() const { return healthy_; }
  bool needs_reopen() const { return broken_; }
  const std::string& last_error() const { return last_error_; }

  // Records and bytes (headers included) in the retained segments, counting appended records
  // that are not yet committed.
  std::uint64_t records() const;
  std::uint64_t bytes() const;
  std::size_t segments() const;
  // First record index of each retained segment, oldest first (segments() entries; the last may
  // exist only in memory until its first record is committed).
  std::vector<std::uint64_t> segment_first_indices() const;
  std::uint64_t first_index() const;  // index of the oldest retained record
  std::uint64_t next_index() const;   // index the next append() will return
  std::uint64_t truncated_bytes() const { return truncated_bytes_; }  // dropped at open
  std::uint64_t syncs() const { return syncs_; }  // fdatasync calls on segment files so far

  // Deletes whole segments whose records all have index < first_kept (retention after a
  // checkpoint), oldest first, then fsyncs the directory. Never deletes the active segment
  // (the one being written; after roll() it is still the old one until the next commit()).
  // Throws std::system_error if a file cannot be removed (the ones removed before stay removed).
  void remove_segments_before(std::uint64_t first_kept);

 private:
  struct Segment {
    std::uint64_t first_index = 0;
    std::uint64_t records = 0;            // including appended, not yet committed ones
    std::uint64_t bytes = 0;              // including the header and uncommitted records
    std::uint64_t committed_bytes = 0;    // what is in the file
    std::uint64_t committed_records = 0;  // records in the file
    bool created = false;                 // the file exists
    bool by_roll = false;                 // started by roll() rather than by size
  };

  static Segment new_segment(std::uint64_t first_index);

  std::filesystem::path segment_path(std::uint64_t first_index) const;
  void open_existing(const std::vector<std::uint64_t>& firsts);
  void recover_last_tail(int fd, const std::filesystem::path& path, Segment& seg,
                         std::uint64_t size, std::uint64_t records_end, const std::string& problem);
  void create_segment(std::size_t i);
  void write_all(const std::byte* data, std::size_t n);
  void datasync_active();
  void fsync_dir();
  void check_usable() const;
  void rollback_commit(std::size_t open0, int fd0, std::uint64_t committed_bytes0,
                       std::uint64_t committed_records0);
  void record_failure(const std::exception& e);

  LogOptions options_;
  int dir_fd_ = -1;  // held open for the lock and for directory fsyncs
  int fd_ = -1;      // the active (open) segment, segments_[open_]
  std::size_t open_ = 0;
  std::vector<Segment> segments_;

  // Records appended since the last commit, already in on-disk form.
  std::unique_ptr<std::byte[]> pending_;
  std::size_t pending_size_ = 0;
  std::size_t pending_capacity_ = 0;

  bool roll_requested_ = false;  // roll(): the next append() opens a new segment
  bool unsynced_ = false;        // written to fd_ since its last fdatasync
  std::chrono::steady_clock::time_point unsynced_since_;  // the write that set unsynced_
  bool healthy_ = true;
  bool broken_ = false;  // a rollback failed: the tail state is unknown; reopen to recover
  std::string last_error_;
  std::uint64_t truncated_bytes_ = 0;
  std::uint64_t syncs_ = 0;
};

}  // namespace rtda::server
