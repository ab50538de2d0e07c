// The coordinator's counters and metrics (server/service_util.hpp, server/service_metrics.hpp)
// and the systemd helpers (server/systemd.hpp): every counter exists from the start at 0 with
// its HELP text, durable counters and their since-start twins count what they say, the
// status becomes counters and gauges, latencies are histograms in seconds.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <regex>
#include <set>
#include <string>

#include "server/metrics.hpp"
#include "server/service_metrics.hpp"
#include "server/service_util.hpp"
#include "server/systemd.hpp"

namespace rtda::server {
namespace {

// The value of the series `series` (name with its labels, as rendered), or NaN when absent.
double sample(const std::string& text, const std::string& series) {
  const std::string::size_type at = text.find("\n" + series + " ");
  if (at == std::string::npos) return std::nan("");
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(Counters, EveryCounterExistsFromTheStartAtZero) {
  Counters c;
  std::set<std::string> names;
  for (const CounterSpec& s : counter_specs()) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name << " listed twice";
    EXPECT_EQ(c.all().at(s.name), 0u) << s.name;
    EXPECT_GT(std::string(s.help).size(), 10u) << s.name;
  }
  EXPECT_EQ(c.all().size(), names.size());
  for (const std::string& d : Counters::durable_names()) {
    EXPECT_EQ(c.lifetime(d), CounterLifetime::kDurable);
    EXPECT_TRUE(names.count(d + "_since_start")) << d << " has no since-start twin";
    EXPECT_EQ(c.lifetime(d + "_since_start"), CounterLifetime::kSinceStart);
  }
}

TEST(Counters, DurableCountersCountTheLogAndTheirTwinsOnlyThisProcess) {
  Counters c;
  c.set_durable("observations_accepted", 100);  // a compaction base
  c.replay("observations_accepted", 20);        // records after it
  c.add("observations_accepted", 3);            // this process
  EXPECT_EQ(c.all().at("observations_accepted"), 123u);
  EXPECT_EQ(c.all().at("observations_accepted_since_start"), 3u);
  // A since-start counter is not touched by a base.
  c.set_durable("cycles_published", 7);
  EXPECT_EQ(c.all().at("cycles_published"), 0u);
  c.add("cycles_published");
  EXPECT_EQ(c.all().at("cycles_published"), 1u);
  EXPECT_EQ(c.all().count("cycles_published_since_start"), 0u);
}

TEST(ServiceMetrics, EveryFamilyIsThereBeforeAnythingHappened) {
  ServiceMetrics m("1.2.3", 1000.0);
  const std::string text = render_metrics(m.registry());
  for (const CounterSpec& s : counter_specs()) {
    const std::string name = std::string("rtda_") + s.name + "_total";
    if (std::string(s.name).rfind("curve_handshakes_", 0) == 0) continue;
    EXPECT_NE(text.find("# TYPE " + name + " counter\n"), std::string::npos) << name;
    EXPECT_EQ(sample(text, name), 0.0) << name;
  }
  // Every family has real help text, every counter ends in _total.
  const std::regex help("# HELP (\\S+) (.*)\n");
  const std::regex type("# TYPE (\\S+) (\\S+)\n");
  int families = 0;
  for (std::sregex_iterator it(text.begin(), text.end(), help), end; it != end; ++it) {
    ++families;
    EXPECT_GT((*it)[2].length(), 15) << (*it)[1];
  }
  for (std::sregex_iterator it(text.begin(), text.end(), type), end; it != end; ++it) {
    const std::string name = (*it)[1];
    if ((*it)[2] == "counter") {
      EXPECT_TRUE(name.ends_with("_total")) << name;
    }
    if ((*it)[2] == "histogram") {
      EXPECT_TRUE(name.ends_with("_seconds")) << name;
    }
    EXPECT_NE((*it)[2], "summary") << name;
  }
  EXPECT_GT(families, 60);
  for (const char* e : {"ingest", "publish", "control", "workers"}) {
    EXPECT_EQ(sample(text, std::string("rtda_curve_handshakes_total{endpoint=\"") + e +
                               "\",result=\"denied\"}"),
              0.0)
        << e;
  }
  EXPECT_EQ(sample(text, "rtda_state{state=\"waiting-for-workers\"}"), 0.0);
  EXPECT_EQ(sample(text, "rtda_last_published_cycle"), -1.0);
  EXPECT_EQ(sample(text, "rtda_start_time_seconds"), 1000.0);
  EXPECT_EQ(sample(text, "rtda_build_info{version=\"1.2.3\"}"), 1.0);
  EXPECT_EQ(sample(text, "rtda_cycle_latency_seconds_count"), 0.0);
  EXPECT_EQ(sample(text, "rtda_cycle_stage_seconds_count{stage=\"analysis\"}"), 0.0);
}

TEST(ServiceMetrics, StatusBecomesCountersAndGauges) {
  ServiceMetrics m("x", 0.0);
  wire::Status s;
  s.set_state("paused");
  s.set_ingest_state("degraded: No space left on device");
  s.set_last_cycle(41);
  s.set_backlog_cycles(3);
  s.mutable_workers()->set_connected(true);
  s.mutable_workers()->set_ranks(4);
  auto* c = s.add_counters();
  c->set_name("observations_rejected");
  c->set_value(17);
  auto* src = s.add_sources();
  src->set_source("radar-east");
  src->set_observations_accepted(5);
  m.update(s, {{"workers", {2, 9}}});
  c->set_value(20);
  m.update(s, {{"workers", {2, 9}}});  // counters catch up, never add twice
  const std::string text = render_metrics(m.registry());
  EXPECT_EQ(sample(text, "rtda_observations_rejected_total"), 20.0) << text;
  EXPECT_EQ(sample(text, "rtda_curve_handshakes_total{endpoint=\"workers\",result=\"denied\"}"),
            9.0);
  EXPECT_EQ(sample(text, "rtda_source_observations_accepted_total{source=\"radar-east\"}"), 5.0);
  EXPECT_EQ(sample(text, "rtda_state{state=\"paused\"}"), 1.0);
  EXPECT_EQ(sample(text, "rtda_state{state=\"running\"}"), 0.0);
  EXPECT_EQ(sample(text, "rtda_paused"), 1.0);
  EXPECT_EQ(sample(text, "rtda_ingest_degraded"), 1.0);
  EXPECT_EQ(sample(text, "rtda_worker_connected"), 1.0);
  EXPECT_EQ(sample(text, "rtda_worker_ranks"), 4.0);
  EXPECT_EQ(sample(text, "rtda_last_published_cycle"), 41.0);
  EXPECT_EQ(sample(text, "rtda_backlog_cycles"), 3.0);
}

TEST(ServiceMetrics, CycleLatenciesAreHistogramsInSeconds) {
  ServiceMetrics m("x", 0.0);
  wire::StageLatency l;
  l.set_total_seconds(0.085);
  l.set_overhead_seconds(0.002);
  l.set_analysis_seconds(0.07);
  m.observe_cycle(l, 1234.5);
  l.set_total_seconds(40.0);
  m.observe_cycle(l, 1240.0);
  m.update(wire::Status(), {});
  const std::string text = render_metrics(m.registry());
  EXPECT_EQ(sample(text, "rtda_cycle_latency_seconds_count"), 2.0) << text;
  EXPECT_EQ(sample(text, "rtda_cycle_latency_seconds_bucket{le=\"0.1\"}"), 1.0) << text;
  EXPECT_EQ(sample(text, "rtda_cycle_latency_seconds_bucket{le=\"60\"}"), 2.0) << text;
  EXPECT_DOUBLE_EQ(sample(text, "rtda_cycle_latency_seconds_sum"), 40.085);
  EXPECT_EQ(sample(text, "rtda_cycle_stage_seconds_count{stage=\"analysis\"}"), 2.0);
  EXPECT_EQ(sample(text, "rtda_last_publish_timestamp_seconds"), 1240.0);
}

TEST(Systemd, JournalStreamMustNameStderrExactly) {
  EXPECT_TRUE(journal_stream_matches("8:1234", 8, 1234));
  EXPECT_FALSE(journal_stream_matches("8:1234", 8, 1235));
  EXPECT_FALSE(journal_stream_matches("9:1234", 8, 1234));
  EXPECT_FALSE(journal_stream_matches("", 8, 1234));
  EXPECT_FALSE(journal_stream_matches(nullptr, 8, 1234));
  EXPECT_FALSE(journal_stream_matches("8:1234x", 8, 1234));
  EXPECT_FALSE(journal_stream_matches("8", 8, 1234));
  // This process's stderr: set $JOURNAL_STREAM to it, then to something else.
  struct stat st {};
  ASSERT_EQ(::fstat(STDERR_FILENO, &st), 0);
  const std::string mine = std::to_string(static_cast<unsigned long long>(st.st_dev)) + ":" +
                           std::to_string(static_cast<unsigned long long>(st.st_ino));
  ::setenv("JOURNAL_STREAM", mine.c_str(), 1);
  EXPECT_TRUE(stderr_is_journal());
  ::setenv("JOURNAL_STREAM", "0:0", 1);
  EXPECT_FALSE(stderr_is_journal());
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderr_is_journal());
}

TEST(Systemd, WatchdogFollowsWatchdogUsecAtHalfTheInterval) {
  ::unsetenv("WATCHDOG_PID");
  ::setenv("WATCHDOG_USEC", "3000000", 1);
  EXPECT_DOUBLE_EQ(Watchdog().interval(), 1.5);
  ::setenv("WATCHDOG_PID", "1", 1);  // another process's watchdog
  EXPECT_FALSE(Watchdog().enabled());
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("WATCHDOG_USEC");
  EXPECT_FALSE(Watchdog().enabled());
}

}  // namespace
}  // namespace rtda::server
