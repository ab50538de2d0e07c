#include "server/coordinator.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <zmq.hpp>

#include <google/protobuf/arena.h>
#include "io/archive.hpp"
#include "io/checkpoint.hpp"

#include "rtda.pb.h"
#include "server/cycle_scheduler.hpp"
#include "server/metrics.hpp"
#include "server/obs_log.hpp"
#include "server/rate_limit.hpp"
#include "server/security.hpp"

namespace rtda::server {
namespace fs = std::filesystem;
namespace {

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

constexpr std::size_t kMaxListedRejections = 100;

// Units of the worker's diagnostics in the analysis files (the wire carries values only).
std::string diagnostic_units(const std::string& name) {
  if (name.rfind("rmse_", 0) == 0 || name.rfind("spread_", 0) == 0) return "K";
  if (name.rfind("seconds_", 0) == 0) return "s";
  if (name == "shock_sd") return "m s-1";
  if (name.rfind("innovation_", 0) == 0) return "observation units";
  return "1";
}

// A request as a ROUTER sees it: [identity, (empty delimiter from REQ), payload].
struct Envelope {
  std::vector<zmq::message_t> head;  // identity (+ delimiter)
  zmq::message_t body;
  bool ok = false;
};

Envelope receive_envelope(zmq::socket_t& s) {
  Envelope e;
  std::vector<zmq::message_t> frames;
  while (true) {
    zmq::message_t m;
    if (!s.recv(m, zmq::recv_flags::dontwait)) break;
    const bool more = m.more();
    frames.push_back(std::move(m));
    if (!more) break;
  }
  if (frames.size() < 2) return e;  // not a routed message
  e.body = std::move(frames.back());
  frames.pop_back();
  e.head = std::move(frames);
  e.ok = true;
  return e;
}

void reply(zmq::socket_t& s, const Envelope& e, const std::string& payload) {
  for (const auto& h : e.head)
    s.send(zmq::buffer(h.data(), h.size()), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  s.send(zmq::buffer(payload), zmq::send_flags::dontwait);
}

std::string format_double(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

bool valid_source(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
           c == '-';
  });
}

struct SourceRecord {
  std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::uint32_t>> seqs;  // acc, rej
};

}  // namespace

struct Coordinator::Impl {
  config::Config cfg;
  std::string config_toml;
  std::string config_hash;
  fs::path data_dir, checkpoint_dir, analyses_dir;
  zmq::context_t ctx{1};
  std::unique_ptr<ZapAuthenticator> zap;
  zmq::socket_t ingest{ctx, zmq::socket_type::router};
  zmq::socket_t publish{ctx, zmq::socket_type::pub};
  zmq::socket_t control{ctx, zmq::socket_type::router};
  zmq::socket_t workers{ctx, zmq::socket_type::router};
  MetricsRegistry metrics;
  std::unique_ptr<MetricsHttpEndpoint> metrics_http;
  std::unique_ptr<ObservationLog> log;
  CycleScheduler scheduler;
  PerSourceRateLimiter rate;
  std::unordered_map<std::string, SourceRecord> sources;
  std::map<std::string, std::uint64_t> counters;
  double started = wall_now();
  bool paused = false;
  bool stopping = false;
  bool checkpoint_requested = false;
  std::string filter;

  // Cycling state.
  std::int64_t last_published = -1;
  std::int64_t newest_checkpoint = -1;
  std::set<std::int64_t> checkpoints;  // cycles with a good checkpoint file
  std::int64_t next_cycle = 0;         // the next cycle to dispatch (once a worker group joined)
  std::optional<wire::Analysis> latest;
  std::deque<double> latencies;

  // The worker group.
  struct WorkerGroup {
    std::string identity;
    bool welcomed = false;
    double last_seen = 0;
    std::uint32_t ranks = 0;
    std::string host;
    std::string stage = "idle";
    std::int64_t in_flight = -1;
    double dispatched_wall = 0;
    double idle_since = 0;  // the group finished its previous cycle (or joined) at this time
    std::uint64_t dispatch_id = 0;
  };
  std::optional<WorkerGroup> worker;
  std::uint64_t next_dispatch_id = 1;
  std::uint32_t reconnects = 0;
  double last_heartbeat_sent = 0;

  explicit Impl(const config::Config& c)
      : cfg(c),
        scheduler(WindowSettings{c.window.t0_seconds, c.experiment.cycle_hours * 3600.0,
                                 c.window.late_policy == "next", c.window.deadline_seconds,
                                 c.window.grace_seconds, c.window.max_windows_ahead}),
        rate(c.limits.source_rate_observations_per_second, c.limits.source_burst_observations,
             4096),
        filter(c.server.filter) {
    config_toml = config::to_toml(cfg);
    config_hash = config::science_hash(cfg);
    data_dir = fs::absolute(cfg.server.data_dir);
    checkpoint_dir = data_dir / "checkpoints";
    analyses_dir = data_dir / "analyses";
    fs::create_directories(checkpoint_dir);
    fs::create_directories(analyses_dir);
    setup_sockets();
    LogOptions lo;
    lo.dir = data_dir / "log";
    lo.segment_bytes = static_cast<std::uint64_t>(cfg.server.log_segment_mb) << 20;
    lo.sync = sync_policy_from_string(cfg.server.log_sync);
    lo.sync_interval_seconds = cfg.server.log_sync_interval_seconds;
    log = std::make_unique<ObservationLog>(lo);
    if (log->truncated_bytes() > 0) count("log_truncated_bytes", log->truncated_bytes());
    recover();
  }

  ~Impl() {
    if (log) log->commit();
    for (zmq::socket_t* s : {&ingest, &publish, &control, &workers})
      s->set(zmq::sockopt::linger, 0);
    metrics_http.reset();
    zap.reset();
  }

  void count(const std::string& name, std::uint64_t n = 1) { counters[name] += n; }

  // ---- sockets ---------------------------------------------------------------------------
  void setup_sockets() {
    const std::int64_t max_bytes = static_cast<std::int64_t>(cfg.limits.max_message_mb) << 20;
    if (cfg.security.curve) {
      const CurveKeyPair server_key = load_keypair(cfg.security.server_key);
      zap = std::make_unique<ZapAuthenticator>(ctx);
      const auto policy = [&](const std::string& domain, const std::string& keys) {
        if (keys.empty()) {
          zap->allow_any(domain);
        } else {
          zap->allow_keys(domain, load_allowed_keys(keys));
        }
      };
      policy("ingest", cfg.security.feeder_keys);
      policy("control", cfg.security.control_keys);
      policy("workers", cfg.security.worker_keys);
      zap->allow_any("publish");
      make_curve_server(ingest, server_key, "ingest");
      make_curve_server(control, server_key, "control");
      make_curve_server(workers, server_key, "workers");
      make_curve_server(publish, server_key, "publish");
    }
    // Twice the accepted size: libzmq drops a connection past ZMQ_MAXMSGSIZE without a
    // word, so messages between the limit and this cap get an error reply instead.
    for (zmq::socket_t* s : {&ingest, &control, &workers}) {
      s->set(zmq::sockopt::maxmsgsize, 2 * max_bytes);
      s->set(zmq::sockopt::router_mandatory, false);
      s->set(zmq::sockopt::linger, 1000);
      s->set(zmq::sockopt::sndhwm, 100000);
    }
    publish.set(zmq::sockopt::sndhwm, 1000);
    const auto bind = [](zmq::socket_t& s, const std::string& address, const char* what) {
      try {
        if (address.rfind("ipc://", 0) == 0) fs::remove(address.substr(6));
        s.bind(address);
      } catch (const zmq::error_t& e) {
        throw std::runtime_error(std::string("server.") + what + " = \"" + address +
                                 "\": cannot bind: " + e.what());
      }
    };
    bind(ingest, cfg.server.ingest, "ingest");
    bind(publish, cfg.server.publish, "publish");
    bind(control, cfg.server.control, "control");
    bind(workers, cfg.server.workers, "workers");
    if (!cfg.server.metrics.empty()) {
      metrics_http = std::make_unique<MetricsHttpEndpoint>(ctx, cfg.server.metrics, metrics);
    }
    spdlog::info("listening: ingest {} publish {} control {} workers {}{}{}", cfg.server.ingest,
                 cfg.server.publish, cfg.server.control, cfg.server.workers,
                 cfg.server.metrics.empty() ? "" : " metrics ", cfg.server.metrics);
  }

  // ---- recovery ----------------------------------------------------------------------------
  void recover() {
    // Published analyses: one file per cycle.
    static const std::regex analysis_re(R"(analysis-(\d{8})\.h5)");
    static const std::regex checkpoint_re(R"(checkpoint-(\d{8})\.h5)");
    std::smatch m;
    for (const auto& e : fs::directory_iterator(analyses_dir)) {
      const std::string name = e.path().filename().string();
      if (std::regex_match(name, m, analysis_re))
        last_published = std::max<std::int64_t>(last_published, std::stoll(m[1]));
    }
    for (const auto& e : fs::directory_iterator(checkpoint_dir)) {
      const std::string name = e.path().filename().string();
      if (!std::regex_match(name, m, checkpoint_re)) continue;
      try {
        const io::Checkpoint c = io::read_checkpoint(e.path());
        if (c.config_hash != config_hash) {
          spdlog::warn("checkpoint {}: configuration {} differs from this server's {}; ignored",
                       e.path().string(), c.config_hash, config_hash);
          continue;
        }
        checkpoints.insert(c.cycle);
      } catch (const std::exception& ex) {
        spdlog::warn("checkpoint {} unreadable, ignored: {}", e.path().string(), ex.what());
      }
    }
    if (!checkpoints.empty()) newest_checkpoint = *checkpoints.rbegin();
    load_latest();
    // Replay the log: the same placement decisions, closes and idempotency records as live.
    std::uint64_t batches = 0;
    log->replay([&](const LogRecordView& r) {
      wire::LogRecord rec;
      if (!rec.ParseFromArray(r.payload.data(), static_cast<int>(r.payload.size()))) {
        throw std::runtime_error("observation log record " + std::to_string(r.index) +
                                 ": not a LogRecord");
      }
      if (rec.has_window_closed()) {
        scheduler.close(static_cast<std::int64_t>(rec.window_closed().cycle()));
        return;
      }
      const wire::LoggedBatch& lb = rec.batch();
      wire::ObservationBatch b;
      b.ParseFromString(lb.batch());
      apply_batch(b, lb, lb.received_unix_seconds());
      // Counters cover the log's whole history, not only this process's.
      count("batches_accepted");
      count("observations_accepted", BatchObservations(b).size() - lb.rejected());
      count("observations_rejected", lb.rejected());
      count("observations_late", static_cast<std::uint64_t>(lb.late_index_size()));
      ++batches;
    });
    spdlog::info(
        "recovered: {} batches from the log ({} bytes, {} segments), windows closed "
        "through {}, last published cycle {}, newest checkpoint {}",
        batches, log->bytes(), log->segments(), scheduler.closed_through(), last_published,
        newest_checkpoint);
    // Deadlines restart from now for windows still open.
    next_cycle = last_published + 1;
  }

  // Applies a durable batch to the windows (live and in replay alike).
  // `placed` (live ingest): where validation already put each observation (-1: refused),
  // so the placement is not computed twice; replay computes it here, the same way.
  void apply_batch(const wire::ObservationBatch& b, const wire::LoggedBatch& lb, double wall,
                   const std::vector<std::int64_t>* placed = nullptr) {
    std::unordered_set<std::uint32_t> skip(lb.rejected_index().begin(), lb.rejected_index().end());
    std::uint32_t accepted = 0;
    const BatchObservations all(b);
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (placed) {
        const std::int64_t k = (*placed)[i];
        if (k < 0) continue;
        scheduler.add(k, all[i], wall, k != scheduler.cycle_of(all[i].time_seconds));
        ++accepted;
        continue;
      }
      if (!skip.empty() && skip.count(static_cast<std::uint32_t>(i))) continue;
      const StoredObservation o = all[i];
      const auto p = scheduler.place(o.time_seconds);
      if (p.kind == CycleScheduler::Placement::kWindow ||
          p.kind == CycleScheduler::Placement::kLate) {
        scheduler.add(p.cycle, o, wall, p.kind == CycleScheduler::Placement::kLate);
        ++accepted;
      }
    }
    if (b.has_truth()) {
      std::int64_t k = 0;
      if (scheduler.analysis_cycle(b.truth().time_seconds(), k)) scheduler.set_truth(k, b.truth());
    }
    sources[b.source()].seqs[b.seq()] = {accepted, lb.rejected()};
    if (b.has_end_of_window_seconds()) {
      std::int64_t k = 0;
      if (scheduler.analysis_cycle(b.end_of_window_seconds(), k)) scheduler.close(k, wall);
    }
  }

  // ---- ingest --------------------------------------------------------------------------
  // Validates one batch; on success appends it to the log (not yet committed) and applies it.
  wire::IngestAck ingest_one(const zmq::message_t& body, double wall) {
    wire::IngestAck ack;
    ack.set_version(wire::PROTOCOL_VERSION_1);
    const std::size_t limit = static_cast<std::size_t>(cfg.limits.max_message_mb) << 20;
    const auto refuse = [&](wire::AckStatus st, const std::string& why, const char* counter) {
      ack.set_status(st);
      ack.set_error(why);
      count(counter);
      return ack;
    };
    if (body.size() > limit) {
      return refuse(wire::ACK_ERROR,
                    "message of " + std::to_string(body.size()) +
                        " bytes exceeds limits.max_message_mb = " +
                        std::to_string(cfg.limits.max_message_mb) + " MiB",
                    "messages_oversize");
    }
    // An arena makes the thousands of Observation sub-messages of a batch one allocation.
    google::protobuf::ArenaOptions arena_options;
    arena_options.start_block_size = 64 * 1024;
    arena_options.max_block_size = 8 << 20;
    google::protobuf::Arena arena(arena_options);
    wire::ObservationBatch& b =
        *google::protobuf::Arena::CreateMessage<wire::ObservationBatch>(&arena);
    if (!b.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
      return refuse(wire::ACK_ERROR,
                    "not an ObservationBatch: protobuf parse failed on " +
                        std::to_string(body.size()) + " bytes (garbage or truncated message)",
                    "messages_malformed");
    }
    ack.set_source(b.source());
    ack.set_seq(b.seq());
    if (b.version() != wire::PROTOCOL_VERSION_1) {
      return refuse(wire::ACK_REJECTED,
                    "version = " + std::to_string(b.version()) +
                        ": this server speaks protocol version 1 (PROTOCOL_VERSION_1)",
                    "batches_wrong_version");
    }
    if (!valid_source(b.source())) {
      return refuse(wire::ACK_REJECTED,
                    "source = \"" + b.source().substr(0, 80) +
                        "\": expected 1..64 characters of [A-Za-z0-9._:-]",
                    "batches_rejected");
    }
    if (auto it = sources.find(b.source()); it != sources.end()) {
      if (auto s = it->second.seqs.find(b.seq()); s != it->second.seqs.end()) {
        ack.set_status(wire::ACK_DUPLICATE);
        ack.set_accepted(s->second.first);
        ack.set_rejected(s->second.second);
        count("batches_duplicate");
        return ack;
      }
    }
    const BatchObservations all(b);
    if (const std::string bad = all.check_columns(); !bad.empty()) {
      return refuse(wire::ACK_REJECTED, bad, "batches_rejected");
    }
    const int n = static_cast<int>(all.size());
    if (n > cfg.limits.max_batch_observations) {
      return refuse(wire::ACK_REJECTED,
                    "observations: " + std::to_string(n) +
                        " in one batch, limits.max_batch_observations = " +
                        std::to_string(cfg.limits.max_batch_observations),
                    "batches_rejected");
    }
    if (!rate.try_take(b.source(), n, wall)) {
      ack.set_retry_after_seconds(rate.retry_after(b.source(), n, wall));
      return refuse(wire::ACK_REJECTED,
                    "source \"" + b.source() +
                        "\" exceeds limits.source_rate_observations_per_"
                        "second = " +
                        format_double(cfg.limits.source_rate_observations_per_second),
                    "batches_rate_limited");
    }
    std::int64_t eow = -1;
    if (b.has_end_of_window_seconds() &&
        !scheduler.analysis_cycle(b.end_of_window_seconds(), eow)) {
      return refuse(wire::ACK_REJECTED,
                    "end_of_window_seconds = " + format_double(b.end_of_window_seconds()) +
                        ": not an analysis time t0 + k * " +
                        format_double(scheduler.settings().cycle_seconds) + " s",
                    "batches_rejected");
    }
    if (b.has_truth()) {
      const auto& t = b.truth();
      const std::size_t want = 2 * static_cast<std::size_t>(cfg.model.sqg.N) * cfg.model.sqg.N;
      std::int64_t k = 0;
      std::string bad;
      if (t.grid_n() != static_cast<std::uint32_t>(cfg.model.sqg.N)) {
        bad = "truth.grid_n = " + std::to_string(t.grid_n()) + ": expected " +
              std::to_string(cfg.model.sqg.N);
      } else if (static_cast<std::size_t>(t.q_size()) != want) {
        bad = "truth.q: " + std::to_string(t.q_size()) +
              " values, expected 2 N^2 = " + std::to_string(want);
      } else if (!scheduler.analysis_cycle(t.time_seconds(), k)) {
        bad = "truth.time_seconds = " + format_double(t.time_seconds()) + ": not an analysis time";
      } else if (!std::all_of(t.q().begin(), t.q().end(),
                              [](double v) { return std::isfinite(v); })) {
        bad = "truth.q: non-finite values";
      }
      if (!bad.empty()) return refuse(wire::ACK_REJECTED, bad, "batches_rejected");
    }

    // Per observation: refused ones are listed, the rest stored.
    wire::LoggedBatch lb;
    const double L = cfg.model.sqg.L_m;
    std::uint32_t rejected = 0, late = 0;
    std::vector<std::int64_t> placed(static_cast<std::size_t>(n), -1);
    for (int i = 0; i < n; ++i) {
      const StoredObservation o = all[static_cast<std::size_t>(i)];
      std::string field, why;
      const auto num = [&](const char* f, double v, const std::string& expected) {
        field = f;
        why = std::string(f) + " = " + format_double(v) + ": expected " + expected;
      };
      if (!std::isfinite(o.time_seconds)) {
        num("time_seconds", o.time_seconds, "a finite model time");
      } else if (o.level > 1) {
        field = "level";
        why = "level = " + std::to_string(o.level) + ": expected 0 (surface) or 1 (lid)";
      } else if (!(o.x_m >= 0 && o.x_m < L)) {
        num("x_m", o.x_m, "a position in [0, L = " + format_double(L) + ") m");
      } else if (!(o.y_m >= 0 && o.y_m < L)) {
        num("y_m", o.y_m, "a position in [0, L = " + format_double(L) + ") m");
      } else if (!std::isfinite(o.value)) {
        num("value", o.value, "a finite value");
      } else if (!(std::isfinite(o.error_sd) && o.error_sd > 0)) {
        num("error_sd", o.error_sd, "a finite standard deviation > 0");
      } else if (!wire::ObservationOperator_IsValid(o.op)) {
        field = "op";
        why =
            "op = " + std::to_string(o.op) + ": expected 0 (linear_K), 1 (arctan) or 2 (identity)";
      } else {
        const auto p = scheduler.place(o.time_seconds);
        using P = CycleScheduler::Placement;
        if (p.kind == P::kBeforeFirstWindow) {
          num("time_seconds", o.time_seconds,
              "a time after the first window's start t0 - dt/2 = " +
                  format_double(scheduler.time_of(0) - scheduler.settings().cycle_seconds / 2));
        } else if (p.kind == P::kTooFarAhead) {
          num("time_seconds", o.time_seconds,
              "a window at most window.max_windows_ahead = " +
                  std::to_string(cfg.window.max_windows_ahead) + " after the oldest open one");
        } else if (p.kind == P::kLateRejected) {
          num("time_seconds", o.time_seconds,
              "an open window (window " + std::to_string(p.cycle) +
                  " is closed; window.late_policy = \"reject\")");
          count("observations_late_rejected");
        } else if (p.kind == P::kLate) {
          ++late;
          lb.add_late_index(static_cast<std::uint32_t>(i));
        }
        if (p.kind == P::kWindow || p.kind == P::kLate)
          placed[static_cast<std::size_t>(i)] = p.cycle;
      }
      if (!why.empty()) {
        ++rejected;
        lb.add_rejected_index(static_cast<std::uint32_t>(i));
        if (static_cast<std::size_t>(ack.rejections_size()) < kMaxListedRejections) {
          auto* r = ack.add_rejections();
          r->set_index(static_cast<std::uint32_t>(i));
          r->set_id(o.id);
          r->set_field(field);
          r->set_reason(why);
        }
      }
    }
    lb.set_rejected(rejected);
    lb.set_received_unix_seconds(wall);
    lb.set_batch(body.data(), body.size());
    wire::LogRecord rec;
    *rec.mutable_batch() = std::move(lb);
    const std::string bytes = rec.SerializeAsString();
    log->append(std::as_bytes(std::span(bytes.data(), bytes.size())));
    apply_batch(b, rec.batch(), wall, &placed);
    ack.set_status(wire::ACK_ACCEPTED);
    ack.set_accepted(static_cast<std::uint32_t>(n) - rejected);
    ack.set_rejected(rejected);
    ack.set_late(late);
    count("batches_accepted");
    count("observations_accepted", static_cast<std::uint64_t>(n) - rejected);
    count("observations_rejected", rejected);
    count("observations_late", late);
    if (eow >= 0) count("windows_closed_by_marker");
    return ack;
  }

  // Group commit: every batch waiting now is validated and appended, then one commit makes
  // them durable, then every ack goes out.
  void handle_ingest() {
    std::vector<std::pair<Envelope, std::string>> replies;
    for (int i = 0; i < 256; ++i) {
      Envelope e = receive_envelope(ingest);
      if (!e.ok) break;
      wire::IngestAck ack;
      try {
        ack = ingest_one(e.body, wall_now());
      } catch (const std::exception& ex) {
        ack.set_version(wire::PROTOCOL_VERSION_1);
        ack.set_status(wire::ACK_ERROR);
        ack.set_error(std::string("server error: ") + ex.what());
        spdlog::error("ingest: {}", ex.what());
      }
      replies.emplace_back(std::move(e), ack.SerializeAsString());
    }
    if (replies.empty()) return;
    log->commit();
    for (auto& [e, payload] : replies)
      reply(ingest, e, payload);
  }

  void close_due_windows() {
    std::string reason;
    const std::int64_t k = scheduler.due_closure(wall_now(), reason);
    if (k < 0) return;
    close_window(k, reason);
  }

  void close_window(std::int64_t k, const std::string& reason) {
    wire::LogRecord rec;
    rec.mutable_window_closed()->set_cycle(static_cast<std::uint64_t>(k));
    rec.mutable_window_closed()->set_reason(reason);
    rec.mutable_window_closed()->set_unix_seconds(wall_now());
    const std::string bytes = rec.SerializeAsString();
    log->append(std::as_bytes(std::span(bytes.data(), bytes.size())));
    log->commit();
    scheduler.close(k, wall_now());
    count("windows_closed_by_" + std::string(reason == "deadline" ? "deadline" : "later_window"));
    spdlog::info("window {} closed ({})", k, reason);
  }

  // ---- worker group ------------------------------------------------------------------------
  void send_worker(const wire::ServerToWorker& m) {
    if (!worker) return;
    const std::string payload = m.SerializeAsString();
    workers.send(zmq::buffer(worker->identity), zmq::send_flags::sndmore);
    workers.send(zmq::buffer(payload), zmq::send_flags::dontwait);
  }

  void send_to(const std::string& identity, const wire::ServerToWorker& m) {
    const std::string payload = m.SerializeAsString();
    workers.send(zmq::buffer(identity), zmq::send_flags::sndmore);
    workers.send(zmq::buffer(payload), zmq::send_flags::dontwait);
  }

  void handle_workers() {
    for (int i = 0; i < 64; ++i) {
      Envelope e = receive_envelope(workers);
      if (!e.ok) return;
      const std::string identity = e.head.front().to_string();
      wire::WorkerToServer m;
      wire::ServerToWorker out;
      out.set_version(wire::PROTOCOL_VERSION_1);
      if (!m.ParseFromArray(e.body.data(), static_cast<int>(e.body.size()))) {
        count("worker_messages_malformed");
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
      if (!worker || worker->identity != identity) {
        // Not the group we know (we restarted, or it was declared lost): it must say hello.
        out.set_hello_again(true);
        send_to(identity, out);
        continue;
      }
      worker->last_seen = now;
      if (m.has_heartbeat()) {
        worker->stage = m.heartbeat().stage();
      } else if (m.has_result()) {
        on_result(m.result(), now);
      } else if (m.has_checkpoint_done()) {
        on_checkpoint(m.checkpoint_done());
      } else if (m.has_error()) {
        on_worker_error(m.error());
      }
    }
  }

  // A cycle that takes the worker group down three times is not dispatched again until an
  // operator resumes (rtda resume): a poisoned window must not crash-loop the cluster.
  void on_worker_error(const wire::WorkerError& e) {
    spdlog::error("worker group: cycle {}: {}", e.cycle(), e.error());
    count("worker_errors");
    last_error = fmt::format("cycle {}: {}", e.cycle(), e.error());
    if (!e.fatal()) return;
    if (++failures[e.cycle()] >= 3 && !paused) {
      paused = true;
      spdlog::error("cycle {} failed 3 times: dispatching paused until `rtda resume`", e.cycle());
    }
    worker.reset();
  }
  std::map<std::int64_t, int> failures;
  std::string last_error;

  void on_hello(const std::string& identity, const wire::WorkerHello& h, double now) {
    wire::ServerToWorker out;
    out.set_version(wire::PROTOCOL_VERSION_1);
    if (worker && worker->identity != identity &&
        now - worker->last_seen < cfg.server.worker_timeout_seconds) {
      out.set_refused("another worker group (" + worker->host + ") is connected and alive");
      send_to(identity, out);
      return;
    }
    if (!h.config_hash().empty() && h.config_hash() != config_hash) {
      out.set_refused("worker configuration " + h.config_hash() + " differs from the server's " +
                      config_hash + ": start rtda-worker without --config, or with the same one");
      send_to(identity, out);
      return;
    }
    if (worker) ++reconnects;
    worker = WorkerGroup{};
    worker->identity = identity;
    worker->last_seen = now;
    worker->ranks = h.ranks();
    worker->host = h.host();
    auto* w = out.mutable_welcome();
    w->set_config_toml(config_toml);
    w->set_config_hash(config_hash);
    w->set_heartbeat_seconds(cfg.server.heartbeat_seconds);
    w->set_checkpoint_dir(checkpoint_dir.string());
    // Restart point: the worker's own ensemble if it is exactly where we are, else the newest
    // checkpoint not beyond the last published analysis, else the initial ensemble.
    std::int64_t ckpt = -1;
    for (auto it = checkpoints.rbegin(); it != checkpoints.rend(); ++it) {
      if (*it <= last_published && scheduler_has_from(*it + 1)) {
        ckpt = *it;
        break;
      }
    }
    if (h.analysed_cycle() >= 0 && h.analysed_cycle() == last_published) {
      w->set_start(wire::START_CONTINUE);
      w->set_start_cycle(last_published);
      next_cycle = last_published + 1;
    } else if (ckpt >= 0) {
      w->set_start(wire::START_CHECKPOINT);
      w->set_checkpoint_path(checkpoint_path(ckpt).string());
      w->set_start_cycle(ckpt);
      next_cycle = ckpt + 1;
    } else {
      w->set_start(wire::START_FRESH);
      w->set_start_cycle(-1);
      next_cycle = 0;
    }
    spdlog::info("worker group joined: {} ranks on {} (pid {}), start {} from cycle {}", h.ranks(),
                 h.host(), h.pid(), wire::StartMode_Name(w->start()), w->start_cycle());
    worker->welcomed = true;
    worker->idle_since = now;
    send_worker(out);
  }

  // The windows from `cycle` on are still in memory (a restart can replay from there).
  bool scheduler_has_from(std::int64_t cycle) const { return cycle > dropped_through; }
  std::int64_t dropped_through = -1;

  fs::path checkpoint_path(std::int64_t cycle) const {
    char name[64];
    std::snprintf(name, sizeof name, "checkpoint-%08lld.h5", static_cast<long long>(cycle));
    return checkpoint_dir / name;
  }
  fs::path analysis_path(std::int64_t cycle) const {
    char name[64];
    std::snprintf(name, sizeof name, "analysis-%08lld.h5", static_cast<long long>(cycle));
    return analyses_dir / name;
  }

  void dispatch() {
    if (!worker || !worker->welcomed || worker->in_flight >= 0 || paused || stopping) return;
    if (scheduler.closed_through() < next_cycle) return;
    const std::int64_t k = next_cycle;
    wire::ServerToWorker out;
    out.set_version(wire::PROTOCOL_VERSION_1);
    auto* t = out.mutable_task();
    t->set_cycle(static_cast<std::uint64_t>(k));
    t->set_valid_time_seconds(scheduler.time_of(k));
    t->set_filter(filter);
    // Columns: packed arrays encode and parse at memory speed (this is on the latency path).
    const auto window_obs = scheduler.sorted_observations(k);
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
    if (const Window* w = scheduler.window(k); w && w->truth) *t->mutable_truth() = *w->truth;
    t->set_checkpoint(checkpoint_requested || (k + 1) % cfg.server.checkpoint_every == 0);
    checkpoint_requested = false;
    t->set_dispatch_id(next_dispatch_id++);
    t->set_closed_unix_seconds(wall_now());
    t->set_with_members(cfg.server.publish_members);
    worker->in_flight = k;
    worker->dispatch_id = t->dispatch_id();
    worker->dispatched_wall = wall_now();
    send_worker(out);
    count("cycles_dispatched");
  }

  void on_result(const wire::CycleResult& r, double now) {
    if (!worker || r.dispatch_id() != worker->dispatch_id) {
      count("worker_results_stale");
      return;
    }
    const std::int64_t k = worker->in_flight;
    worker->in_flight = -1;
    const double idle_before = worker->idle_since;
    worker->idle_since = now;
    next_cycle = k + 1;
    if (k <= last_published) {
      wire::ServerToWorker done;
      done.set_version(wire::PROTOCOL_VERSION_1);
      done.set_result_published(r.dispatch_id());
      send_worker(done);
      count("cycles_replayed");  // recomputed after a restart; already published
      return;
    }
    wire::Analysis a = r.analysis();
    a.set_version(wire::PROTOCOL_VERSION_1);
    auto* lat = a.mutable_latency();
    const Window* w = scheduler.window(k);
    const double last_in = w && w->last_wall > 0 ? w->last_wall : worker->dispatched_wall;
    // A window that closed while the group still computed the previous cycle waited for it:
    // compute time, not overhead.
    const double ready = std::max(last_in, w && w->closed_wall > 0 ? w->closed_wall : last_in);
    const double queued = std::max(0.0, idle_before - ready);
    lat->set_forecast_wait_seconds(lat->forecast_wait_seconds() + queued);
    lat->set_dispatch_seconds(
        std::max(0.0, r.task_received_unix_seconds() - worker->dispatched_wall));
    lat->set_result_seconds(std::max(0.0, now - r.done_unix_seconds()));
    auto* lin = a.mutable_lineage();
    lin->set_config_hash(config_hash);
    lin->set_seed(cfg.experiment.seed);
    lin->set_worker_ranks(worker->ranks);
    publish_analysis(a, now, last_in);
    last_published = k;
    {
      wire::ServerToWorker done;
      done.set_version(wire::PROTOCOL_VERSION_1);
      done.set_result_published(r.dispatch_id());
      send_worker(done);
    }
    write_analysis_file(a);
    count("cycles_published");
  }

  void publish_analysis(wire::Analysis& a, double received, double last_in) {
    auto* lat = a.mutable_latency();
    const double published = wall_now();
    lat->set_publish_seconds(published - received);
    const double total = std::max(0.0, published - last_in);
    lat->set_total_seconds(total);
    lat->set_overhead_seconds(
        std::max(0.0, total - lat->forecast_wait_seconds() - lat->analysis_seconds()));
    latencies.push_back(total);
    if (latencies.size() > 1000) latencies.pop_front();
    metrics.summary("rtda_cycle_latency_seconds", "last observation in -> analysis published")
        .observe(total);
    metrics.summary("rtda_cycle_overhead_seconds", "latency not spent in forecast or analysis")
        .observe(lat->overhead_seconds());
    // Topics from the least to the most data; each frame pair is one message.
    wire::Analysis summary = a;
    summary.clear_mean();
    summary.clear_spread();
    summary.clear_ensemble();
    const auto send = [&](const char* topic, const wire::Analysis& m) {
      const std::string payload = m.SerializeAsString();
      publish.send(zmq::buffer(std::string_view(topic)), zmq::send_flags::sndmore);
      publish.send(zmq::buffer(payload), zmq::send_flags::dontwait);
    };
    send("rtda.summary", summary);
    wire::Analysis fields = a;
    fields.clear_ensemble();
    send("rtda.analysis", fields);
    if (a.ensemble_size() > 0) send("rtda.ensemble", a);
    latest = std::move(fields);
    save_latest();
    std::string rmse;
    if (auto it = a.diagnostics().find("rmse_analysis"); it != a.diagnostics().end())
      rmse = fmt::format(" rmse {:.3f} K", it->second);
    spdlog::info(
        "cycle {} published: {} observations, filter {}{}, latency {:.1f} ms (forecast "
        "wait {:.1f}, analysis {:.1f}, overhead {:.2f} of which dispatch {:.2f}, result "
        "{:.2f}, publish {:.2f})",
        a.cycle(), a.lineage().observations_used(), a.filter(), rmse, total * 1e3,
        lat->forecast_wait_seconds() * 1e3, lat->analysis_seconds() * 1e3,
        lat->overhead_seconds() * 1e3, lat->dispatch_seconds() * 1e3, lat->result_seconds() * 1e3,
        lat->publish_seconds() * 1e3);
  }

  // The newest analysis survives a restart, for late joiners (COMMAND_LATEST_ANALYSIS).
  void save_latest() {
    const fs::path path = data_dir / "latest-analysis.pb";
    const fs::path tmp = data_dir / "latest-analysis.pb.tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out || !latest->SerializeToOstream(&out)) {
        spdlog::warn("cannot write {}", tmp.string());
        return;
      }
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
  }

  void load_latest() {
    std::ifstream in(data_dir / "latest-analysis.pb", std::ios::binary);
    if (!in) return;
    wire::Analysis a;
    if (a.ParseFromIstream(&in) && static_cast<std::int64_t>(a.cycle()) <= last_published) {
      latest = std::move(a);
    }
  }

  void write_analysis_file(const wire::Analysis& a) {
    try {
      std::map<std::string, io::Diagnostic> diag;
      for (const auto& [name, value] : a.diagnostics())
        diag[name] = {value, diagnostic_units(name), name};
      const auto& l = a.latency();
      diag["seconds_forecast"] = {l.forecast_seconds(), "s", "forecast stage"};
      diag["seconds_latency"] = {l.total_seconds(), "s", "last observation in -> published"};
      diag["seconds_overhead"] = {l.overhead_seconds(), "s", "latency not spent computing"};
      io::ArchiveWriter w(analysis_path(static_cast<std::int64_t>(a.cycle())), cfg.model.sqg, 0,
                          {{"created_by", "rtda-server"},
                           {"filter", a.filter()},
                           {"analysis_cycle", std::to_string(a.cycle())},
                           {"service_config_hash", config_hash}},
                          static_cast<std::int64_t>(a.cycle()));
      w.append(a.valid_time_seconds(), std::vector<double>(a.mean().begin(), a.mean().end()),
               std::vector<double>(a.spread().begin(), a.spread().end()), diag);
      w.close();
    } catch (const std::exception& e) {
      spdlog::error("analysis file for cycle {}: {}", a.cycle(), e.what());
      count("analysis_file_errors");
    }
  }

  void on_checkpoint(const wire::CheckpointDone& c) {
    const auto k = static_cast<std::int64_t>(c.cycle());
    checkpoints.insert(k);
    newest_checkpoint = std::max(newest_checkpoint, k);
    count("checkpoints");
    // Keep the newest checkpoint_keep; windows before the newest usable one are not needed.
    while (static_cast<int>(checkpoints.size()) > cfg.server.checkpoint_keep) {
      std::error_code ec;
      fs::remove(checkpoint_path(*checkpoints.begin()), ec);
      checkpoints.erase(checkpoints.begin());
    }
    const std::int64_t usable = std::min(k, last_published);
    if (usable > dropped_through && usable <= scheduler.closed_through()) {
      scheduler.drop_through(usable);
      dropped_through = usable;
    }
  }

  void check_worker(double now) {
    if (!worker) return;
    if (now - worker->last_seen > cfg.server.worker_timeout_seconds) {
      spdlog::warn("worker group on {} lost: no heartbeat for {:.1f} s{}", worker->host,
                   now - worker->last_seen,
                   worker->in_flight >= 0
                       ? fmt::format("; cycle {} will be re-dispatched", worker->in_flight)
                       : std::string());
      count("worker_groups_lost");
      worker.reset();
      return;
    }
    if (now - last_heartbeat_sent >= cfg.server.heartbeat_seconds) {
      wire::ServerToWorker hb;
      hb.set_version(wire::PROTOCOL_VERSION_1);
      hb.mutable_heartbeat()->set_unix_seconds(now);
      send_worker(hb);
      last_heartbeat_sent = now;
    }
  }

  // ---- control -------------------------------------------------------------------------
  wire::Status status() const {
    wire::Status s;
    s.set_server_version(RTDA_SERVER_VERSION);
    s.set_state(stopping ? "stopping"
                : paused ? "paused"
                : worker ? "running"
                         : "waiting-for-workers");
    s.set_uptime_seconds(wall_now() - started);
    s.set_filter(filter);
    s.set_config_hash(config_hash);
    s.set_last_cycle(last_published);
    s.set_last_valid_time_seconds(last_published >= 0 ? scheduler.time_of(last_published) : 0);
    s.set_next_cycle(next_cycle);
    s.set_open_windows(static_cast<std::uint32_t>(scheduler.open_windows()));
    const std::int64_t waiting =
        scheduler.closed_through() - next_cycle + 1 - (worker && worker->in_flight >= 0 ? 1 : 0);
    s.set_closed_windows_waiting(static_cast<std::uint32_t>(std::max<std::int64_t>(0, waiting)));
    auto* w = s.mutable_workers();
    w->set_connected(worker.has_value());
    w->set_reconnects(reconnects);
    w->set_cycle_in_flight(-1);
    if (worker) {
      w->set_ranks(worker->ranks);
      w->set_host(worker->host);
      w->set_last_heartbeat_age_seconds(wall_now() - worker->last_seen);
      w->set_cycle_in_flight(worker->in_flight);
      w->set_stage(worker->stage);
    }
    for (const auto& [name, value] : counters) {
      auto* c = s.add_counters();
      c->set_name(name);
      c->set_value(value);
    }
    if (!latencies.empty()) {
      std::vector<double> v(latencies.begin(), latencies.end());
      std::sort(v.begin(), v.end());
      const auto q = [&](double p) {
        return v[std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5))];
      };
      s.set_latency_p50_seconds(q(0.5));
      s.set_latency_p99_seconds(q(0.99));
    }
    s.set_newest_checkpoint_cycle(newest_checkpoint);
    s.set_data_dir(data_dir.string());
    s.set_log_bytes(log->bytes());
    s.set_log_segments(static_cast<std::uint32_t>(log->segments()));
    s.set_last_error(last_error);
    return s;
  }

  void handle_control() {
    for (int i = 0; i < 64; ++i) {
      Envelope e = receive_envelope(control);
      if (!e.ok) return;
      wire::ControlReply r;
      r.set_version(wire::PROTOCOL_VERSION_1);
      wire::ControlRequest q;
      if (e.body.size() > (static_cast<std::size_t>(cfg.limits.max_message_mb) << 20) ||
          !q.ParseFromArray(e.body.data(), static_cast<int>(e.body.size()))) {
        r.set_error("not a ControlRequest: protobuf parse failed on " +
                    std::to_string(e.body.size()) + " bytes");
        count("control_malformed");
      } else if (q.version() != wire::PROTOCOL_VERSION_1) {
        r.set_error("version = " + std::to_string(q.version()) +
                    ": this server speaks protocol version 1");
        count("control_wrong_version");
      } else {
        execute(q, r);
      }
      reply(control, e, r.SerializeAsString());
    }
  }

  void execute(const wire::ControlRequest& q, wire::ControlReply& r) {
    r.set_ok(true);
    switch (q.command()) {
      case wire::COMMAND_STATUS:
        break;
      case wire::COMMAND_PAUSE:
        paused = true;
        r.set_message("paused: observations are still accepted, no cycle is dispatched");
        break;
      case wire::COMMAND_RESUME:
        paused = false;
        failures.clear();
        r.set_message("resumed");
        break;
      case wire::COMMAND_CHECKPOINT:
        checkpoint_requested = true;
        r.set_message("the next analysis will be checkpointed");
        break;
      case wire::COMMAND_SET_FILTER:
        if (q.filter() != "letkf" && q.filter() != "ensf" && q.filter() != "none") {
          r.set_ok(false);
          r.set_error("filter = \"" + q.filter() + "\": expected letkf, ensf or none");
        } else {
          filter = q.filter();
          r.set_message("filter " + filter + " from the next dispatched cycle");
        }
        break;
      case wire::COMMAND_SHUTDOWN:
        stopping = true;
        r.set_message("shutting down");
        break;
      case wire::COMMAND_LATEST_ANALYSIS:
        if (!latest) {
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

  void update_metrics() {
    for (const auto& [name, value] : counters)
      metrics.gauge("rtda_" + name, name).set(static_cast<double>(value));
    metrics.gauge("rtda_last_cycle", "newest published cycle")
        .set(static_cast<double>(last_published));
    metrics.gauge("rtda_open_windows", "windows accepting observations")
        .set(static_cast<double>(scheduler.open_windows()));
    metrics.gauge("rtda_worker_connected", "1 when a worker group is connected")
        .set(worker ? 1.0 : 0.0);
    metrics.gauge("rtda_log_bytes", "observation log size").set(static_cast<double>(log->bytes()));
  }

  void run(const std::atomic<bool>& stop) {
    std::vector<zmq::pollitem_t> items = {
        {static_cast<void*>(ingest), 0, ZMQ_POLLIN, 0},
        {static_cast<void*>(control), 0, ZMQ_POLLIN, 0},
        {static_cast<void*>(workers), 0, ZMQ_POLLIN, 0},
    };
    if (metrics_http)
      items.push_back({static_cast<void*>(metrics_http->socket()), 0, ZMQ_POLLIN, 0});
    while (!stop.load() && !stopping) {
      try {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(20));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        throw;
      }
      if (items[2].revents & ZMQ_POLLIN) handle_workers();
      if (items[0].revents & ZMQ_POLLIN) handle_ingest();
      if (items[1].revents & ZMQ_POLLIN) handle_control();
      if (metrics_http && (items[3].revents & ZMQ_POLLIN)) {
        update_metrics();
        metrics_http->handle_readable();
      }
      const double now = wall_now();
      close_due_windows();
      check_worker(now);
      dispatch();
    }
    spdlog::info("stopping: the worker group is told to stop, the log committed");
    wire::ServerToWorker bye;
    bye.set_version(wire::PROTOCOL_VERSION_1);
    bye.set_stop(true);
    send_worker(bye);
    log->commit();
  }
};

Coordinator::Coordinator(const config::Config& cfg) : impl_(std::make_unique<Impl>(cfg)) {}
Coordinator::~Coordinator() = default;
void Coordinator::run(const std::atomic<bool>& stop) {
  impl_->run(stop);
}

}  // namespace rtda::server
