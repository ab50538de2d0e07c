// The service's client verbs: feed, watch, status, control (pause, resume, checkpoint,
// set-filter, shutdown) and keys.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include <google/protobuf/util/json_util.h>

#include "commands.hpp"
#include "filters/ensemble_filter.hpp"
#include "net/keys.hpp"
#include "service_client.hpp"

namespace rtda::cli {
namespace {

void add_security(CLI::App& cmd, ClientSecurity& s) {
  cmd.add_option("--server-key", s.server_key,
                 "the server's public key (.key file or Z85) when it requires CURVE");
  cmd.add_option("--key", s.client_key, "this client's .key_secret (default: a fresh pair)");
}

void print_status(const wire::Status& s) {
  std::printf("rtda-server %s  state %s  up %.0f s  filter %s  config %s\n",
              s.server_version().c_str(), s.state().c_str(), s.uptime_seconds(), s.filter().c_str(),
              s.config_hash().c_str());
  std::printf(
      "cycles     last published %lld (t = %.1f h), next %lld, open windows %u, closed "
      "and waiting %u, newest checkpoint %lld\n",
      static_cast<long long>(s.last_cycle()), s.last_valid_time_seconds() / 3600.0,
      static_cast<long long>(s.next_cycle()), s.open_windows(), s.closed_windows_waiting(),
      static_cast<long long>(s.newest_checkpoint_cycle()));
  const auto& w = s.workers();
  if (w.connected()) {
    std::printf(
        "workers    %u ranks on %s, stage %s, cycle in flight %lld, heartbeat %.1f s ago, "
        "reconnects %u\n",
        w.ranks(), w.host().c_str(), w.stage().c_str(), static_cast<long long>(w.cycle_in_flight()),
        w.last_heartbeat_age_seconds(), w.reconnects());
    if (!w.device().empty()) {
      std::printf("device     %s on %s (%s)\n", w.device().c_str(), w.device_name().c_str(),
                  w.toolchain().c_str());
    }
  } else {
    std::printf("workers    none connected (reconnects %u)\n", w.reconnects());
  }
  std::printf("latency    p50 %.1f ms  p99 %.1f ms\n", s.latency_p50_seconds() * 1e3,
              s.latency_p99_seconds() * 1e3);
  std::printf("log        %llu bytes in %u segments, data %s\n",
              static_cast<unsigned long long>(s.log_bytes()), s.log_segments(),
              s.data_dir().c_str());
  std::printf("ingest     %s, backlog %u closed windows\n",
              s.ingest_state().empty() ? "ok" : s.ingest_state().c_str(), s.backlog_cycles());
  if (!s.last_error().empty()) std::printf("last error %s\n", s.last_error().c_str());
  for (const auto& src : s.sources()) {
    std::printf("source     %-24s durable seq %llu, %llu observations, %llu refused by qc\n",
                src.source().c_str(), static_cast<unsigned long long>(src.durable_seq()),
                static_cast<unsigned long long>(src.observations_accepted()),
                static_cast<unsigned long long>(src.observations_refused_qc()));
  }
  for (const auto& c : s.counters())
    std::printf("  %-36s %llu\n", c.name().c_str(), static_cast<unsigned long long>(c.value()));
}

// Protobuf's JSON mapping of Status (field names as in proto/rtda.proto, 64-bit integers as
// strings, defaults left out), without the printer's final newline: byte for byte what
// `python3 -m rtda_client status --json` prints (client/python/rtda_client/control.py).
std::string status_json(const wire::Status& s) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = true;
  if (!google::protobuf::util::MessageToJsonString(s, &out, options).ok())
    throw std::runtime_error("status: cannot print as JSON");
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

}  // namespace

Runner add_feed_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "feed",
      "Stream an observation file to rtda-server, window by window, until each batch is "
      "acknowledged");
  auto o = std::make_shared<FeedOptions>();
  auto opts = std::make_shared<ConfigOptions>();
  cmd->add_option("--obs", o->obs_file,
                  "observation file: rtda observe's, or any with the observation columns "
                  "(docs/file-formats.md)")
      ->required();
  cmd->add_option("--server", o->server, "ingest endpoint (server.ingest)")->required();
  cmd->add_option("--source", o->source, "feeder name; (source, seq) makes retries idempotent");
  cmd->add_option("--first-seq", o->first_seq, "sequence number of the first batch");
  cmd->add_option("--batch", o->batch, "observations per batch")->capture_default_str();
  cmd->add_option("--cycles", o->cycles, "windows to send (0 = all)");
  cmd->add_option("--truth", o->truth_file,
                  "nature run: send each window's truth so the service reports RMSE");
  cmd->add_option("--rate", o->rate, "observations per second (0 = as fast as acks allow)");
  cmd->add_flag("--realtime", o->realtime, "pace windows by their model time (see --speedup)");
  cmd->add_option("--speedup", o->speedup, "model seconds per wall second with --realtime")
      ->capture_default_str();
  cmd->add_flag("!--no-resume", o->resume,
                "send from the first batch even if the server already holds some (default: "
                "ask where the source stands and send only what follows)");
  add_security(*cmd, o->security);
  opts->add_to(*cmd);
  return [o, opts]() {
    // The server's windows and model, for a file that does not carry them (--config/--set).
    const config::Config cfg = opts->load();
    o->window_t0_seconds = cfg.window.t0_seconds;
    o->cycle_seconds = cfg.experiment.cycle_hours * 3600.0;
    o->run = cfg.model.run_defaults();
    const auto s = feed_observations(
        *o, nullptr, [](int c) { std::fprintf(stderr, "\rwindow %d acknowledged", c); });
    std::fprintf(stderr, "\n");
    if (s.skipped > 0) {
      std::printf("resumed: the server held source batches through seq %lld; %llu not sent again\n",
                  static_cast<long long>(s.durable_seq_at_start),
                  static_cast<unsigned long long>(s.skipped));
    }
    std::printf(
        "fed %llu batches: %llu new observations accepted, %llu rejected, %llu late, %llu "
        "duplicate batches (already stored), %llu retries%s%s\n",
        static_cast<unsigned long long>(s.batches), static_cast<unsigned long long>(s.accepted),
        static_cast<unsigned long long>(s.rejected), static_cast<unsigned long long>(s.late),
        static_cast<unsigned long long>(s.duplicates), static_cast<unsigned long long>(s.retries),
        s.first_error.empty() ? "" : "; first rejection: ", s.first_error.c_str());
    return 0;
  };
}

Runner add_watch_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("watch", "Print one line per published analysis");
  auto server = std::make_shared<std::string>();
  auto count = std::make_shared<int>(0);
  auto sec = std::make_shared<ClientSecurity>();
  cmd->add_option("--server", *server, "publish endpoint (server.publish)")->required();
  cmd->add_option("--count", *count, "exit after this many analyses (0 = never)");
  add_security(*cmd, *sec);
  return [server, count, sec]() {
    zmq::context_t ctx{1};
    zmq::socket_t sub(ctx, zmq::socket_type::sub);
    sec->apply(sub);
    sub.set(zmq::sockopt::subscribe, "rtda.summary");
    sub.connect(*server);
    for (int n = 0; *count == 0 || n < *count; ++n) {
      zmq::message_t topic, body;
      if (!sub.recv(topic) || !sub.recv(body)) return 1;
      wire::Analysis a;
      if (!a.ParseFromArray(body.data(), static_cast<int>(body.size()))) continue;
      std::printf("%s\n", format_analysis_line(a).c_str());
      std::fflush(stdout);
    }
    return 0;
  };
}

Runner add_status_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("status", "Ask rtda-server for its status");
  auto server = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto sec = std::make_shared<ClientSecurity>();
  cmd->add_option("--server", *server, "control endpoint (server.control)")->required();
  cmd->add_flag("--json", *json, "machine-readable output");
  add_security(*cmd, *sec);
  return [server, json, sec]() {
    wire::ControlRequest q;
    q.set_version(wire::PROTOCOL_VERSION_1);
    q.set_command(wire::COMMAND_STATUS);
    const auto r = control_request(*server, q, *sec);
    if (!r.ok()) {
      std::fprintf(stderr, "rtda status: %s\n", r.error().c_str());
      return 1;
    }
    if (*json) {
      std::printf("%s\n", status_json(r.status()).c_str());
    } else {
      print_status(r.status());
    }
    return 0;
  };
}

std::vector<Runner> add_control_commands(CLI::App& app) {
  struct Verb {
    const char* name;
    const char* help;
    wire::Command command;
  };
  static const Verb verbs[] = {
      {"pause", "Stop dispatching cycles (observations are still accepted)", wire::COMMAND_PAUSE},
      {"resume", "Dispatch cycles again", wire::COMMAND_RESUME},
      {"checkpoint", "Checkpoint the ensemble after the next analysis", wire::COMMAND_CHECKPOINT},
      {"set-filter", "Switch the filter from the next cycle on", wire::COMMAND_SET_FILTER},
      {"shutdown", "Stop the worker group and the server cleanly", wire::COMMAND_SHUTDOWN},
  };
  std::vector<Runner> runners;
  for (const auto& v : verbs) {
    auto* cmd = app.add_subcommand(v.name, v.help);
    auto server = std::make_shared<std::string>();
    auto filter = std::make_shared<std::string>();
    auto sec = std::make_shared<ClientSecurity>();
    cmd->add_option("--server", *server, "control endpoint (server.control)")->required();
    if (v.command == wire::COMMAND_SET_FILTER) {
      cmd->add_option("filter", *filter, filters::kFilterNames.joined())
          ->required()
          ->check(CLI::IsMember(filters::kFilterNames.names()));
    }
    add_security(*cmd, *sec);
    const wire::Command command = v.command;
    const std::string name = v.name;
    runners.push_back([server, filter, sec, command, name]() {
      wire::ControlRequest q;
      q.set_version(wire::PROTOCOL_VERSION_1);
      q.set_command(command);
      q.set_filter(*filter);
      const auto r = control_request(*server, q, *sec);
      if (!r.ok()) {
        std::fprintf(stderr, "rtda %s: %s\n", name.c_str(), r.error().c_str());
        return 1;
      }
      std::printf("%s\n", r.message().c_str());
      return 0;
    });
  }
  return runners;
}

Runner add_keys_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "keys", "Make a CURVE key pair: NAME.key (public, give it out) and NAME.key_secret");
  auto out = std::make_shared<std::string>();
  cmd->add_option("--out", *out, "path and base name, e.g. keys/server")->required();
  return [out]() {
    const auto pair = net::generate_curve_keypair();
    // A key directory that does not exist yet is made, readable by its owner only.
    const std::filesystem::path dir = std::filesystem::path(*out).parent_path();
    if (!dir.empty() && !std::filesystem::exists(dir)) {
      std::filesystem::create_directories(dir);
      std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
    }
    net::save_keypair(*out, pair);
    std::printf("public key %s\nwrote %s.key and %s.key_secret (mode 0600)\n",
                pair.public_z85.c_str(), out->c_str(), out->c_str());
    return 0;
  };
}

}  // namespace rtda::cli
