// A real rtda::server::Coordinator in a thread of the fuzzer process, and the client sockets
// the service fuzzers (fuzz_control, fuzz_worker_link) talk to it through: ipc:// endpoints
// in a mkdtemp directory (also the data_dir), log_sync = "never", no worker timeout. Started
// once (LLVMFuzzerInitialize); stopped and joined at exit.
//
// A request that gets no reply within kReplyTimeoutMs, or an event loop that ends or throws,
// is a bug (the server must answer every client and never stop for client input): trap.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "config/config.hpp"
#include "rtda.pb.h"
#include "server/coordinator.hpp"

namespace rtda::fuzz {

constexpr int kReplyTimeoutMs = 2000;
constexpr int kWorkers = 3;  // routing ids "fuzz-worker-0..2"

[[noreturn]] void fail(const char* what, const std::string& detail = {});

struct Service {
  std::string dir;
  config::Config cfg;
  std::unique_ptr<server::Coordinator> coordinator;
  std::thread loop;
  std::atomic<bool> stop{false};
  std::atomic<bool> loop_ended{false};

  zmq::context_t ctx{1};
  std::optional<zmq::socket_t> control, ingest;
  std::array<std::optional<zmq::socket_t>, kWorkers> workers;

  // What the worker sockets have been told (ServerToWorker).
  struct Task {
    std::uint64_t dispatch_id = 0;
    std::int64_t cycle = -1;
    bool checkpoint = false;
    int worker = -1;
  };
  std::optional<Task> task;  // the newest task not yet answered with a valid result
  std::int64_t last_task_cycle = -1;
  int joined = -1;                   // the worker socket that got the newest welcome
  std::int64_t closed_through = -1;  // through the feeder's markers
  std::uint64_t feed_seq = 0;
  std::uint64_t messages_from_server = 0;

  void start();
  void shutdown();

  // Sends `body` as a ControlRequest frame (DEALER, empty delimiter first, as rtda_client) and
  // returns the reply; traps without one.
  wire::ControlReply control_raw(const std::string& body);
  wire::ControlReply status();
  // STATUS, then RESUME when the server paused (three failures of one cycle): the fuzzed
  // worker messages may take groups down, the harness keeps the cycles coming.
  wire::ControlReply status_resumed();
  // An ObservationBatch to the ingest endpoint; returns the ack (traps without one).
  wire::IngestAck feed(const wire::ObservationBatch& b);
  // Keeps windows closed ahead of the worker group's next cycle (feeder markers).
  void keep_windows_closed();

  void send_worker(int w, const std::string& body, bool with_delimiter = false);
  // Reads what the server sent the worker sockets, waiting up to `ms` for the first message.
  void drain_workers(int ms);
  // Waits up to `ms` for a task to arrive.
  bool wait_task(int ms);

  std::string checkpoint_path(std::int64_t cycle) const;
  wire::WorkerToServer hello(std::int64_t analysed_cycle) const;
  // A result the server accepts for `t`.
  wire::WorkerToServer valid_result(const Task& t) const;
  // Worker w joins, gets a task, returns a valid result: the server has published a cycle.
  void run_one_cycle(int w);
};

Service& service();

}  // namespace rtda::fuzz
