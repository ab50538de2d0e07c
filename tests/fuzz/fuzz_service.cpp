#include "fuzz_service.hpp"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

namespace rtda::fuzz {
namespace fs = std::filesystem;

void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz service: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

Service& service() {
  static Service* s = new Service();  // never destroyed: shutdown() runs at exit
  return *s;
}

namespace {

// zmq::poll, retried when a signal interrupts it (libFuzzer's timers use SIGALRM).
int poll_retry(zmq::pollitem_t* items, std::size_t n, int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (true) {
    try {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      return zmq::poll(items, n, std::max(left, std::chrono::milliseconds(0)));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
  }
}

std::optional<zmq::message_t> recv_timeout(zmq::socket_t& s, int ms) {
  zmq::pollitem_t item{static_cast<void*>(s), 0, ZMQ_POLLIN, 0};
  if (poll_retry(&item, 1, ms) <= 0) return std::nullopt;
  zmq::message_t m;
  if (!s.recv(m, zmq::recv_flags::dontwait)) return std::nullopt;
  return m;
}

void at_exit() {
  service().shutdown();
}

}  // namespace

void Service::start() {
  spdlog::set_level(spdlog::level::off);
  // Invalid UTF-8 in a string field is a parse failure the server reports; no log lines.
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  char tmpl[] = "/tmp/rtda-fuzz-XXXXXX";
  if (!::mkdtemp(tmpl)) fail("mkdtemp failed");
  dir = tmpl;
  const std::string toml = R"(
[model]
preset = "N32"
[window]
t0_seconds = 432000.0
deadline_seconds = 0.0
grace_seconds = 1e6
[server]
ingest = "ipc://)" + dir + R"(/ingest"
publish = "ipc://)" + dir + R"(/publish"
control = "ipc://)" + dir + R"(/control"
workers = "ipc://)" + dir + R"(/workers"
data_dir = ")" + dir + R"(/data"
log_sync = "never"
heartbeat_seconds = 1e5
worker_timeout_seconds = 1e6
cycle_timeout_seconds = 0.0
archive_keep_cycles = 2
checkpoint_keep = 2
)";
  cfg = config::load_text(toml, "fuzz-service");
  coordinator = std::make_unique<server::Coordinator>(cfg);
  loop = std::thread([this] {
    try {
      coordinator->run(stop);
    } catch (const std::exception& e) {
      fail("the coordinator's event loop threw", e.what());
    }
    loop_ended = true;
  });
  const auto dealer = [&](const std::string& endpoint, const std::string& id) {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    if (!id.empty()) s.set(zmq::sockopt::routing_id, id);
    s.connect(endpoint);
    return s;
  };
  control.emplace(dealer("ipc://" + dir + "/control", ""));
  ingest.emplace(dealer("ipc://" + dir + "/ingest", ""));
  for (int w = 0; w < kWorkers; ++w)
    workers[w].emplace(dealer("ipc://" + dir + "/workers", "fuzz-worker-" + std::to_string(w)));
  std::atexit(at_exit);
  // Observations in the first windows and a marker closing 64 of them.
  wire::ObservationBatch b;
  b.set_version(wire::PROTOCOL_VERSION_1);
  b.set_source("fuzz-feed");
  for (int i = 0; i < 8; ++i) {
    auto* o = b.add_observations();
    o->set_id(static_cast<std::uint64_t>(i));
    o->set_time_seconds(cfg.window.t0_seconds + (i % 4) * cfg.experiment.cycle_hours * 3600.0);
    o->set_level(static_cast<std::uint32_t>(i % 2));
    o->set_x_m(cfg.model.sqg.L_m * 0.25);
    o->set_y_m(cfg.model.sqg.L_m * 0.5);
    o->set_value(1.0);
    o->set_error_sd(1.0);
  }
  b.set_seq(++feed_seq);
  if (const auto ack = feed(b); ack.status() != wire::ACK_ACCEPTED)
    fail("bootstrap batch refused", ack.error());
  keep_windows_closed();
}

void Service::shutdown() {
  if (!coordinator) return;
  stop = true;
  if (loop.joinable()) loop.join();
  control.reset();
  ingest.reset();
  for (auto& w : workers)
    w.reset();
  coordinator.reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
}

wire::ControlReply Service::control_raw(const std::string& body) {
  if (loop_ended) fail("the coordinator's event loop has ended");
  control->send(zmq::message_t(), zmq::send_flags::sndmore);
  control->send(zmq::buffer(body), zmq::send_flags::none);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kReplyTimeoutMs);
  // [empty delimiter][ControlReply]
  std::vector<zmq::message_t> frames;
  while (true) {
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          deadline - std::chrono::steady_clock::now())
                                          .count());
    auto m = recv_timeout(*control, std::max(left, 0));
    if (!m) fail("no control reply within 2 s", std::to_string(body.size()) + " bytes sent");
    const bool more = m->more();
    frames.push_back(std::move(*m));
    if (!more) break;
  }
  if (frames.size() != 2 || frames[0].size() != 0)
    fail("control reply without the delimiter frame", std::to_string(frames.size()) + " frames");
  wire::ControlReply r;
  if (!r.ParseFromArray(frames[1].data(), static_cast<int>(frames[1].size())))
    fail("control reply is not a ControlReply");
  if (r.version() != wire::PROTOCOL_VERSION_1) fail("control reply without version");
  return r;
}

wire::ControlReply Service::status() {
  wire::ControlRequest q;
  q.set_version(wire::PROTOCOL_VERSION_1);
  q.set_command(wire::COMMAND_STATUS);
  wire::ControlReply r = control_raw(q.SerializeAsString());
  if (!r.ok() || !r.has_status()) fail("STATUS failed", r.error());
  return r;
}

wire::IngestAck Service::feed(const wire::ObservationBatch& b) {
  ingest->send(zmq::message_t(), zmq::send_flags::sndmore);
  ingest->send(zmq::buffer(b.SerializeAsString()), zmq::send_flags::none);
  std::vector<zmq::message_t> frames;
  while (true) {
    auto m = recv_timeout(*ingest, kReplyTimeoutMs);
    if (!m) fail("no ingest ack within 2 s");
    const bool more = m->more();
    frames.push_back(std::move(*m));
    if (!more) break;
  }
  wire::IngestAck ack;
  if (!ack.ParseFromArray(frames.back().data(), static_cast<int>(frames.back().size())))
    fail("ingest ack is not an IngestAck");
  return ack;
}

void Service::keep_windows_closed() {
  if (closed_through >= last_task_cycle + 8) return;
  const std::int64_t k = std::max(closed_through, std::int64_t{0}) + cfg.window.max_windows_ahead;
  wire::ObservationBatch b;
  b.set_version(wire::PROTOCOL_VERSION_1);
  b.set_source("fuzz-feed");
  b.set_seq(++feed_seq);
  b.set_end_of_window_seconds(cfg.window.t0_seconds +
                              static_cast<double>(k) * cfg.experiment.cycle_hours * 3600.0);
  const auto ack = feed(b);
  if (ack.status() != wire::ACK_ACCEPTED) fail("marker refused", ack.error());
  closed_through = k;
}

wire::ControlReply Service::status_resumed() {
  wire::ControlReply r = status();
  if (r.status().state() == "paused") {
    wire::ControlRequest q;
    q.set_version(wire::PROTOCOL_VERSION_1);
    q.set_command(wire::COMMAND_RESUME);
    if (!control_raw(q.SerializeAsString()).ok()) fail("RESUME failed");
  }
  return r;
}

void Service::send_worker(int w, const std::string& body, bool with_delimiter) {
  if (with_delimiter) workers[w]->send(zmq::message_t(), zmq::send_flags::sndmore);
  workers[w]->send(zmq::buffer(body), zmq::send_flags::none);
}

void Service::drain_workers(int ms) {
  std::vector<zmq::pollitem_t> items;
  for (auto& w : workers)
    items.push_back({static_cast<void*>(*w), 0, ZMQ_POLLIN, 0});
  bool first = true;
  while (poll_retry(items.data(), items.size(), first ? ms : 0) > 0) {
    first = false;
    for (int w = 0; w < kWorkers; ++w) {
      if (!(items[w].revents & ZMQ_POLLIN)) continue;
      zmq::message_t m;
      while (workers[w]->recv(m, zmq::recv_flags::dontwait)) {
        ++messages_from_server;
        wire::ServerToWorker s;
        if (!s.ParseFromArray(m.data(), static_cast<int>(m.size())))
          fail("the server sent a worker something that is not a ServerToWorker");
        if (s.version() != wire::PROTOCOL_VERSION_1) fail("ServerToWorker without version");
        if (s.has_welcome()) {
          joined = w;
        } else if (s.has_task()) {
          task = Task{s.task().dispatch_id(), static_cast<std::int64_t>(s.task().cycle()),
                      s.task().checkpoint(), w};
          last_task_cycle = std::max(last_task_cycle, task->cycle);
        } else if (s.has_refused() || s.has_stop()) {
          if (task && task->worker == w) task.reset();
          if (joined == w) joined = -1;
        }
      }
    }
  }
}

bool Service::wait_task(int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!task && std::chrono::steady_clock::now() < deadline)
    drain_workers(5);
  return task.has_value();
}

std::string Service::checkpoint_path(std::int64_t cycle) const {
  char name[64];
  std::snprintf(name, sizeof name, "checkpoint-%08lld.h5", static_cast<long long>(cycle));
  return (fs::absolute(cfg.server.data_dir) / "checkpoints" / name).string();
}

wire::WorkerToServer Service::hello(std::int64_t analysed_cycle) const {
  wire::WorkerToServer m;
  m.set_version(wire::PROTOCOL_VERSION_1);
  auto* h = m.mutable_hello();
  h->set_ranks(1);
  h->set_host("fuzz");
  h->set_pid(static_cast<std::uint32_t>(::getpid()));
  h->set_device("cpu");
  h->set_device_name("fuzz processor");
  h->set_toolchain("fuzz compiler");
  h->set_analysed_cycle(analysed_cycle);
  return m;
}

wire::WorkerToServer Service::valid_result(const Task& t) const {
  wire::WorkerToServer m;
  m.set_version(wire::PROTOCOL_VERSION_1);
  auto* r = m.mutable_result();
  r->set_dispatch_id(t.dispatch_id);
  auto* a = r->mutable_analysis();
  a->set_version(wire::PROTOCOL_VERSION_1);
  a->set_cycle(static_cast<std::uint64_t>(t.cycle));
  a->set_filter("ensf");
  a->set_grid_n(static_cast<std::uint32_t>(cfg.model.sqg.N));
  a->set_members(static_cast<std::uint32_t>(cfg.ensemble.members));
  const int n = 2 * cfg.model.sqg.N * cfg.model.sqg.N;
  a->mutable_mean()->Resize(n, 1.0);
  a->mutable_spread()->Resize(n, 0.5);
  (*a->mutable_diagnostics())["rmse_analysis"] = 1.0;
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  r->set_task_received_unix_seconds(now);
  r->set_done_unix_seconds(now);
  return m;
}

void Service::run_one_cycle(int w) {
  keep_windows_closed();
  if (!task) {
    // The group the server knows says hello again (continuing at the last published cycle),
    // else worker w joins.
    const std::int64_t last = status_resumed().status().last_cycle();
    send_worker(joined >= 0 ? joined : w, hello(last).SerializeAsString());
    wait_task(200);
  }
  if (!task) return;  // e.g. refused: another group is connected
  const Task t = *task;
  send_worker(t.worker, valid_result(t).SerializeAsString());
  task.reset();
  drain_workers(2);
}

}  // namespace rtda::fuzz
