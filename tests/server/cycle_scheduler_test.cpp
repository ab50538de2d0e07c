// The window rules of docs/architecture.md §3, without sockets or clocks.
#include "server/cycle_scheduler.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace rtda::server {
namespace {

using P = CycleScheduler::Placement;

WindowSettings twelve_hours() {
  WindowSettings s;
  s.t0_seconds = 1000;
  s.cycle_seconds = 43200;
  s.deadline_seconds = 10;
  s.grace_seconds = 2;
  s.max_windows_ahead = 4;
  return s;
}

wire::Observation obs(std::uint64_t id, double t) {
  wire::Observation o;
  o.set_id(id);
  o.set_time_seconds(t);
  return o;
}

TEST(CycleScheduler, WindowHoldsTimesInTheHalfOpenIntervalAroundItsAnalysisTime) {
  const CycleScheduler s(twelve_hours());
  EXPECT_EQ(s.cycle_of(1000), 0);
  EXPECT_EQ(s.cycle_of(1000 + 21600), 0);    // t_0 + Δ/2 belongs to window 0
  EXPECT_EQ(s.cycle_of(1000 + 21600.5), 1);  // just after: window 1
  EXPECT_EQ(s.cycle_of(1000 - 21599.5), 0);
  EXPECT_EQ(s.cycle_of(1000 - 21600), -1);  // t_0 − Δ/2 is outside (open end)
  EXPECT_EQ(s.cycle_of(1000 + 3 * 43200), 3);
}

TEST(CycleScheduler, AnalysisTimesAreRecognisedToAMicrosecond) {
  const CycleScheduler s(twelve_hours());
  std::int64_t k = -1;
  EXPECT_TRUE(s.analysis_cycle(1000 + 2 * 43200, k));
  EXPECT_EQ(k, 2);
  EXPECT_FALSE(s.analysis_cycle(1000 + 2 * 43200 + 1, k));
  EXPECT_FALSE(s.analysis_cycle(1000 - 43200, k));  // before cycle 0
  EXPECT_FALSE(s.analysis_cycle(std::nan(""), k));
}

TEST(CycleScheduler, ObservationsBeforeTheFirstWindowOrTooFarAheadAreRefused) {
  const CycleScheduler s(twelve_hours());
  EXPECT_EQ(s.place(1000 - 30000).kind, P::kBeforeFirstWindow);
  EXPECT_EQ(s.place(1000 + 4 * 43200).kind, P::kWindow);  // 4 ahead of the oldest open (0)
  EXPECT_EQ(s.place(1000 + 5 * 43200).kind, P::kTooFarAhead);
}

TEST(CycleScheduler, LateObservationsGoToTheOldestOpenWindowOrAreRefusedByPolicy) {
  CycleScheduler next(twelve_hours());
  next.close(1);
  const auto p = next.place(1000);
  EXPECT_EQ(p.kind, P::kLate);
  EXPECT_EQ(p.cycle, 2);
  WindowSettings r = twelve_hours();
  r.late_to_next = false;
  CycleScheduler reject(r);
  reject.close(1);
  EXPECT_EQ(reject.place(1000 + 43200).kind, P::kLateRejected);
  EXPECT_EQ(reject.place(1000 + 2 * 43200).kind, P::kWindow);
}

TEST(CycleScheduler, ClosingAWindowClosesEveryEarlierOneAndNeverReopens) {
  CycleScheduler s(twelve_hours());
  EXPECT_TRUE(s.close(2));
  EXPECT_EQ(s.closed_through(), 2);
  EXPECT_FALSE(s.close(1));
  EXPECT_EQ(s.closed_through(), 2);
}

TEST(CycleScheduler, DeadlineClosesAWindowAfterItsFirstObservation) {
  CycleScheduler s(twelve_hours());
  s.add(0, obs(1, 1000), 100.0, false);
  std::string reason;
  EXPECT_EQ(s.due_closure(109.9, reason), -1);
  EXPECT_EQ(s.due_closure(110.0, reason), 0);
  EXPECT_EQ(reason, "deadline");
}

TEST(CycleScheduler, DataForALaterWindowClosesEarlierOnesAfterTheGracePeriod) {
  CycleScheduler s(twelve_hours());
  s.add(0, obs(1, 1000), 100.0, false);
  s.add(2, obs(2, 1000 + 2 * 43200), 101.0, false);
  std::string reason;
  EXPECT_EQ(s.due_closure(102.9, reason), -1);
  EXPECT_EQ(s.due_closure(103.0, reason), 1);  // windows 0 and 1 are complete
  EXPECT_EQ(reason, "later-window");
}

TEST(CycleScheduler, DispatchOrderIsByIdWhateverTheArrivalOrder) {
  CycleScheduler s(twelve_hours());
  for (std::uint64_t id : {5u, 3u, 9u, 3u, 1u})
    s.add(0, obs(id, 1000), 1.0, false);
  const auto v = s.sorted_observations(0);
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v[0].id, 1u);
  EXPECT_EQ(v[1].id, 3u);
  EXPECT_EQ(v[2].id, 3u);
  EXPECT_EQ(v[4].id, 9u);
}

TEST(CycleScheduler, DroppedWindowsAreForgotten) {
  CycleScheduler s(twelve_hours());
  s.add(0, obs(1, 1000), 1.0, false);
  s.add(1, obs(2, 1000 + 43200), 1.0, false);
  s.drop_through(0);
  EXPECT_EQ(s.window(0), nullptr);
  ASSERT_NE(s.window(1), nullptr);
  EXPECT_EQ(s.windows(), 1u);
}

}  // namespace
}  // namespace rtda::server
