#include "server/service_metrics.hpp"

#include <array>
#include <vector>

#include "server/service_util.hpp"

namespace rtda::server {
namespace {

constexpr std::array<const char*, 4> kStates = {"running", "paused", "waiting-for-workers",
                                                "stopping"};
constexpr std::array<const char*, 4> kEndpoints = {"ingest", "publish", "control", "workers"};
constexpr std::array<const char*, 6> kStages = {"forecast", "forecast_wait", "analysis",
                                                "dispatch", "result",        "publish"};

// A Prometheus counter cannot be set: it catches up with a count kept elsewhere. Counts only
// grow within a process, so it never needs to go down.
void catch_up(prometheus::Counter& c, double target) {
  const double now = c.Value();
  if (target > now) c.Increment(target - now);
}

std::string lifetime_note(CounterLifetime l) {
  return l == CounterLifetime::kDurable
             ? " Durable: rebuilt from the observation log at start, so it covers the "
               "service's whole history."
             : " Since this server process started.";
}

// The Status counters with a labelled family of their own instead of a counter each.
bool labelled_elsewhere(const std::string& name) {
  return name.rfind("curve_handshakes_", 0) == 0;
}

}  // namespace

const prometheus::Histogram::BucketBoundaries& ServiceMetrics::latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,  0.25, 0.5,
      1.0,   2.5,    5.0,   10.0, 30.0,  60.0, 120., 300., 600.};
  return b;
}

ServiceMetrics::ServiceMetrics(const std::string& version, double started)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  prometheus::Registry& r = *registry_;

  for (const CounterSpec& s : counter_specs()) {
    if (labelled_elsewhere(s.name)) continue;
    auto& family = BuildCounter()
                       .Name(std::string("rtda_") + s.name + "_total")
                       .Help(std::string(s.help) + lifetime_note(s.lifetime))
                       .Register(r);
    counters_[s.name] = &family.Add({});
  }
  handshakes_ = &BuildCounter()
                     .Name("rtda_curve_handshakes_total")
                     .Help(
                         "CURVE handshakes the ZAP handler decided, per endpoint; result = "
                         "\"denied\" are refused logins (a key not on the endpoint's "
                         "allow-list, or no CURVE). Since this server process started.")
                     .Register(r);
  for (const char* e : kEndpoints)
    for (const char* result : {"allowed", "denied"})
      handshakes_->Add({{"endpoint", e}, {"result", result}});
  source_accepted_ = &BuildCounter()
                          .Name("rtda_source_observations_accepted_total")
                          .Help(
                              "Observations accepted per feeder source (Status.sources, at "
                              "most 1000 sources)." +
                              lifetime_note(CounterLifetime::kDurable))
                          .Register(r);
  source_refused_qc_ = &BuildCounter()
                            .Name("rtda_source_observations_refused_qc_total")
                            .Help(
                                "Observations the quality control refused per feeder source "
                                "(Status.sources, at most 1000 sources)." +
                                lifetime_note(CounterLifetime::kSinceStart))
                            .Register(r);

  BuildGauge()
      .Name("rtda_build_info")
      .Help("Always 1; the label version is the server's version.")
      .Register(r)
      .Add({{"version", version}})
      .Set(1);
  BuildGauge()
      .Name("rtda_start_time_seconds")
      .Help("When this server process started, Unix seconds.")
      .Register(r)
      .Add({})
      .Set(started);
  auto& state = BuildGauge()
                    .Name("rtda_state")
                    .Help("1 for the server's current state (Status.state), 0 for the others.")
                    .Register(r);
  for (const char* s : kStates)
    states_[s] = &state.Add({{"state", s}});

  const std::vector<std::pair<const char*, const char*>> gauges = {
      {"rtda_paused",
       "1 while dispatching is paused (an operator, or a cycle that failed three times), else 0."},
      {"rtda_ingest_degraded",
       "1 while the observation log cannot be written and ingest answers ACK_UNAVAILABLE, "
       "else 0."},
      {"rtda_worker_connected", "1 while a worker group is connected, else 0."},
      {"rtda_worker_ranks", "MPI ranks of the connected worker group, 0 without one."},
      {"rtda_worker_heartbeat_age_seconds",
       "Seconds since the worker group was last heard from, 0 without one."},
      {"rtda_cycle_in_flight", "The cycle the worker group is computing, -1 when none."},
      {"rtda_last_published_cycle", "The newest published cycle, -1 before the first."},
      {"rtda_next_cycle", "The next cycle to dispatch."},
      {"rtda_last_published_valid_time_seconds",
       "Valid time of the newest published analysis, model seconds since model.epoch (0 "
       "before the first)."},
      {"rtda_last_publish_timestamp_seconds",
       "When this process last published an analysis, Unix seconds (0 before its first)."},
      {"rtda_open_windows", "Windows accepting observations."},
      {"rtda_backlog_cycles",
       "Closed windows waiting for the worker group (the cycle in flight not counted)."},
      {"rtda_newest_checkpoint_cycle", "Cycle of the newest usable checkpoint, -1 when none."},
      {"rtda_log_bytes", "Size of the observation log on disk, bytes."},
      {"rtda_log_segments", "Segment files of the observation log."},
  };
  for (const auto& [name, help] : gauges)
    gauges_[name] = &BuildGauge().Name(name).Help(help).Register(r).Add({});
  gauges_["rtda_cycle_in_flight"]->Set(-1);
  gauges_["rtda_last_published_cycle"]->Set(-1);
  gauges_["rtda_newest_checkpoint_cycle"]->Set(-1);

  latency_ = &BuildHistogram()
                  .Name("rtda_cycle_latency_seconds")
                  .Help(
                      "Last observation of a window in -> its analysis published, seconds "
                      "(Analysis.latency.total_seconds).")
                  .Register(r)
                  .Add({}, latency_buckets());
  overhead_ = &BuildHistogram()
                   .Name("rtda_cycle_overhead_seconds")
                   .Help(
                       "The part of a cycle's latency not spent waiting for the forecast or "
                       "in the analysis, seconds (Analysis.latency.overhead_seconds).")
                   .Register(r)
                   .Add({}, latency_buckets());
  auto& stages = BuildHistogram()
                     .Name("rtda_cycle_stage_seconds")
                     .Help(
                         "Each stage of a published cycle, seconds (Analysis.latency: "
                         "forecast, forecast_wait, analysis, dispatch, result, publish).")
                     .Register(r);
  for (const char* s : kStages)
    stages_[s] = &stages.Add({{"stage", s}}, latency_buckets());
  log_commit_ = &BuildHistogram()
                     .Name("rtda_log_commit_seconds")
                     .Help(
                         "Making one group of batches durable: the write and sync of the "
                         "observation log, seconds.")
                     .Register(r)
                     .Add({}, prometheus::Histogram::BucketBoundaries{
                                  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1, 0.25, 0.5, 1.0, 2.5, 5.0});
}

void ServiceMetrics::observe_cycle(const wire::StageLatency& l, double published_unix_seconds) {
  latency_->Observe(l.total_seconds());
  overhead_->Observe(l.overhead_seconds());
  stages_.at("forecast")->Observe(l.forecast_seconds());
  stages_.at("forecast_wait")->Observe(l.forecast_wait_seconds());
  stages_.at("analysis")->Observe(l.analysis_seconds());
  stages_.at("dispatch")->Observe(l.dispatch_seconds());
  stages_.at("result")->Observe(l.result_seconds());
  stages_.at("publish")->Observe(l.publish_seconds());
  last_publish_ = published_unix_seconds;
}

void ServiceMetrics::observe_log_commit(double seconds) {
  log_commit_->Observe(seconds);
}

void ServiceMetrics::update(const wire::Status& s, const HandshakeCounts& handshakes) {
  for (const auto& c : s.counters()) {
    if (const auto it = counters_.find(c.name()); it != counters_.end())
      catch_up(*it->second, static_cast<double>(c.value()));
  }
  for (const auto& [endpoint, counts] : handshakes) {
    catch_up(handshakes_->Add({{"endpoint", endpoint}, {"result", "allowed"}}),
             static_cast<double>(counts.first));
    catch_up(handshakes_->Add({{"endpoint", endpoint}, {"result", "denied"}}),
             static_cast<double>(counts.second));
  }
  for (const auto& src : s.sources()) {
    catch_up(source_accepted_->Add({{"source", src.source()}}),
             static_cast<double>(src.observations_accepted()));
    catch_up(source_refused_qc_->Add({{"source", src.source()}}),
             static_cast<double>(src.observations_refused_qc()));
  }
  for (const auto& [name, g] : states_)
    g->Set(name == s.state() ? 1.0 : 0.0);
  const bool connected = s.workers().connected();
  gauges_["rtda_paused"]->Set(s.state() == "paused" ? 1.0 : 0.0);
  gauges_["rtda_ingest_degraded"]->Set(s.ingest_state().rfind("degraded", 0) == 0 ? 1.0 : 0.0);
  gauges_["rtda_worker_connected"]->Set(connected ? 1.0 : 0.0);
  gauges_["rtda_worker_ranks"]->Set(connected ? s.workers().ranks() : 0.0);
  gauges_["rtda_worker_heartbeat_age_seconds"]->Set(
      connected ? s.workers().last_heartbeat_age_seconds() : 0.0);
  gauges_["rtda_cycle_in_flight"]->Set(
      connected ? static_cast<double>(s.workers().cycle_in_flight()) : -1.0);
  gauges_["rtda_last_published_cycle"]->Set(static_cast<double>(s.last_cycle()));
  gauges_["rtda_next_cycle"]->Set(static_cast<double>(s.next_cycle()));
  gauges_["rtda_last_published_valid_time_seconds"]->Set(s.last_valid_time_seconds());
  gauges_["rtda_last_publish_timestamp_seconds"]->Set(last_publish_);
  gauges_["rtda_open_windows"]->Set(s.open_windows());
  gauges_["rtda_backlog_cycles"]->Set(s.backlog_cycles());
  gauges_["rtda_newest_checkpoint_cycle"]->Set(static_cast<double>(s.newest_checkpoint_cycle()));
  gauges_["rtda_log_bytes"]->Set(static_cast<double>(s.log_bytes()));
  gauges_["rtda_log_segments"]->Set(s.log_segments());
}

}  // namespace rtda::server
