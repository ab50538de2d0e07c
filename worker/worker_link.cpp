#include "worker_link.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>

#include "net/curve.hpp"

namespace rtda::worker {

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

WorkerLink::WorkerLink(const std::string& address, const std::string& server_key,
                       const std::string& client_key, HelloInfo hello)
    : hello_info_(std::move(hello)), socket_(ctx_, zmq::socket_type::dealer) {
  net::setup_curve_client(socket_, server_key, client_key);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  host_ = host;
  // A routing id of our own: after a reconnect (a server restart, a network blip) the server
  // sees the same group, not a stranger to refuse while the old connection times out.
  socket_.set(zmq::sockopt::routing_id,
              "rtda-worker/" + host_ + "/" + std::to_string(getpid()) + "/" +
                  std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  socket_.set(zmq::sockopt::linger, 2000);
  // Heartbeats queued during a server outage are stale: do not deliver them all at once.
  socket_.set(zmq::sockopt::sndhwm, 1000);
  socket_.connect(address);
  // The compute thread rings this to hand over an outgoing message at once (a result must not
  // wait for the link thread's next poll timeout).
  wake_pull_.set(zmq::sockopt::linger, 0);
  wake_push_.set(zmq::sockopt::linger, 0);
  wake_pull_.bind("inproc://rtda-worker-link");
  wake_push_.connect("inproc://rtda-worker-link");
  thread_ = std::thread([this] { loop(); });
}

WorkerLink::~WorkerLink() {
  stop_ = true;
  thread_.join();
}

void WorkerLink::send(const wire::WorkerToServer& m) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    outgoing_.push_back(m.SerializeAsString());
  }
  wake_push_.send(zmq::buffer("w", 1), zmq::send_flags::dontwait);
}

std::string WorkerLink::receive() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return !incoming_.empty(); });
  std::string m = std::move(incoming_.front());
  incoming_.pop_front();
  return m;
}

void WorkerLink::hello(std::int64_t analysed_cycle) {
  hello_sent_ = unix_seconds();
  wire::WorkerToServer m;
  m.set_version(wire::PROTOCOL_VERSION_1);
  auto* h = m.mutable_hello();
  h->set_ranks(hello_info_.ranks);
  h->set_host(host_);
  h->set_pid(static_cast<std::uint32_t>(getpid()));
  h->set_device(hello_info_.device);
  h->set_device_name(hello_info_.device_name);
  h->set_toolchain(hello_info_.toolchain);
  h->set_config_hash(hello_info_.config_hash);
  h->set_analysed_cycle(analysed_cycle);
  send(m);
}

void WorkerLink::hello_again(std::int64_t analysed_cycle) {
  if (unix_seconds() - hello_sent_ > 2.0) hello(analysed_cycle);
}

void WorkerLink::welcomed() {
  hello_sent_ = -1e9;
}

void WorkerLink::send_error(std::int64_t cycle, const std::string& error, bool fatal) {
  wire::WorkerToServer m;
  m.set_version(wire::PROTOCOL_VERSION_1);
  m.mutable_error()->set_cycle(cycle);
  m.mutable_error()->set_error(error);
  if (fatal) m.mutable_error()->set_fatal(true);
  send(m);
}

void WorkerLink::set_stage(std::string stage, std::int64_t cycle) {
  std::lock_guard<std::mutex> lock(mutex_);
  stage_ = std::move(stage);
  cycle_ = cycle;
}

void WorkerLink::wait_published(std::uint64_t dispatch_id, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  published_cv_.wait_for(lock, timeout, [&] { return published_ >= dispatch_id; });
}

void WorkerLink::flush() {
  std::unique_lock<std::mutex> lock(mutex_);
  sent_cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return outgoing_.empty(); });
}

void WorkerLink::loop() {
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
          wire::ServerToWorker m;
          if (m.ParseFromArray(msg.data(), static_cast<int>(msg.size()))) {
            if (m.has_heartbeat()) continue;
            // A group told to stop (or refused) whose compute thread does not come back is
            // hung: take the process (and with it the MPI job) down after a grace period.
            if (m.has_stop() || m.has_refused()) stop_deadline_ = unix_seconds() + 15.0;
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
    wire::WorkerToServer beat;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      out.swap(outgoing_);
      beat.set_version(wire::PROTOCOL_VERSION_1);
      beat.mutable_heartbeat()->set_stage(stage_);
      beat.mutable_heartbeat()->set_cycle(cycle_);
    }
    for (auto& m : out)
      socket_.send(zmq::buffer(m), zmq::send_flags::none);
    if (!out.empty()) sent_cv_.notify_all();
    const double now = unix_seconds();
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

}  // namespace rtda::worker
