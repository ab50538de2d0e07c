// The worker group as the coordinator sees it (docs/architecture.md §4-5, docs/service.md
// "Worker group"): the hello that lets one group join (with its restart point), the dispatch
// of closed windows, the results and checkpoints it reports and what is refused of them,
// liveness (heartbeats both ways, the cycle deadline), and the failure accounting that pauses
// dispatching when a cycle keeps taking the group down.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <zmq.hpp>

#include "config/config.hpp"
#include "rtda.pb.h"
#include "server/analysis_store.hpp"
#include "server/cycle_scheduler.hpp"
#include "server/ingest.hpp"
#include "server/journal.hpp"
#include "server/publisher.hpp"
#include "server/service_util.hpp"

namespace rtda::server {

class WorkerGroup {
 public:
  // `config_hash`: what a group's own configuration must hash to, and what a welcome carries.
  WorkerGroup(const config::Config& cfg, std::string config_hash, zmq::socket_t& socket,
              CycleScheduler& scheduler, Ingest& intake, AnalysisStore& store, Publisher& publisher,
              Journal& journal, Counters& counters);

  // The messages waiting on the workers socket (from the group, or from strangers).
  void handle_readable();
  // A group silent for server.worker_timeout_seconds is lost; one whose cycle is past
  // server.cycle_timeout_seconds is dropped; heartbeats to the group are due every
  // server.heartbeat_seconds.
  void check(double now);
  // The next closed window to an idle group, unless dispatching is paused.
  void dispatch();
  // Shutdown: the group is told to stop.
  void send_stop();

  // Dispatch settings, from control requests. resume() forgets the failures counted so far.
  void pause() { paused_ = true; }
  void resume();
  bool paused() const { return paused_; }
  void request_checkpoint() { checkpoint_requested_ = true; }
  void set_filter(const std::string& filter) { filter_ = filter; }
  const std::string& filter() const { return filter_; }

  // The next cycle to dispatch; on start, the one after the last published.
  std::int64_t next_cycle() const { return next_cycle_; }
  void set_next_cycle(std::int64_t cycle) { next_cycle_ = cycle; }
  // Closed windows not yet dispatched (the one in flight not counted).
  std::int64_t backlog() const;
  bool connected() const { return worker_.has_value(); }
  // The newest failure of a cycle ("" when none).
  const std::string& last_error() const { return last_error_; }
  void describe(wire::WorkerGroupStatus& w, double now) const;

 private:
  struct Group {
    std::string identity;
    bool welcomed = false;
    double last_seen = 0;
    std::uint32_t ranks = 0;
    std::string host;
    std::string device;  // from the hello: rank 0's backend, device and toolchain
    std::string device_name;
    std::string toolchain;
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

  void send_worker(const wire::ServerToWorker& m);
  void send_to(const std::string& identity, const wire::ServerToWorker& m);
  void on_hello(const std::string& identity, const wire::WorkerHello& h, double now);
  void on_result(const wire::CycleResult& r, double now);
  void on_checkpoint(const wire::CheckpointDone& c);
  void on_worker_error(const wire::WorkerError& e);
  // "" when a result is what was dispatched, else what is wrong (field and value).
  std::string check_result(const wire::Analysis& a, std::int64_t k) const;
  void count_refused_by_source(const wire::CycleResult& r, std::int64_t k);
  void count_failure(std::int64_t cycle, const std::string& why);
  std::int64_t failing_cycle() const;
  void drop_worker(const std::string& why, const char* counter, std::int64_t cycle = -1);
  // The windows from `cycle` on are still in memory (a restart can replay from there).
  bool scheduler_has_from(std::int64_t cycle) const { return cycle > journal_.dropped_through(); }

  const config::Config& cfg_;
  std::string config_toml_;
  std::string config_hash_;
  zmq::socket_t& socket_;
  CycleScheduler& scheduler_;
  Ingest& intake_;
  AnalysisStore& store_;
  Publisher& publisher_;
  Journal& journal_;
  Counters& counters_;

  std::optional<Group> worker_;
  std::int64_t next_cycle_ = 0;  // the next cycle to dispatch (once a worker group joined)
  std::uint64_t next_dispatch_id_ = 1;
  std::uint32_t reconnects_ = 0;
  double last_heartbeat_sent_ = 0;
  std::map<std::string, double> hello_again_sent_;  // identity -> when (at most one a second)
  bool paused_ = false;
  bool checkpoint_requested_ = false;
  std::string filter_;
  std::map<std::int64_t, int> failures_;
  std::string last_error_;
};

}  // namespace rtda::server
