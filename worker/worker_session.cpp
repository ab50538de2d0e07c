#include "worker_session.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "config/config.hpp"
#include "experiment.hpp"
#include "io/checkpoint.hpp"
#include "io/fields.hpp"

namespace rtda::worker {
namespace {

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
wire::ServerToWorker broadcast(MPI_Comm comm, std::string bytes) {
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
  wire::ServerToWorker m;
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

obs::ObservationSet to_observation_set(const wire::CycleTask& t) {
  obs::ObservationSet set;
  for (const auto& o : t.observations()) {
    obs::Observation x;
    x.time_seconds = o.time_seconds();
    x.level = static_cast<std::int32_t>(o.level());
    x.x_m = o.x_m();
    x.y_m = o.y_m();
    x.value = o.value();
    x.error_sd = o.error_sd();
    x.op = static_cast<obs::ObsOperator>(o.op());
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
    set.op.push_back(static_cast<obs::ObsOperator>(c.op(i)));
  }
  set.x_m.insert(set.x_m.end(), c.x_m().begin(), c.x_m().end());
  set.y_m.insert(set.y_m.end(), c.y_m().begin(), c.y_m().end());
  set.value.insert(set.value.end(), c.value().begin(), c.value().end());
  set.error_sd.insert(set.error_sd.end(), c.error_sd().begin(), c.error_sd().end());
  return set;
}

}  // namespace

WorkerSession::WorkerSession(MPI_Comm comm, std::vector<std::string> overrides,
                             device::Choice choice, WorkerLink* link)
    : comm_(comm), overrides_(std::move(overrides)), device_(std::move(choice)), link_(link) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &ranks_);
  if (rank_ == 0 && !link_) throw std::invalid_argument("WorkerSession: rank 0 needs the link");
}

WorkerSession::~WorkerSession() = default;

int WorkerSession::run() {
  if (rank_ == 0) link_->hello(held_cycle());
  while (true) {
    std::string bytes;
    if (rank_ == 0) bytes = link_->receive();
    const double received = unix_seconds();
    const wire::ServerToWorker msg = broadcast(comm_, std::move(bytes));
    if (msg.has_refused()) {
      if (rank_ == 0) spdlog::error("the server refused this worker group: {}", msg.refused());
      return 2;
    }
    if (msg.has_stop()) {
      if (rank_ == 0) spdlog::info("the server asked the worker group to stop");
      return 0;
    }
    if (msg.has_hello_again()) {
      if (rank_ == 0) link_->hello_again(held_cycle());
      continue;
    }
    if (msg.has_welcome()) {
      start(msg.welcome());
      continue;
    }
    if (!msg.has_task() || !engine_) continue;
    run_task(msg.task(), received);
  }
}

void WorkerSession::start(const wire::Welcome& w) {
  if (rank_ == 0) link_->welcomed();
  const auto cfg = config::load_text(w.config_toml(), "(server configuration)", overrides_);
  if (rank_ == 0) link_->set_heartbeat(w.heartbeat_seconds());
  checkpoint_dir_ = w.checkpoint_dir();
  if (!engine_ || engine_hash_ != w.config_hash()) {
    engine_ = std::make_unique<CycleEngine>(comm_, cfg, device_.backend);
    engine_hash_ = w.config_hash();
    have_state_ = false;
  }
  if (w.start() == wire::START_CONTINUE && have_state_ && analysed_ == w.start_cycle()) {
    // Keep the ensemble (and the forecast already made from it).
  } else if (w.start() == wire::START_CHECKPOINT) {
    analysed_ = engine_->start_from_checkpoint(w.checkpoint_path());
    restarted_from_ = analysed_;
    forecast_ready_ = false;
    have_state_ = true;
  } else {
    if (cfg.model.lorenz96()) {
      // The toy model's truth is made in memory, as rtda experiment makes it.
      engine_->start_from_nature(lorenz96_nature(cfg));
    } else {
      if (cfg.experiment.nature_file.empty()) {
        throw config::ConfigError(
            "experiment.nature_file = \"\": the worker group's initial ensemble is built "
            "from a nature run (docs/science.md §2); set it in the server's configuration");
      }
      const io::RunDefaults run = cfg.model.run_defaults();
      engine_->start_from_nature(io::read_nature(cfg.experiment.nature_file, std::nullopt, &run));
    }
    analysed_ = -1;
    restarted_from_ = -1;
    ahead_forecast_seconds_ = 0;
    forecast_ready_ = true;  // cycle 0 analyses the initial ensemble as it is
    have_state_ = true;
  }
  if (rank_ == 0) {
    spdlog::info("joined: {} ranks, {} members, start {} at cycle {}", ranks_, engine_->members(),
                 wire::StartMode_Name(w.start()), analysed_);
  }
}

void WorkerSession::run_task(const wire::CycleTask& task, double received) {
  const auto cycle = static_cast<std::int64_t>(task.cycle());
  current_cycle_ = cycle;
  if (cycle != analysed_ + 1) {
    if (rank_ == 0) {
      link_->send_error(cycle,
                        "task for cycle " + std::to_string(cycle) +
                            ", but the ensemble is at cycle " + std::to_string(analysed_) +
                            "; asking to rejoin",
                        false);
      have_state_ = false;
      link_->hello(held_cycle());
    }
    return;
  }
  double forecast_seconds = ahead_forecast_seconds_, forecast_wait = 0;
  if (!forecast_ready_) {
    if (rank_ == 0) link_->set_stage("forecast", cycle);
    forecast_seconds = engine_->forecast_cycle();
    forecast_wait = unix_seconds() - received;
  }
  if (rank_ == 0) link_->set_stage("analysis", cycle);
  if (rank_ == 0) fault_hang_point("hang-analysis");
  std::vector<double> truth;
  if (rank_ == 0 && task.has_truth())
    truth.assign(task.truth().q().begin(), task.truth().q().end());
  const CycleOutcome out = engine_->analyse(task.filter(), to_observation_set(task), task.cycle(),
                                            task.valid_time_seconds(), truth, task.with_members());
  analysed_ = cycle;
  forecast_ready_ = false;
  if (rank_ == 0) {
    link_->send(result_message(task, out, received, forecast_seconds, forecast_wait));
    link_->flush();
  }
  // Checkpoint and next forecast start once the server has published this result (at most
  // 50 ms later): on a machine the server shares, the publish has a core to itself.
  if (rank_ == 0) link_->wait_published(task.dispatch_id(), std::chrono::milliseconds(50));
  gentle_barrier(comm_);
  // surrogate.online: learn from the published analysis before checkpointing it with the
  // ensemble and forecasting with the new weights.
  if (rank_ == 0) link_->set_stage("adapt", cycle);
  engine_->adapt_surrogate();
  if (task.checkpoint()) {
    if (rank_ == 0) link_->set_stage("checkpoint", cycle);
    auto c = engine_->checkpoint(cycle, task.valid_time_seconds());
    if (rank_ == 0) {
      c.provenance["created_by"] = "rtda-worker";
      c.provenance["filter"] = task.filter();
      char name[64];
      std::snprintf(name, sizeof name, "checkpoint-%08lld.h5", static_cast<long long>(cycle));
      const std::string path = (std::filesystem::path(checkpoint_dir_) / name).string();
      io::write_checkpoint(path, c);
      wire::WorkerToServer d;
      d.set_version(wire::PROTOCOL_VERSION_1);
      d.mutable_checkpoint_done()->set_cycle(static_cast<std::uint64_t>(cycle));
      d.mutable_checkpoint_done()->set_path(path);
      link_->send(d);
    }
  }
  // The next forecast starts now, while the server's next window is still filling.
  if (rank_ == 0) link_->set_stage("forecast", cycle + 1);
  ahead_forecast_seconds_ = engine_->forecast_cycle();
  forecast_ready_ = true;
  if (rank_ == 0) link_->set_stage("idle", cycle + 1);
}

wire::WorkerToServer WorkerSession::result_message(const wire::CycleTask& task,
                                                   const CycleOutcome& out, double received,
                                                   double forecast_seconds,
                                                   double forecast_wait) const {
  wire::WorkerToServer r;
  r.set_version(wire::PROTOCOL_VERSION_1);
  auto* res = r.mutable_result();
  res->set_dispatch_id(task.dispatch_id());
  res->set_task_received_unix_seconds(received);
  auto* a = res->mutable_analysis();
  a->set_cycle(task.cycle());
  a->set_valid_time_seconds(task.valid_time_seconds());
  a->set_filter(task.filter());
  a->set_grid_n(static_cast<std::uint32_t>(engine_->config().model.grid().nx));
  a->set_members(static_cast<std::uint32_t>(engine_->members()));
  a->mutable_mean()->Assign(out.mean.begin(), out.mean.end());
  a->mutable_spread()->Assign(out.spread.begin(), out.spread.end());
  if (task.with_members()) a->mutable_ensemble()->Assign(out.members.begin(), out.members.end());
  for (const auto& [name, d] : out.diagnostics)
    (*a->mutable_diagnostics())[name] = d.value;
  auto* lat = a->mutable_latency();
  lat->set_forecast_seconds(forecast_seconds);
  lat->set_forecast_wait_seconds(forecast_wait);
  lat->set_analysis_seconds(out.record.seconds_analysis);
  auto* lin = a->mutable_lineage();
  lin->set_observations_used(static_cast<std::uint64_t>(out.record.observations_used));
  lin->set_observations_rejected(static_cast<std::uint64_t>(out.record.observations_rejected));
  lin->set_first_observation_id(out.first_observation_id);
  lin->set_last_observation_id(out.last_observation_id);
  lin->set_model(engine_->model_identity());
  lin->set_restarted_from_cycle(restarted_from_);
  lin->set_surrogate_version(engine_->surrogate_version());
  lin->set_device(std::string(device::name(device_.backend)));
  lin->set_device_name(device_.device_name);
  lin->set_toolchain(device_.toolchain);
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
  res->set_done_unix_seconds(unix_seconds());
  return r;
}

}  // namespace rtda::worker
