// Specification of the observation log (server/obs_log.hpp): format, recovery, retention,
// sync policy and CRC32C.
#include "server/obs_log.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using rtda::server::LogOptions;
using rtda::server::LogRecordView;
using rtda::server::ObservationLog;
using rtda::server::SyncPolicy;
using Bytes = std::vector<std::byte>;

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("rtda-obs-log-" + std::string(info ? info->name() : "test") + "-" +
             std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A generator with a fresh seed that is printed, so a failure can be reproduced.
std::mt19937_64 seeded_rng() {
  const std::uint64_t seed = std::random_device{}();
  std::cout << "[ seed     ] " << seed << "\n";
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return std::mt19937_64(seed);
}

Bytes random_bytes(std::mt19937_64& rng, std::size_t n) {
  Bytes b(n);
  for (auto& x : b)
    x = static_cast<std::byte>(rng());
  return b;
}

Bytes text(std::string_view s) {
  Bytes b(s.size());
  std::transform(s.begin(), s.end(), b.begin(), [](char c) { return static_cast<std::byte>(c); });
  return b;
}

LogOptions options_for(const fs::path& dir, std::uint64_t segment_bytes = 64ull << 20,
                       SyncPolicy sync = SyncPolicy::kAlways) {
  LogOptions o;
  o.dir = dir;
  o.segment_bytes = segment_bytes;
  o.sync = sync;
  return o;
}

struct Replayed {
  std::vector<std::uint64_t> indices;
  std::vector<Bytes> payloads;
};

Replayed replay_all(const ObservationLog& log) {
  Replayed r;
  log.replay([&](const LogRecordView& v) {
    r.indices.push_back(v.index);
    r.payloads.emplace_back(v.payload.begin(), v.payload.end());
  });
  return r;
}

std::vector<fs::path> segment_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().starts_with("segment-")) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void append_to_file(const fs::path& file, const Bytes& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::app);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << file;
}

void flip_byte(const fs::path& file, std::uint64_t offset) {
  std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5A);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
  ASSERT_TRUE(f.good()) << file << " offset " << offset;
}

// Writes `count` committed records of random sizes in [1, max_size] and returns them.
std::vector<Bytes> write_records(ObservationLog& log, std::mt19937_64& rng, int count,
                                 std::size_t max_size) {
  std::vector<Bytes> written;
  std::uniform_int_distribution<std::size_t> size(1, max_size);
  for (int i = 0; i < count; ++i) {
    written.push_back(random_bytes(rng, size(rng)));
    log.append(written.back());
    if (i % 7 == 6) log.commit();  // a mix of group sizes
  }
  log.commit();
  return written;
}

// ---------------------------------------------------------------- CRC32C

TEST(Crc32c, AllImplementationsGiveTheStandardCheckValue) {
  // The CRC-32C check value from RFC 3720 / the CRC catalogue.
  const Bytes check = text("123456789");
  EXPECT_EQ(rtda::server::crc32c_software(check), 0xE3069283u);
  EXPECT_EQ(rtda::server::crc32c(check), 0xE3069283u);
  if (!rtda::server::crc32c_hardware_available()) GTEST_SKIP() << "no SSE4.2 on this CPU";
  EXPECT_EQ(rtda::server::crc32c_hardware(check), 0xE3069283u);
}

TEST(Crc32c, HardwareAndSoftwareAgreeOnRandomBuffersOfAnyLengthAndAlignment) {
  if (!rtda::server::crc32c_hardware_available()) GTEST_SKIP() << "no SSE4.2 on this CPU";
  auto rng = seeded_rng();
  const Bytes big = random_bytes(rng, 1 << 16);
  std::uniform_int_distribution<std::size_t> offset(0, 15), length(0, 5000);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::span<const std::byte> s(big.data() + offset(rng), length(rng));
    ASSERT_EQ(rtda::server::crc32c_hardware(s), rtda::server::crc32c_software(s))
        << "trial " << trial << " length " << s.size();
  }
  EXPECT_EQ(rtda::server::crc32c_hardware(big), rtda::server::crc32c_software(big));
}

// ---------------------------------------------------------------- sync policy

TEST(SyncPolicy, ParsesTheConfigurationStringsAndPrintsThemBack) {
  for (const char* s : {"always", "interval", "never"}) {
    EXPECT_EQ(rtda::server::to_string(rtda::server::sync_policy_from_string(s)), s);
  }
  EXPECT_EQ(rtda::server::sync_policy_from_string("interval"), SyncPolicy::kInterval);
}

TEST(SyncPolicy, RejectsAnUnknownValueNamingItAndTheChoices) {
  try {
    rtda::server::sync_policy_from_string("sometimes");
    FAIL() << "\"sometimes\" was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("sometimes"), std::string::npos) << msg;
    for (const char* choice : {"always", "interval", "never"}) {
      EXPECT_NE(msg.find(choice), std::string::npos) << msg;
    }
  }
}

// ---------------------------------------------------------------- round trip

TEST(ObservationLog, RoundTripsRandomSizedRecordsAcrossSegmentsAndAfterReopen) {
  TempDir dir;
  auto rng = seeded_rng();
  std::vector<Bytes> written;
  {
    ObservationLog log(options_for(dir.path(), 4096));
    written = write_records(log, rng, 300, 700);
    EXPECT_GE(log.segments(), 10u);
    EXPECT_EQ(log.records(), 300u);
    const Replayed r = replay_all(log);
    EXPECT_EQ(r.payloads, written);
  }
  ObservationLog reopened(options_for(dir.path(), 4096));
  EXPECT_EQ(reopened.truncated_bytes(), 0u);
  EXPECT_EQ(reopened.records(), 300u);
  EXPECT_EQ(reopened.segments(), segment_files(dir.path()).size());
  const Replayed r = replay_all(reopened);
  EXPECT_EQ(r.payloads, written);
  for (std::size_t i = 0; i < r.indices.size(); ++i)
    ASSERT_EQ(r.indices[i], i);
  // No segment exceeds segment_bytes when every record fits in one.
  for (const auto& f : segment_files(dir.path()))
    EXPECT_LE(fs::file_size(f), 4096u) << f;
}

TEST(ObservationLog, RecordLargerThanASegmentGetsASegmentOfItsOwn) {
  TempDir dir;
  auto rng = seeded_rng();
  const Bytes small = random_bytes(rng, 10), large = random_bytes(rng, 10000);
  {
    ObservationLog log(options_for(dir.path(), 1024));
    EXPECT_EQ(log.append(small), 0u);
    EXPECT_EQ(log.append(large), 1u);
    EXPECT_EQ(log.append(small), 2u);
    log.commit();
    EXPECT_EQ(log.segments(), 3u);
  }
  ObservationLog log(options_for(dir.path(), 1024));
  EXPECT_EQ(replay_all(log).payloads, (std::vector<Bytes>{small, large, small}));
}

TEST(ObservationLog, ReplayVisitsOnlyCommittedRecords) {
  TempDir dir;
  ObservationLog log(options_for(dir.path()));
  log.append(text("committed"));
  log.commit();
  log.append(text("buffered"));
  EXPECT_EQ(log.records(), 2u);
  EXPECT_EQ(replay_all(log).payloads, std::vector<Bytes>{text("committed")});
  log.commit();
  EXPECT_EQ(replay_all(log).payloads, (std::vector<Bytes>{text("committed"), text("buffered")}));
}

TEST(ObservationLog, DestructorCommitsBufferedRecords) {
  TempDir dir;
  {
    ObservationLog log(options_for(dir.path(), 1 << 20, SyncPolicy::kNever));
    log.append(text("a"));
    log.append(text("b"));
  }
  ObservationLog log(options_for(dir.path()));
  EXPECT_EQ(replay_all(log).payloads, (std::vector<Bytes>{text("a"), text("b")}));
}

TEST(ObservationLog, IndicesContinueAfterReopen) {
  TempDir dir;
  for (std::uint64_t round = 0; round < 3; ++round) {
    ObservationLog log(options_for(dir.path(), 64));
    EXPECT_EQ(log.next_index(), 5 * round);
    for (std::uint64_t k = 0; k < 5; ++k)
      EXPECT_EQ(log.append(text("record")), 5 * round + k);
    log.commit();
  }
  ObservationLog log(options_for(dir.path(), 64));
  const Replayed r = replay_all(log);
  ASSERT_EQ(r.indices.size(), 15u);
  for (std::uint64_t i = 0; i < 15; ++i)
    EXPECT_EQ(r.indices[i], i);
}

TEST(ObservationLog, RefusesEmptyPayloads) {
  TempDir dir;
  ObservationLog log(options_for(dir.path()));
  EXPECT_THROW(log.append({}), std::invalid_argument);
  EXPECT_EQ(log.records(), 0u);
}

TEST(ObservationLog, SecondOpenOfTheSameDirectoryIsRefused) {
  TempDir dir;
  ObservationLog log(options_for(dir.path()));
  EXPECT_THROW(ObservationLog second(options_for(dir.path())), std::runtime_error);
}

// ---------------------------------------------------------------- torn tail

// Writes records 0..count-1 of size `size` into one segment; returns the segment file.
fs::path single_segment_log(const fs::path& dir, std::mt19937_64& rng, int count, std::size_t size,
                            std::vector<Bytes>& written) {
  ObservationLog log(options_for(dir));
  for (int i = 0; i < count; ++i) {
    written.push_back(random_bytes(rng, size));
    log.append(written.back());
  }
  log.commit();
  return segment_files(dir).back();
}

// Reopens a damaged log and checks it kept `kept` records, dropped `dropped` bytes, and appends
// and replays correctly afterwards.
void expect_recovers(const fs::path& dir, std::mt19937_64& rng, std::vector<Bytes> written,
                     std::size_t kept, std::uint64_t dropped) {
  written.resize(kept);
  {
    ObservationLog log(options_for(dir));
    EXPECT_EQ(log.truncated_bytes(), dropped);
    EXPECT_EQ(log.records(), kept);
    EXPECT_EQ(replay_all(log).payloads, written);
    written.push_back(random_bytes(rng, 33));
    EXPECT_EQ(log.append(written.back()), kept);
    log.commit();
  }
  ObservationLog log(options_for(dir));
  EXPECT_EQ(log.truncated_bytes(), 0u);
  const Replayed r = replay_all(log);
  EXPECT_EQ(r.payloads, written);
  ASSERT_EQ(r.indices.size(), kept + 1);
  EXPECT_EQ(r.indices.back(), kept);
}

TEST(ObservationLog, RecordCutOffMidPayloadIsTruncatedOnReopen) {
  TempDir dir;
  auto rng = seeded_rng();
  std::vector<Bytes> written;
  const fs::path file = single_segment_log(dir.path(), rng, 10, 100, written);
  fs::resize_file(file, fs::file_size(file) - 60);
  expect_recovers(dir.path(), rng, written, 9, 8 + 100 - 60);
}

TEST(ObservationLog, RecordCutOffMidHeaderIsTruncatedOnReopen) {
  TempDir dir;
  auto rng = seeded_rng();
  std::vector<Bytes> written;
  const fs::path file = single_segment_log(dir.path(), rng, 10, 100, written);
  fs::resize_file(file, fs::file_size(file) - 100 - 5);
  expect_recovers(dir.path(), rng, written, 9, 3);
}

TEST(ObservationLog, GarbageAfterTheLastRecordIsTruncatedOnReopen) {
  TempDir dir;
  auto rng = seeded_rng();
  std::vector<Bytes> written;
  const fs::path file = single_segment_log(dir.path(), rng, 10, 100, written);
  append_to_file(file, random_bytes(rng, 37));
  expect_recovers(dir.path(), rng, written, 10, 37);
}

TEST(ObservationLog, ZeroFilledTailIsTruncatedRatherThanReadAsEmptyRecords) {
  TempDir dir;
  auto rng = seeded_rng();
  std::vector<Bytes> written;
  const fs::path file = single_segment_log(dir.path(), rng, 10, 100, written);
  append_to_file(file, Bytes(4096));
  expect_recovers(dir.path(), rng, written, 10, 4096);
}

TEST(ObservationLog, HugeLengthFieldInTheTailIsTruncatedOnReopen) {
  TempDir dir;
  auto rng = seeded_rng();
  std::vector<Bytes> written;
  const fs::path file = single_segment_log(dir.path(), rng, 10, 100, written);
  append_to_file(file, Bytes(8, std::byte{0xFF}));  // length 4 GiB - 1 > 256 MiB
  expect_recovers(dir.path(), rng, written, 10, 8);
}

TEST(ObservationLog, FlippedByteInTheLastRecordDropsThatRecordOnReopen) {
  TempDir dir;
  auto rng = seeded_rng();
  std::vector<Bytes> written;
  const fs::path file = single_segment_log(dir.path(), rng, 10, 100, written);
  flip_byte(file, fs::file_size(file) - 42);
  expect_recovers(dir.path(), rng, written, 9, 108);
}

TEST(ObservationLog, TornHeaderOfANewLastSegmentIsRewritten) {
  TempDir dir;
  auto rng = seeded_rng();
  std::vector<Bytes> written;
  {
    ObservationLog log(options_for(dir.path(), 256));
    written = write_records(log, rng, 20, 100);
  }
  // Leave only 5 bytes of the last segment's header, as a crash right after creating it can.
  const fs::path last = segment_files(dir.path()).back();
  const std::uint64_t first_in_last =
      std::stoull(last.filename().string().substr(8, 16), nullptr, 16);
  ASSERT_GT(first_in_last, 0u);
  fs::resize_file(last, 5);
  ObservationLog log(options_for(dir.path(), 256));
  EXPECT_EQ(log.truncated_bytes(), 5u);
  EXPECT_EQ(log.next_index(), first_in_last);
  written.resize(first_in_last);
  EXPECT_EQ(replay_all(log).payloads, written);
  EXPECT_EQ(log.append(text("next")), first_in_last);
  log.commit();
  EXPECT_EQ(replay_all(log).indices.back(), first_in_last);
}

// ---------------------------------------------------------------- earlier segments

TEST(ObservationLog, CorruptionInAnEarlierSegmentThrowsNamingFileOffsetAndIndex) {
  TempDir dir;
  auto rng = seeded_rng();
  {
    ObservationLog log(options_for(dir.path(), 512));
    write_records(log, rng, 40, 100);
    ASSERT_GE(log.segments(), 3u);
  }
  const fs::path second = segment_files(dir.path())[1];
  const std::uint64_t first = std::stoull(second.filename().string().substr(8, 16), nullptr, 16);
  flip_byte(second, 16 + 8);  // first payload byte of the segment's first record
  try {
    ObservationLog log(options_for(dir.path(), 512));
    FAIL() << "opened a log with a corrupt earlier segment";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(second.filename().string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("byte offset 16"), std::string::npos) << msg;
    EXPECT_NE(msg.find("record index " + std::to_string(first)), std::string::npos) << msg;
  }
}

TEST(ObservationLog, MissingMiddleSegmentThrowsNamingTheGap) {
  TempDir dir;
  auto rng = seeded_rng();
  {
    ObservationLog log(options_for(dir.path(), 512));
    write_records(log, rng, 40, 100);
  }
  const auto files = segment_files(dir.path());
  ASSERT_GE(files.size(), 3u);
  fs::remove(files[1]);
  try {
    ObservationLog log(options_for(dir.path(), 512));
    FAIL() << "opened a log with a missing segment";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(files[2].filename().string()), std::string::npos)
        << e.what();
  }
}

// ---------------------------------------------------------------- retention

TEST(ObservationLog, RemoveSegmentsBeforeDeletesOnlyWhollyCoveredSegments) {
  TempDir dir;
  ObservationLog log(options_for(dir.path(), 16 + 3 * (8 + 10)));  // 3 records per segment
  const Bytes payload(10, std::byte{1});
  for (int i = 0; i < 10; ++i)
    log.append(payload);
  log.commit();
  ASSERT_EQ(log.segments(), 4u);  // [0,3) [3,6) [6,9) [9,10)

  log.remove_segments_before(5);  // record 5 is still needed: keep [3,6)
  EXPECT_EQ(log.segments(), 3u);
  EXPECT_EQ(log.first_index(), 3u);
  EXPECT_EQ(segment_files(dir.path()).size(), 3u);
  EXPECT_EQ(replay_all(log).indices.front(), 3u);

  log.remove_segments_before(1000);  // never the active segment
  EXPECT_EQ(log.segments(), 1u);
  EXPECT_EQ(log.first_index(), 9u);
  EXPECT_EQ(log.append(payload), 10u);
  log.commit();
}

TEST(ObservationLog, RetainedLogReopensWithItsFirstIndexAndContinues) {
  TempDir dir;
  const Bytes payload(10, std::byte{2});
  const std::uint64_t segment_bytes = 16 + 3 * (8 + 10);
  {
    ObservationLog log(options_for(dir.path(), segment_bytes));
    for (int i = 0; i < 10; ++i)
      log.append(payload);
    log.commit();
    log.remove_segments_before(6);
  }
  ObservationLog log(options_for(dir.path(), segment_bytes));
  EXPECT_EQ(log.first_index(), 6u);
  EXPECT_EQ(log.records(), 4u);
  EXPECT_EQ(log.append(payload), 10u);
  log.commit();
  const Replayed r = replay_all(log);
  EXPECT_EQ(r.indices, (std::vector<std::uint64_t>{6, 7, 8, 9, 10}));
}

// ---------------------------------------------------------------- sync policy in action

TEST(ObservationLog, AlwaysPolicySyncsOncePerCommitAndOnceForAGroupOfAppends) {
  TempDir dir;
  ObservationLog log(options_for(dir.path(), 64ull << 20, SyncPolicy::kAlways));
  const Bytes payload(60, std::byte{3});
  const std::uint64_t s0 = log.syncs();
  for (int i = 0; i < 3; ++i) {
    log.append(payload);
    log.commit();
  }
  EXPECT_EQ(log.syncs(), s0 + 3);
  for (int i = 0; i < 10000; ++i)
    log.append(payload);
  log.commit();
  EXPECT_EQ(log.syncs(), s0 + 4);
  log.commit();  // nothing buffered: nothing to sync
  EXPECT_EQ(log.syncs(), s0 + 4);
}

TEST(ObservationLog, NeverPolicyLeavesSyncingToTheOs) {
  TempDir dir;
  ObservationLog log(options_for(dir.path(), 64ull << 20, SyncPolicy::kNever));
  for (int i = 0; i < 5; ++i) {
    log.append(text("x"));
    log.commit();
  }
  EXPECT_EQ(log.syncs(), 0u);
}

TEST(ObservationLog, IntervalPolicySyncsAtMostOncePerInterval) {
  TempDir dir;
  LogOptions o = options_for(dir.path(), 64ull << 20, SyncPolicy::kInterval);
  o.sync_interval_seconds = 3600;  // no interval elapses during the test
  {
    ObservationLog log(o);
    for (int i = 0; i < 5; ++i) {
      log.append(text("x"));
      log.commit();
    }
    EXPECT_EQ(log.syncs(), 0u);
    log.sync();  // an owner's timer
    EXPECT_EQ(log.syncs(), 1u);
  }
  o.sync_interval_seconds = 0;  // every commit is past the interval
  ObservationLog log(o);
  const std::uint64_t s0 = log.syncs();
  for (int i = 0; i < 5; ++i) {
    log.append(text("y"));
    log.commit();
  }
  EXPECT_EQ(log.syncs(), s0 + 5);
}

}  // namespace
