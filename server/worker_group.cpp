#include "server/worker_group.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <vector>

namespace rtda::server {
namespace fs = std::filesystem;

WorkerGroup::WorkerGroup(const config::Config& cfg, std::string config_hash, zmq::socket_t& socket,
                         CycleScheduler& scheduler, Ingest& intake, AnalysisStore& store,
                         Publisher& publisher, Journal& journal, Counters& counters)
    : cfg_(cfg),
      config_toml_(config::to_toml(cfg)),
      config_hash_(std::move(config_hash)),
      socket_(socket),
      scheduler_(scheduler),
      intake_(intake),
      store_(store),
      publisher_(publisher),
      journal_(journal),
      counters_(counters),
      filter_(cfg.server.filter) {}

void WorkerGroup::send_worker(const wire::ServerToWorker& m) {
  if (!worker_) return;
  send_to(worker_->identity, m);
}

void WorkerGroup::send_to(const std::string& identity, const wire::ServerToWorker& m) {
  const std::string payload = m.SerializeAsString();
  socket_.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  socket_.send(zmq::buffer(payload), zmq::send_flags::dontwait);
}

void WorkerGroup::handle_readable() {
  for (int i = 0; i < 64; ++i) {
    Envelope e = receive_envelope(socket_);
    if (!e.ok) return;
    const std::string identity = e.head.front().to_string();
    wire::WorkerToServer m;
    wire::ServerToWorker out;
    out.set_version(wire::PROTOCOL_VERSION_1);
    if (!m.ParseFromArray(e.body.data(), static_cast<int>(e.body.size()))) {
      counters_.add("worker_messages_malformed");
      out.set_refused("not a WorkerToServer message");
      send_to(identity, out);
      continue;
    }
    if (m.version() != wire::PROTOCOL_VERSION_1) {
      out.set_refused("version = " + std::to_string(m.version()) +
                      ": this server speaks protocol version 1");
      send_to(identity, out);
      continue;
    }
    const double now = wall_now();
    if (m.has_hello()) {
      on_hello(identity, m.hello(), now);
      continue;
    }
    if (!worker_ || worker_->identity != identity) {
      // Not the group we know (we restarted, or it was declared lost): it must say hello.
      // Once a second at most: a group's queued heartbeats must not make it join many times.
      auto& sent = hello_again_sent_[identity];
      if (now - sent >= 1.0) {
        out.set_hello_again(true);
        send_to(identity, out);
        sent = now;
      }
      if (hello_again_sent_.size() > 256) hello_again_sent_.clear();
      continue;
    }
    worker_->last_seen = now;
    if (m.has_heartbeat()) {
      worker_->stage = bounded(m.heartbeat().stage(), 32);
    } else if (m.has_result()) {
      on_result(m.result(), now);
    } else if (m.has_checkpoint_done()) {
      on_checkpoint(m.checkpoint_done());
    } else if (m.has_error()) {
      on_worker_error(m.error());
    }
  }
}

// A cycle that takes the worker group down three times (an error it reports, a crash or
// kill noticed as lost heartbeats, a cycle past server.cycle_timeout_seconds, a result the
// server refuses) is not dispatched again until an operator resumes (rtda resume): a
// poisoned window must not crash-loop the cluster.
void WorkerGroup::count_failure(std::int64_t cycle, const std::string& why) {
  last_error_ = fmt::format("cycle {}: {}", cycle, why);
  if (++failures_[cycle] >= 3 && !paused_) {
    paused_ = true;
    spdlog::error("cycle {} failed 3 times: dispatching paused until `rtda resume`", cycle);
  }
}

// The cycle a failure of the current group is charged to: the one in flight, else the next.
std::int64_t WorkerGroup::failing_cycle() const {
  return worker_ && worker_->in_flight >= 0 ? worker_->in_flight : next_cycle_;
}

void WorkerGroup::on_worker_error(const wire::WorkerError& e) {
  const std::string text = bounded(e.error(), 2000);
  spdlog::error("worker group: cycle {}: {}", failing_cycle(), text);
  counters_.add("worker_errors");
  last_error_ = fmt::format("cycle {}: {}", failing_cycle(), text);
  if (!e.fatal()) return;
  count_failure(failing_cycle(), text);
  worker_.reset();
}

// Drops the current group for misbehaving (it is told to stop) and charges the failure.
void WorkerGroup::drop_worker(const std::string& why, const char* counter, std::int64_t cycle) {
  spdlog::error("worker group on {}: {}; dropped", worker_ ? worker_->host : "?", why);
  counters_.add(counter);
  count_failure(cycle >= 0 ? cycle : failing_cycle(), why);
  wire::ServerToWorker bye;
  bye.set_version(wire::PROTOCOL_VERSION_1);
  bye.set_refused(why);
  send_worker(bye);
  worker_.reset();
}

void WorkerGroup::on_hello(const std::string& identity, const wire::WorkerHello& h, double now) {
  wire::ServerToWorker out;
  out.set_version(wire::PROTOCOL_VERSION_1);
  if (worker_ && worker_->identity != identity &&
      now - worker_->last_seen < cfg_.server.worker_timeout_seconds) {
    out.set_refused("another worker group (" + worker_->host + ") is connected and alive");
    counters_.add("worker_hellos_refused");
    send_to(identity, out);
    return;
  }
  if (!h.config_hash().empty() && h.config_hash() != config_hash_) {
    out.set_refused("worker configuration " + bounded(h.config_hash(), 32) +
                    " differs from the server's " + config_hash_ +
                    ": start rtda-worker without --config, or with the same one");
    counters_.add("worker_hellos_refused");
    send_to(identity, out);
    return;
  }
  const bool same_group = worker_ && worker_->identity == identity;
  if (worker_ && !same_group) {
    ++reconnects_;
    // The group it replaces never finished its cycle: that counts against the cycle.
    if (worker_->in_flight >= 0) count_failure(worker_->in_flight, "worker group replaced");
  }
  worker_ = Group{};
  worker_->identity = identity;
  worker_->last_seen = now;
  worker_->ranks = h.ranks();
  worker_->host = bounded(h.host(), 128);
  worker_->device = bounded(h.device(), 16);
  worker_->device_name = bounded(h.device_name(), 128);
  worker_->toolchain = bounded(h.toolchain(), 128);
  auto* w = out.mutable_welcome();
  w->set_config_toml(config_toml_);
  w->set_config_hash(config_hash_);
  w->set_heartbeat_seconds(cfg_.server.heartbeat_seconds);
  w->set_checkpoint_dir(store_.checkpoint_dir().string());
  // Restart point: the worker's own ensemble if it is exactly where we are, else the newest
  // checkpoint not beyond the last published analysis, else the initial ensemble.
  std::int64_t ckpt = -1;
  for (auto it = store_.checkpoints().rbegin(); it != store_.checkpoints().rend(); ++it) {
    if (*it <= store_.last_published() && scheduler_has_from(*it + 1)) {
      ckpt = *it;
      break;
    }
  }
  if (h.analysed_cycle() >= 0 && h.analysed_cycle() == store_.last_published()) {
    w->set_start(wire::START_CONTINUE);
    w->set_start_cycle(store_.last_published());
    next_cycle_ = store_.last_published() + 1;
  } else if (ckpt >= 0) {
    w->set_start(wire::START_CHECKPOINT);
    w->set_checkpoint_path(store_.checkpoint_path(ckpt).string());
    w->set_start_cycle(ckpt);
    next_cycle_ = ckpt + 1;
  } else if (scheduler_has_from(0)) {
    w->set_start(wire::START_FRESH);
    w->set_start_cycle(-1);
    next_cycle_ = 0;
  } else {
    out.clear_welcome();
    out.set_refused("no checkpoint covers the compacted observation log (windows through " +
                    std::to_string(journal_.dropped_through()) + " are gone): restore " +
                    store_.checkpoint_dir().string());
    spdlog::error("{}", out.refused());
    counters_.add("worker_hellos_refused");
    worker_.reset();
    send_to(identity, out);
    return;
  }
  spdlog::log(same_group ? spdlog::level::debug : spdlog::level::info,
              "worker group joined: {} ranks on {} (pid {}), device {} ({}; {}), start {} from "
              "cycle {}",
              h.ranks(), worker_->host, h.pid(), worker_->device, worker_->device_name,
              worker_->toolchain, wire::StartMode_Name(w->start()), w->start_cycle());
  worker_->welcomed = true;
  worker_->idle_since = now;
  counters_.add("worker_joins");
  send_worker(out);
}

std::int64_t WorkerGroup::backlog() const {
  const std::int64_t waiting =
      scheduler_.closed_through() - next_cycle_ + 1 - (worker_ && worker_->in_flight >= 0 ? 1 : 0);
  return std::max<std::int64_t>(0, waiting);
}

void WorkerGroup::dispatch() {
  if (!worker_ || !worker_->welcomed || worker_->in_flight >= 0 || paused_) return;
  if (scheduler_.closed_through() < next_cycle_) return;
  const std::int64_t k = next_cycle_;
  // Windows waiting behind this one: with behind_policy = "degrade", the older ones of a
  // backlog are only forecast so the newest analysis comes out with bounded latency.
  const std::int64_t behind = scheduler_.closed_through() - k;
  const bool degrade = cfg_.server.behind_policy == config::BehindPolicy::kDegrade &&
                       behind > cfg_.server.max_backlog_cycles &&
                       k <= scheduler_.closed_through() - cfg_.server.max_backlog_cycles;
  wire::ServerToWorker out;
  out.set_version(wire::PROTOCOL_VERSION_1);
  auto* t = out.mutable_task();
  t->set_cycle(static_cast<std::uint64_t>(k));
  t->set_valid_time_seconds(scheduler_.time_of(k));
  t->set_filter(degrade ? "none" : filter_);
  t->set_backlog_cycles(static_cast<std::uint32_t>(behind));
  if (degrade) {
    t->set_degraded(true);
    t->set_degraded_reason(fmt::format(
        "{} closed windows waiting (server.max_backlog_cycles = {}): forecast only, filter {} "
        "skipped",
        behind, cfg_.server.max_backlog_cycles, filter_));
    counters_.add("cycles_degraded");
  }
  // Columns: packed arrays encode and parse at memory speed (this is on the latency path).
  const auto window_obs = scheduler_.sorted_observations(k);
  auto* c = t->mutable_columns();
  const int n_obs = static_cast<int>(window_obs.size());
  c->mutable_id()->Reserve(n_obs);
  c->mutable_time_seconds()->Reserve(n_obs);
  c->mutable_level()->Reserve(n_obs);
  c->mutable_x_m()->Reserve(n_obs);
  c->mutable_y_m()->Reserve(n_obs);
  c->mutable_value()->Reserve(n_obs);
  c->mutable_error_sd()->Reserve(n_obs);
  c->mutable_op()->Reserve(n_obs);
  for (const auto& o : window_obs) {
    c->add_id(o.id);
    c->add_time_seconds(o.time_seconds);
    c->add_level(o.level);
    c->add_x_m(o.x_m);
    c->add_y_m(o.y_m);
    c->add_value(o.value);
    c->add_error_sd(o.error_sd);
    c->add_op(static_cast<wire::ObservationOperator>(o.op));
  }
  if (const Window* w = scheduler_.window(k); w && w->truth) *t->mutable_truth() = *w->truth;
  t->set_checkpoint(checkpoint_requested_ || (k + 1) % cfg_.server.checkpoint_every == 0);
  checkpoint_requested_ = false;
  t->set_dispatch_id(next_dispatch_id_++);
  t->set_closed_unix_seconds(wall_now());
  t->set_with_members(cfg_.server.publish_members);
  worker_->in_flight = k;
  worker_->dispatch_id = t->dispatch_id();
  worker_->dispatched_wall = wall_now();
  worker_->with_members = t->with_members();
  worker_->backlog = t->backlog_cycles();
  worker_->degraded = t->degraded();
  worker_->degraded_reason = t->degraded_reason();
  if (t->checkpoint()) worker_->checkpoints_asked.insert(k);
  // A group that never reports its checkpoints must not grow this: old requests expire.
  while (!worker_->checkpoints_asked.empty() && *worker_->checkpoints_asked.begin() < k - 16)
    worker_->checkpoints_asked.erase(worker_->checkpoints_asked.begin());
  send_worker(out);
  counters_.add("cycles_dispatched");
}

std::string WorkerGroup::check_result(const wire::Analysis& a, std::int64_t k) const {
  const core::Grid grid = cfg_.model.grid();
  const std::size_t n = grid.state_size();
  if (static_cast<std::int64_t>(a.cycle()) != k)
    return fmt::format("analysis.cycle = {}: the task was cycle {}", a.cycle(), k);
  if (a.grid_n() != static_cast<std::uint32_t>(grid.nx))
    return fmt::format("analysis.grid_n = {}: expected {}", a.grid_n(), grid.nx);
  if (static_cast<std::size_t>(a.mean_size()) != n)
    return fmt::format("analysis.mean: {} values, expected a state of {}", a.mean_size(), n);
  if (static_cast<std::size_t>(a.spread_size()) != n)
    return fmt::format("analysis.spread: {} values, expected a state of {}", a.spread_size(), n);
  if (a.members() != static_cast<std::uint32_t>(cfg_.ensemble.members))
    return fmt::format("analysis.members = {}: expected {}", a.members(), cfg_.ensemble.members);
  const std::size_t want_members = worker_->with_members ? n * a.members() : 0;
  if (static_cast<std::size_t>(a.ensemble_size()) != want_members)
    return fmt::format("analysis.ensemble: {} values, expected {}", a.ensemble_size(),
                       want_members);
  const auto finite = [](const auto& v) {
    return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
  };
  if (!finite(a.mean()) || !finite(a.spread()) || !finite(a.ensemble()))
    return "analysis: non-finite values";
  for (const auto& [name, value] : a.diagnostics())
    if (name.size() > 64) return "analysis.diagnostics: a name longer than 64 characters";
  if (a.diagnostics_size() > 256) return "analysis.diagnostics: more than 256 entries";
  return {};
}

void WorkerGroup::on_result(const wire::CycleResult& r, double now) {
  if (!worker_ || worker_->in_flight < 0 || r.dispatch_id() != worker_->dispatch_id) {
    counters_.add("worker_results_stale");
    return;
  }
  const std::int64_t k = worker_->in_flight;
  if (const std::string bad = check_result(r.analysis(), k); !bad.empty()) {
    drop_worker("result refused: " + bad, "worker_results_refused");
    return;
  }
  worker_->in_flight = -1;
  const double idle_before = worker_->idle_since;
  worker_->idle_since = now;
  next_cycle_ = k + 1;
  failures_.erase(k);
  if (k <= store_.last_published()) {
    wire::ServerToWorker done;
    done.set_version(wire::PROTOCOL_VERSION_1);
    done.set_result_published(r.dispatch_id());
    send_worker(done);
    counters_.add("cycles_replayed");  // recomputed after a restart; already published
    return;
  }
  wire::Analysis a = r.analysis();
  a.set_version(wire::PROTOCOL_VERSION_1);
  a.set_valid_time_seconds(scheduler_.time_of(k));
  a.set_backlog_cycles(worker_->backlog);
  a.set_degraded(worker_->degraded);
  a.set_degraded_reason(worker_->degraded_reason);
  auto* lat = a.mutable_latency();
  const Window* w = scheduler_.window(k);
  const double last_in = w && w->last_wall > 0 ? w->last_wall : worker_->dispatched_wall;
  // A window that closed while the group still computed the previous cycle waited for it:
  // compute time, not overhead.
  const double ready = std::max(last_in, w && w->closed_wall > 0 ? w->closed_wall : last_in);
  const double queued = std::max(0.0, idle_before - ready);
  lat->set_forecast_wait_seconds(lat->forecast_wait_seconds() + queued);
  lat->set_dispatch_seconds(
      std::max(0.0, r.task_received_unix_seconds() - worker_->dispatched_wall));
  lat->set_result_seconds(std::max(0.0, now - r.done_unix_seconds()));
  auto* lin = a.mutable_lineage();
  lin->set_config_hash(config_hash_);
  lin->set_seed(cfg_.experiment.seed);
  lin->set_worker_ranks(worker_->ranks);
  lin->set_model(bounded(lin->model(), 128));
  lin->set_device(bounded(lin->device(), 16));
  lin->set_device_name(bounded(lin->device_name(), 128));
  lin->set_toolchain(bounded(lin->toolchain(), 128));
  count_refused_by_source(r, k);
  publisher_.publish(a, now, last_in);
  {
    wire::ServerToWorker done;
    done.set_version(wire::PROTOCOL_VERSION_1);
    done.set_result_published(r.dispatch_id());
    send_worker(done);
  }
  counters_.add("cycles_published");
}

// Observations the worker's quality control refused, per source (by their position in the
// window's sorted observations).
void WorkerGroup::count_refused_by_source(const wire::CycleResult& r, std::int64_t k) {
  if (r.refused_index_size() == 0) return;
  const auto window_obs = scheduler_.sorted_observations(k);
  std::uint64_t counted = 0;
  for (const std::uint32_t i : r.refused_index()) {
    if (i >= window_obs.size()) continue;
    const auto& name = intake_.sources().source_name(window_obs[i].source);
    if (auto* s = intake_.sources().find(name)) ++s->observations_refused_qc;
    ++counted;
  }
  counters_.add("observations_refused_qc", counted);
}

void WorkerGroup::on_checkpoint(const wire::CheckpointDone& c) {
  const auto k = static_cast<std::int64_t>(c.cycle());
  // Only what was asked of this group, at the path the server chose, and really there.
  if (!worker_->checkpoints_asked.count(k)) {
    drop_worker(fmt::format("checkpoint_done.cycle = {}: no checkpoint of that cycle was asked "
                            "of this worker group",
                            c.cycle()),
                "worker_checkpoints_refused", k);
    return;
  }
  worker_->checkpoints_asked.erase(k);
  std::error_code ec;
  if (c.path() != store_.checkpoint_path(k).string() ||
      !fs::is_regular_file(store_.checkpoint_path(k), ec)) {
    drop_worker(fmt::format("checkpoint_done.path = \"{}\": expected the file {}",
                            bounded(c.path(), 200), store_.checkpoint_path(k).string()),
                "worker_checkpoints_refused", k);
    return;
  }
  if (k > store_.last_published()) {
    drop_worker(fmt::format("checkpoint_done.cycle = {}: beyond the last published cycle {}", k,
                            store_.last_published()),
                "worker_checkpoints_refused", k);
    return;
  }
  store_.add_checkpoint(k);
  journal_.compact(std::min(k, store_.last_published()));
}
void WorkerGroup::check(double now) {
  if (!worker_) return;
  if (now - worker_->last_seen > cfg_.server.worker_timeout_seconds) {
    spdlog::warn("worker group on {} lost: no heartbeat for {:.1f} s{}", worker_->host,
                 now - worker_->last_seen,
                 worker_->in_flight >= 0
                     ? fmt::format("; cycle {} will be re-dispatched", worker_->in_flight)
                     : std::string());
    counters_.add("worker_groups_lost");
    if (worker_->in_flight >= 0)
      count_failure(worker_->in_flight, "worker group lost (no heartbeat) during the cycle");
    worker_.reset();
    return;
  }
  if (worker_->in_flight >= 0 && cfg_.server.cycle_timeout_seconds > 0 &&
      now - worker_->dispatched_wall > cfg_.server.cycle_timeout_seconds) {
    drop_worker(fmt::format("cycle {} not done {:.1f} s after dispatch "
                            "(server.cycle_timeout_seconds = {})",
                            worker_->in_flight, now - worker_->dispatched_wall,
                            cfg_.server.cycle_timeout_seconds),
                "cycles_timed_out");
    return;
  }
  if (now - last_heartbeat_sent_ >= cfg_.server.heartbeat_seconds) {
    wire::ServerToWorker hb;
    hb.set_version(wire::PROTOCOL_VERSION_1);
    hb.mutable_heartbeat()->set_unix_seconds(now);
    send_worker(hb);
    last_heartbeat_sent_ = now;
  }
}

void WorkerGroup::send_stop() {
  wire::ServerToWorker bye;
  bye.set_version(wire::PROTOCOL_VERSION_1);
  bye.set_stop(true);
  send_worker(bye);
}

void WorkerGroup::resume() {
  paused_ = false;
  failures_.clear();
}

void WorkerGroup::describe(wire::WorkerGroupStatus& w, double now) const {
  w.set_connected(worker_.has_value());
  w.set_reconnects(reconnects_);
  w.set_cycle_in_flight(-1);
  if (worker_) {
    w.set_ranks(worker_->ranks);
    w.set_host(worker_->host);
    w.set_device(worker_->device);
    w.set_device_name(worker_->device_name);
    w.set_toolchain(worker_->toolchain);
    w.set_last_heartbeat_age_seconds(now - worker_->last_seen);
    w.set_cycle_in_flight(worker_->in_flight);
    w.set_stage(worker_->stage);
  }
}

}  // namespace rtda::server
