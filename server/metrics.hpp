// Service metrics in the Prometheus text exposition format 0.0.4, and a minimal HTTP endpoint
// that serves them over a ZMQ_STREAM socket so the server's single zmq_poll loop can drive it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

namespace rtda::server {

// Label name/value pairs of one time series, in the order they are rendered.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing count. Lock-free and safe to update from any thread.
class Counter {
 public:
  // Throws std::invalid_argument for a negative or NaN increment (counters never go down).
  void inc(double amount = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that can go up and down. Lock-free and safe to update from any thread.
class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double amount = 1.0) { value_.fetch_add(amount, std::memory_order_relaxed); }
  void dec(double amount = 1.0) { value_.fetch_add(-amount, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Quantiles over the last `window` observations; count() and sum() cover every observation
// since creation (the Prometheus _count and _sum). Thread-safe (a mutex per summary).
class Summary {
 public:
  Summary(std::vector<double> quantiles, std::size_t window);
  void observe(double v);
  // Nearest-rank quantile of the window: the smallest sample x with at least ceil(q*n) samples
  // <= x. NaN while the window is empty. Throws std::invalid_argument unless 0 <= q <= 1.
  double quantile(double q) const;
  std::uint64_t count() const;
  double sum() const;
  const std::vector<double>& quantiles() const { return quantiles_; }

 private:
  const std::vector<double> quantiles_;
  const std::size_t window_;
  mutable std::mutex mutex_;
  std::vector<double> samples_;  // ring buffer of at most window_ samples
  std::size_t next_ = 0;
  std::uint64_t count_ = 0;
  double sum_ = 0.0;
};

// Metric families by name, each with one series per label set. Registering the same name and
// label set again returns the existing series (the help text of the first registration stays).
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not starting
// with "__"; "quantile" is reserved for summaries); violations throw std::invalid_argument naming
// the offender, as does reusing a name with a different metric type. Returned references stay
// valid for the registry's lifetime. Registration, render() and updates are all thread-safe.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter& counter(const std::string& name, const std::string& help,
                   const MetricLabels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  // Quantiles must lie in [0, 1]; window must be at least 1.
  Summary& summary(const std::string& name, const std::string& help,
                   const std::vector<double>& quantiles = {0.5, 0.9, 0.99},
                   std::size_t window = 1024, const MetricLabels& labels = {});

  // The whole registry in text format 0.0.4, families and series in registration order.
  std::string render() const;

 private:
  enum class Type { kCounter, kGauge, kSummary };
  struct Series;
  struct Family;
  Series& find_or_add(const std::string& name, const std::string& help, Type type,
                      const MetricLabels& labels);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;
  std::map<std::string, Family*> by_name_;
};

// Serves `GET /metrics` from a MetricsRegistry over raw TCP (a ZMQ_STREAM socket), one request
// per connection ("Connection: close"). The owner polls socket() for ZMQ_POLLIN and calls
// handle_readable(); nothing here blocks or throws on client input:
//  - GET or HEAD /metrics (any query string) -> 200, Content-Type text/plain; version=0.0.4
//  - another path -> 404; another method -> 405; a malformed request line -> 400
//  - more than 8 KiB without the end of the headers -> 400
//  - more than 256 connections with incomplete requests -> the new one gets 503
// Binding: libzmq resolves both "tcp://127.0.0.1:0" and "tcp://127.0.0.1:*" to a free port for
// ZMQ_STREAM (checked with libzmq 4.3.4); bound_endpoint() reports the actual port.
class MetricsHttpEndpoint {
 public:
  static constexpr std::size_t kMaxRequestBytes = 8 * 1024;
  static constexpr std::size_t kMaxPendingConnections = 256;

  MetricsHttpEndpoint(zmq::context_t& context, const std::string& address,
                      const MetricsRegistry& registry);

  zmq::socket_t& socket() { return socket_; }
  // Handles every message queued on the socket (at most 1024 per call, to keep the event loop
  // fair). Throws only if the context is terminated (ETERM).
  void handle_readable();
  // The resolved address, e.g. "tcp://127.0.0.1:41234".
  std::string bound_endpoint() const;

 private:
  void on_data(const std::string& identity, const std::string& data);
  void respond(const std::string& identity, int status, const std::string& reason,
               const std::string& body, bool head_only);

  const MetricsRegistry& registry_;
  zmq::socket_t socket_;
  std::map<std::string, std::string> pending_;  // connection identity -> request bytes so far
};

}  // namespace rtda::server
