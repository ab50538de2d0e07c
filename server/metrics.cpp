#include "server/metrics.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string_view>

namespace rtda::server {
namespace {

bool is_metric_name(std::string_view name) {
  if (name.empty()) return false;
  auto first_ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
  };
  if (!first_ok(name.front())) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return first_ok(c) || (c >= '0' && c <= '9'); });
}

bool is_label_name(std::string_view name) {
  return is_metric_name(name) && name.find(':') == std::string_view::npos &&
         name.substr(0, 2) != "__";
}

// Prometheus number syntax: Go's float formatting accepts fmt's shortest round-trip form; only
// the special values differ.
std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string escape_help(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_label_value(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}`, with an optional extra label appended (the summary's quantile); empty when
// there are no labels at all.
std::string format_labels(const MetricLabels& labels, const char* extra_name = nullptr,
                          const std::string& extra_value = {}) {
  if (labels.empty() && extra_name == nullptr) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    out += escape_label_value(value);
    out += '"';
  }
  if (extra_name != nullptr) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += escape_label_value(extra_value);
    out += '"';
  }
  out += '}';
  return out;
}

const char* type_name(int type) {
  switch (type) {
    case 0:
      return "counter";
    case 1:
      return "gauge";
    default:
      return "summary";
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Counter, Summary

void Counter::inc(double amount) {
  if (!(amount >= 0.0)) {
    throw std::invalid_argument(
        fmt::format("Counter::inc: increment {} is negative or NaN", amount));
  }
  value_.fetch_add(amount, std::memory_order_relaxed);
}

Summary::Summary(std::vector<double> quantiles, std::size_t window)
    : quantiles_(std::move(quantiles)), window_(window) {
  if (window_ == 0) throw std::invalid_argument("Summary: window must be at least 1 sample");
  for (const double q : quantiles_) {
    if (!(q >= 0.0 && q <= 1.0)) {
      throw std::invalid_argument(fmt::format("Summary: quantile {} is outside [0, 1]", q));
    }
  }
  samples_.reserve(std::min<std::size_t>(window_, 4096));
}

void Summary::observe(double v) {
  std::lock_guard lock(mutex_);
  if (samples_.size() < window_) {
    samples_.push_back(v);
  } else {
    samples_[next_] = v;
    next_ = (next_ + 1) % window_;
  }
  ++count_;
  sum_ += v;
}

double Summary::quantile(double q) const {
  if (!(q >= 0.0 && q <= 1.0)) {
    throw std::invalid_argument(fmt::format("Summary::quantile: {} is outside [0, 1]", q));
  }
  std::vector<double> sorted;
  {
    std::lock_guard lock(mutex_);
    sorted = samples_;
  }
  if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto n = sorted.size();
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
  const std::size_t index = rank == 0 ? 0 : std::min(rank - 1, n - 1);
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(index),
                   sorted.end());
  return sorted[index];
}

std::uint64_t Summary::count() const {
  std::lock_guard lock(mutex_);
  return count_;
}

double Summary::sum() const {
  std::lock_guard lock(mutex_);
  return sum_;
}

// ---------------------------------------------------------------------------------------------
// MetricsRegistry

struct MetricsRegistry::Series {
  MetricLabels labels;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Summary> summary;
};

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  Type type;
  std::vector<std::unique_ptr<Series>> series;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Series& MetricsRegistry::find_or_add(const std::string& name,
                                                      const std::string& help, Type type,
                                                      const MetricLabels& labels) {
  if (!is_metric_name(name)) {
    throw std::invalid_argument(
        fmt::format("metric name '{}' does not match [a-zA-Z_:][a-zA-Z0-9_:]*", name));
  }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string& label = labels[i].first;
    if (!is_label_name(label)) {
      throw std::invalid_argument(fmt::format(
          "metric '{}': label name '{}' does not match [a-zA-Z_][a-zA-Z0-9_]* or starts with __",
          name, label));
    }
    if (type == Type::kSummary && label == "quantile") {
      throw std::invalid_argument(
          fmt::format("metric '{}': label 'quantile' is reserved for summaries", name));
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (labels[j].first == label) {
        throw std::invalid_argument(
            fmt::format("metric '{}': label '{}' given twice", name, label));
      }
    }
  }

  std::lock_guard lock(mutex_);
  Family* family = nullptr;
  if (const auto it = by_name_.find(name); it != by_name_.end()) {
    family = it->second;
    if (family->type != type) {
      throw std::invalid_argument(fmt::format("metric '{}' is already registered as a {}, not a {}",
                                              name, type_name(static_cast<int>(family->type)),
                                              type_name(static_cast<int>(type))));
    }
  } else {
    families_.push_back(std::make_unique<Family>(Family{name, help, type, {}}));
    family = families_.back().get();
    by_name_.emplace(name, family);
  }
  for (const auto& series : family->series) {
    if (series->labels == labels) return *series;
  }
  family->series.push_back(std::make_unique<Series>(Series{labels, nullptr, nullptr, nullptr}));
  return *family->series.back();
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const MetricLabels& labels) {
  Series& s = find_or_add(name, help, Type::kCounter, labels);
  std::lock_guard lock(mutex_);
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return *s.counter;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              const MetricLabels& labels) {
  Series& s = find_or_add(name, help, Type::kGauge, labels);
  std::lock_guard lock(mutex_);
  if (!s.gauge) s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

Summary& MetricsRegistry::summary(const std::string& name, const std::string& help,
                                  const std::vector<double>& quantiles, std::size_t window,
                                  const MetricLabels& labels) {
  // Validate the parameters before anything is registered.
  auto fresh = std::make_unique<Summary>(quantiles, window);
  Series& s = find_or_add(name, help, Type::kSummary, labels);
  std::lock_guard lock(mutex_);
  if (!s.summary) s.summary = std::move(fresh);
  return *s.summary;
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& family : families_) {
    out += fmt::format("# HELP {} {}\n", family->name, escape_help(family->help));
    out += fmt::format("# TYPE {} {}\n", family->name, type_name(static_cast<int>(family->type)));
    for (const auto& s : family->series) {
      if (s->counter) {
        out += fmt::format("{}{} {}\n", family->name, format_labels(s->labels),
                           format_value(s->counter->value()));
      } else if (s->gauge) {
        out += fmt::format("{}{} {}\n", family->name, format_labels(s->labels),
                           format_value(s->gauge->value()));
      } else if (s->summary) {
        for (const double q : s->summary->quantiles()) {
          out += fmt::format("{}{} {}\n", family->name,
                             format_labels(s->labels, "quantile", format_value(q)),
                             format_value(s->summary->quantile(q)));
        }
        out += fmt::format("{}_sum{} {}\n", family->name, format_labels(s->labels),
                           format_value(s->summary->sum()));
        out += fmt::format("{}_count{} {}\n", family->name, format_labels(s->labels),
                           s->summary->count());
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// MetricsHttpEndpoint

MetricsHttpEndpoint::MetricsHttpEndpoint(zmq::context_t& context, const std::string& address,
                                         const MetricsRegistry& registry)
    : registry_(registry), socket_(context, zmq::socket_type::stream) {
  socket_.set(zmq::sockopt::linger, 0);
  try {
    socket_.bind(address);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error(
        fmt::format("metrics endpoint: cannot bind {}: {}", address, e.what()));
  }
}

std::string MetricsHttpEndpoint::bound_endpoint() const {
  return socket_.get(zmq::sockopt::last_endpoint);
}

void MetricsHttpEndpoint::handle_readable() {
  for (int handled = 0; handled < 1024; ++handled) {
    zmq::message_t identity;
    zmq::message_t data;
    try {
      if (!socket_.recv(identity, zmq::recv_flags::dontwait)) return;  // EAGAIN: drained
      if (!identity.more()) continue;  // a ZMQ_STREAM message always has two frames
      if (!socket_.recv(data, zmq::recv_flags::none)) continue;
      while (data.more()) {  // not expected on ZMQ_STREAM; keep frame boundaries in sync
        zmq::message_t extra;
        if (!socket_.recv(extra, zmq::recv_flags::none)) break;
        data = std::move(extra);
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) throw;
      spdlog::warn("metrics endpoint: receive failed: {}", e.what());
      return;
    }
    const std::string id = identity.to_string();
    if (data.size() == 0) {
      // Connect or disconnect notification: either way no request is in progress yet/any more.
      pending_.erase(id);
      continue;
    }
    try {
      on_data(id, data.to_string());
    } catch (const std::exception& e) {  // e.g. bad_alloc while rendering: drop this client only
      spdlog::warn("metrics endpoint: request failed: {}", e.what());
      pending_.erase(id);
    }
  }
}

void MetricsHttpEndpoint::on_data(const std::string& identity, const std::string& data) {
  auto it = pending_.find(identity);
  if (it == pending_.end()) {
    if (pending_.size() >= kMaxPendingConnections) {
      respond(identity, 503, "Service Unavailable", "too many connections\n", false);
      return;
    }
    it = pending_.emplace(identity, std::string()).first;
  }
  std::string& request = it->second;
  request += data;
  const auto header_end = request.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    if (request.size() > kMaxRequestBytes) {
      pending_.erase(it);
      respond(identity, 400, "Bad Request", "request headers too large\n", false);
    }
    return;
  }
  if (header_end + 4 > kMaxRequestBytes) {
    pending_.erase(it);
    respond(identity, 400, "Bad Request", "request headers too large\n", false);
    return;
  }

  // Request line: METHOD SP TARGET SP HTTP/x.y
  const std::string line = request.substr(0, request.find("\r\n"));
  pending_.erase(it);
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  const bool well_formed = sp1 != std::string::npos && sp2 != std::string::npos && sp1 > 0 &&
                           sp2 > sp1 + 1 && line.find(' ', sp2 + 1) == std::string::npos &&
                           line.compare(sp2 + 1, 5, "HTTP/") == 0 &&
                           std::all_of(line.begin(), line.begin() + static_cast<long>(sp1),
                                       [](char c) { return c >= 'A' && c <= 'Z'; });
  if (!well_formed) {
    respond(identity, 400, "Bad Request", "malformed request line\n", false);
    return;
  }
  const std::string method = line.substr(0, sp1);
  std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  if (path != "/metrics") {
    respond(identity, 404, "Not Found", "not found; metrics are at /metrics\n", false);
  } else if (method != "GET" && method != "HEAD") {
    respond(identity, 405, "Method Not Allowed", "only GET and HEAD\n", false);
  } else {
    respond(identity, 200, "OK", registry_.render(), method == "HEAD");
  }
}

void MetricsHttpEndpoint::respond(const std::string& identity, int status,
                                  const std::string& reason, const std::string& body,
                                  bool head_only) {
  const char* content_type =
      status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8";
  std::string response = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
      status, reason, content_type, body.size(), status == 405 ? "Allow: GET, HEAD\r\n" : "");
  if (!head_only) response += body;
  try {
    // Data queued before the empty frame is written out before libzmq closes the connection.
    // A vanished peer is not an error: ZMQ_STREAM drops messages for unknown identities.
    // On ZMQ_STREAM every message is [identity (SNDMORE), data]; an empty data frame closes.
    const bool sent =
        socket_.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait) &&
        socket_.send(zmq::buffer(response), zmq::send_flags::dontwait);
    if (!sent) spdlog::debug("metrics endpoint: client's send queue is full; closing it");
    if (socket_.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      socket_.send(zmq::message_t(), zmq::send_flags::dontwait);
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM) throw;
    spdlog::debug("metrics endpoint: reply to a client failed: {}", e.what());
  }
}

}  // namespace rtda::server
