#include "service_client.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <thread>

#include "io/fields.hpp"
#include "io/observations_file.hpp"
#include "net/curve.hpp"

namespace rtda::cli {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

void ClientSecurity::apply(zmq::socket_t& s) const {
  net::setup_curve_client(s, server_key, client_key);
}

FeedSummary feed_observations(const FeedOptions& o, const std::atomic<bool>* stop,
                              const std::function<void(int)>& on_window) {
  const io::ObservationFile file = io::read_observations(o.obs_file, &o.run);
  const obs::ObservationSet& set = file.set;
  const std::size_t n2 = static_cast<std::size_t>(file.params.N) * file.params.N;
  std::optional<io::NatureRun> nature;
  if (!o.truth_file.empty()) nature = io::read_nature(o.truth_file);
  const std::string source = o.source.empty()
                                 ? "rtda-feed:" + std::filesystem::path(o.obs_file).stem().string()
                                 : o.source;

  zmq::context_t ctx{1};
  zmq::socket_t sock(ctx, zmq::socket_type::dealer);
  o.security.apply(sock);
  sock.set(zmq::sockopt::linger, 0);
  sock.connect(o.server);

  // Where the source stands: batches up to its newest durable seq are not sent again (the
  // batches and their numbers come out of the file the same way every run).
  std::optional<std::uint64_t> durable;
  if (o.resume) {
    wire::ObservationBatch q;
    q.set_version(wire::PROTOCOL_VERSION_1);
    q.set_source(source);
    q.set_position_query(true);
    const std::string bytes = q.SerializeAsString();
    bool answered = false;
    for (int attempt = 0; attempt < std::max(1, o.retries) && !answered; ++attempt) {
      if (stop && stop->load()) return FeedSummary{};
      sock.send(zmq::buffer(bytes), zmq::send_flags::none);
      const auto sent = Clock::now();
      while (!answered && seconds_since(sent) < o.ack_timeout_seconds) {
        zmq::pollitem_t item{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, std::chrono::milliseconds(50));
        zmq::message_t m;
        while (sock.recv(m, zmq::recv_flags::dontwait)) {
          wire::IngestAck ack;
          if (!ack.ParseFromArray(m.data(), static_cast<int>(m.size()))) continue;
          if (ack.status() == wire::ACK_POSITION) {
            if (ack.has_durable_seq()) durable = ack.durable_seq();
            answered = true;
          } else if (ack.status() == wire::ACK_REJECTED && ack.retry_after_seconds() == 0) {
            throw std::runtime_error("the server refused the position query of source \"" + source +
                                     "\": " + ack.error());
          }
        }
      }
    }
    if (!answered) {
      throw std::runtime_error("no answer to the position query from " + o.server + " after " +
                               std::to_string(o.retries) + " tries");
    }
  }
  FeedSummary sum;
  if (durable) sum.durable_seq_at_start = static_cast<std::int64_t>(*durable);

  // The windows: the file's cycle times (rtda observe's files), else the service's windows
  // that hold any of its observations; each window takes the observations in (t - cycle/2,
  // t + cycle/2] around its analysis time t, in file order.
  std::vector<double> window_times = set.cycle_time_seconds;
  if (window_times.empty()) {
    if (!(o.cycle_seconds > 0)) throw std::runtime_error("feed: the window length must be > 0");
    std::vector<long long> ks;
    for (double t : set.time_seconds)
      ks.push_back(std::llround(std::ceil((t - o.window_t0_seconds) / o.cycle_seconds - 0.5)));
    std::sort(ks.begin(), ks.end());
    ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
    for (long long k : ks)
      window_times.push_back(o.window_t0_seconds + static_cast<double>(k) * o.cycle_seconds);
  }
  const double half = set.cycle_time_seconds.size() > 1
                          ? 0.5 * (set.cycle_time_seconds[1] - set.cycle_time_seconds[0])
                          : 0.5 * o.cycle_seconds;
  std::map<double, std::vector<std::size_t>> by_time;
  for (std::size_t i = 0; i < set.size(); ++i) {
    const double t = set.time_seconds[i];
    const auto w = std::lower_bound(window_times.begin(), window_times.end(), t - half);
    for (auto it = w; it != window_times.end() && *it - half < t; ++it) {
      if (t > *it - half && t <= *it + half) {
        by_time[*it].push_back(i);
        break;
      }
    }
  }
  std::uint64_t seq = o.first_seq;
  const auto started = Clock::now();
  std::uint64_t sent_obs = 0;
  const std::size_t cycles =
      o.cycles > 0 ? std::min<std::size_t>(static_cast<std::size_t>(o.cycles), window_times.size())
                   : window_times.size();
  for (std::size_t c = 0; c < cycles; ++c) {
    if (stop && stop->load()) break;
    const double t = window_times[c];
    if (o.realtime) {
      const double due = (t - window_times[0]) / o.speedup;
      const double wait = due - seconds_since(started);
      if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    }
    const auto it = by_time.find(t);
    const std::vector<std::size_t> empty;
    const auto& rows = it == by_time.end() ? empty : it->second;
    // Build this window's batches.
    std::vector<wire::ObservationBatch> batches;
    for (std::size_t at = 0; at < rows.size() || batches.empty();
         at += static_cast<std::size_t>(o.batch)) {
      wire::ObservationBatch b;
      b.set_version(wire::PROTOCOL_VERSION_1);
      b.set_source(source);
      const std::size_t end = std::min(rows.size(), at + static_cast<std::size_t>(o.batch));
      // The compact column form (ObservationColumns): packed arrays, cheap to encode and
      // for the server to parse.
      auto* cols = b.mutable_columns();
      for (std::size_t r = at; r < end; ++r) {
        const std::size_t i = rows[r];
        cols->add_id(set.id[i]);
        cols->add_time_seconds(set.time_seconds[i]);
        cols->add_level(static_cast<std::uint32_t>(set.level[i]));
        cols->add_x_m(set.x_m[i]);
        cols->add_y_m(set.y_m[i]);
        cols->add_value(set.value[i]);
        cols->add_error_sd(set.error_sd[i]);
        cols->add_op(static_cast<wire::ObservationOperator>(set.op[i]));
      }
      batches.push_back(std::move(b));
      if (end >= rows.size()) break;
    }
    auto& last = batches.back();
    last.set_end_of_window_seconds(t);
    if (nature) {
      std::size_t idx = nature->size();
      for (std::size_t k = 0; k < nature->size(); ++k)
        if (nature->times_seconds[k] == t) idx = k;
      if (idx == nature->size()) {
        throw std::runtime_error("--truth " + o.truth_file +
                                 ": no state at t = " + std::to_string(t) + " s");
      }
      auto* truth = last.mutable_truth();
      truth->set_time_seconds(t);
      truth->set_grid_n(static_cast<std::uint32_t>(file.params.N));
      const auto q = nature->state(idx);
      truth->mutable_q()->Assign(q.begin(), q.end());
      if (!set.shock.empty() && c < set.cycles()) {
        for (std::size_t e = 0; e < 2 * n2; ++e)
          truth->set_q(static_cast<int>(e),
                       truth->q(static_cast<int>(e)) + set.shock[c * 2 * n2 + e]);
      }
    }
    for (auto& b : batches)
      b.set_seq(seq++);
    if (durable) {
      const auto done = std::remove_if(batches.begin(), batches.end(),
                                       [&](const auto& b) { return b.seq() <= *durable; });
      sum.skipped += static_cast<std::uint64_t>(batches.end() - done);
      batches.erase(done, batches.end());
    }

    // Send with up to in_flight outstanding; resend what is not acked in time.
    struct Pending {
      std::string bytes;
      Clock::time_point sent;
      int tries = 0;
    };
    std::map<std::uint64_t, Pending> pending;
    std::size_t next = 0;
    while (next < batches.size() || !pending.empty()) {
      if (stop && stop->load()) return sum;
      while (next < batches.size() && static_cast<int>(pending.size()) < o.in_flight) {
        if (o.rate > 0) {
          const double due = static_cast<double>(sent_obs) / o.rate;
          const double wait = due - seconds_since(started);
          if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
        }
        Pending p{batches[next].SerializeAsString(), Clock::now(), 1};
        sock.send(zmq::buffer(p.bytes), zmq::send_flags::none);
        sent_obs += static_cast<std::uint64_t>(batches[next].columns().id_size());
        pending.emplace(batches[next].seq(), std::move(p));
        ++next;
      }
      zmq::pollitem_t item{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      zmq::message_t m;
      while (sock.recv(m, zmq::recv_flags::dontwait)) {
        wire::IngestAck ack;
        if (!ack.ParseFromArray(m.data(), static_cast<int>(m.size()))) continue;
        auto pit = pending.find(ack.seq());
        if (ack.source() != source || pit == pending.end()) continue;
        ++sum.batches;
        switch (ack.status()) {
          case wire::ACK_ACCEPTED:
            sum.accepted += ack.accepted();
            sum.rejected += ack.rejected();
            sum.late += ack.late();
            if (ack.rejected() > 0 && sum.first_error.empty() && ack.rejections_size() > 0)
              sum.first_error = ack.rejections(0).reason();
            break;
          case wire::ACK_DUPLICATE:
            ++sum.duplicates;
            break;
          case wire::ACK_CONFLICT:
            throw std::runtime_error("batch seq " + std::to_string(ack.seq()) + ": " + ack.error() +
                                     " (another run of this source sent other data; use "
                                     "--source NAME for a new one)");
          default:
            // Rate limited, or the server cannot store now (ACK_UNAVAILABLE): send again later.
            if (ack.retry_after_seconds() > 0) {
              std::this_thread::sleep_for(std::chrono::duration<double>(ack.retry_after_seconds()));
              pit->second.sent = Clock::now() - std::chrono::hours(1);
              continue;
            }
            throw std::runtime_error("the server refused batch seq " + std::to_string(ack.seq()) +
                                     ": " + ack.error());
        }
        pending.erase(pit);
      }
      for (auto& [s, p] : pending) {
        if (seconds_since(p.sent) < o.ack_timeout_seconds) continue;
        if (p.tries >= o.retries) {
          throw std::runtime_error("no ack for batch seq " + std::to_string(s) + " from " +
                                   o.server + " after " + std::to_string(p.tries) + " tries");
        }
        sock.send(zmq::buffer(p.bytes), zmq::send_flags::none);
        p.sent = Clock::now();
        ++p.tries;
        ++sum.retries;
      }
    }
    if (on_window) on_window(static_cast<int>(c));
  }
  return sum;
}

wire::ControlReply control_request(const std::string& server, const wire::ControlRequest& q,
                                   const ClientSecurity& sec, double timeout_seconds) {
  zmq::context_t ctx{1};
  zmq::socket_t sock(ctx, zmq::socket_type::dealer);
  sec.apply(sock);
  sock.set(zmq::sockopt::linger, 0);
  sock.set(zmq::sockopt::rcvtimeo, static_cast<int>(timeout_seconds * 1000));
  sock.connect(server);
  sock.send(zmq::buffer(q.SerializeAsString()), zmq::send_flags::none);
  zmq::message_t m;
  if (!sock.recv(m)) {
    throw std::runtime_error("no reply from " + server + " within " +
                             std::to_string(timeout_seconds) + " s (is rtda-server running?)");
  }
  wire::ControlReply r;
  if (!r.ParseFromArray(m.data(), static_cast<int>(m.size()))) {
    throw std::runtime_error("unreadable reply from " + server);
  }
  return r;
}

std::string format_analysis_line(const wire::Analysis& a) {
  const auto diag = [&](const char* name) {
    auto it = a.diagnostics().find(name);
    return it == a.diagnostics().end() ? std::nan("") : it->second;
  };
  char line[256];
  const double rmse = diag("rmse_analysis");
  char rmse_text[32] = "   n/a";
  if (!std::isnan(rmse)) std::snprintf(rmse_text, sizeof rmse_text, "%6.3f", rmse);
  std::snprintf(line, sizeof line,
                "cycle %4llu  t=%8.1f h  %-5s  obs %6llu  rmse %s K  spread %6.3f K  "
                "latency %7.1f ms (overhead %5.2f ms)",
                static_cast<unsigned long long>(a.cycle()), a.valid_time_seconds() / 3600.0,
                a.filter().c_str(),
                static_cast<unsigned long long>(a.lineage().observations_used()), rmse_text,
                diag("spread_analysis"), a.latency().total_seconds() * 1e3,
                a.latency().overhead_seconds() * 1e3);
  return line;
}

}  // namespace rtda::cli
