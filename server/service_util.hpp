// Small pieces the coordinator's parts share (coordinator.hpp): the wall clock, a request as a
// ROUTER socket receives it and the reply to it, durable file replacement, the status counters,
// and the fault points of the chaos tests. Internal to the server.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>
#include <zmq.hpp>

namespace rtda::server {

// Seconds since the Unix epoch.
double wall_now();

// A request as a ROUTER sees it: [identity, (empty delimiter from REQ), payload].
struct Envelope {
  std::vector<zmq::message_t> head;  // identity (+ delimiter)
  zmq::message_t body;
  bool ok = false;
};

// The next routed message waiting on `s` (ok = false when none, or not a routed message).
Envelope receive_envelope(zmq::socket_t& s);

// Sends `payload` back to whoever sent `e` (never blocks; dropped when the peer is gone).
void reply(zmq::socket_t& s, const Envelope& e, const std::string& payload);

// Fault injection for the chaos tests: RTDA_FAULT=<point>:<cycle> makes the server _exit(99)
// at that point of that cycle (the moments between durable steps that a crash can hit).
bool fault_point(const char* point, std::int64_t cycle);

// Writes `bytes` to `path` so that after a crash the file is either the old one or the new
// one, complete: a temporary, fdatasync, rename, and a sync of the directory.
void write_durably(const std::filesystem::path& path, const std::string& bytes);

// Client text for a log line or a reply: bounded, printable (quote_client_text).
std::string bounded(const std::string& s, std::size_t max);

// The named counters of Status.counters (docs/service.md lists them).
class Counters {
 public:
  void add(const std::string& name, std::uint64_t n = 1) { values_[name] += n; }
  void set(const std::string& name, std::uint64_t value) { values_[name] = value; }
  const std::map<std::string, std::uint64_t>& all() const { return values_; }

 private:
  std::map<std::string, std::uint64_t> values_;
};

}  // namespace rtda::server
