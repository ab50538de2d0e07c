#include "server/service_util.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <system_error>

#include "server/ingest.hpp"

namespace rtda::server {
namespace fs = std::filesystem;

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Envelope receive_envelope(zmq::socket_t& s) {
  Envelope e;
  std::vector<zmq::message_t> frames;
  while (true) {
    zmq::message_t m;
    if (!s.recv(m, zmq::recv_flags::dontwait)) break;
    const bool more = m.more();
    frames.push_back(std::move(m));
    if (!more) break;
  }
  if (frames.size() < 2) return e;  // not a routed message
  e.body = std::move(frames.back());
  frames.pop_back();
  e.head = std::move(frames);
  e.ok = true;
  return e;
}

void reply(zmq::socket_t& s, const Envelope& e, const std::string& payload) {
  for (const auto& h : e.head)
    s.send(zmq::buffer(h.data(), h.size()), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  s.send(zmq::buffer(payload), zmq::send_flags::dontwait);
}

bool fault_point(const char* point, std::int64_t cycle) {
  static const std::string spec = [] {
    const char* v = std::getenv("RTDA_FAULT");
    return std::string(v ? v : "");
  }();
  if (spec.empty()) return false;
  const std::string want = std::string(point) + ":" + std::to_string(cycle);
  if (spec != want) return false;
  spdlog::critical("RTDA_FAULT={}: exiting at {} of cycle {}", spec, point, cycle);
  std::_Exit(99);
}

void write_durably(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), tmp.string());
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::system_error(err, std::generic_category(), tmp.string());
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw std::system_error(err, std::generic_category(), tmp.string());
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::system_error(errno, std::generic_category(), path.string());
  const int dfd = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string bounded(const std::string& s, std::size_t max) {
  return quote_client_text(s, max);
}

namespace {

constexpr auto kDurable = CounterLifetime::kDurable;
constexpr auto kStart = CounterLifetime::kSinceStart;

std::vector<CounterSpec> make_specs() {
  std::vector<CounterSpec> durable = {
      {"batches_accepted", kDurable, "Batches stored in the observation log (ACK_ACCEPTED)."},
      {"observations_accepted", kDurable, "Observations stored in a window."},
      {"observations_rejected", kDurable,
       "Observations refused one by one in stored batches (the ack names the field and value)."},
      {"observations_late", kDurable,
       "Stored observations moved to the oldest open window because theirs had closed "
       "(window.late_policy = \"next\")."},
      {"observations_late_rejected", kDurable,
       "Observations refused because their window had closed (window.late_policy = "
       "\"reject\")."},
  };
  std::vector<CounterSpec> specs;
  for (const auto& d : durable)
    specs.push_back(d);
  // The since-start twins: the same events, counted by this process only.
  static std::vector<std::string> twin_names;
  twin_names.reserve(durable.size());
  for (const auto& d : durable)
    twin_names.push_back(std::string(d.name) + "_since_start");
  for (std::size_t i = 0; i < durable.size(); ++i)
    specs.push_back({twin_names[i].c_str(), kStart, durable[i].help});
  const std::vector<CounterSpec> rest = {
      {"batches_duplicate", kStart,
       "Retries of a stored (source, seq) with the same content (ACK_DUPLICATE)."},
      {"batches_conflict", kStart,
       "Batches reusing a stored (source, seq) with other content (ACK_CONFLICT)."},
      {"batches_stale", kStart, "Batches whose seq is older than the idempotency window."},
      {"batches_rejected", kStart,
       "Readable batches refused whole (empty, too large, a bad marker or truth, mismatched "
       "columns, a bad source name, too many sources)."},
      {"batches_wrong_version", kStart, "Batches of another protocol version."},
      {"batches_rate_limited", kStart,
       "Batches over the per-source rate limit (answered with retry_after_seconds)."},
      {"batches_source_denied", kStart, "Batches from a CURVE key for a source it is not granted."},
      {"batches_unavailable", kStart,
       "Batches answered ACK_UNAVAILABLE because the observation log could not be written."},
      {"messages_malformed", kStart, "Ingest messages that are not an ObservationBatch."},
      {"messages_oversize", kStart,
       "Ingest messages over limits.max_message_mb (answered ACK_ERROR)."},
      {"ingest_errors", kStart, "Batches the server failed on internally (ACK_ERROR)."},
      {"position_queries", kStart, "Position queries answered (ACK_POSITION)."},
      {"windows_closed_by_marker", kStart, "Windows closed by a feeder's end-of-window marker."},
      {"windows_closed_by_deadline", kStart, "Windows closed by window.deadline_seconds."},
      {"windows_closed_by_later_window", kStart,
       "Windows closed because data for a later window waited window.grace_seconds."},
      {"log_truncated_bytes", kStart,
       "Bytes of a torn tail dropped from the observation log at start."},
      {"log_write_errors", kStart, "Observation log commits that failed."},
      {"log_degraded_episodes", kStart,
       "Times ingest became degraded because the observation log could not be written."},
      {"log_recoveries", kStart, "Times the observation log became writable again."},
      {"log_bytes_compacted", kStart, "Bytes of the observation log deleted by compaction."},
      {"cycles_dispatched", kStart, "Cycle tasks sent to the worker group."},
      {"cycles_published", kStart, "Analyses published by this process."},
      {"cycles_replayed", kStart,
       "Cycles recomputed after a restart and not published again (already published)."},
      {"cycles_degraded", kStart,
       "Cycles run forecast-only to catch up (server.behind_policy = \"degrade\")."},
      {"cycles_timed_out", kStart, "Cycles not done within server.cycle_timeout_seconds."},
      {"checkpoints", kStart, "Checkpoint notices of the worker group accepted."},
      {"observations_refused_qc", kStart,
       "Observations the quality control refused before the filter."},
      {"worker_joins", kStart, "Worker groups that joined (welcomed), reconnects included."},
      {"worker_hellos_refused", kStart,
       "Worker group hellos refused (another group alive, another configuration, no "
       "checkpoint for the compacted log)."},
      {"worker_errors", kStart, "Errors a worker group reported."},
      {"worker_groups_lost", kStart,
       "Worker groups dropped because their heartbeats stopped (server.worker_timeout_seconds)."},
      {"worker_results_refused", kStart, "Results that did not match their dispatch."},
      {"worker_checkpoints_refused", kStart,
       "Checkpoint notices that did not match what was asked."},
      {"worker_results_stale", kStart, "Results of an earlier dispatch (ignored)."},
      {"worker_messages_malformed", kStart, "Worker-link messages that are not a message."},
      {"control_malformed", kStart, "Control requests that are not a ControlRequest."},
      {"control_wrong_version", kStart, "Control requests of another protocol version."},
      {"control_rate_limited", kStart,
       "LATEST_ANALYSIS requests with fields over limits.latest_analysis_per_second."},
      {"subscriptions_refused", kStart, "Subscriptions to topics this server does not publish."},
      {"analysis_file_errors", kStart, "Analysis archive files that could not be written."},
      {"analysis_files_retired", kStart,
       "Analysis archive files deleted by server.archive_keep_cycles."},
      {"curve_handshakes_allowed", kStart,
       "CURVE handshakes the ZAP handler accepted, every endpoint."},
      {"curve_handshakes_denied", kStart,
       "CURVE handshakes the ZAP handler refused (a key not allowed, no CURVE), every "
       "endpoint."},
      {"key_reloads", kStart, "SIGHUP re-reads of the CURVE allow-lists that took effect."},
      {"key_reload_failures", kStart,
       "SIGHUP re-reads refused because a list could not be read (the old lists stay)."},
  };
  specs.insert(specs.end(), rest.begin(), rest.end());
  return specs;
}

}  // namespace

const std::vector<CounterSpec>& counter_specs() {
  static const std::vector<CounterSpec> specs = make_specs();
  return specs;
}

const std::vector<std::string>& Counters::durable_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& s : counter_specs())
      if (s.lifetime == CounterLifetime::kDurable) out.emplace_back(s.name);
    return out;
  }();
  return names;
}

Counters::Counters() {
  for (const auto& s : counter_specs()) {
    values_[s.name] = 0;
    lifetimes_[s.name] = s.lifetime;
  }
}

void Counters::add(const std::string& name, std::uint64_t n) {
  const auto it = lifetimes_.find(name);
  if (it == lifetimes_.end()) {
    spdlog::error("counter {} is not in the server's counter table (server/service_util.cpp)",
                  name);
    lifetimes_[name] = CounterLifetime::kSinceStart;
  } else if (it->second == CounterLifetime::kDurable) {
    values_[name + "_since_start"] += n;
  }
  values_[name] += n;
}

void Counters::replay(const std::string& name, std::uint64_t n) {
  values_[name] += n;
}

void Counters::set_durable(const std::string& name, std::uint64_t value) {
  if (lifetime(name) == CounterLifetime::kDurable) values_[name] = value;
}

void Counters::set(const std::string& name, std::uint64_t value) {
  if (!lifetimes_.count(name)) lifetimes_[name] = CounterLifetime::kSinceStart;
  values_[name] = value;
}

CounterLifetime Counters::lifetime(const std::string& name) const {
  const auto it = lifetimes_.find(name);
  return it == lifetimes_.end() ? CounterLifetime::kSinceStart : it->second;
}

}  // namespace rtda::server
