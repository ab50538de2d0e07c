#include "config/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "config/keys.hpp"

namespace rtda::config {

std::string_view to_string(Precision p) {
  return kPrecisionNames.name(p);
}

namespace {

using namespace detail;

const std::vector<Key>& registry() {
  static const std::vector<Key> keys = [] {
    // The order is the reference's and the science hash's: keep it.
    std::vector<Key> r;
    add_model_keys(r);
    add_filter_keys(r);
    add_service_keys(r);
    add_surrogate_keys(r);
    return r;
  }();
  return keys;
}

const Key* find_key(const std::string& name) {
  for (const auto& k : registry()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

// Flattens a TOML table into "section.key" -> node, rejecting anything not in the registry.
void collect(const toml::table& t, const std::string& prefix,
             std::vector<std::pair<std::string, const toml::node*>>& out,
             const std::string& where) {
  for (auto&& [k, v] : t) {
    const std::string name =
        prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = v.as_table()) {
      collect(*sub, name, out, where);
      continue;
    }
    if (!find_key(name)) {
      std::string known;
      const std::string section = name.substr(0, name.find('.'));
      for (const auto& key : registry()) {
        if (key.name.rfind(section + ".", 0) == 0) known += (known.empty() ? "" : ", ") + key.name;
      }
      throw ConfigError(where + "unknown key '" + name + "'" +
                        (known.empty() ? std::string(" (no such section)")
                                       : " (keys in [" + section + "]: " + known + ")"));
    }
    out.emplace_back(name, &v);
  }
}

void apply_preset(Config& c, const std::string& where) {
  const std::string& p = c.model.preset;
  int n = 0;
  if (p.size() > 1 && p[0] == 'N') n = std::atoi(p.c_str() + 1);
  try {
    const sqg::SqgParams ref = sqg::reference_preset(n);
    c.model.sqg.N = ref.N;
    c.model.sqg.dt_s = ref.dt_s;
    c.model.sqg.diff_efold_s = ref.diff_efold_s;
  } catch (const std::invalid_argument& e) {
    throw ConfigError(where + "model.preset = \"" + p + "\": " + e.what());
  }
}

}  // namespace

namespace {
// The text of a configuration received from elsewhere (the server sends its own to the
// worker group); load_text parses it in place of a file named `name`.
thread_local const std::string* text_source = nullptr;
}  // namespace

Config load_text(const std::string& toml_text, const std::string& name,
                 const std::vector<std::string>& overrides) {
  text_source = &toml_text;
  try {
    Config c = load(name, overrides);
    text_source = nullptr;
    return c;
  } catch (...) {
    text_source = nullptr;
    throw;
  }
}

Config load(const std::optional<std::string>& toml_path, const std::vector<std::string>& overrides,
            const Config* base) {
  Config c = base ? *base : Config{};
  // Parse everything first so the preset can be applied before the other keys.
  std::vector<std::pair<std::string, const toml::node*>> entries;
  std::vector<std::string> entry_where;
  toml::table file_table;
  if (toml_path) {
    try {
      file_table =
          text_source ? toml::parse(*text_source, *toml_path) : toml::parse_file(*toml_path);
    } catch (const toml::parse_error& e) {
      std::ostringstream m;
      m << *toml_path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
        << e.description();
      throw ConfigError(m.str());
    }
    std::vector<std::pair<std::string, const toml::node*>> found;
    collect(file_table, "", found, *toml_path + ": ");
    for (auto& f : found) {
      entries.push_back(f);
      entry_where.push_back(*toml_path + ": ");
    }
  }
  // Each override is parsed as a TOML value; a bare word that is not valid TOML is a string
  // (so --set model.dynamics=exact needs no quotes).
  std::vector<toml::table> override_tables;
  override_tables.reserve(overrides.size());
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ConfigError("--set " + o + ": expected section.key=value");
    }
    const std::string key = o.substr(0, eq);
    const std::string value = o.substr(eq + 1);
    if (!find_key(key)) {
      throw ConfigError("--set " + o + ": unknown key '" + key +
                        "' (see `rtda config --markdown`)");
    }
    toml::table t;
    try {
      t = toml::parse("v = " + value);
    } catch (const toml::parse_error&) {
      t.insert("v", value);
    }
    override_tables.push_back(std::move(t));
    entries.emplace_back(key, override_tables.back().get("v"));
    entry_where.push_back("--set ");
  }

  // Preset: explicit model.preset wins; else model.N selects its reference configuration.
  bool preset_given = false;
  bool n_given = false;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].first == "model.preset") {
      find_key("model.preset")->set(c, *entries[i].second, entry_where[i]);
      preset_given = true;
    }
  }
  if (!preset_given) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].first != "model.N") continue;
      n_given = true;
      if (auto v = entries[i].second->value<std::int64_t>()) {
        const auto res = sqg::reference_preset_resolutions();
        if (std::find(res.begin(), res.end(), *v) != res.end()) {
          c.model.preset = "N" + std::to_string(*v);
        }
      }
    }
  }
  if (!base || preset_given || n_given) apply_preset(c, "");
  // ensf.mode picks that mode's defaults for the other ensf keys, like model.preset.
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].first != "ensf.mode") continue;
    find_key("ensf.mode")->set(c, *entries[i].second, entry_where[i]);
    c.ensf = c.ensf.mode == filters::EnsfMode::kStandard ? filters::EnsfSettings::standard()
                                                         : filters::EnsfSettings::paper();
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].first == "model.preset") continue;
    find_key(entries[i].first)->set(c, *entries[i].second, entry_where[i]);
  }
  try {
    c.model.sqg.validate();
    c.model.l96.validate();
    c.nature.validate(c.model.sqg);
    c.letkf.validate();
    c.ensf.validate();
    c.inflation.validate();
  } catch (const std::invalid_argument& e) {
    throw ConfigError((toml_path ? *toml_path + ": " : std::string()) + e.what());
  }
  if (c.model.threads < 0)
    throw ConfigError("model.threads = " + std::to_string(c.model.threads) + ": expected >= 0");
  if (c.ensemble.members < 2) {
    throw ConfigError("ensemble.members = " + std::to_string(c.ensemble.members) +
                      ": expected at least 2");
  }
  if (!(c.ensemble.initial_noise_sd_ms >= 0)) {
    throw ConfigError("ensemble.initial_noise_sd_ms = " +
                      std::to_string(c.ensemble.initial_noise_sd_ms) + ": expected >= 0");
  }
  if (c.experiment.cycles < 1) {
    throw ConfigError("experiment.cycles = " + std::to_string(c.experiment.cycles) +
                      ": expected at least 1");
  }
  {
    const double step = c.model.step_seconds();
    const double steps = c.experiment.cycle_hours * 3600.0 / step;
    if (!(c.experiment.cycle_hours > 0) || std::abs(steps - std::round(steps)) > 1e-9) {
      throw ConfigError("experiment.cycle_hours = " + fmt_double(c.experiment.cycle_hours) +
                        ": expected a positive multiple of " +
                        (c.model.lorenz96() ? "model.l96_dt (" + fmt_double(step / 3600.0) + " h)"
                                            : "model.dt_s = " + fmt_double(step) + " s"));
    }
  }
  if (c.observe.cycles < 0)
    throw ConfigError("observe.cycles = " + std::to_string(c.observe.cycles) + ": expected >= 0");
  const auto require = [](bool ok, const std::string& key, const std::string& value,
                          const std::string& expected) {
    if (!ok) throw ConfigError(key + " = " + value + ": expected " + expected);
  };
  require(c.server.heartbeat_seconds > 0, "server.heartbeat_seconds",
          fmt_double(c.server.heartbeat_seconds), "> 0");
  require(c.server.worker_timeout_seconds > c.server.heartbeat_seconds,
          "server.worker_timeout_seconds", fmt_double(c.server.worker_timeout_seconds),
          "more than server.heartbeat_seconds = " + fmt_double(c.server.heartbeat_seconds));
  require(c.server.log_sync_interval_seconds > 0, "server.log_sync_interval_seconds",
          fmt_double(c.server.log_sync_interval_seconds), "> 0");
  require(c.server.log_segment_mb >= 1, "server.log_segment_mb",
          std::to_string(c.server.log_segment_mb), ">= 1");
  require(c.server.checkpoint_every >= 1, "server.checkpoint_every",
          std::to_string(c.server.checkpoint_every), ">= 1");
  require(c.server.checkpoint_keep >= 1, "server.checkpoint_keep",
          std::to_string(c.server.checkpoint_keep), ">= 1");
  require(!c.server.data_dir.empty(), "server.data_dir", "\"\"", "a directory");
  require(c.window.deadline_seconds >= 0, "window.deadline_seconds",
          fmt_double(c.window.deadline_seconds), ">= 0");
  require(c.window.grace_seconds >= 0, "window.grace_seconds", fmt_double(c.window.grace_seconds),
          ">= 0");
  require(c.window.max_windows_ahead >= 1, "window.max_windows_ahead",
          std::to_string(c.window.max_windows_ahead), ">= 1");
  require(std::isfinite(c.window.t0_seconds), "window.t0_seconds", fmt_double(c.window.t0_seconds),
          "a finite time");
  require(c.limits.max_message_mb >= 0, "limits.max_message_mb",
          std::to_string(c.limits.max_message_mb), ">= 0 (0 = derived)");
  require(c.limits.max_sources >= 1, "limits.max_sources", std::to_string(c.limits.max_sources),
          ">= 1");
  require(c.limits.latest_analysis_per_second > 0, "limits.latest_analysis_per_second",
          fmt_double(c.limits.latest_analysis_per_second), "> 0");
  require(c.server.cycle_timeout_seconds >= 0, "server.cycle_timeout_seconds",
          fmt_double(c.server.cycle_timeout_seconds), ">= 0 (0 = no deadline)");
  require(c.server.archive_keep_cycles >= 0, "server.archive_keep_cycles",
          std::to_string(c.server.archive_keep_cycles), ">= 0 (0 = keep all)");
  require(c.server.idempotency_window >= 16, "server.idempotency_window",
          std::to_string(c.server.idempotency_window), ">= 16");
  require(c.server.max_backlog_cycles >= 1, "server.max_backlog_cycles",
          std::to_string(c.server.max_backlog_cycles), ">= 1");
  require(c.qc.gross_error_sigmas >= 0 && std::isfinite(c.qc.gross_error_sigmas),
          "qc.gross_error_sigmas", fmt_double(c.qc.gross_error_sigmas), ">= 0 (0 = off)");
  require(c.qc.max_abs_kelvin > 0 && std::isfinite(c.qc.max_abs_kelvin), "qc.max_abs_kelvin",
          fmt_double(c.qc.max_abs_kelvin), "> 0");
  require(c.qc.max_error_sd_kelvin > 0 && std::isfinite(c.qc.max_error_sd_kelvin),
          "qc.max_error_sd_kelvin", fmt_double(c.qc.max_error_sd_kelvin), "> 0");
  require(c.limits.max_batch_observations >= 1, "limits.max_batch_observations",
          std::to_string(c.limits.max_batch_observations), ">= 1");
  require(c.limits.source_rate_observations_per_second >= 0,
          "limits.source_rate_observations_per_second",
          fmt_double(c.limits.source_rate_observations_per_second), ">= 0 (0 = unlimited)");
  require(c.limits.source_burst_observations >= 1, "limits.source_burst_observations",
          fmt_double(c.limits.source_burst_observations), ">= 1");
  require(c.model.kind != ModelKind::kVit || !c.surrogate.weights.empty(), "surrogate.weights",
          "\"\"", "a trained checkpoint (rtda train --out) when model.kind = \"vit\"");
  require(c.surrogate.batch >= 1, "surrogate.batch", std::to_string(c.surrogate.batch), ">= 1");
  require(c.surrogate.steps >= 1, "surrogate.steps", std::to_string(c.surrogate.steps), ">= 1");
  require(c.surrogate.eval_every >= 1, "surrogate.eval_every",
          std::to_string(c.surrogate.eval_every), ">= 1");
  require(c.surrogate.lr > 0, "surrogate.lr", fmt_double(c.surrogate.lr), "> 0");
  require(c.surrogate.max_minutes > 0, "surrogate.max_minutes", fmt_double(c.surrogate.max_minutes),
          "> 0");
  const auto& on = c.surrogate.online;
  require(on.lr > 0 && std::isfinite(on.lr), "surrogate.online_lr", fmt_double(on.lr), "> 0");
  require(on.steps >= 0, "surrogate.online_steps", std::to_string(on.steps), ">= 0");
  require(on.batch >= 1, "surrogate.online_batch", std::to_string(on.batch), ">= 1");
  require(on.buffer >= 1, "surrogate.online_buffer", std::to_string(on.buffer), ">= 1");
  require(on.warmup_steps >= 0, "surrogate.online_warmup_steps", std::to_string(on.warmup_steps),
          ">= 0");
  require(on.window >= 1, "surrogate.online_window", std::to_string(on.window), ">= 1");
  require(on.tolerance >= 0 && std::isfinite(on.tolerance), "surrogate.online_tolerance",
          fmt_double(on.tolerance), ">= 0");
  require(on.min_lr_scale > 0 && on.min_lr_scale <= 1, "surrogate.online_min_lr_scale",
          fmt_double(on.min_lr_scale), "in (0, 1]");
  require(!on.enabled || c.model.kind == ModelKind::kVit, "surrogate.online", "true",
          "model.kind = \"vit\" (only the surrogate adapts)");
  require(!c.security.curve || !c.security.server_key.empty(), "security.server_key", "\"\"",
          "a key file when security.curve = true (make one with `rtda keys --out NAME`)");
  return c;
}

std::size_t max_message_bytes(const Config& c) {
  if (c.limits.max_message_mb > 0) return static_cast<std::size_t>(c.limits.max_message_mb) << 20;
  return static_cast<std::size_t>(c.limits.max_batch_observations) * 64 +
         c.model.grid().state_size() * 8 + (64u << 10);
}

std::string science_hash(const Config& c) {
  // Keys that cannot change an analysis: where things live, how they are served, threads.
  // [surrogate] holds training settings; the cycle runs the SQG model (model.kind arrives with
  // the surrogate in the cycle, and its weights' identity will then enter the hash).
  static const std::vector<std::string> excluded_sections = {"server", "window", "limits",
                                                             "security", "surrogate"};
  static const std::vector<std::string> excluded_keys = {"model.threads",
                                                         "model.fft_wisdom_file",
                                                         "model.epoch",
                                                         "experiment.nature_file",
                                                         "experiment.observations_file",
                                                         "experiment.store_members",
                                                         "experiment.statistics_from_cycle",
                                                         "experiment.cycles",
                                                         "observe.cycles"};
  std::string text;
  for (const auto& k : registry()) {
    const std::string sec = k.name.substr(0, k.name.find('.'));
    if (std::find(excluded_sections.begin(), excluded_sections.end(), sec) !=
            excluded_sections.end() ||
        std::find(excluded_keys.begin(), excluded_keys.end(), k.name) != excluded_keys.end()) {
      continue;
    }
    text += k.name + "=" + k.show(c) + "\n";
  }
  // The surrogate's weights decide its forecasts: name them (file name) when it is in use.
  // Online adaptation changes them cycle by cycle, so its settings count too.
  if (c.model.kind == ModelKind::kVit) {
    text += "surrogate.weights=" + c.surrogate.weights + "\n";
    for (const auto& k : registry())
      if (k.name.rfind("surrogate.online", 0) == 0) text += k.name + "=" + k.show(c) + "\n";
  }
  // FNV-1a, 64 bit: a fingerprint to compare configurations, not a security measure.
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string to_toml(const Config& c) {
  std::ostringstream out;
  std::string section;
  for (const auto& k : registry()) {
    const auto dot = k.name.find('.');
    const std::string sec = k.name.substr(0, dot);
    if (sec != section) {
      out << (section.empty() ? "" : "\n") << "[" << sec << "]\n";
      section = sec;
    }
    const std::string v = k.show(c);
    if (v.front() == '(') {
      out << "# " << k.name.substr(dot + 1) << " unset " << v << "\n";
    } else {
      out << k.name.substr(dot + 1) << " = " << v << "\n";
    }
  }
  return out.str();
}

std::string reference_markdown() {
  const Config defaults;
  std::ostringstream out;
  std::string section;
  for (const auto& k : registry()) {
    const std::string sec = k.name.substr(0, k.name.find('.'));
    if (sec != section) {
      out << "\n## [" << sec << "]\n\n| key | type | default | meaning |\n|---|---|---|---|\n";
      section = sec;
    }
    // A '|' splits a table cell even inside code (GitHub-flavoured Markdown): escape it.
    const auto cell = [](std::string text) {
      for (std::size_t at = text.find('|'); at != std::string::npos; at = text.find('|', at + 2))
        text.insert(at, "\\");
      return text;
    };
    out << "| `" << k.name << "` | " << cell(k.type) << " | `" << cell(k.show(defaults)) << "` | "
        << cell(k.doc) << " |\n";
  }
  return out.str();
}

}  // namespace rtda::config
