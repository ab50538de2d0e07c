#include "server/publisher.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace rtda::server {

void Publisher::handle_subscriptions() {
  static const std::array<std::string_view, 3> topics = {"rtda.summary", "rtda.analysis",
                                                         "rtda.ensemble"};
  for (int i = 0; i < 64; ++i) {
    zmq::message_t m;
    if (!socket_.recv(m, zmq::recv_flags::dontwait)) return;
    if (m.size() < 1) continue;
    const auto* d = static_cast<const char*>(m.data());
    const std::string topic(d + 1, m.size() - 1);
    const bool known = std::any_of(topics.begin(), topics.end(),
                                   [&](std::string_view t) { return t.rfind(topic, 0) == 0; });
    if (!known) {
      counters_.add("subscriptions_refused");
      continue;
    }
    if (d[0] == 1) {
      socket_.set(zmq::sockopt::subscribe, topic);
    } else if (d[0] == 0) {
      socket_.set(zmq::sockopt::unsubscribe, topic);
    }
  }
}

// A restart counts a cycle published as soon as it is durable and never sends it again (a
// crash between the two steps leaves the cycle in the archive and behind
// COMMAND_LATEST_ANALYSIS, not on the PUB socket).
void Publisher::publish(wire::Analysis& a, double received, double last_in) {
  auto* lat = a.mutable_latency();
  const double published = wall_now();
  lat->set_publish_seconds(published - received);
  const double total = std::max(0.0, published - last_in);
  lat->set_total_seconds(total);
  lat->set_overhead_seconds(
      std::max(0.0, total - lat->forecast_wait_seconds() - lat->analysis_seconds()));
  store_.commit_published(a);
  const wire::Analysis& fields = *store_.latest();  // `a` without the members
  latencies_.push_back(total);
  if (latencies_.size() > 1000) latencies_.pop_front();
  metrics_.observe_cycle(*lat, published);
  // Topics from the least to the most data; each frame pair is one message.
  wire::Analysis summary = a;
  summary.clear_mean();
  summary.clear_spread();
  summary.clear_ensemble();
  const auto send = [&](const char* topic, const wire::Analysis& m) {
    const std::string payload = m.SerializeAsString();
    socket_.send(zmq::buffer(std::string_view(topic)),
                 zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    socket_.send(zmq::buffer(payload), zmq::send_flags::dontwait);
  };
  send("rtda.summary", summary);
  send("rtda.analysis", fields);
  if (a.ensemble_size() > 0) send("rtda.ensemble", a);
  std::string rmse;
  if (auto it = a.diagnostics().find("rmse_analysis"); it != a.diagnostics().end())
    rmse = fmt::format(" rmse {:.3f} K", it->second);
  spdlog::info(
      "cycle {} published: {} observations, filter {}{}{}, latency {:.1f} ms (forecast "
      "wait {:.1f}, analysis {:.1f}, overhead {:.2f} of which dispatch {:.2f}, result "
      "{:.2f}, publish {:.2f})",
      a.cycle(), a.lineage().observations_used(), a.filter(), a.degraded() ? " (degraded)" : "",
      rmse, total * 1e3, lat->forecast_wait_seconds() * 1e3, lat->analysis_seconds() * 1e3,
      lat->overhead_seconds() * 1e3, lat->dispatch_seconds() * 1e3, lat->result_seconds() * 1e3,
      lat->publish_seconds() * 1e3);
}

std::optional<std::pair<double, double>> Publisher::latency_quantiles() const {
  if (latencies_.empty()) return std::nullopt;
  std::vector<double> v(latencies_.begin(), latencies_.end());
  std::sort(v.begin(), v.end());
  const auto q = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5))];
  };
  return std::make_pair(q(0.5), q(0.99));
}

}  // namespace rtda::server
