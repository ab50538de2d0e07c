#include "server/control.hpp"

#include "filters/settings.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>

namespace rtda::server {
namespace {

// Who sent a control request, for its rate limit: the CURVE key, else the peer address.
std::string control_peer(const Envelope& e) {
  for (const char* property : {"User-Id", "Peer-Address"}) {
    const char* v = zmq_msg_gets(const_cast<zmq_msg_t*>(e.body.handle()), property);
    if (v && *v) return v;
  }
  return e.head.empty() ? std::string() : e.head.front().to_string();
}

}  // namespace

Control::Control(const config::Config& cfg, std::string config_hash, zmq::socket_t& socket,
                 Parts parts, Counters& counters)
    : cfg_(cfg),
      config_hash_(std::move(config_hash)),
      socket_(socket),
      parts_(parts),
      counters_(counters),
      latest_rate_(cfg.limits.latest_analysis_per_second, 4, 1024) {}

wire::Status Control::status() const {
  const WorkerGroup& workers = parts_.workers;
  const AnalysisStore& store = parts_.store;
  wire::Status s;
  s.set_server_version(RTDA_SERVER_VERSION);
  s.set_state(stopping_             ? "stopping"
              : workers.paused()    ? "paused"
              : workers.connected() ? "running"
                                    : "waiting-for-workers");
  s.set_uptime_seconds(wall_now() - started_);
  s.set_filter(workers.filter());
  s.set_config_hash(config_hash_);
  const std::int64_t last_published = store.last_published();
  s.set_last_cycle(last_published);
  s.set_last_valid_time_seconds(last_published >= 0 ? parts_.scheduler.time_of(last_published) : 0);
  s.set_next_cycle(workers.next_cycle());
  s.set_open_windows(static_cast<std::uint32_t>(parts_.scheduler.open_windows()));
  s.set_closed_windows_waiting(static_cast<std::uint32_t>(workers.backlog()));
  s.set_backlog_cycles(static_cast<std::uint32_t>(workers.backlog()));
  const std::string& degraded = parts_.journal.degraded();
  s.set_ingest_state(degraded.empty() ? "ok" : "degraded: " + degraded);
  workers.describe(*s.mutable_workers(), wall_now());
  std::uint64_t allowed = 0;
  std::uint64_t denied = 0;
  for (const auto& [domain, counts] : parts_.endpoints.handshakes()) {
    allowed += counts.first;
    denied += counts.second;
  }
  counters_.set("curve_handshakes_allowed", allowed);
  counters_.set("curve_handshakes_denied", denied);
  const auto add = [&](const std::string& name, std::uint64_t value) {
    auto* c = s.add_counters();
    c->set_name(name);
    c->set_value(value);
    c->set_lifetime(counters_.lifetime(name) == CounterLifetime::kDurable
                        ? wire::COUNTER_DURABLE
                        : wire::COUNTER_SINCE_START);
  };
  // The table's order (docs/service.md), then any name outside it.
  for (const CounterSpec& spec : counter_specs())
    add(spec.name, counters_.all().at(spec.name));
  for (const auto& entry : counters_.all()) {
    // a named reference: clang 14 does not let a lambda capture a structured binding
    const std::string& name = entry.first;
    const auto& specs = counter_specs();
    if (std::none_of(specs.begin(), specs.end(),
                     [&](const CounterSpec& x) { return name == x.name; }))
      add(name, entry.second);
  }
  for (const auto& [name, src] : parts_.intake.sources().sources()) {
    if (s.sources_size() >= 1000) break;
    auto* x = s.add_sources();
    x->set_source(name);
    if (src.high_seq) x->set_durable_seq(*src.high_seq);
    x->set_observations_accepted(src.observations_accepted);
    x->set_observations_refused_qc(src.observations_refused_qc);
  }
  if (const auto q = parts_.publisher.latency_quantiles()) {
    s.set_latency_p50_seconds(q->first);
    s.set_latency_p99_seconds(q->second);
  }
  s.set_newest_checkpoint_cycle(store.newest_checkpoint());
  s.set_data_dir(store.data_dir().string());
  s.set_log_bytes(parts_.journal.bytes());
  s.set_log_segments(static_cast<std::uint32_t>(parts_.journal.segments()));
  s.set_last_error(workers.last_error());
  return s;
}

void Control::handle_readable() {
  for (int i = 0; i < 64; ++i) {
    Envelope e = receive_envelope(socket_);
    if (!e.ok) return;
    wire::ControlReply r;
    r.set_version(wire::PROTOCOL_VERSION_1);
    wire::ControlRequest q;
    if (!q.ParseFromArray(e.body.data(), static_cast<int>(e.body.size()))) {
      r.set_error("not a ControlRequest: protobuf parse failed on " +
                  std::to_string(e.body.size()) + " bytes");
      counters_.add("control_malformed");
    } else if (q.version() != wire::PROTOCOL_VERSION_1) {
      r.set_error("version = " + std::to_string(q.version()) +
                  ": this server speaks protocol version 1");
      counters_.add("control_wrong_version");
    } else if (q.command() == wire::COMMAND_LATEST_ANALYSIS && q.with_fields() &&
               !latest_rate_.try_take(control_peer(e), 1, wall_now())) {
      r.set_error(fmt::format(
          "LATEST_ANALYSIS with fields: more than limits.latest_analysis_per_second = {} from "
          "this peer; retry later",
          cfg_.limits.latest_analysis_per_second));
      counters_.add("control_rate_limited");
    } else {
      execute(q, r);
    }
    reply(socket_, e, r.SerializeAsString());
  }
}

void Control::execute(const wire::ControlRequest& q, wire::ControlReply& r) {
  WorkerGroup& workers = parts_.workers;
  r.set_ok(true);
  switch (q.command()) {
    case wire::COMMAND_STATUS:
      break;
    case wire::COMMAND_PAUSE:
      workers.pause();
      r.set_message("paused: observations are still accepted, no cycle is dispatched");
      break;
    case wire::COMMAND_RESUME:
      workers.resume();
      r.set_message("resumed");
      break;
    case wire::COMMAND_CHECKPOINT:
      workers.request_checkpoint();
      r.set_message("the next analysis will be checkpointed");
      break;
    case wire::COMMAND_SET_FILTER:
      if (!filters::kFilterNames.contains(q.filter())) {
        r.set_ok(false);
        r.set_error("filter = \"" + bounded(q.filter(), 32) + "\": expected " +
                    filters::kFilterNames.joined());
      } else {
        workers.set_filter(q.filter());
        r.set_message("filter " + workers.filter() + " from the next dispatched cycle");
      }
      break;
    case wire::COMMAND_SHUTDOWN:
      stopping_ = true;
      r.set_message("shutting down");
      break;
    case wire::COMMAND_LATEST_ANALYSIS:
      if (const auto& latest = parts_.store.latest(); !latest) {
        r.set_ok(false);
        r.set_error("no analysis published yet");
      } else {
        *r.mutable_analysis() = *latest;
        if (!q.with_fields()) {
          r.mutable_analysis()->clear_mean();
          r.mutable_analysis()->clear_spread();
        }
      }
      break;
    default:
      r.set_ok(false);
      r.set_error("command = " + std::to_string(q.command()) + ": unknown command");
      return;
  }
  *r.mutable_status() = status();
}

void Control::update_metrics(ServiceMetrics& metrics) const {
  metrics.update(status(), parts_.endpoints.handshakes());
}

}  // namespace rtda::server
