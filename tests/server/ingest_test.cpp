// The ingest decisions (server/ingest.hpp) without sockets or files: what a batch costs,
// whether it is new, a retry, a conflict or refused, and that replaying what was stored
// rebuilds the same windows.
#include "server/ingest.hpp"

#include <gtest/gtest.h>

#include <string>

namespace rtda::server {
namespace {

constexpr double kT0 = 432000;
constexpr double kDt = 43200;

config::Config test_config(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {
      "model.preset=N32",           "window.t0_seconds=432000",
      "window.max_windows_ahead=4", "server.idempotency_window=16",
      "limits.max_sources=3",       "limits.max_batch_observations=100"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return config::load(std::nullopt, sets);
}

WindowSettings windows_of(const config::Config& c) {
  return {c.window.t0_seconds,
          c.experiment.cycle_hours * 3600.0,
          c.window.late_policy == rtda::config::LatePolicy::kNext,
          c.window.deadline_seconds,
          c.window.grace_seconds,
          c.window.max_windows_ahead};
}

wire::ObservationBatch batch(const std::string& source, std::uint64_t seq, int n, double t = kT0,
                             double value = 1.0) {
  wire::ObservationBatch b;
  b.set_version(wire::PROTOCOL_VERSION_1);
  b.set_source(source);
  b.set_seq(seq);
  for (int i = 0; i < n; ++i) {
    auto* o = b.add_observations();
    o->set_id(seq * 1000 + static_cast<std::uint64_t>(i));
    o->set_time_seconds(t);
    o->set_level(static_cast<std::uint32_t>(i % 2));
    o->set_x_m(1.0e5 * i);
    o->set_y_m(2.0e6);
    o->set_value(value);
    o->set_error_sd(1.0);
    o->set_op(wire::OPERATOR_LINEAR_K);
  }
  return b;
}

// One Ingest with its windows; decide + apply in one step, as the coordinator does after a
// successful commit.
struct Fixture {
  config::Config cfg = test_config();
  CycleScheduler scheduler{windows_of(cfg)};
  Ingest ingest{cfg, scheduler};
  std::vector<std::string> records;  // what would go to the log

  BatchDecision send(const std::string& bytes, const std::string& key = "") {
    BatchDecision d = ingest.decide(std::as_bytes(std::span(bytes.data(), bytes.size())), 1.0, key);
    if (d.store) {
      ingest.apply(d, 1.0);
      records.push_back(d.record);
    }
    ingest.end_group();
    return d;
  }
  BatchDecision send(const wire::ObservationBatch& b, const std::string& key = "") {
    return send(b.SerializeAsString(), key);
  }
};

TEST(Ingest, EmptyBatchIsRefused) {
  Fixture f;
  const auto d = f.send(batch("a", 1, 0));
  EXPECT_EQ(d.ack.status(), wire::ACK_REJECTED);
  EXPECT_NE(d.ack.error().find("empty batch"), std::string::npos) << d.ack.error();
  EXPECT_FALSE(d.store);
}

TEST(Ingest, ObservationCountIsCheckedBeforeTheParse) {
  Fixture f;
  const auto d = f.send(batch("a", 1, 101));
  EXPECT_EQ(d.ack.status(), wire::ACK_REJECTED);
  EXPECT_NE(d.ack.error().find("101 in one batch"), std::string::npos) << d.ack.error();
}

TEST(Ingest, ColumnsLongerThanTheMessageAreMalformedNotReadPastTheEnd) {
  Fixture f;
  // columns (field 7) claiming 20 bytes with 16 left: found by fuzz_ingest, which read past
  // the received message before the length was checked against what is left.
  std::string bytes("\x3a\x14\x0a\x12", 4);
  bytes += std::string(16, '\x01');
  const auto d = f.send(bytes);
  EXPECT_EQ(d.ack.status(), wire::ACK_ERROR);
  EXPECT_FALSE(d.store);
}

TEST(Ingest, SameSeqSameContentIsADuplicateOtherContentAConflict) {
  Fixture f;
  ASSERT_EQ(f.send(batch("a", 7, 3)).ack.status(), wire::ACK_ACCEPTED);
  const auto dup = f.send(batch("a", 7, 3));
  EXPECT_EQ(dup.ack.status(), wire::ACK_DUPLICATE);
  EXPECT_EQ(dup.ack.accepted(), 3u);
  EXPECT_EQ(dup.ack.durable_seq(), 7u);
  const auto other = f.send(batch("a", 7, 3, kT0, 2.0));
  EXPECT_EQ(other.ack.status(), wire::ACK_CONFLICT);
  EXPECT_NE(other.ack.error().find("different content"), std::string::npos);
  EXPECT_EQ(f.scheduler.window(0)->observations.size(), 3u);
}

TEST(Ingest, ARetryWithinTheSameUncommittedGroupIsADuplicateThatDependsOnTheCommit) {
  Fixture f;
  const std::string bytes = batch("a", 1, 2).SerializeAsString();
  const auto span = std::as_bytes(std::span(bytes.data(), bytes.size()));
  const auto first = f.ingest.decide(span, 1.0, "");
  const auto second = f.ingest.decide(span, 1.0, "");
  EXPECT_EQ(first.ack.status(), wire::ACK_ACCEPTED);
  EXPECT_EQ(second.ack.status(), wire::ACK_DUPLICATE);
  EXPECT_TRUE(second.depends_on_commit);
  EXPECT_FALSE(second.store);
}

TEST(Ingest, SequenceNumbersOlderThanTheWindowAreStale) {
  Fixture f;  // idempotency_window = 16
  for (std::uint64_t s = 100; s < 120; ++s)
    ASSERT_EQ(f.send(batch("a", s, 1)).ack.status(), wire::ACK_ACCEPTED) << s;
  EXPECT_EQ(f.send(batch("a", 119, 1)).ack.status(), wire::ACK_DUPLICATE);
  const auto old = f.send(batch("a", 101, 1));
  EXPECT_EQ(old.ack.status(), wire::ACK_REJECTED);
  EXPECT_NE(old.ack.error().find("older than"), std::string::npos) << old.ack.error();
  EXPECT_EQ(f.ingest.sources().find("a")->recent.size(), 16u);
}

TEST(Ingest, PositionQueryAnswersTheNewestDurableSeqAndStoresNothing) {
  Fixture f;
  wire::ObservationBatch q;
  q.set_version(wire::PROTOCOL_VERSION_1);
  q.set_source("a");
  q.set_position_query(true);
  auto d = f.send(q);
  EXPECT_EQ(d.ack.status(), wire::ACK_POSITION);
  EXPECT_FALSE(d.ack.has_durable_seq());
  f.send(batch("a", 4, 1));
  f.send(batch("a", 9, 1));
  d = f.send(q);
  EXPECT_EQ(d.ack.status(), wire::ACK_POSITION);
  EXPECT_EQ(d.ack.durable_seq(), 9u);
  EXPECT_FALSE(d.store);
  auto with_data = batch("a", 0, 1);
  with_data.set_position_query(true);
  EXPECT_EQ(f.send(with_data).ack.status(), wire::ACK_REJECTED);
}

TEST(Ingest, MarkersAndTruthsOnlyNearTheFront) {
  Fixture f;  // max_windows_ahead = 4: windows 0..4 while none is closed
  auto far = batch("a", 1, 0);
  far.set_end_of_window_seconds(kT0 + 5 * kDt);
  auto d = f.send(far);
  EXPECT_EQ(d.ack.status(), wire::ACK_REJECTED);
  EXPECT_NE(d.ack.error().find("[0, 4]"), std::string::npos) << d.ack.error();
  EXPECT_EQ(f.scheduler.closed_through(), -1);
  auto near = batch("a", 2, 0);
  near.set_end_of_window_seconds(kT0 + 4 * kDt);
  EXPECT_EQ(f.send(near).ack.status(), wire::ACK_ACCEPTED);
  EXPECT_EQ(f.scheduler.closed_through(), 4);
  // A marker for a window already closed changes nothing.
  auto stale = batch("a", 3, 1, kT0 + 5 * kDt);
  stale.set_end_of_window_seconds(kT0 + 2 * kDt);
  d = f.send(stale);
  EXPECT_EQ(d.ack.status(), wire::ACK_ACCEPTED);
  EXPECT_EQ(d.close_cycle, -1);
  // A truth for a closed window is refused, one within the open front accepted.
  auto truth = batch("a", 4, 0);
  truth.mutable_truth()->set_time_seconds(kT0 + 3 * kDt);
  truth.mutable_truth()->set_grid_n(32);
  truth.mutable_truth()->mutable_q()->Resize(2 * 32 * 32, 0.0);
  d = f.send(truth);
  EXPECT_EQ(d.ack.status(), wire::ACK_REJECTED);
  EXPECT_NE(d.ack.error().find("truth.time_seconds"), std::string::npos);
  truth.set_seq(5);
  truth.mutable_truth()->set_time_seconds(kT0 + 6 * kDt);
  EXPECT_EQ(f.send(truth).ack.status(), wire::ACK_ACCEPTED);
}

TEST(Ingest, AbsurdValuesAreRefusedPerObservationNamingTheKey) {
  Fixture f;
  auto b = batch("a", 1, 2);
  b.mutable_observations(1)->set_value(1e300);
  const auto d = f.send(b);
  ASSERT_EQ(d.ack.status(), wire::ACK_ACCEPTED);
  EXPECT_EQ(d.ack.accepted(), 1u);
  ASSERT_EQ(d.ack.rejections_size(), 1);
  EXPECT_EQ(d.ack.rejections(0).field(), "value");
  EXPECT_NE(d.ack.rejections(0).reason().find("qc.max_abs_kelvin"), std::string::npos);
}

TEST(Ingest, UnknownFieldsAreNotStored) {
  Fixture f;
  std::string bytes = batch("a", 1, 1).SerializeAsString();
  const std::string marker = "NOT-IN-THE-LOG";
  bytes += std::string("\xFA\x01", 2) + static_cast<char>(marker.size()) + marker;  // field 31
  const auto d = f.send(bytes);
  ASSERT_EQ(d.ack.status(), wire::ACK_ACCEPTED);
  EXPECT_EQ(d.record.find(marker), std::string::npos);
  std::string big = batch("a", 2, 1).SerializeAsString();
  big += std::string("\xFA\x01\x80\x80\x05", 5) + std::string(81920, 'x');  // 80 KiB
  const auto r = f.send(big);
  EXPECT_EQ(r.ack.status(), wire::ACK_REJECTED);
  EXPECT_NE(r.ack.error().find("unknown fields"), std::string::npos) << r.ack.error();
}

TEST(Ingest, SourcesBeyondTheLimitAreRefused) {
  Fixture f;  // max_sources = 3
  for (const char* s : {"a", "b", "c"})
    ASSERT_EQ(f.send(batch(s, 1, 1)).ack.status(), wire::ACK_ACCEPTED);
  const auto d = f.send(batch("d", 1, 1));
  EXPECT_EQ(d.ack.status(), wire::ACK_REJECTED);
  EXPECT_NE(d.ack.error().find("limits.max_sources"), std::string::npos);
  EXPECT_EQ(f.send(batch("a", 2, 1)).ack.status(), wire::ACK_ACCEPTED);
}

TEST(Ingest, GrantedSourcesBelongToTheirKeys) {
  Fixture f;
  f.ingest.grants().grant("KEY-A", {"radar-*"});
  EXPECT_EQ(f.send(batch("radar-1", 1, 1), "KEY-A").ack.status(), wire::ACK_ACCEPTED);
  auto d = f.send(batch("sat-1", 1, 1), "KEY-A");
  EXPECT_EQ(d.ack.status(), wire::ACK_REJECTED);
  EXPECT_NE(d.ack.error().find("not granted"), std::string::npos);
  d = f.send(batch("radar-2", 1, 1), "KEY-B");
  EXPECT_EQ(d.ack.status(), wire::ACK_REJECTED);
  EXPECT_NE(d.ack.error().find("another key"), std::string::npos);
  EXPECT_EQ(f.send(batch("lab", 1, 1), "KEY-B").ack.status(), wire::ACK_ACCEPTED);
}

TEST(Ingest, EveryBatchCostsAtLeastOneToken) {
  config::Config cfg = test_config(
      {"limits.source_rate_observations_per_second=1", "limits.source_burst_observations=2"});
  CycleScheduler scheduler(windows_of(cfg));
  Ingest ingest(cfg, scheduler);
  wire::ObservationBatch q;
  q.set_version(wire::PROTOCOL_VERSION_1);
  q.set_source("a");
  q.set_position_query(true);
  const std::string bytes = q.SerializeAsString();
  const auto span = std::as_bytes(std::span(bytes.data(), bytes.size()));
  EXPECT_EQ(ingest.decide(span, 10.0, "").ack.status(), wire::ACK_POSITION);
  EXPECT_EQ(ingest.decide(span, 10.0, "").ack.status(), wire::ACK_POSITION);
  const auto third = ingest.decide(span, 10.0, "");
  EXPECT_EQ(third.ack.status(), wire::ACK_REJECTED);
  EXPECT_GT(third.ack.retry_after_seconds(), 0.0);
}

TEST(Ingest, ReplayOfTheStoredRecordsRebuildsTheSameWindowsAfterRecordsBeforeThemAreGone) {
  Fixture live;
  auto close2 = batch("a", 1, 4, kT0 + 2 * kDt);
  close2.set_end_of_window_seconds(kT0 + 2 * kDt);
  live.send(close2);
  // Late for window 1 (closed): moved to window 3, the oldest open one.
  live.send(batch("a", 2, 3, kT0 + kDt));
  live.send(batch("b", 1, 2, kT0 + 3 * kDt));
  // Replay only the records after the first (as after compaction deleted it): windows are
  // already closed through 2 by a base record.
  config::Config cfg = test_config();
  CycleScheduler scheduler(windows_of(cfg));
  Ingest replayed(cfg, scheduler);
  scheduler.close(2);
  for (std::size_t i = 1; i < live.records.size(); ++i) {
    wire::LogRecord rec;
    ASSERT_TRUE(rec.ParseFromString(live.records[i]));
    replayed.replay(rec.batch());
  }
  ASSERT_NE(scheduler.window(3), nullptr);
  ASSERT_EQ(scheduler.window(3)->observations.size(), 5u);
  const auto a = live.scheduler.sorted_observations(3);
  const auto b = scheduler.sorted_observations(3);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].id, b[i].id);
    EXPECT_EQ(a[i].time_seconds, b[i].time_seconds);
  }
  EXPECT_EQ(scheduler.window(3)->late, 3u);
  EXPECT_EQ(replayed.sources().find("a")->high_seq, 2u);
}

TEST(SourceBook, RestoreFromPositionsKeepsDuplicatesAndConflicts) {
  SourceBook book(4, 10);
  book.record("a", 1, {11, 5, 0});
  book.record("a", 2, {22, 6, 1});
  SourceBook back(4, 10);
  for (const auto& p : book.positions())
    back.restore(p);
  SourceBook::SeqRecord r;
  EXPECT_EQ(back.lookup("a", 2, 22, &r), SourceBook::Lookup::kDuplicate);
  EXPECT_EQ(r.accepted, 6u);
  EXPECT_EQ(back.lookup("a", 2, 23, nullptr), SourceBook::Lookup::kConflict);
  EXPECT_EQ(back.lookup("a", 3, 0, nullptr), SourceBook::Lookup::kNew);
  EXPECT_EQ(*back.find("a")->high_seq, 2u);
  EXPECT_EQ(back.find("a")->observations_accepted, 11u);
}

TEST(QuoteClientText, CutsAndMasksClientText) {
  EXPECT_EQ(quote_client_text("abc"), "abc");
  EXPECT_EQ(quote_client_text(std::string("a\nb\x01", 4)), "a?b?");
  EXPECT_EQ(quote_client_text(std::string(100, 'x'), 10), std::string(10, 'x') + "...");
}

}  // namespace
}  // namespace rtda::server
