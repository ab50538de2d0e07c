#include "server/coordinator.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <zmq.hpp>

#include <google/protobuf/arena.h>
#include "io/archive.hpp"
#include "io/checkpoint.hpp"

#include "rtda.pb.h"
#include "server/cycle_scheduler.hpp"
#include "server/ingest.hpp"
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

// Fault injection for the chaos tests: RTDA_FAULT=<point>:<cycle> makes the server _exit(99)
// at that point of that cycle (the moments between durable steps that a crash can hit).
bool fault_point(const char* point, std::int64_t cycle) {
  static const std::string spec = [] {
    const char* v = std::getenv("RTDA_FAULT");
    return std::string(v ? v : "");
  }();
  if (spec.empty()) return false;
  const std::string want = std::string(point) + ":" + std::to_string(cycle);
  if (spec != want) return false;
  spdlog::critical("RTDA_FAULT={}: exiting at {} of cycle {}", spec, point, cycle);
  std::_Exit(99);
}

// Writes `bytes` to `path` so that after a crash the file is either the old one or the new
// one, complete: a temporary, fdatasync, rename, and a sync of the directory.
void write_durably(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), tmp.string());
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::system_error(err, std::generic_category(), tmp.string());
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw std::system_error(err, std::generic_category(), tmp.string());
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::system_error(errno, std::generic_category(), path.string());
  const int dfd = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// Loopback and local-only endpoints need no CURVE to be safe from the network.
bool local_endpoint(const std::string& address) {
  if (address.rfind("ipc://", 0) == 0 || address.rfind("inproc://", 0) == 0) return true;
  if (address.rfind("tcp://", 0) != 0) return false;
  const std::string host = address.substr(6, address.rfind(':') - 6);
  return host.rfind("127.", 0) == 0 || host == "localhost" || host == "[::1]" || host == "::1";
}

std::string bounded(const std::string& s, std::size_t max) {
  return quote_client_text(s, max);
}

}  // namespace

struct Coordinator::Impl {
  config::Config cfg;
  std::string config_toml;
  std::string config_hash;
  fs::path data_dir, checkpoint_dir, analyses_dir;
  zmq::context_t ctx{1};
  std::unique_ptr<ZapAuthenticator> zap;
  zmq::socket_t ingest{ctx, zmq::socket_type::router};
  zmq::socket_t publish{ctx, zmq::socket_type::xpub};
  zmq::socket_t control{ctx, zmq::socket_type::router};
  zmq::socket_t workers{ctx, zmq::socket_type::router};
  MetricsRegistry metrics;
  std::unique_ptr<MetricsHttpEndpoint> metrics_http;
  std::unique_ptr<ObservationLog> log;
  CycleScheduler scheduler;
  Ingest intake;
  PerSourceRateLimiter latest_rate;  // LATEST_ANALYSIS with fields, per control peer
  std::map<std::string, std::uint64_t> counters;
  double started = wall_now();
  bool paused = false;
  bool stopping = false;
  bool checkpoint_requested = false;
  std::string filter;
  // Ingest cannot make batches durable (disk full, I/O error): the cause, "" when healthy.
  std::string ingest_degraded;
  double degraded_logged = 0;

  // Cycling state.
  std::int64_t last_published = -1;
  std::int64_t newest_checkpoint = -1;
  std::set<std::int64_t> checkpoints;  // cycles with a good checkpoint file
  std::set<std::int64_t> archived;     // cycles with an analysis file
  std::int64_t next_cycle = 0;         // the next cycle to dispatch (once a worker group joined)
  std::optional<wire::Analysis> latest;
  std::deque<double> latencies;
  // Log compaction: (record index, newest window it touches), oldest first; compaction bases
  // are marked kBaseRecord (each is superseded by the next).
  std::deque<std::pair<std::uint64_t, std::int64_t>> record_cycles;
  static constexpr std::int64_t kBaseRecord = std::numeric_limits<std::int64_t>::max();
  std::int64_t compacted_through = -1;

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
    bool with_members = false;
    std::uint32_t backlog = 0;  // of the cycle in flight
    bool degraded = false;
    std::string degraded_reason;
    std::set<std::int64_t> checkpoints_asked;  // dispatched with checkpoint = true
  };
  std::optional<WorkerGroup> worker;
  std::uint64_t next_dispatch_id = 1;
  std::uint32_t reconnects = 0;
  double last_heartbeat_sent = 0;
  std::map<std::string, double> hello_again_sent;  // identity -> when (at most one a second)

  explicit Impl(const config::Config& c)
      : cfg(c),
        scheduler(WindowSettings{c.window.t0_seconds, c.experiment.cycle_hours * 3600.0,
                                 c.window.late_policy == "next", c.window.deadline_seconds,
                                 c.window.grace_seconds, c.window.max_windows_ahead}),
        intake(c, scheduler),
        latest_rate(c.limits.latest_analysis_per_second, 4, 1024),
        filter(c.server.filter) {
    config_toml = config::to_toml(cfg);
    config_hash = config::science_hash(cfg);
    check_exposure();
    data_dir = fs::absolute(cfg.server.data_dir);
    checkpoint_dir = data_dir / "checkpoints";
    analyses_dir = data_dir / "analyses";
    fs::create_directories(checkpoint_dir);
    fs::create_directories(analyses_dir);
    setup_sockets();
    try {
      log = std::make_unique<ObservationLog>(log_options());
    } catch (const std::runtime_error& e) {
      if (dynamic_cast<const std::system_error*>(&e)) throw;
      throw DataError(e.what());
    }
    if (log->truncated_bytes() > 0) count("log_truncated_bytes", log->truncated_bytes());
    recover();
  }

  ~Impl() {
    if (log) {
      try {
        log->commit();
      } catch (const std::exception& e) {
        spdlog::error("observation log at exit: {}", e.what());
      }
    }
    for (zmq::socket_t* s : {&ingest, &publish, &control, &workers})
      s->set(zmq::sockopt::linger, 0);
    metrics_http.reset();
    zap.reset();
  }

  void count(const std::string& name, std::uint64_t n = 1) { counters[name] += n; }

  LogOptions log_options() const {
    LogOptions lo;
    lo.dir = data_dir / "log";
    lo.segment_bytes = static_cast<std::uint64_t>(cfg.server.log_segment_mb) << 20;
    lo.sync = sync_policy_from_string(cfg.server.log_sync);
    lo.sync_interval_seconds = cfg.server.log_sync_interval_seconds;
    return lo;
  }

  // Least privilege at start: no endpoint reachable from the network without CURVE unless the
  // deployment says so, and with CURVE no role open to every key holder unless it says so.
  void check_exposure() const {
    if (!cfg.security.curve && !cfg.server.insecure) {
      for (const auto& [key, address] : std::vector<std::pair<const char*, std::string>>{
               {"server.ingest", cfg.server.ingest},
               {"server.publish", cfg.server.publish},
               {"server.control", cfg.server.control},
               {"server.workers", cfg.server.workers}}) {
        if (!local_endpoint(address)) {
          throw config::ConfigError(
              std::string(key) + " = \"" + address +
              "\": a non-loopback endpoint without CURVE; set security.curve = true (with "
              "security.server_key), or server.insecure = true for a deliberately insecure "
              "deployment");
        }
      }
    }
    if (!cfg.server.metrics.empty() && !local_endpoint(cfg.server.metrics) &&
        !cfg.server.insecure) {
      throw config::ConfigError("server.metrics = \"" + cfg.server.metrics +
                                "\": metrics are plain HTTP; serve them on loopback, or set "
                                "server.insecure = true to expose them");
    }
    if (cfg.security.curve) {
      if (cfg.security.control_keys.empty() && !cfg.security.control_allow_any) {
        throw config::ConfigError(
            "security.control_keys = \"\": with CURVE, list the keys allowed to control the "
            "server, or set security.control_allow_any = true to let every holder of the "
            "server's public key pause, reconfigure and shut it down");
      }
      if (cfg.security.worker_keys.empty() && !cfg.security.worker_allow_any) {
        throw config::ConfigError(
            "security.worker_keys = \"\": with CURVE, list the keys allowed to join as the "
            "worker group, or set security.worker_allow_any = true to let every holder of the "
            "server's public key compute (and publish) analyses");
      }
    }
  }

  // ---- sockets ---------------------------------------------------------------------------
  void setup_sockets() {
    const std::int64_t max_bytes = static_cast<std::int64_t>(intake.limits().max_message_bytes);
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
      if (!cfg.security.feeder_keys.empty()) {
        for (const auto& [key, sources] : load_source_grants(cfg.security.feeder_keys))
          intake.grants().grant(key, sources);
      }
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
      s->set(zmq::sockopt::sndhwm, 1000);
      s->set(zmq::sockopt::rcvhwm, 1000);
    }
    // Control requests are small; worker messages are too, except results: a whole analysis
    // (mean and spread, and every member with server.publish_members).
    control.set(zmq::sockopt::maxmsgsize, std::int64_t{1} << 20);
    {
      const auto n = static_cast<std::int64_t>(cfg.model.sqg.N);
      const std::int64_t fields = 2 + (cfg.server.publish_members ? cfg.ensemble.members : 0);
      const std::int64_t result = fields * 2 * n * n * 8 + (std::int64_t{1} << 20);
      workers.set(zmq::sockopt::maxmsgsize, std::max(2 * max_bytes, result + result / 8));
    }
    // A reconnecting worker group keeps its routing id (rtda-worker sets one): the new
    // connection takes it over instead of being ignored.
    workers.set(zmq::sockopt::router_handover, true);
    // Subscriptions are handled by hand (handle_subscriptions): only prefixes of the topics
    // this server publishes are kept, so a subscriber cannot grow the server's memory.
    publish.set(zmq::sockopt::sndhwm, 1000);
    publish.set(zmq::sockopt::maxmsgsize, std::int64_t{256});
    publish.set(zmq::sockopt::xpub_manual, 1);
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

  void handle_subscriptions() {
    static const std::array<std::string_view, 3> topics = {"rtda.summary", "rtda.analysis",
                                                           "rtda.ensemble"};
    for (int i = 0; i < 64; ++i) {
      zmq::message_t m;
      if (!publish.recv(m, zmq::recv_flags::dontwait)) return;
      if (m.size() < 1) continue;
      const auto* d = static_cast<const char*>(m.data());
      const std::string topic(d + 1, m.size() - 1);
      const bool known = std::any_of(topics.begin(), topics.end(),
                                     [&](std::string_view t) { return t.rfind(topic, 0) == 0; });
      if (!known) {
        count("subscriptions_refused");
        continue;
      }
      if (d[0] == 1) {
        publish.set(zmq::sockopt::subscribe, topic);
      } else if (d[0] == 0) {
        publish.set(zmq::sockopt::unsubscribe, topic);
      }
    }
  }

  // ---- recovery ----------------------------------------------------------------------------
  void recover() {
    static const std::regex analysis_re(R"(analysis-(\d{8})\.h5)");
    static const std::regex checkpoint_re(R"(checkpoint-(\d{8})\.h5)");
    std::smatch m;
    // Files a crash left half-written are not data. The server writes those of the analyses
    // and the data directory; checkpoints are written by the worker group, which may be
    // writing one right now (it outlives a server restart): only stale ones go.
    const auto now = fs::file_time_type::clock::now();
    for (const fs::path& dir : {analyses_dir, checkpoint_dir, data_dir}) {
      for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (name.find(".partial") == std::string::npos && name.find(".tmp") == std::string::npos)
          continue;
        std::error_code ec;
        if (dir == checkpoint_dir &&
            now - fs::last_write_time(e.path(), ec) < std::chrono::minutes(10))
          continue;
        fs::remove(e.path(), ec);
        spdlog::info("removed {} (left by an interrupted write)", e.path().string());
      }
    }
    // Published analyses: one file per cycle.
    for (const auto& e : fs::directory_iterator(analyses_dir)) {
      const std::string name = e.path().filename().string();
      if (std::regex_match(name, m, analysis_re)) archived.insert(std::stoll(m[1]));
    }
    if (!archived.empty()) last_published = *archived.rbegin();
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
        throw DataError("observation log record " + std::to_string(r.index) + ": not a LogRecord");
      }
      if (rec.has_window_closed()) {
        const auto k = static_cast<std::int64_t>(rec.window_closed().cycle());
        scheduler.close(k);
        record_cycles.emplace_back(r.index, k);
        return;
      }
      if (rec.has_base()) {
        apply_base(rec.base());
        record_cycles.emplace_back(r.index, kBaseRecord);
        return;
      }
      const wire::LoggedBatch& lb = rec.batch();
      const BatchDecision d = intake.replay(lb);
      record_cycles.emplace_back(r.index, d.max_cycle);
      // Counters cover the log's whole history, not only this process's.
      count("batches_accepted");
      count("observations_accepted", d.placed.size());
      count("observations_rejected", lb.rejected());
      count("observations_late", d.late);
      if (d.late_rejected) count("observations_late_rejected", d.late_rejected);
      ++batches;
    });
    if (compacted_through >= 0) {
      scheduler.drop_through(compacted_through);
      dropped_through = std::max(dropped_through, compacted_through);
    }
    spdlog::info(
        "recovered: {} batches from the log ({} bytes, {} segments), windows closed "
        "through {}, last published cycle {}, newest checkpoint {}",
        batches, log->bytes(), log->segments(), scheduler.closed_through(), last_published,
        newest_checkpoint);
    // Deadlines restart from now for windows still open.
    next_cycle = last_published + 1;
  }

  // A compaction base: what the deleted segments held that replay still needs.
  void apply_base(const wire::LogBase& b) {
    if (b.closed_through() >= 0) scheduler.close(b.closed_through());
    compacted_through = std::max(compacted_through, b.covered_cycle());
    for (const auto& p : b.sources())
      intake.sources().restore(p);
    // The counters of the records before the base (deleted or not) are the base's.
    for (const auto& [name, value] : b.counters())
      counters[name] = value;
  }

  // The counters replay rebuilds from the log; a compaction base carries them.
  static constexpr std::array<const char*, 5> kLogCounters = {
      "batches_accepted", "observations_accepted", "observations_rejected", "observations_late",
      "observations_late_rejected"};

  // ---- ingest --------------------------------------------------------------------------
  // The peer's CURVE public key ("" without CURVE).
  static std::string peer_key(const zmq::message_t& m) {
    try {
      const char* v = zmq_msg_gets(const_cast<zmq_msg_t*>(m.handle()), "User-Id");
      return v ? std::string(v) : std::string();
    } catch (...) {
      return {};
    }
  }

  // Appends `record` and makes it durable; false (and the degraded state) when the log cannot.
  bool commit_or_degrade(const char* what) {
    try {
      log->commit();
      if (!ingest_degraded.empty()) {
        spdlog::info("observation log writable again: ingest resumes");
        ingest_degraded.clear();
        count("log_recoveries");
      }
      return true;
    } catch (const std::exception& e) {
      const double now = wall_now();
      // A rollback that failed too leaves the tail unknown: reopen (which verifies the files
      // again) before the next try.
      if (log->needs_reopen()) {
        try {
          LogOptions lo = log_options();
          log.reset();
          log = std::make_unique<ObservationLog>(lo);
        } catch (const std::exception& again) {
          spdlog::error("observation log reopen: {}", again.what());
          if (!log) throw;
        }
      }
      if (ingest_degraded.empty() || now - degraded_logged > 60) {
        spdlog::error(
            "observation log: {} not durable: {}; ingest answers ACK_UNAVAILABLE until "
            "the log is writable again (control and publish go on)",
            what, e.what());
        degraded_logged = now;
      }
      if (ingest_degraded.empty()) count("log_degraded_episodes");
      ingest_degraded = e.what();
      count("log_write_errors");
      return false;
    }
  }

  // Group commit: the batches waiting now (up to a byte and time budget, so control, workers
  // and metrics are served during a flood) are validated and appended, one commit makes them
  // durable, then they are applied and every ack goes out. A batch that closes a window ends
  // the group (later batches must see the close).
  void handle_ingest() {
    constexpr std::size_t kGroupBytes = 64u << 20;
    constexpr double kGroupSeconds = 0.02;
    const double t_start = wall_now();
    std::vector<std::pair<Envelope, BatchDecision>> group;
    std::size_t bytes = 0;
    bool appended = false;
    while (bytes < kGroupBytes && wall_now() - t_start < kGroupSeconds) {
      Envelope e = receive_envelope(ingest);
      if (!e.ok) break;
      bytes += e.body.size();
      const double wall = wall_now();
      BatchDecision d;
      try {
        d = intake.decide(std::span(static_cast<const std::byte*>(e.body.data()), e.body.size()),
                          wall, peer_key(e.body));
        if (d.store) {
          const std::uint64_t index =
              log->append(std::as_bytes(std::span(d.record.data(), d.record.size())));
          record_cycles.emplace_back(index, d.max_cycle);
          appended = true;
        }
      } catch (const std::exception& ex) {
        d = BatchDecision{};
        d.ack.set_version(wire::PROTOCOL_VERSION_1);
        d.ack.set_status(wire::ACK_ERROR);
        d.ack.set_error(std::string("server error: ") + ex.what());
        d.counter = "ingest_errors";
        spdlog::error("ingest: {}", ex.what());
      }
      const bool closes = d.close_cycle >= 0;
      group.emplace_back(std::move(e), std::move(d));
      if (closes) break;
    }
    if (group.empty()) return;
    const bool durable = !appended || commit_or_degrade("batches");
    if (!durable) {
      // Nothing of the group is stored: its records go (the log discarded them).
      while (!record_cycles.empty() && record_cycles.back().first >= log->next_index())
        record_cycles.pop_back();
    }
    intake.end_group();
    for (auto& [e, d] : group) {
      if (d.depends_on_commit && !durable) {
        wire::IngestAck ack;
        ack.set_version(wire::PROTOCOL_VERSION_1);
        ack.set_source(d.source);
        ack.set_seq(d.seq);
        ack.set_status(wire::ACK_UNAVAILABLE);
        ack.set_retry_after_seconds(1.0);
        ack.set_error("the observation log cannot be written (" + ingest_degraded +
                      "): nothing stored; retry later");
        count("batches_unavailable");
        reply(ingest, e, ack.SerializeAsString());
        continue;
      }
      if (d.store) {
        intake.apply(d, wall_now());
        count("batches_accepted");
        count("observations_accepted", d.placed.size());
        count("observations_rejected", d.rejected);
        count("observations_late", d.late);
        if (d.late_rejected) count("observations_late_rejected", d.late_rejected);
        if (d.close_cycle >= 0) count("windows_closed_by_marker");
      } else if (!d.counter.empty()) {
        count(d.counter);
      }
      reply(ingest, e, d.ack.SerializeAsString());
    }
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
    const std::uint64_t index = log->append(std::as_bytes(std::span(bytes.data(), bytes.size())));
    // A close that is not durable does not happen: replay must see what was dispatched.
    if (!commit_or_degrade("window close")) return;
    record_cycles.emplace_back(index, k);
    scheduler.close(k, wall_now());
    count("windows_closed_by_" + std::string(reason == "deadline" ? "deadline" : "later_window"));
    spdlog::info("window {} closed ({})", k, reason);
  }

  // ---- worker group ------------------------------------------------------------------------
  void send_worker(const wire::ServerToWorker& m) {
    if (!worker) return;
    send_to(worker->identity, m);
  }

  void send_to(const std::string& identity, const wire::ServerToWorker& m) {
    const std::string payload = m.SerializeAsString();
    workers.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
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
        // Once a second at most: a group's queued heartbeats must not make it join many times.
        auto& sent = hello_again_sent[identity];
        if (now - sent >= 1.0) {
          out.set_hello_again(true);
          send_to(identity, out);
          sent = now;
        }
        if (hello_again_sent.size() > 256) hello_again_sent.clear();
        continue;
      }
      worker->last_seen = now;
      if (m.has_heartbeat()) {
        worker->stage = bounded(m.heartbeat().stage(), 32);
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
  void count_failure(std::int64_t cycle, const std::string& why) {
    last_error = fmt::format("cycle {}: {}", cycle, why);
    if (++failures[cycle] >= 3 && !paused) {
      paused = true;
      spdlog::error("cycle {} failed 3 times: dispatching paused until `rtda resume`", cycle);
    }
  }

  // The cycle a failure of the current group is charged to: the one in flight, else the next.
  std::int64_t failing_cycle() const {
    return worker && worker->in_flight >= 0 ? worker->in_flight : next_cycle;
  }

  void on_worker_error(const wire::WorkerError& e) {
    const std::string text = bounded(e.error(), 2000);
    spdlog::error("worker group: cycle {}: {}", failing_cycle(), text);
    count("worker_errors");
    last_error = fmt::format("cycle {}: {}", failing_cycle(), text);
    if (!e.fatal()) return;
    count_failure(failing_cycle(), text);
    worker.reset();
  }
  std::map<std::int64_t, int> failures;
  std::string last_error;

  // Drops the current group for misbehaving (it is told to stop) and charges the failure.
  void drop_worker(const std::string& why, const char* counter, std::int64_t cycle = -1) {
    spdlog::error("worker group on {}: {}; dropped", worker ? worker->host : "?", why);
    count(counter);
    count_failure(cycle >= 0 ? cycle : failing_cycle(), why);
    wire::ServerToWorker bye;
    bye.set_version(wire::PROTOCOL_VERSION_1);
    bye.set_refused(why);
    send_worker(bye);
    worker.reset();
  }

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
      out.set_refused("worker configuration " + bounded(h.config_hash(), 32) +
                      " differs from the server's " + config_hash +
                      ": start rtda-worker without --config, or with the same one");
      send_to(identity, out);
      return;
    }
    const bool same_group = worker && worker->identity == identity;
    if (worker && !same_group) {
      ++reconnects;
      // The group it replaces never finished its cycle: that counts against the cycle.
      if (worker->in_flight >= 0) count_failure(worker->in_flight, "worker group replaced");
    }
    worker = WorkerGroup{};
    worker->identity = identity;
    worker->last_seen = now;
    worker->ranks = h.ranks();
    worker->host = bounded(h.host(), 128);
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
    } else if (scheduler_has_from(0)) {
      w->set_start(wire::START_FRESH);
      w->set_start_cycle(-1);
      next_cycle = 0;
    } else {
      out.clear_welcome();
      out.set_refused("no checkpoint covers the compacted observation log (windows through " +
                      std::to_string(dropped_through) + " are gone): restore " +
                      checkpoint_dir.string());
      spdlog::error("{}", out.refused());
      worker.reset();
      send_to(identity, out);
      return;
    }
    spdlog::log(same_group ? spdlog::level::debug : spdlog::level::info,
                "worker group joined: {} ranks on {} (pid {}), start {} from cycle {}", h.ranks(),
                worker->host, h.pid(), wire::StartMode_Name(w->start()), w->start_cycle());
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

  // Closed windows not yet dispatched (the one in flight not counted).
  std::int64_t backlog() const {
    const std::int64_t waiting =
        scheduler.closed_through() - next_cycle + 1 - (worker && worker->in_flight >= 0 ? 1 : 0);
    return std::max<std::int64_t>(0, waiting);
  }

  void dispatch() {
    if (!worker || !worker->welcomed || worker->in_flight >= 0 || paused || stopping) return;
    if (scheduler.closed_through() < next_cycle) return;
    const std::int64_t k = next_cycle;
    // Windows waiting behind this one: with behind_policy = "degrade", the older ones of a
    // backlog are only forecast so the newest analysis comes out with bounded latency.
    const std::int64_t behind = scheduler.closed_through() - k;
    const bool degrade = cfg.server.behind_policy == "degrade" &&
                         behind > cfg.server.max_backlog_cycles &&
                         k <= scheduler.closed_through() - cfg.server.max_backlog_cycles;
    wire::ServerToWorker out;
    out.set_version(wire::PROTOCOL_VERSION_1);
    auto* t = out.mutable_task();
    t->set_cycle(static_cast<std::uint64_t>(k));
    t->set_valid_time_seconds(scheduler.time_of(k));
    t->set_filter(degrade ? "none" : filter);
    t->set_backlog_cycles(static_cast<std::uint32_t>(behind));
    if (degrade) {
      t->set_degraded(true);
      t->set_degraded_reason(fmt::format(
          "{} closed windows waiting (server.max_backlog_cycles = {}): forecast only, filter {} "
          "skipped",
          behind, cfg.server.max_backlog_cycles, filter));
      count("cycles_degraded");
    }
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
    worker->with_members = t->with_members();
    worker->backlog = t->backlog_cycles();
    worker->degraded = t->degraded();
    worker->degraded_reason = t->degraded_reason();
    if (t->checkpoint()) worker->checkpoints_asked.insert(k);
    // A group that never reports its checkpoints must not grow this: old requests expire.
    while (!worker->checkpoints_asked.empty() && *worker->checkpoints_asked.begin() < k - 16)
      worker->checkpoints_asked.erase(worker->checkpoints_asked.begin());
    send_worker(out);
    count("cycles_dispatched");
  }

  // "" when a result is what was dispatched, else what is wrong (field and value).
  std::string check_result(const wire::Analysis& a, std::int64_t k) const {
    const std::size_t n = 2 * static_cast<std::size_t>(cfg.model.sqg.N) * cfg.model.sqg.N;
    if (static_cast<std::int64_t>(a.cycle()) != k)
      return fmt::format("analysis.cycle = {}: the task was cycle {}", a.cycle(), k);
    if (a.grid_n() != static_cast<std::uint32_t>(cfg.model.sqg.N))
      return fmt::format("analysis.grid_n = {}: expected {}", a.grid_n(), cfg.model.sqg.N);
    if (static_cast<std::size_t>(a.mean_size()) != n)
      return fmt::format("analysis.mean: {} values, expected 2 N^2 = {}", a.mean_size(), n);
    if (static_cast<std::size_t>(a.spread_size()) != n)
      return fmt::format("analysis.spread: {} values, expected 2 N^2 = {}", a.spread_size(), n);
    if (a.members() != static_cast<std::uint32_t>(cfg.ensemble.members))
      return fmt::format("analysis.members = {}: expected {}", a.members(), cfg.ensemble.members);
    const std::size_t want_members = worker->with_members ? n * a.members() : 0;
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

  void on_result(const wire::CycleResult& r, double now) {
    if (!worker || worker->in_flight < 0 || r.dispatch_id() != worker->dispatch_id) {
      count("worker_results_stale");
      return;
    }
    const std::int64_t k = worker->in_flight;
    if (const std::string bad = check_result(r.analysis(), k); !bad.empty()) {
      drop_worker("result refused: " + bad, "worker_results_refused");
      return;
    }
    worker->in_flight = -1;
    const double idle_before = worker->idle_since;
    worker->idle_since = now;
    next_cycle = k + 1;
    failures.erase(k);
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
    a.set_valid_time_seconds(scheduler.time_of(k));
    a.set_backlog_cycles(worker->backlog);
    a.set_degraded(worker->degraded);
    a.set_degraded_reason(worker->degraded_reason);
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
    lin->set_model(bounded(lin->model(), 128));
    count_refused_by_source(r, k);
    publish_analysis(a, now, last_in);
    {
      wire::ServerToWorker done;
      done.set_version(wire::PROTOCOL_VERSION_1);
      done.set_result_published(r.dispatch_id());
      send_worker(done);
    }
    count("cycles_published");
  }

  // Observations the worker's quality control refused, per source (by their position in the
  // window's sorted observations).
  void count_refused_by_source(const wire::CycleResult& r, std::int64_t k) {
    if (r.refused_index_size() == 0) return;
    const auto window_obs = scheduler.sorted_observations(k);
    std::uint64_t counted = 0;
    for (const std::uint32_t i : r.refused_index()) {
      if (i >= window_obs.size()) continue;
      const auto& name = intake.sources().source_name(window_obs[i].source);
      if (auto* s = intake.sources().find(name)) ++s->observations_refused_qc;
      ++counted;
    }
    count("observations_refused_qc", counted);
  }

  // Exactly once across crashes: the analysis is made durable (latest-analysis.pb, then the
  // archive file) before any subscriber can see it; a restart counts a cycle published as soon
  // as it is durable and never sends it again (a crash between the two steps leaves the cycle
  // in the archive and behind COMMAND_LATEST_ANALYSIS, not on the PUB socket).
  void publish_analysis(wire::Analysis& a, double received, double last_in) {
    auto* lat = a.mutable_latency();
    const double published = wall_now();
    lat->set_publish_seconds(published - received);
    const double total = std::max(0.0, published - last_in);
    lat->set_total_seconds(total);
    lat->set_overhead_seconds(
        std::max(0.0, total - lat->forecast_wait_seconds() - lat->analysis_seconds()));
    const auto k = static_cast<std::int64_t>(a.cycle());
    wire::Analysis fields = a;
    fields.clear_ensemble();
    latest = fields;
    save_latest();
    last_published = k;
    fault_point("after-latest", k);
    write_analysis_file(a);
    fault_point("after-archive", k);
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
      publish.send(zmq::buffer(std::string_view(topic)),
                   zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      publish.send(zmq::buffer(payload), zmq::send_flags::dontwait);
    };
    send("rtda.summary", summary);
    send("rtda.analysis", fields);
    if (a.ensemble_size() > 0) send("rtda.ensemble", a);
    std::string rmse;
    if (auto it = a.diagnostics().find("rmse_analysis"); it != a.diagnostics().end())
      rmse = fmt::format(" rmse {:.3f} K", it->second);
    spdlog::info(
        "cycle {} published: {} observations, filter {}{}{}, latency {:.1f} ms (forecast "
        "wait {:.1f}, analysis {:.1f}, overhead {:.2f} of which dispatch {:.2f}, result "
        "{:.2f}, publish {:.2f})",
        a.cycle(), a.lineage().observations_used(), a.filter(), a.degraded() ? " (degraded)" : "",
        rmse, total * 1e3, lat->forecast_wait_seconds() * 1e3, lat->analysis_seconds() * 1e3,
        lat->overhead_seconds() * 1e3, lat->dispatch_seconds() * 1e3, lat->result_seconds() * 1e3,
        lat->publish_seconds() * 1e3);
  }

  // The newest analysis survives a restart, for late joiners (COMMAND_LATEST_ANALYSIS), and
  // is the durable record that its cycle was published.
  void save_latest() {
    try {
      write_durably(data_dir / "latest-analysis.pb", latest->SerializeAsString());
    } catch (const std::exception& e) {
      spdlog::error("latest analysis: {}", e.what());
      count("analysis_file_errors");
    }
  }

  void load_latest() {
    std::ifstream in(data_dir / "latest-analysis.pb", std::ios::binary);
    if (!in) return;
    wire::Analysis a;
    if (!a.ParseFromIstream(&in)) {
      spdlog::warn("{}: unreadable, ignored", (data_dir / "latest-analysis.pb").string());
      return;
    }
    latest = std::move(a);
    const auto k = static_cast<std::int64_t>(latest->cycle());
    // Durable but not archived (a crash between the two): archive it now.
    if (k > last_published || !archived.count(k)) {
      if (k > last_published) last_published = k;
      write_analysis_file(*latest);
    }
  }

  void write_analysis_file(const wire::Analysis& a) {
    const auto k = static_cast<std::int64_t>(a.cycle());
    const fs::path path = analysis_path(k);
    try {
      std::map<std::string, io::Diagnostic> diag;
      for (const auto& [name, value] : a.diagnostics())
        diag[name] = {value, diagnostic_units(name), name};
      const auto& l = a.latency();
      diag["seconds_forecast"] = {l.forecast_seconds(), "s", "forecast stage"};
      diag["seconds_latency"] = {l.total_seconds(), "s", "last observation in -> published"};
      diag["seconds_overhead"] = {l.overhead_seconds(), "s", "latency not spent computing"};
      diag["backlog_cycles"] = {static_cast<double>(a.backlog_cycles()), "1",
                                "closed windows waiting behind this one"};
      diag["degraded"] = {a.degraded() ? 1.0 : 0.0, "1",
                          "1: forecast only, to catch up (server.behind_policy)"};
      {
        // Written as path.partial and renamed by close(): a crash leaves no half file.
        io::ArchiveWriter w(path, cfg.model.sqg, 0,
                            {{"created_by", "rtda-server"},
                             {"filter", a.filter()},
                             {"analysis_cycle", std::to_string(a.cycle())},
                             {"service_config_hash", config_hash}},
                            k);
        w.append(a.valid_time_seconds(), std::vector<double>(a.mean().begin(), a.mean().end()),
                 std::vector<double>(a.spread().begin(), a.spread().end()), diag);
        w.close();
      }
      archived.insert(k);
    } catch (const std::exception& e) {
      spdlog::error("analysis file for cycle {}: {}", a.cycle(), e.what());
      count("analysis_file_errors");
    }
    // Retention: the newest archive_keep_cycles files stay.
    if (cfg.server.archive_keep_cycles > 0) {
      while (static_cast<int>(archived.size()) > cfg.server.archive_keep_cycles) {
        std::error_code ec;
        fs::remove(analysis_path(*archived.begin()), ec);
        archived.erase(archived.begin());
        count("analysis_files_retired");
      }
    }
  }

  void on_checkpoint(const wire::CheckpointDone& c) {
    const auto k = static_cast<std::int64_t>(c.cycle());
    // Only what was asked of this group, at the path the server chose, and really there.
    if (!worker->checkpoints_asked.count(k)) {
      drop_worker(fmt::format("checkpoint_done.cycle = {}: no checkpoint of that cycle was asked "
                              "of this worker group",
                              c.cycle()),
                  "worker_checkpoints_refused", k);
      return;
    }
    worker->checkpoints_asked.erase(k);
    std::error_code ec;
    if (c.path() != checkpoint_path(k).string() || !fs::is_regular_file(checkpoint_path(k), ec)) {
      drop_worker(fmt::format("checkpoint_done.path = \"{}\": expected the file {}",
                              bounded(c.path(), 200), checkpoint_path(k).string()),
                  "worker_checkpoints_refused", k);
      return;
    }
    if (k > last_published) {
      drop_worker(fmt::format("checkpoint_done.cycle = {}: beyond the last published cycle {}", k,
                              last_published),
                  "worker_checkpoints_refused", k);
      return;
    }
    checkpoints.insert(k);
    newest_checkpoint = std::max(newest_checkpoint, k);
    count("checkpoints");
    // Keep the newest checkpoint_keep.
    while (static_cast<int>(checkpoints.size()) > cfg.server.checkpoint_keep) {
      fs::remove(checkpoint_path(*checkpoints.begin()), ec);
      checkpoints.erase(checkpoints.begin());
    }
    compact(std::min(k, last_published));
  }

  // After a durable checkpoint of cycle `usable` (<= last published): windows through it are
  // not needed again, in memory or in the log. The log gets a base record (closed windows and
  // idempotency records) at the start of a fresh segment, then every segment whose records all
  // concern windows through `usable` is deleted.
  void compact(std::int64_t usable) {
    if (usable <= dropped_through || usable > scheduler.closed_through()) return;
    scheduler.drop_through(usable);
    dropped_through = usable;
    wire::LogRecord rec;
    auto* base = rec.mutable_base();
    base->set_closed_through(scheduler.closed_through());
    base->set_covered_cycle(usable);
    for (auto& p : intake.sources().positions())
      *base->add_sources() = std::move(p);
    for (const char* name : kLogCounters)
      if (auto it = counters.find(name); it != counters.end())
        (*base->mutable_counters())[name] = it->second;
    const std::string bytes = rec.SerializeAsString();
    log->roll();
    const std::uint64_t index = log->append(std::as_bytes(std::span(bytes.data(), bytes.size())));
    if (!commit_or_degrade("compaction base")) return;
    compacted_through = usable;
    std::uint64_t first_kept = index;
    for (const auto& [i, kc] : record_cycles) {
      if (i >= index) break;
      if (kc == kBaseRecord) continue;  // an older base: superseded by the new one
      if (kc > usable) {
        first_kept = i;
        break;
      }
    }
    const std::uint64_t before = log->bytes();
    log->remove_segments_before(first_kept);
    while (!record_cycles.empty() && record_cycles.front().first < log->first_index())
      record_cycles.pop_front();
    record_cycles.emplace_back(index, kBaseRecord);
    if (log->bytes() < before) {
      count("log_bytes_compacted", before - log->bytes());
      spdlog::info("observation log compacted through cycle {}: {} -> {} bytes", usable, before,
                   log->bytes());
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
      if (worker->in_flight >= 0)
        count_failure(worker->in_flight, "worker group lost (no heartbeat) during the cycle");
      worker.reset();
      return;
    }
    if (worker->in_flight >= 0 && cfg.server.cycle_timeout_seconds > 0 &&
        now - worker->dispatched_wall > cfg.server.cycle_timeout_seconds) {
      drop_worker(fmt::format("cycle {} not done {:.1f} s after dispatch "
                              "(server.cycle_timeout_seconds = {})",
                              worker->in_flight, now - worker->dispatched_wall,
                              cfg.server.cycle_timeout_seconds),
                  "cycles_timed_out");
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
    s.set_closed_windows_waiting(static_cast<std::uint32_t>(backlog()));
    s.set_backlog_cycles(static_cast<std::uint32_t>(backlog()));
    s.set_ingest_state(ingest_degraded.empty() ? "ok" : "degraded: " + ingest_degraded);
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
    for (const auto& [name, src] : intake.sources().sources()) {
      if (s.sources_size() >= 1000) break;
      auto* x = s.add_sources();
      x->set_source(name);
      if (src.high_seq) x->set_durable_seq(*src.high_seq);
      x->set_observations_accepted(src.observations_accepted);
      x->set_observations_refused_qc(src.observations_refused_qc);
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

  // Who sent a control request, for its rate limit: the CURVE key, else the peer address.
  static std::string control_peer(const Envelope& e) {
    for (const char* property : {"User-Id", "Peer-Address"}) {
      const char* v = zmq_msg_gets(const_cast<zmq_msg_t*>(e.body.handle()), property);
      if (v && *v) return v;
    }
    return e.head.empty() ? std::string() : e.head.front().to_string();
  }

  void handle_control() {
    for (int i = 0; i < 64; ++i) {
      Envelope e = receive_envelope(control);
      if (!e.ok) return;
      wire::ControlReply r;
      r.set_version(wire::PROTOCOL_VERSION_1);
      wire::ControlRequest q;
      if (!q.ParseFromArray(e.body.data(), static_cast<int>(e.body.size()))) {
        r.set_error("not a ControlRequest: protobuf parse failed on " +
                    std::to_string(e.body.size()) + " bytes");
        count("control_malformed");
      } else if (q.version() != wire::PROTOCOL_VERSION_1) {
        r.set_error("version = " + std::to_string(q.version()) +
                    ": this server speaks protocol version 1");
        count("control_wrong_version");
      } else if (q.command() == wire::COMMAND_LATEST_ANALYSIS && q.with_fields() &&
                 !latest_rate.try_take(control_peer(e), 1, wall_now())) {
        r.set_error(fmt::format(
            "LATEST_ANALYSIS with fields: more than limits.latest_analysis_per_second = {} from "
            "this peer; retry later",
            cfg.limits.latest_analysis_per_second));
        count("control_rate_limited");
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
          r.set_error("filter = \"" + bounded(q.filter(), 32) + "\": expected letkf, ensf or none");
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
    metrics.gauge("rtda_backlog_cycles", "closed windows waiting for the worker group")
        .set(static_cast<double>(backlog()));
    metrics.gauge("rtda_ingest_degraded", "1 while the observation log cannot be written")
        .set(ingest_degraded.empty() ? 0.0 : 1.0);
    metrics.gauge("rtda_paused", "1 while dispatching is paused").set(paused ? 1.0 : 0.0);
    std::size_t listed = 0;
    for (const auto& [name, src] : intake.sources().sources()) {
      if (++listed > 1000) break;  // bounded like Status.sources
      metrics
          .gauge("rtda_source_observations_accepted", "observations accepted per feeder source",
                 {{"source", name}})
          .set(static_cast<double>(src.observations_accepted));
      metrics
          .gauge("rtda_source_observations_refused_qc",
                 "observations the quality control refused per feeder source", {{"source", name}})
          .set(static_cast<double>(src.observations_refused_qc));
    }
  }

  void run(const std::atomic<bool>& stop) {
    std::vector<zmq::pollitem_t> items = {
        {static_cast<void*>(ingest), 0, ZMQ_POLLIN, 0},
        {static_cast<void*>(control), 0, ZMQ_POLLIN, 0},
        {static_cast<void*>(workers), 0, ZMQ_POLLIN, 0},
        {static_cast<void*>(publish), 0, ZMQ_POLLIN, 0},
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
      if (items[3].revents & ZMQ_POLLIN) handle_subscriptions();
      if (metrics_http && (items[4].revents & ZMQ_POLLIN)) {
        update_metrics();
        metrics_http->handle_readable();
      }
      const double now = wall_now();
      try {
        log->sync_if_due();
      } catch (const std::exception& e) {
        commit_or_degrade("interval sync");
      }
      close_due_windows();
      check_worker(now);
      dispatch();
    }
    spdlog::info("stopping: the worker group is told to stop, the log committed");
    wire::ServerToWorker bye;
    bye.set_version(wire::PROTOCOL_VERSION_1);
    bye.set_stop(true);
    send_worker(bye);
    try {
      log->commit();
    } catch (const std::exception& e) {
      spdlog::error("observation log at shutdown: {}", e.what());
    }
  }
};

Coordinator::Coordinator(const config::Config& cfg) : impl_(std::make_unique<Impl>(cfg)) {}
Coordinator::~Coordinator() = default;
void Coordinator::run(const std::atomic<bool>& stop) {
  impl_->run(stop);
}

}  // namespace rtda::server
