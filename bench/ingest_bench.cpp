// Ingest throughput (target: >= 3 M observations/s durable with 10k-observation batches).
//
//   ingest_bench [--server PATH] [--seconds S] [--columns] [--skip-raw] [--skip-server]
//                [--skip-stages]
//
// (a) raw ZeroMQ baseline: DEALER -> ROUTER over loopback TCP, the ROUTER (its own context and
//     thread, like a separate process) echoing a 16-byte ack, 16 messages in flight, for 40 kB
//     messages and messages the size of a serialized 1k / 10k-observation ObservationBatch.
// (b) the real rtda-server (spawned: --server PATH, else ../server/rtda-server next to this
//     binary), a fresh temporary data_dir per run, free tcp://127.0.0.1 ports; pre-serialized
//     ObservationBatch messages of 1k and 10k valid observations with K in flight (1, 4, 16),
//     log_sync = always and never. Reports durable observations/s, MB/s and the ack latency.
// (c) where a 10k batch's time goes in the server: the same steps the coordinator's ingest path
//     runs (parse, validation, LogRecord build, log append + commit, apply to a window, ack),
//     timed in-process with the real ObservationLog.
// Prints Markdown tables. Numbers go to bench/RESULTS.md by hand.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <zmq.hpp>

#include <google/protobuf/arena.h>

#include "rtda.pb.h"
#include "server/cycle_scheduler.hpp"
#include "server/obs_log.hpp"

extern char** environ;

namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1,
                    static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5))];
}

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("cannot bind a probe socket");
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

std::string endpoint(int port) {
  return "tcp://127.0.0.1:" + std::to_string(port);
}

// ---- observation batches --------------------------------------------------------------
constexpr double kL = 2e7;              // model.L_m of the default N64 preset (`rtda config`)
constexpr double kCycle = 12 * 3600.0;  // experiment.cycle_hours = 12
constexpr int kWindows = 4;             // observation times spread over windows 0..3 from t0 = 0

// --columns: send the compact ObservationColumns form instead of Observation messages.
bool g_columns = false;

void to_columns(rtda::wire::ObservationBatch& b) {
  auto* c = b.mutable_columns();
  for (const auto& o : b.observations()) {
    c->add_id(o.id());
    c->add_time_seconds(o.time_seconds());
    c->add_level(o.level());
    c->add_x_m(o.x_m());
    c->add_y_m(o.y_m());
    c->add_value(o.value());
    c->add_error_sd(o.error_sd());
    c->add_op(o.op());
  }
  b.clear_observations();
}

// `n` valid observations with ids id0.., times over windows 0..kWindows-1 (t >= 0).
rtda::wire::ObservationBatch make_batch(int n, std::uint64_t seq, std::uint64_t id0,
                                        std::mt19937_64& rng) {
  std::uniform_real_distribution<double> pos(0.0, kL), t(0.0, kWindows * kCycle - kCycle / 2),
      val(-5.0, 5.0);
  rtda::wire::ObservationBatch b;
  b.set_version(rtda::wire::PROTOCOL_VERSION_1);
  b.set_source("bench");
  b.set_seq(seq);
  b.mutable_observations()->Reserve(n);
  for (int i = 0; i < n; ++i) {
    auto* o = b.add_observations();
    o->set_id(id0 + static_cast<std::uint64_t>(i));
    o->set_time_seconds(t(rng));
    o->set_level(static_cast<std::uint32_t>(i & 1));
    double x = pos(rng), y = pos(rng);
    if (x >= kL) x = 0;
    if (y >= kL) y = 0;
    o->set_x_m(x);
    o->set_y_m(y);
    o->set_value(val(rng));
    o->set_error_sd(1.0);
    o->set_op(rtda::wire::OPERATOR_LINEAR_K);
  }
  if (g_columns) to_columns(b);
  return b;
}

// Pre-serialized batches seq 1..count (the timed loop sends bytes only).
std::vector<std::string> make_pool(int n, int count) {
  std::mt19937_64 rng(12345 + static_cast<unsigned>(n));
  std::vector<std::string> pool;
  pool.reserve(static_cast<std::size_t>(count));
  for (int s = 0; s < count; ++s) {
    pool.push_back(
        make_batch(n, static_cast<std::uint64_t>(s + 1),
                   1000000ull + static_cast<std::uint64_t>(s) * static_cast<std::uint64_t>(n), rng)
            .SerializeAsString());
  }
  return pool;
}

// ---- (a) raw ZeroMQ ----------------------------------------------------------------------
struct RawResult {
  std::size_t bytes;
  long messages;
  double seconds;
};

RawResult raw_zmq(std::size_t size, int in_flight, double seconds) {
  const std::string ep = endpoint(free_port());
  std::atomic<bool> ready{false}, done{false};
  std::thread router([&] {
    zmq::context_t ctx{1};
    zmq::socket_t r(ctx, zmq::socket_type::router);
    r.set(zmq::sockopt::linger, 0);
    r.set(zmq::sockopt::rcvtimeo, 100);
    r.bind(ep);
    ready = true;
    const char ack[16] = "ack-ack-ack-ack";
    while (!done) {
      zmq::message_t id, body;
      if (!r.recv(id)) continue;
      if (!r.recv(body)) continue;
      r.send(id, zmq::send_flags::sndmore);
      r.send(zmq::buffer(ack, sizeof ack), zmq::send_flags::none);
    }
  });
  while (!ready)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  zmq::context_t ctx{1};
  zmq::socket_t d(ctx, zmq::socket_type::dealer);
  d.set(zmq::sockopt::linger, 0);
  d.connect(ep);
  const std::string payload(size, 'x');
  // Warm-up round trip (connection setup).
  d.send(zmq::buffer(payload), zmq::send_flags::none);
  zmq::message_t m;
  (void)d.recv(m);
  long sent = 0, acked = 0;
  const auto t0 = Clock::now();
  bool stop_sending = false;
  while (!stop_sending || acked < sent) {
    while (!stop_sending && sent - acked < in_flight) {
      d.send(zmq::buffer(payload), zmq::send_flags::none);
      ++sent;
      if ((sent & 15) == 0 && since(t0) > seconds) stop_sending = true;
    }
    if (d.recv(m)) ++acked;
  }
  const double el = since(t0);
  done = true;
  router.join();
  return {size * static_cast<std::size_t>(acked), acked, el};
}

// ---- (b) the real server -------------------------------------------------------------------
class Server {
 public:
  Server(const std::string& program, const std::string& sync) {
    dir_ = fs::temp_directory_path() /
           ("rtda-ingest-bench-" + std::to_string(::getpid()) + "-" + std::to_string(++runs_));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ingest = endpoint(free_port());
    control = endpoint(free_port());
    const std::vector<std::string> argv = {program,
                                           "--set",
                                           "server.ingest=" + ingest,
                                           "--set",
                                           "server.publish=" + endpoint(free_port()),
                                           "--set",
                                           "server.control=" + control,
                                           "--set",
                                           "server.workers=" + endpoint(free_port()),
                                           "--set",
                                           "server.data_dir=" + (dir_ / "data").string(),
                                           "--set",
                                           "server.log_sync=" + sync,
                                           "--set",
                                           "limits.max_batch_observations=20000",
                                           "--set",
                                           "window.max_windows_ahead=100000",
                                           "--set",
                                           "window.deadline_seconds=0",
                                           "--set",
                                           "window.grace_seconds=1e9",
                                           "--log-level",
                                           "warn"};
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const fs::path log = dir_ / "server.log";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    const int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + program + ": " + std::strerror(rc));
    wait_ready();
  }
  ~Server() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string ingest, control;

 private:
  void wait_ready() {
    const auto t0 = Clock::now();
    zmq::context_t ctx{1};
    while (since(t0) < 30) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        std::string text;
        if (std::FILE* f = std::fopen((dir_ / "server.log").c_str(), "r")) {
          char buf[4096];
          const std::size_t n = std::fread(buf, 1, sizeof buf, f);
          text.assign(buf, n);
          std::fclose(f);
        }
        throw std::runtime_error("rtda-server exited at start:\n" + text);
      }
      zmq::socket_t s(ctx, zmq::socket_type::dealer);
      s.set(zmq::sockopt::linger, 0);
      s.set(zmq::sockopt::rcvtimeo, 300);
      s.connect(control);
      rtda::wire::ControlRequest q;
      q.set_version(rtda::wire::PROTOCOL_VERSION_1);
      q.set_command(rtda::wire::COMMAND_STATUS);
      s.send(zmq::buffer(q.SerializeAsString()), zmq::send_flags::none);
      zmq::message_t m;
      if (s.recv(m)) return;
    }
    throw std::runtime_error("rtda-server did not answer STATUS within 30 s");
  }
  static inline int runs_ = 0;
  fs::path dir_;
  pid_t pid_ = -1;
};

struct ServerResult {
  long batches = 0, accepted_acks = 0, other_acks = 0;
  std::uint64_t observations = 0, rejected = 0;
  std::size_t bytes = 0;
  double seconds = 0;
  std::vector<double> latency;
  std::string first_problem;
};

ServerResult run_server(const std::string& program, const std::string& sync,
                        const std::vector<std::string>& pool, int in_flight, double seconds) {
  Server server(program, sync);
  zmq::context_t ctx{1};
  zmq::socket_t d(ctx, zmq::socket_type::dealer);
  d.set(zmq::sockopt::linger, 0);
  d.set(zmq::sockopt::rcvtimeo, 30000);
  d.connect(server.ingest);
  ServerResult r;
  {  // warm-up: one tiny batch, seq 0, acked before the clock starts
    std::mt19937_64 rng(1);
    const std::string w = make_batch(1, 0, 1, rng).SerializeAsString();
    d.send(zmq::buffer(w), zmq::send_flags::none);
    zmq::message_t m;
    if (!d.recv(m)) throw std::runtime_error("no ack for the warm-up batch");
  }
  std::unordered_map<std::uint64_t, Clock::time_point> sent_at;
  std::size_t next = 0;
  long outstanding = 0;
  const auto t0 = Clock::now();
  bool stop_sending = false;
  while ((!stop_sending && next < pool.size()) || outstanding > 0) {
    while (!stop_sending && next < pool.size() && outstanding < in_flight) {
      sent_at[next + 1] = Clock::now();
      d.send(zmq::buffer(pool[next]), zmq::send_flags::none);
      r.bytes += pool[next].size();
      ++next;
      ++outstanding;
      if (since(t0) > seconds) stop_sending = true;
    }
    zmq::message_t m;
    if (!d.recv(m)) throw std::runtime_error("no ack within 30 s");
    const auto now = Clock::now();
    rtda::wire::IngestAck ack;
    if (!ack.ParseFromArray(m.data(), static_cast<int>(m.size())))
      throw std::runtime_error("unreadable ack");
    auto it = sent_at.find(ack.seq());
    if (it == sent_at.end()) continue;
    r.latency.push_back(std::chrono::duration<double>(now - it->second).count());
    sent_at.erase(it);
    --outstanding;
    ++r.batches;
    if (ack.status() == rtda::wire::ACK_ACCEPTED) {
      ++r.accepted_acks;
      r.observations += ack.accepted();
      r.rejected += ack.rejected();
      if (ack.rejected() > 0 && r.first_problem.empty() && ack.rejections_size() > 0)
        r.first_problem = ack.rejections(0).reason();
    } else {
      ++r.other_acks;
      if (r.first_problem.empty())
        r.first_problem = "status " + std::to_string(ack.status()) + ": " + ack.error();
    }
  }
  r.seconds = since(t0);
  return r;
}

// ---- (c) the ingest path's steps, in-process -----------------------------------------------
struct Stages {
  double parse = 0, validate = 0, record = 0, append = 0, commit = 0, apply = 0, ack = 0;
  double commit_max = 0, apply_max = 0;  // worst single batch
};

Stages stage_profile(const std::vector<std::string>& pool, rtda::server::SyncPolicy sync,
                     int reps) {
  const fs::path dir =
      fs::temp_directory_path() / ("rtda-ingest-stages-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  Stages s;
  {
    rtda::server::LogOptions lo;
    lo.dir = dir;
    lo.sync = sync;
    rtda::server::ObservationLog log(lo);
    rtda::server::WindowSettings ws;
    ws.t0_seconds = 0;
    ws.cycle_seconds = kCycle;
    ws.max_windows_ahead = 1 << 20;
    rtda::server::CycleScheduler windows(ws);  // the server's own window store
    std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::uint32_t>> seqs;
    for (int k = 0; k < reps; ++k) {
      const std::string& body = pool[static_cast<std::size_t>(k) % pool.size()];
      auto t = Clock::now();
      const auto lap = [&](double& acc) {
        const auto now = Clock::now();
        acc += std::chrono::duration<double>(now - t).count();
        t = now;
      };
      google::protobuf::ArenaOptions arena_options;  // as the server parses
      arena_options.start_block_size = 64 * 1024;
      arena_options.max_block_size = 8 << 20;
      google::protobuf::Arena arena(arena_options);
      auto& b = *google::protobuf::Arena::CreateMessage<rtda::wire::ObservationBatch>(&arena);
      b.ParseFromArray(body.data(), static_cast<int>(body.size()));
      lap(s.parse);
      // The coordinator's per-observation checks and window placement (no rejections here).
      std::uint32_t rejected = 0;
      rtda::wire::LoggedBatch lb;
      for (int i = 0; i < b.observations_size(); ++i) {
        const auto& o = b.observations(i);
        const bool ok = std::isfinite(o.time_seconds()) && o.level() <= 1 && o.x_m() >= 0 &&
                        o.x_m() < kL && o.y_m() >= 0 && o.y_m() < kL && std::isfinite(o.value()) &&
                        std::isfinite(o.error_sd()) && o.error_sd() > 0 &&
                        rtda::wire::ObservationOperator_IsValid(o.op()) &&
                        std::floor((o.time_seconds() + kCycle / 2) / kCycle) >= 0;
        if (!ok) {
          ++rejected;
          lb.add_rejected_index(static_cast<std::uint32_t>(i));
        }
      }
      lap(s.validate);
      lb.set_rejected(rejected);
      lb.set_received_unix_seconds(1.0);
      lb.set_batch(body.data(), body.size());
      rtda::wire::LogRecord rec;
      *rec.mutable_batch() = std::move(lb);
      const std::string bytes = rec.SerializeAsString();
      lap(s.record);
      log.append(std::as_bytes(std::span(bytes.data(), bytes.size())));
      lap(s.append);
      log.commit();  // one commit per batch: the K = 1 case (the server commits per poll round)
      const double c0 = s.commit;
      lap(s.commit);
      s.commit_max = std::max(s.commit_max, s.commit - c0);
      std::unordered_set<std::uint32_t> skip(rec.batch().rejected_index().begin(),
                                             rec.batch().rejected_index().end());
      for (int i = 0; i < b.observations_size(); ++i) {
        if (skip.count(static_cast<std::uint32_t>(i))) continue;
        const auto& o = b.observations(i);
        const auto place = windows.place(o.time_seconds());
        windows.add(place.cycle, o, 1.0, false);
      }
      seqs[b.seq() + static_cast<std::uint64_t>(k) * 1000000ull] = {
          static_cast<std::uint32_t>(b.observations_size()), rejected};
      const double a0 = s.apply;
      lap(s.apply);
      s.apply_max = std::max(s.apply_max, s.apply - a0);
      rtda::wire::IngestAck ack;
      ack.set_version(rtda::wire::PROTOCOL_VERSION_1);
      ack.set_source(b.source());
      ack.set_seq(b.seq());
      ack.set_status(rtda::wire::ACK_ACCEPTED);
      ack.set_accepted(static_cast<std::uint32_t>(b.observations_size()));
      const std::string a = ack.SerializeAsString();
      lap(s.ack);
    }
  }
  fs::remove_all(dir);
  const double n = reps;
  for (double* v : {&s.parse, &s.validate, &s.record, &s.append, &s.commit, &s.apply, &s.ack})
    *v /= n;
  return s;
}

std::string server_program(const char* argv0, const std::string& given) {
  if (!given.empty()) return given;
  const fs::path self = fs::canonical("/proc/self/exe").parent_path();
  for (const fs::path& p : {self.parent_path() / "server" / "rtda-server", self / "rtda-server"})
    if (fs::exists(p)) return p.string();
  throw std::runtime_error(std::string(argv0) + ": cannot find rtda-server; pass --server PATH");
}

}  // namespace

int main(int argc, char** argv) {
  std::string program;
  double seconds = 3.0;
  bool raw = true, srv = true, stages = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--server" && i + 1 < argc) {
      program = argv[++i];
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::stod(argv[++i]);
    } else if (a == "--columns") {
      g_columns = true;
    } else if (a == "--skip-raw") {
      raw = false;
    } else if (a == "--skip-server") {
      srv = false;
    } else if (a == "--skip-stages") {
      stages = false;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--server PATH] [--seconds S] [--skip-raw] [--skip-server] "
                   "[--skip-stages]\n",
                   argv[0]);
      return 2;
    }
  }
  try {
    std::signal(SIGPIPE, SIG_IGN);
    spdlog::set_level(spdlog::level::warn);
    // Enough batches for about `seconds` at ~2 M observations/s; each run stops at whichever is
    // first.
    const int per_run_obs = static_cast<int>(std::clamp(seconds * 2.0e6, 2.0e5, 1.0e7));
    std::printf("preparing batches...\n");
    std::fflush(stdout);
    const auto pool1k = make_pool(1000, per_run_obs / 1000);
    const auto pool10k = make_pool(10000, std::max(8, per_run_obs / 10000));
    const std::size_t size1k = pool1k.front().size(), size10k = pool10k.front().size();
    std::printf(
        "serialized ObservationBatch: 1k obs = %zu bytes, 10k obs = %zu bytes (%.1f B/obs)\n\n",
        size1k, size10k, static_cast<double>(size10k) / 1e4);

    if (raw) {
      std::printf(
          "### (a) raw ZeroMQ DEALER -> ROUTER, loopback TCP, 16 in flight, 16-byte ack\n\n");
      std::printf("| message | bytes | messages/s | MB/s |\n|---|---:|---:|---:|\n");
      for (auto [name, size] : std::vector<std::pair<std::string, std::size_t>>{
               {"40 kB", 40000}, {"1k-obs batch", size1k}, {"10k-obs batch", size10k}}) {
        const RawResult r = raw_zmq(size, 16, std::min(seconds, 2.0));
        std::printf("| %s | %zu | %.0f | %.0f |\n", name.c_str(), size,
                    static_cast<double>(r.messages) / r.seconds,
                    static_cast<double>(r.bytes) / r.seconds / 1e6);
        std::fflush(stdout);
      }
      std::printf("\n");
    }

    if (srv) {
      const std::string prog = server_program(argv[0], program);
      std::printf("### (b) rtda-server ingest (%s), %.1f s or the pool per run\n\n", prog.c_str(),
                  seconds);
      std::printf(
          "| log_sync | batch | in flight | batches | durable obs/s | MB/s | ack p50 ms | ack p99 "
          "ms "
          "| ACK_ACCEPTED | other | rejected obs |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
      for (const std::string sync : {"always", "never"}) {
        for (const auto* pool : {&pool10k, &pool1k}) {
          for (int k : {1, 4, 16}) {
            const ServerResult r = run_server(prog, sync, *pool, k, seconds);
            std::printf("| %s | %s | %d | %ld | %.3g M | %.0f | %.2f | %.2f | %ld | %ld | %llu |\n",
                        sync.c_str(), pool == &pool10k ? "10k" : "1k", k, r.batches,
                        static_cast<double>(r.observations) / r.seconds / 1e6,
                        static_cast<double>(r.bytes) / r.seconds / 1e6,
                        quantile(r.latency, 0.5) * 1e3, quantile(r.latency, 0.99) * 1e3,
                        r.accepted_acks, r.other_acks, static_cast<unsigned long long>(r.rejected));
            if (!r.first_problem.empty())
              std::printf("  (first problem: %s)\n", r.first_problem.c_str());
            std::fflush(stdout);
          }
        }
      }
      std::printf("\n");
    }

    if (stages && g_columns) {
      std::printf(
          "\n(c) skipped: the in-process replica of the ingest steps models the message "
          "form only\n");
    } else if (stages) {
      std::printf(
          "### (c) one 10k-observation batch through the ingest path's steps, in-process "
          "(mean us per batch)\n\n");
      std::printf(
          "| log_sync | parse | validate | LogRecord build | log append | log commit | apply to "
          "window | ack | total | obs/s ceiling | worst commit | worst apply |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
      for (auto [name, sync] : {std::pair{"always", rtda::server::SyncPolicy::kAlways},
                                std::pair{"never", rtda::server::SyncPolicy::kNever}}) {
        const Stages s = stage_profile(pool10k, sync, 300);
        const double total =
            s.parse + s.validate + s.record + s.append + s.commit + s.apply + s.ack;
        std::printf(
            "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f | %.0f | %.2f M | %.0f | %.0f "
            "|\n",
            name, s.parse * 1e6, s.validate * 1e6, s.record * 1e6, s.append * 1e6, s.commit * 1e6,
            s.apply * 1e6, s.ack * 1e6, total * 1e6, 1e4 / total / 1e6, s.commit_max * 1e6,
            s.apply_max * 1e6);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ingest_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
