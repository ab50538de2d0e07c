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

// What a counter covers: since this process started, or the service's whole history (rebuilt
// from the observation log at start). proto/rtda.proto's CounterLifetime says the same.
enum class CounterLifetime { kSinceStart, kDurable };

struct CounterSpec {
  const char* name;
  CounterLifetime lifetime;
  const char* help;  // what it counts: the metric's HELP text and docs/service.md's table
};

// Every counter of Status.counters, in the order Status lists them (docs/service.md "Status
// counters" lists the same, tests/service/ops_test.py checks it). A durable counter X has a
// twin X_since_start.
const std::vector<CounterSpec>& counter_specs();

// The named counters of Status.counters: all of counter_specs() exist from the start at 0.
class Counters {
 public:
  Counters();
  // Something happened in this process: the counter goes up, and for a durable counter its
  // X_since_start twin too. A name outside counter_specs() is added (since start) and logged
  // once as an error.
  void add(const std::string& name, std::uint64_t n = 1);
  // A record of the observation log replayed at start: a durable counter only.
  void replay(const std::string& name, std::uint64_t n = 1);
  // A compaction base: a durable counter's value for the records before it.
  void set_durable(const std::string& name, std::uint64_t value);
  // A count kept elsewhere (the ZAP handler's): the counter takes that value.
  void set(const std::string& name, std::uint64_t value);
  // Name -> value, every counter.
  const std::map<std::string, std::uint64_t>& all() const { return values_; }
  CounterLifetime lifetime(const std::string& name) const;
  // The durable counters (replayed from the log; a compaction base carries them).
  static const std::vector<std::string>& durable_names();

 private:
  std::map<std::string, std::uint64_t> values_;
  std::map<std::string, CounterLifetime> lifetimes_;
};

}  // namespace rtda::server
