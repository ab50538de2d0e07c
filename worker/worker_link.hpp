// Rank 0's link to the coordinator (docs/architecture.md §1, §5): a DEALER socket on the
// server's workers endpoint, with CURVE when the server's key is given, a routing id of its own,
// the hello that joins the group, heartbeats with the current stage, and a watchdog that takes
// the process down when the server said stop and the compute thread does not come back. A
// thread owns the socket; the compute thread queues outgoing messages and takes incoming ones.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "rtda.pb.h"

namespace rtda::worker {

// Seconds since the Unix epoch: the clock of every timestamp on the wire.
double unix_seconds();

// What a hello tells the server about the group besides its host and process.
struct HelloInfo {
  std::uint32_t ranks = 1;
  std::string device;       // device::name of rank 0's backend
  std::string device_name;  // rank 0's device::Choice: the device and its toolchain
  std::string toolchain;
  std::string config_hash;  // science_hash of the group's own --config; "" without one
};

class WorkerLink {
 public:
  // Connects to `address`. `server_key` (file or Z85; "" = no CURVE) and `client_key` (this
  // group's .key_secret; "" = a fresh pair) as net::setup_curve_client takes them.
  WorkerLink(const std::string& address, const std::string& server_key,
             const std::string& client_key, HelloInfo hello);
  ~WorkerLink();
  WorkerLink(const WorkerLink&) = delete;
  WorkerLink& operator=(const WorkerLink&) = delete;

  // The calls below are for the compute thread only.
  void send(const wire::WorkerToServer& m);
  // The next message that is not a heartbeat nor a result_published notice, serialized (every
  // rank parses it after the broadcast). Waits for one.
  std::string receive();
  // Asks to join with the ensemble at `analysed_cycle` (-1: none).
  void hello(std::int64_t analysed_cycle);
  // The server asked for a hello: one, unless one sent less than 2 s ago awaits its welcome.
  void hello_again(std::int64_t analysed_cycle);
  // The welcome arrived: the next hello_again is answered at once.
  void welcomed();
  // A WorkerError: `fatal` when the group goes down with it.
  void send_error(std::int64_t cycle, const std::string& error, bool fatal);

  // What the heartbeats report, and how often they go out.
  void set_stage(std::string stage, std::int64_t cycle);
  void set_heartbeat(double seconds) { heartbeat_seconds_ = seconds; }
  // Waits (at most `timeout`) until the server says the result of `dispatch_id` is out.
  void wait_published(std::uint64_t dispatch_id, std::chrono::milliseconds timeout);
  // Waits (at most 100 ms) until everything queued has been handed to the socket (a result
  // leaves before the next forecast takes this core).
  void flush();

 private:
  void loop();

  HelloInfo hello_info_;
  std::string host_;
  double hello_sent_ = -1e9;  // a hello waits for its welcome: one per 2 s at most
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

}  // namespace rtda::worker
