// rtda-worker: the worker group (architecture.md §1, §5).
//   mpiexec -n R rtda-worker --server tcp://HOST:PORT [--config FILE] [--set k=v]
// Rank 0 holds the link to the server (a DEALER socket owned by a link thread that keeps the
// heartbeats going while the ranks compute); every task it receives is broadcast to all ranks,
// which hold their members and run forecast and analysis through CycleEngine.
#include <mpi.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "config/config.hpp"
#include "cycle_engine.hpp"
#include "hip/device.hpp"
#include "io/checkpoint.hpp"
#include "io/fields.hpp"
#include "rtda.pb.h"
#include "server/security.hpp"

namespace {

using rtda::wire::ServerToWorker;
using rtda::wire::WorkerToServer;

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Rank 0's link: a thread owns the socket; the main thread queues outgoing messages and takes
// incoming ones. Heartbeats (with the current stage) go out every period.
class ServerLink {
 public:
  ServerLink(const std::string& address, const rtda::config::SecurityConfig& sec,
             const std::string& server_public_key, const std::string& client_key)
      : socket_(ctx_, zmq::socket_type::dealer) {
    if (!server_public_key.empty()) {
      const rtda::server::CurveKeyPair client = client_key.empty()
                                                    ? rtda::server::generate_curve_keypair()
                                                    : rtda::server::load_keypair(client_key);
      rtda::server::make_curve_client(socket_, client,
                                      rtda::server::load_public_key(server_public_key));
    }
    (void)sec;
    // A routing id of our own: after a reconnect (a server restart, a network blip) the server
    // sees the same group, not a stranger to refuse while the old connection times out.
    char host[128] = {0};
    gethostname(host, sizeof host - 1);
    socket_.set(zmq::sockopt::routing_id,
                std::string("rtda-worker/") + host + "/" + std::to_string(getpid()) + "/" +
                    std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    socket_.set(zmq::sockopt::linger, 2000);
    // Heartbeats queued during a server outage are stale: do not deliver them all at once.
    socket_.set(zmq::sockopt::sndhwm, 1000);
    socket_.connect(address);
    // The main thread rings this to hand over an outgoing message at once (a result must not
    // wait for the link thread's next poll timeout).
    wake_pull_.set(zmq::sockopt::linger, 0);
    wake_push_.set(zmq::sockopt::linger, 0);
    wake_pull_.bind("inproc://rtda-worker-link");
    wake_push_.connect("inproc://rtda-worker-link");
    thread_ = std::thread([this] { loop(); });
  }
  ~ServerLink() {
    stop_ = true;
    thread_.join();
  }

  // Main thread only (wake_push_ belongs to it).
  void send(const WorkerToServer& m) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      outgoing_.push_back(m.SerializeAsString());
    }
    wake_push_.send(zmq::buffer("w", 1), zmq::send_flags::dontwait);
  }
  // Waits for the next message that is not a heartbeat.
  // The serialized message, parsed by every rank after the broadcast (once each).
  std::string receive() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return !incoming_.empty(); });
    std::string m = std::move(incoming_.front());
    incoming_.pop_front();
    return m;
  }
  void set_stage(std::string stage, std::int64_t cycle) {
    std::lock_guard<std::mutex> lock(mutex_);
    stage_ = std::move(stage);
    cycle_ = cycle;
  }
  void set_heartbeat(double seconds) { heartbeat_seconds_ = seconds; }
  // Waits (at most `timeout`) until the server says the result of `dispatch_id` is out.
  void wait_published(std::uint64_t dispatch_id, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    published_cv_.wait_for(lock, timeout, [&] { return published_ >= dispatch_id; });
  }
  // Waits until everything queued has been handed to the socket (a result leaves before the
  // next forecast takes this core).
  void flush() {
    std::unique_lock<std::mutex> lock(mutex_);
    sent_cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return outgoing_.empty(); });
  }

 private:
  void loop() {
    double last_beat = 0;
    while (!stop_) {
      zmq::pollitem_t items[] = {{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0},
                                 {static_cast<void*>(wake_pull_), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, std::chrono::milliseconds(50));
      if (items[1].revents & ZMQ_POLLIN) {
        zmq::message_t ring;
        while (wake_pull_.recv(ring, zmq::recv_flags::dontwait)) {
        }
      }
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t msg;
        while (socket_.recv(msg, zmq::recv_flags::dontwait)) {
          // Heartbeats are small and end here; anything large (a task) is passed on unparsed.
          if (msg.size() < 256) {
            ServerToWorker m;
            if (m.ParseFromArray(msg.data(), static_cast<int>(msg.size()))) {
              if (m.has_heartbeat()) continue;
              // A group told to stop (or refused) whose compute thread does not come back is
              // hung: take the process (and with it the MPI job) down after a grace period.
              if (m.has_stop() || m.has_refused()) stop_deadline_ = wall_now() + 15.0;
              if (m.has_result_published()) {
                std::lock_guard<std::mutex> lock(mutex_);
                published_ = m.result_published();
                published_cv_.notify_all();
                continue;
              }
            }
          }
          std::lock_guard<std::mutex> lock(mutex_);
          incoming_.push_back(msg.to_string());
          cv_.notify_one();
        }
      }
      std::deque<std::string> out;
      WorkerToServer beat;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        out.swap(outgoing_);
        beat.set_version(rtda::wire::PROTOCOL_VERSION_1);
        beat.mutable_heartbeat()->set_stage(stage_);
        beat.mutable_heartbeat()->set_cycle(cycle_);
      }
      for (auto& m : out)
        socket_.send(zmq::buffer(m), zmq::send_flags::none);
      if (!out.empty()) sent_cv_.notify_all();
      const double now = wall_now();
      if (stop_deadline_ > 0 && now > stop_deadline_) {
        spdlog::error(
            "the compute thread did not stop within 15 s of the server's request: "
            "exiting");
        std::_Exit(3);
      }
      if (now - last_beat >= heartbeat_seconds_) {
        beat.mutable_heartbeat()->set_unix_seconds(now);
        socket_.send(zmq::buffer(beat.SerializeAsString()), zmq::send_flags::dontwait);
        last_beat = now;
      }
    }
    // Flush what is still queued (a final result, a checkpoint notice).
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& m : outgoing_)
      socket_.send(zmq::buffer(m), zmq::send_flags::dontwait);
  }

  zmq::context_t ctx_{1};
  zmq::socket_t socket_;
  zmq::socket_t wake_pull_{ctx_, zmq::socket_type::pull};
  zmq::socket_t wake_push_{ctx_, zmq::socket_type::push};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<double> heartbeat_seconds_{1.0};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable sent_cv_;
  std::condition_variable published_cv_;
  std::uint64_t published_ = 0;
  std::deque<std::string> incoming_;
  std::deque<std::string> outgoing_;
  std::string stage_ = "starting";
  std::int64_t cycle_ = -1;
  double stop_deadline_ = 0;  // link thread only
};

// Fault injection for the chaos tests: RTDA_FAULT=hang-analysis makes the compute thread of
// rank 0 hang inside the analysis (the link thread goes on heartbeating), the case a cycle
// deadline (server.cycle_timeout_seconds) exists for.
void fault_hang_point(const char* point) {
  const char* v = std::getenv("RTDA_FAULT");
  if (!v || std::string(v) != point) return;
  spdlog::critical("RTDA_FAULT={}: hanging here", v);
  while (true)
    std::this_thread::sleep_for(std::chrono::seconds(1));
}

// Rank 0's message to every rank. The others wait without spinning hard (a test-and-sleep
// loop), so an idle worker group does not burn its cores.
ServerToWorker broadcast(MPI_Comm comm, std::string bytes) {
  long long len = static_cast<long long>(bytes.size());
  MPI_Request req;
  MPI_Ibcast(&len, 1, MPI_LONG_LONG, 0, comm, &req);
  int done = 0;
  while (!done) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  bytes.resize(static_cast<std::size_t>(len));
  // Chunks below 2 GiB each (MPI counts are int).
  for (long long off = 0; off < len; off += 1 << 30) {
    const int n = static_cast<int>(std::min<long long>(len - off, 1 << 30));
    MPI_Bcast(bytes.data() + off, n, MPI_CHAR, 0, comm);
  }
  ServerToWorker m;
  if (!m.ParseFromString(bytes)) m.set_refused("unreadable message from the server");
  return m;
}

// A barrier whose waiters sleep instead of spinning (they would take the cores the server
// needs while rank 0 waits for it).
void gentle_barrier(MPI_Comm comm) {
  MPI_Request req;
  MPI_Ibarrier(comm, &req);
  int done = 0;
  while (!done) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

rtda::io::ObservationSet to_observation_set(const rtda::wire::CycleTask& t) {
  rtda::io::ObservationSet set;
  for (const auto& o : t.observations()) {
    rtda::io::Observation x;
    x.time_seconds = o.time_seconds();
    x.level = static_cast<std::int32_t>(o.level());
    x.x_m = o.x_m();
    x.y_m = o.y_m();
    x.value = o.value();
    x.error_sd = o.error_sd();
    x.op = static_cast<rtda::io::ObsOperator>(o.op());
    x.id = o.id();
    set.push_back(x);
  }
  const auto& c = t.columns();
  const int n = c.id_size();
  for (int size : {c.time_seconds_size(), c.level_size(), c.x_m_size(), c.y_m_size(),
                   c.value_size(), c.error_sd_size(), c.op_size()}) {
    if (size != n) throw std::runtime_error("task columns of different lengths");
  }
  set.id.insert(set.id.end(), c.id().begin(), c.id().end());
  set.time_seconds.insert(set.time_seconds.end(), c.time_seconds().begin(), c.time_seconds().end());
  for (int i = 0; i < n; ++i) {
    set.level.push_back(static_cast<std::int32_t>(c.level(i)));
    set.op.push_back(static_cast<rtda::io::ObsOperator>(c.op(i)));
  }
  set.x_m.insert(set.x_m.end(), c.x_m().begin(), c.x_m().end());
  set.y_m.insert(set.y_m.end(), c.y_m().begin(), c.y_m().end());
  set.value.insert(set.value.end(), c.value().begin(), c.value().end());
  set.error_sd.insert(set.error_sd.end(), c.error_sd().begin(), c.error_sd().end());
  return set;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);

  CLI::App app{"rtda-worker: the worker group (run under mpiexec; rank 0 connects)"};
  std::string server, config_path, server_key, client_key, level = "info";
  std::vector<std::string> overrides;
  app.add_option("--server", server, "the server's workers endpoint (server.workers)")->required();
  app.add_option("--config", config_path,
                 "this group's configuration; its science keys must match the server's");
  app.add_option("--set", overrides,
                 "override a key on top of the server's configuration (model.threads, ...)");
  app.add_option("--server-key", server_key, "the server's public key (CURVE): file or Z85");
  app.add_option("--key", client_key, "this group's .key_secret (CURVE); default: a fresh pair");
  app.add_option("--log-level", level, "trace, debug, info, warn, error");
  std::string device_request = "auto";
  app.add_option("--device", device_request,
                 "auto | cpu | hip: where each rank computes; auto takes a HIP device when one "
                 "is visible (one rank per GPU: device = local rank modulo devices)")
      ->check(CLI::IsMember({"auto", "cpu", "hip"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = rank == 0 ? app.exit(e) : (e.get_exit_code());
    MPI_Finalize();
    return rc;
  }
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ rtda-worker[" + std::to_string(rank) + "]: %v");

  // The device of each rank; a rank that cannot have what was asked stops the whole group.
  rtda::device::Choice dev;
  std::string device_error;
  try {
    dev = rtda::device::choose(rtda::device::parse_request(device_request),
                               rtda::device::local_rank_from_environment(rank));
    spdlog::info("{}", dev.reason);
  } catch (const std::exception& e) {
    device_error = e.what();
  }
  int device_ok = device_error.empty() ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &device_ok, 1, MPI_INT, MPI_MIN, comm);
  if (!device_ok) {
    if (!device_error.empty()) spdlog::error("{}", device_error);
    MPI_Finalize();
    return 2;
  }

  int rc = 0;
  std::unique_ptr<ServerLink> link;
  std::int64_t current_cycle = -1;  // the task being worked on, for error reports
  try {
    std::string own_hash;
    if (!config_path.empty())
      own_hash = rtda::config::science_hash(rtda::config::load(config_path));
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    if (rank == 0)
      link = std::make_unique<ServerLink>(server, rtda::config::SecurityConfig{}, server_key,
                                          client_key);

    std::unique_ptr<rtda::worker::CycleEngine> engine;
    std::string engine_hash;
    std::int64_t analysed = -1;   // the cycle of the ensemble's newest analysis
    bool forecast_ready = false;  // the ensemble is already at analysed + 1
    bool have_state = false;
    std::string checkpoint_dir;
    double ahead_forecast_seconds = 0;  // the forecast made while the window was filling

    // The checkpoint cycle this group's ensemble was restarted from, -1 for the initial one.
    std::int64_t restarted_from = -1;
    double hello_sent = -1e9;  // a hello waits for its welcome: one per 2 s at most
    const auto hello = [&] {
      hello_sent = wall_now();
      WorkerToServer m;
      m.set_version(rtda::wire::PROTOCOL_VERSION_1);
      auto* h = m.mutable_hello();
      h->set_ranks(static_cast<std::uint32_t>(size));
      h->set_host(host);
      h->set_pid(static_cast<std::uint32_t>(getpid()));
      h->set_device(std::string(rtda::device::name(dev.backend)));
      h->set_config_hash(own_hash);
      h->set_analysed_cycle(have_state ? analysed : -1);
      link->send(m);
    };
    if (rank == 0) hello();

    bool running = true;
    while (running) {
      std::string bytes;
      if (rank == 0) bytes = link->receive();
      const double received = wall_now();
      const ServerToWorker msg = broadcast(comm, std::move(bytes));
      if (msg.has_refused()) {
        if (rank == 0) spdlog::error("the server refused this worker group: {}", msg.refused());
        rc = 2;
        break;
      }
      if (msg.has_stop()) {
        if (rank == 0) spdlog::info("the server asked the worker group to stop");
        break;
      }
      if (msg.has_hello_again()) {
        if (rank == 0 && wall_now() - hello_sent > 2.0) hello();
        continue;
      }
      if (msg.has_welcome()) {
        hello_sent = -1e9;
        const auto& w = msg.welcome();
        const auto cfg =
            rtda::config::load_text(w.config_toml(), "(server configuration)", overrides);
        if (rank == 0) link->set_heartbeat(w.heartbeat_seconds());
        checkpoint_dir = w.checkpoint_dir();
        if (!engine || engine_hash != w.config_hash()) {
          engine = std::make_unique<rtda::worker::CycleEngine>(comm, cfg, dev.backend);
          engine_hash = w.config_hash();
          have_state = false;
        }
        if (w.start() == rtda::wire::START_CONTINUE && have_state && analysed == w.start_cycle()) {
          // Keep the ensemble (and the forecast already made from it).
        } else if (w.start() == rtda::wire::START_CHECKPOINT) {
          analysed = engine->start_from_checkpoint(w.checkpoint_path());
          restarted_from = analysed;
          forecast_ready = false;
          have_state = true;
        } else {
          if (cfg.experiment.nature_file.empty()) {
            throw rtda::config::ConfigError(
                "experiment.nature_file = \"\": the worker group's initial ensemble is built "
                "from a nature run (science.md §2); set it in the server's configuration");
          }
          engine->start_from_nature(rtda::io::read_nature(cfg.experiment.nature_file));
          analysed = -1;
          restarted_from = -1;
          ahead_forecast_seconds = 0;
          forecast_ready = true;  // cycle 0 analyses the initial ensemble as it is
          have_state = true;
        }
        if (rank == 0) {
          spdlog::info("joined: {} ranks, {} members, start {} at cycle {}", size,
                       engine->members(), rtda::wire::StartMode_Name(w.start()), analysed);
        }
        continue;
      }
      if (!msg.has_task() || !engine) continue;
      const auto& task = msg.task();
      const auto cycle = static_cast<std::int64_t>(task.cycle());
      current_cycle = cycle;
      if (cycle != analysed + 1) {
        if (rank == 0) {
          WorkerToServer e;
          e.set_version(rtda::wire::PROTOCOL_VERSION_1);
          e.mutable_error()->set_cycle(cycle);
          e.mutable_error()->set_error("task for cycle " + std::to_string(cycle) +
                                       ", but the ensemble is at cycle " +
                                       std::to_string(analysed) + "; asking to rejoin");
          link->send(e);
          have_state = false;
          hello();
        }
        continue;
      }
      double forecast_seconds = ahead_forecast_seconds, forecast_wait = 0;
      if (!forecast_ready) {
        if (rank == 0) link->set_stage("forecast", cycle);
        forecast_seconds = engine->forecast_cycle();
        forecast_wait = wall_now() - received;
      }
      if (rank == 0) link->set_stage("analysis", cycle);
      if (rank == 0) fault_hang_point("hang-analysis");
      std::vector<double> truth;
      if (rank == 0 && task.has_truth())
        truth.assign(task.truth().q().begin(), task.truth().q().end());
      auto out = engine->analyse(task.filter(), to_observation_set(task), task.cycle(),
                                 task.valid_time_seconds(), truth, task.with_members());
      analysed = cycle;
      forecast_ready = false;
      if (rank == 0) {
        WorkerToServer r;
        r.set_version(rtda::wire::PROTOCOL_VERSION_1);
        auto* res = r.mutable_result();
        res->set_dispatch_id(task.dispatch_id());
        res->set_task_received_unix_seconds(received);
        res->set_done_unix_seconds(wall_now());
        auto* a = res->mutable_analysis();
        a->set_cycle(task.cycle());
        a->set_valid_time_seconds(task.valid_time_seconds());
        a->set_filter(task.filter());
        a->set_grid_n(static_cast<std::uint32_t>(engine->config().model.sqg.N));
        a->set_members(static_cast<std::uint32_t>(engine->members()));
        a->mutable_mean()->Assign(out.mean.begin(), out.mean.end());
        a->mutable_spread()->Assign(out.spread.begin(), out.spread.end());
        if (task.with_members())
          a->mutable_ensemble()->Assign(out.members.begin(), out.members.end());
        for (const auto& [name, d] : out.diagnostics)
          (*a->mutable_diagnostics())[name] = d.value;
        auto* lat = a->mutable_latency();
        lat->set_forecast_seconds(forecast_seconds);
        lat->set_forecast_wait_seconds(forecast_wait);
        lat->set_analysis_seconds(out.record.seconds_analysis);
        auto* lin = a->mutable_lineage();
        lin->set_observations_used(static_cast<std::uint64_t>(out.record.observations_used));
        lin->set_observations_rejected(
            static_cast<std::uint64_t>(out.record.observations_rejected));
        lin->set_first_observation_id(out.first_observation_id);
        lin->set_last_observation_id(out.last_observation_id);
        lin->set_model(engine->model_identity());
        lin->set_restarted_from_cycle(restarted_from);
        lin->set_surrogate_version(engine->surrogate_version());
        // Quality control before the filter: at most 100 listed, all counted.
        lin->set_observations_refused(static_cast<std::uint64_t>(out.refused.size()));
        for (std::size_t i = 0; i < out.refused.size() && i < 100; ++i) {
          const auto& q = out.refused[i];
          auto* rej = lin->add_refused();
          rej->set_index(static_cast<std::uint32_t>(q.index));
          rej->set_id(q.id);
          rej->set_field(q.field);
          rej->set_reason(q.reason);
        }
        res->mutable_refused_index()->Reserve(static_cast<int>(out.refused.size()));
        for (const auto& q : out.refused)
          res->add_refused_index(static_cast<std::uint32_t>(q.index));
        for (const auto& [reason, count] : out.refused_by_reason)
          (*lin->mutable_refused_by_reason())[reason] = count;
        res->set_done_unix_seconds(wall_now());
        link->send(r);
        link->flush();
      }
      // Checkpoint and next forecast start once the server has published this result (at
      // most 50 ms later): on a machine the server shares, the publish has a core to itself.
      if (rank == 0) link->wait_published(task.dispatch_id(), std::chrono::milliseconds(50));
      gentle_barrier(comm);
      // surrogate.online: learn from the published analysis before checkpointing it with the
      // ensemble and forecasting with the new weights.
      if (rank == 0) link->set_stage("adapt", cycle);
      engine->adapt_surrogate();
      if (task.checkpoint()) {
        if (rank == 0) link->set_stage("checkpoint", cycle);
        auto c = engine->checkpoint(cycle, task.valid_time_seconds());
        if (rank == 0) {
          c.provenance["created_by"] = "rtda-worker";
          c.provenance["filter"] = task.filter();
          char name[64];
          std::snprintf(name, sizeof name, "checkpoint-%08lld.h5", static_cast<long long>(cycle));
          const std::string path = (std::filesystem::path(checkpoint_dir) / name).string();
          rtda::io::write_checkpoint(path, c);
          WorkerToServer d;
          d.set_version(rtda::wire::PROTOCOL_VERSION_1);
          d.mutable_checkpoint_done()->set_cycle(static_cast<std::uint64_t>(cycle));
          d.mutable_checkpoint_done()->set_path(path);
          link->send(d);
        }
      }
      // The next forecast starts now, while the server's next window is still filling.
      if (rank == 0) link->set_stage("forecast", cycle + 1);
      ahead_forecast_seconds = engine->forecast_cycle();
      forecast_ready = true;
      if (rank == 0) link->set_stage("idle", cycle + 1);
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    rc = 1;
    // Tell the server why before the group goes down (it stops re-dispatching a cycle that
    // keeps failing); then every rank is taken down, none is left waiting in a collective.
    if (rank == 0 && link) {
      WorkerToServer m;
      m.set_version(rtda::wire::PROTOCOL_VERSION_1);
      m.mutable_error()->set_cycle(current_cycle);
      m.mutable_error()->set_error(e.what());
      m.mutable_error()->set_fatal(true);
      link->send(m);
      link->flush();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    MPI_Abort(comm, 1);
  }
  MPI_Finalize();
  return rc;
}
