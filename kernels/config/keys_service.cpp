// The configuration keys of [server], [window], [limits], [qc] and [security] (the registry:
// config/keys.hpp).
#include "config/keys.hpp"

namespace rtda::config::detail {

void add_service_keys(std::vector<Key>& r) {
  auto& m = r;
  // [server]
  m.push_back(string_key(
      "server.ingest", [](Config& c) -> std::string& { return c.server.ingest; },
      "Feeders' endpoint (ROUTER): ObservationBatch -> IngestAck.", check_endpoint));
  m.push_back(string_key(
      "server.publish", [](Config& c) -> std::string& { return c.server.publish; },
      "Analyses for consumers (PUB): topics rtda.summary, rtda.analysis, rtda.ensemble.",
      check_endpoint));
  m.push_back(string_key(
      "server.control", [](Config& c) -> std::string& { return c.server.control; },
      "Status and control (ROUTER): ControlRequest -> ControlReply.", check_endpoint));
  m.push_back(string_key(
      "server.workers", [](Config& c) -> std::string& { return c.server.workers; },
      "Worker group link (ROUTER); rank 0 of rtda-worker connects here.", check_endpoint));
  m.push_back(string_key(
      "server.metrics", [](Config& c) -> std::string& { return c.server.metrics; },
      "Prometheus metrics over HTTP (tcp://HOST:PORT, GET /metrics); \"\" = off.",
      check_optional_endpoint));
  m.push_back(string_key(
      "server.data_dir", [](Config& c) -> std::string& { return c.server.data_dir; },
      "Observation log, checkpoints, per-cycle analyses and the archive (shared with the "
      "worker group, which writes the checkpoints)."));
  m.push_back(choice_key(
      "server.filter", [](Config& c) -> std::string& { return c.server.filter; },
      spellings(filters::kFilterNames),
      "Filter of the service's analyses (changeable at run time: rtda set-filter)."));
  m.push_back(choice_key(
      "server.log_sync", [](Config& c) -> LogSync& { return c.server.log_sync; }, kLogSyncNames,
      "Observation log durability before an ack: fdatasync every commit (\"always\"), at "
      "most every log_sync_interval_seconds, or never (the OS decides)."));
  m.push_back(real_key(
      "server.log_sync_interval_seconds",
      [](Config& c) -> double& { return c.server.log_sync_interval_seconds; },
      "Longest time between fdatasyncs with log_sync = \"interval\"."));
  m.push_back(int_key(
      "server.log_segment_mb", [](Config& c) -> int& { return c.server.log_segment_mb; },
      "Observation log segment size, MiB."));
  m.push_back(real_key(
      "server.heartbeat_seconds", [](Config& c) -> double& { return c.server.heartbeat_seconds; },
      "Heartbeat period of the worker link, both directions, s."));
  m.push_back(real_key(
      "server.worker_timeout_seconds",
      [](Config& c) -> double& { return c.server.worker_timeout_seconds; },
      "A worker group silent this long is lost; its cycle is re-dispatched on reconnect, s."));
  m.push_back(int_key(
      "server.checkpoint_every", [](Config& c) -> int& { return c.server.checkpoint_every; },
      "Checkpoint the ensemble after every n-th analysis (1 = each)."));
  m.push_back(int_key(
      "server.checkpoint_keep", [](Config& c) -> int& { return c.server.checkpoint_keep; },
      "Newest checkpoints kept on disk (older ones are deleted)."));
  m.push_back(bool_key(
      "server.publish_members", [](Config& c) -> bool& { return c.server.publish_members; },
      "Also publish every analysis member (topic rtda.ensemble)."));
  m.push_back(real_key(
      "server.cycle_timeout_seconds",
      [](Config& c) -> double& { return c.server.cycle_timeout_seconds; },
      "A dispatched cycle not done this long after dispatch is a failure of the worker group "
      "(it heartbeats but makes no progress): the group is dropped and the failure counts "
      "toward the poison-window pause; 0 = no deadline, s."));
  m.push_back(int_key(
      "server.archive_keep_cycles", [](Config& c) -> int& { return c.server.archive_keep_cycles; },
      "Analysis files kept in data_dir/analyses (the newest); 0 = keep every cycle."));
  m.push_back(int_key(
      "server.idempotency_window", [](Config& c) -> int& { return c.server.idempotency_window; },
      "Recent sequence numbers remembered per source (with a content hash, for duplicates "
      "and conflicts); an older seq than these is refused as stale."));
  m.push_back(choice_key(
      "server.behind_policy", [](Config& c) -> BehindPolicy& { return c.server.behind_policy; },
      kBehindPolicyNames,
      "When more than server.max_backlog_cycles closed windows wait: run the older ones "
      "with filter \"none\" (forecast only, flagged degraded) until caught up (\"degrade\"), "
      "or let them queue (\"queue\": every window analysed, latency grows)."));
  m.push_back(int_key(
      "server.max_backlog_cycles", [](Config& c) -> int& { return c.server.max_backlog_cycles; },
      "Closed windows allowed to wait before server.behind_policy applies."));
  m.push_back(bool_key(
      "server.insecure", [](Config& c) -> bool& { return c.server.insecure; },
      "Allow endpoints on non-loopback addresses without CURVE (a deliberately insecure "
      "deployment); false refuses to start."));
  // [window]
  m.push_back(real_key(
      "window.t0_seconds", [](Config& c) -> double& { return c.window.t0_seconds; },
      "Analysis time of cycle 0; cycle k analyses t0 + k * experiment.cycle_hours, model s."));
  m.push_back(choice_key(
      "window.late_policy", [](Config& c) -> LatePolicy& { return c.window.late_policy; },
      kLatePolicyNames,
      "An observation for a window already closed: assimilate it in the oldest open window "
      "(\"next\") or refuse it (\"reject\"). Both are counted."));
  m.push_back(real_key(
      "window.deadline_seconds", [](Config& c) -> double& { return c.window.deadline_seconds; },
      "Close a window this long (wall clock) after its first observation; 0 = never by "
      "deadline, s."));
  m.push_back(real_key(
      "window.grace_seconds", [](Config& c) -> double& { return c.window.grace_seconds; },
      "Close a window once observations of a later window arrived this long ago, s."));
  m.push_back(int_key(
      "window.max_windows_ahead", [](Config& c) -> int& { return c.window.max_windows_ahead; },
      "Refuse observations more than this many windows after the oldest open one."));
  // [limits]
  m.push_back(int_key(
      "limits.max_message_mb", [](Config& c) -> int& { return c.limits.max_message_mb; },
      "Largest ingest message, MiB; 0 = what a batch of max_batch_observations observations "
      "plus a truth field needs. A larger one, up to twice this, is answered ACK_ERROR "
      "(messages_oversize); beyond twice this libzmq closes the connection without a reply "
      "(ZMQ_MAXMSGSIZE). Control requests are limited to 1 MiB, worker messages to twice "
      "this or what a result needs."));
  m.push_back(int_key(
      "limits.max_batch_observations",
      [](Config& c) -> int& { return c.limits.max_batch_observations; },
      "Most observations in one batch."));
  m.push_back(real_key(
      "limits.source_rate_observations_per_second",
      [](Config& c) -> double& { return c.limits.source_rate_observations_per_second; },
      "Sustained observations per second per feeder source; 0 = unlimited."));
  m.push_back(real_key(
      "limits.source_burst_observations",
      [](Config& c) -> double& { return c.limits.source_burst_observations; },
      "Burst allowance of the per-source rate limit, observations."));
  m.push_back(int_key(
      "limits.max_sources", [](Config& c) -> int& { return c.limits.max_sources; },
      "Feeder sources the server keeps idempotency records for; a batch from a new source "
      "beyond this is refused."));
  m.push_back(real_key(
      "limits.latest_analysis_per_second",
      [](Config& c) -> double& { return c.limits.latest_analysis_per_second; },
      "LATEST_ANALYSIS requests with fields per control peer and second (burst 4)."));
  // [qc]
  m.push_back(real_key(
      "qc.gross_error_sigmas", [](Config& c) -> double& { return c.qc.gross_error_sigmas; },
      "Refuse an observation before the filter when |y - mean h(x_b)| exceeds this many "
      "sqrt(error_sd^2 + spread(h(x_b))^2); 0 = off."));
  m.push_back(real_key(
      "qc.max_abs_kelvin", [](Config& c) -> double& { return c.qc.max_abs_kelvin; },
      "Ingest plausibility: |value| of a linear_K observation (identity: scaled to K) above "
      "this is refused, K."));
  m.push_back(real_key(
      "qc.max_error_sd_kelvin", [](Config& c) -> double& { return c.qc.max_error_sd_kelvin; },
      "Ingest plausibility: error_sd above this (linear_K, identity scaled to K) is refused, "
      "K; arctan observations need error_sd <= 1."));
  // [security]
  m.push_back(bool_key(
      "security.curve", [](Config& c) -> bool& { return c.security.curve; },
      "Require ZeroMQ CURVE encryption and authentication on every endpoint."));
  m.push_back(string_key(
      "security.server_key", [](Config& c) -> std::string& { return c.security.server_key; },
      "The server's secret key file (rtda keys --out NAME writes NAME.key_secret)."));
  m.push_back(string_key(
      "security.feeder_keys", [](Config& c) -> std::string& { return c.security.feeder_keys; },
      "Feeders allowed to ingest: a file of public keys or a directory of .key files; \"\" "
      "= any client that knows the server's public key."));
  m.push_back(string_key(
      "security.control_keys", [](Config& c) -> std::string& { return c.security.control_keys; },
      "Clients allowed on the control endpoint (same forms as feeder_keys)."));
  m.push_back(string_key(
      "security.worker_keys", [](Config& c) -> std::string& { return c.security.worker_keys; },
      "Worker groups allowed to connect (same forms as feeder_keys)."));
  m.push_back(bool_key(
      "security.control_allow_any", [](Config& c) -> bool& { return c.security.control_allow_any; },
      "With CURVE and control_keys = \"\": let any holder of the server's public key "
      "control the server (false refuses to start)."));
  m.push_back(bool_key(
      "security.worker_allow_any", [](Config& c) -> bool& { return c.security.worker_allow_any; },
      "With CURVE and worker_keys = \"\": let any holder of the server's public key join "
      "as the worker group (false refuses to start)."));
}

}  // namespace rtda::config::detail
