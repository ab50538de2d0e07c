#include "server/coordinator.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <vector>
#include <zmq.hpp>

#include "rtda.pb.h"
#include "server/analysis_store.hpp"
#include "server/control.hpp"
#include "server/cycle_scheduler.hpp"
#include "server/endpoints.hpp"
#include "server/ingest.hpp"
#include "server/ingest_endpoint.hpp"
#include "server/journal.hpp"
#include "server/metrics.hpp"
#include "server/publisher.hpp"
#include "server/service_metrics.hpp"
#include "server/service_util.hpp"
#include "server/systemd.hpp"
#include "server/worker_group.hpp"

namespace rtda::server {

// The parts, in the order they are built: the configuration (checked for least privilege
// first), the schedule and ingest decisions, the data directory, the endpoints, the log; then
// the parts that serve one endpoint each. Recovery runs once all are built.
struct Coordinator::Impl {
  config::Config cfg;
  std::string config_hash;
  Counters counters;
  ServiceMetrics metrics{RTDA_SERVER_VERSION, wall_now()};
  CycleScheduler scheduler;
  Ingest intake;
  AnalysisStore store;
  Endpoints endpoints;
  Journal journal;
  Publisher publisher;
  IngestEndpoint ingest;
  WorkerGroup workers;
  Control control;

  explicit Impl(const config::Config& c)
      : cfg(Endpoints::check_exposure(c)),
        config_hash(config::science_hash(cfg)),
        scheduler(WindowSettings{cfg.window.t0_seconds, cfg.experiment.cycle_hours * 3600.0,
                                 cfg.window.late_policy == config::LatePolicy::kNext,
                                 cfg.window.deadline_seconds, cfg.window.grace_seconds,
                                 cfg.window.max_windows_ahead}),
        intake(cfg, scheduler),
        store(cfg, config_hash, counters),
        endpoints(cfg, intake.limits().max_message_bytes, metrics.registry(), intake.grants()),
        journal(cfg, store.data_dir(), scheduler, intake, counters),
        publisher(endpoints.publish(), store, metrics, counters),
        ingest(endpoints.ingest(), intake, journal, counters),
        workers(cfg, config_hash, endpoints.workers(), scheduler, intake, store, publisher, journal,
                counters),
        control(cfg, config_hash, endpoints.control(),
                Control::Parts{workers, store, publisher, journal, scheduler, intake, endpoints},
                counters) {
    journal.on_commit([this](double seconds) { metrics.observe_log_commit(seconds); });
    recover();
  }

  void recover() {
    store.recover();
    // Replay the log: the same placement decisions, closes and idempotency records as live.
    const std::uint64_t batches = journal.replay();
    spdlog::info(
        "recovered: {} batches from the log ({} bytes, {} segments), windows closed "
        "through {}, last published cycle {}, newest checkpoint {}",
        batches, journal.bytes(), journal.segments(), scheduler.closed_through(),
        store.last_published(), store.newest_checkpoint());
    // Deadlines restart from now for windows still open.
    workers.set_next_cycle(store.last_published() + 1);
  }

  // SIGHUP: the CURVE allow-lists again; a list that cannot be read changes nothing.
  void reload_keys() {
    if (!cfg.security.curve) {
      spdlog::info("SIGHUP: security.curve = false, no allow-lists to read");
      return;
    }
    try {
      const std::string summary = endpoints.reload_keys(cfg, intake.grants());
      counters.add("key_reloads");
      spdlog::info(
          "SIGHUP: CURVE allow-lists read again ({}); connected peers stay, every new "
          "handshake is checked against them",
          summary);
    } catch (const std::exception& e) {
      counters.add("key_reload_failures");
      spdlog::error("SIGHUP: allow-lists unchanged: {}", e.what());
    }
  }

  void run(const std::atomic<bool>& stop, std::atomic<bool>* reload) {
    MetricsHttpEndpoint* metrics_http = endpoints.metrics_http();
    std::vector<zmq::pollitem_t> items = {
        {static_cast<void*>(endpoints.ingest()), 0, ZMQ_POLLIN, 0},
        {static_cast<void*>(endpoints.control()), 0, ZMQ_POLLIN, 0},
        {static_cast<void*>(endpoints.workers()), 0, ZMQ_POLLIN, 0},
        {static_cast<void*>(endpoints.publish()), 0, ZMQ_POLLIN, 0},
    };
    if (metrics_http)
      items.push_back({static_cast<void*>(metrics_http->socket()), 0, ZMQ_POLLIN, 0});
    // Listening and recovered: systemd (Type=notify) may start what depends on the server.
    Watchdog watchdog;
    notify_systemd(
        fmt::format("READY=1\nSTATUS=serving; last published cycle {}", store.last_published()));
    if (watchdog.enabled())
      spdlog::info("systemd watchdog: a keep-alive every {:.1f} s", watchdog.interval());
    while (!stop.load() && !control.stopping()) {
      if (reload && reload->exchange(false)) reload_keys();
      try {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(20));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        throw;
      }
      if (items[2].revents & ZMQ_POLLIN) workers.handle_readable();
      if (items[0].revents & ZMQ_POLLIN) ingest.handle_readable();
      if (items[1].revents & ZMQ_POLLIN) control.handle_readable();
      if (items[3].revents & ZMQ_POLLIN) publisher.handle_subscriptions();
      if (metrics_http && (items[4].revents & ZMQ_POLLIN)) {
        control.update_metrics(metrics);
        metrics_http->handle_readable();
      }
      const double now = wall_now();
      watchdog.tick(now);
      journal.sync_if_due();
      journal.close_due_windows();
      workers.check(now);
      if (!control.stopping()) workers.dispatch();
    }
    notify_systemd("STOPPING=1");
    spdlog::info("stopping: the worker group is told to stop, the log committed");
    workers.send_stop();
    journal.commit_at_shutdown();
  }
};

Coordinator::Coordinator(const config::Config& cfg) : impl_(std::make_unique<Impl>(cfg)) {}
Coordinator::~Coordinator() = default;
void Coordinator::run(const std::atomic<bool>& stop, std::atomic<bool>* reload) {
  impl_->run(stop, reload);
}

}  // namespace rtda::server
