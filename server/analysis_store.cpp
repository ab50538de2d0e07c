#include "server/analysis_store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <system_error>
#include <vector>

#include "io/archive.hpp"
#include "io/checkpoint.hpp"

namespace rtda::server {
namespace fs = std::filesystem;
namespace {

// Units of the worker's diagnostics in the analysis files (the wire carries values only).
std::string diagnostic_units(const std::string& name) {
  if (name.rfind("rmse_", 0) == 0 || name.rfind("spread_", 0) == 0) return "K";
  if (name.rfind("seconds_", 0) == 0) return "s";
  if (name == "shock_sd") return "m s-1";
  if (name.rfind("innovation_", 0) == 0) return "observation units";
  return "1";
}

}  // namespace

AnalysisStore::AnalysisStore(const config::Config& cfg, std::string config_hash, Counters& counters)
    : cfg_(cfg), config_hash_(std::move(config_hash)), counters_(counters) {
  data_dir_ = fs::absolute(cfg_.server.data_dir);
  checkpoint_dir_ = data_dir_ / "checkpoints";
  analyses_dir_ = data_dir_ / "analyses";
  fs::create_directories(checkpoint_dir_);
  fs::create_directories(analyses_dir_);
}

fs::path AnalysisStore::checkpoint_path(std::int64_t cycle) const {
  char name[64];
  std::snprintf(name, sizeof name, "checkpoint-%08lld.h5", static_cast<long long>(cycle));
  return checkpoint_dir_ / name;
}

fs::path AnalysisStore::analysis_path(std::int64_t cycle) const {
  char name[64];
  std::snprintf(name, sizeof name, "analysis-%08lld.h5", static_cast<long long>(cycle));
  return analyses_dir_ / name;
}

void AnalysisStore::recover() {
  static const std::regex analysis_re(R"(analysis-(\d{8})\.h5)");
  static const std::regex checkpoint_re(R"(checkpoint-(\d{8})\.h5)");
  std::smatch m;
  // Files a crash left half-written are not data. The server writes those of the analyses
  // and the data directory; checkpoints are written by the worker group, which may be
  // writing one right now (it outlives a server restart): only stale ones go.
  const auto now = fs::file_time_type::clock::now();
  for (const fs::path& dir : {analyses_dir_, checkpoint_dir_, data_dir_}) {
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.find(".partial") == std::string::npos && name.find(".tmp") == std::string::npos)
        continue;
      std::error_code ec;
      if (dir == checkpoint_dir_ &&
          now - fs::last_write_time(e.path(), ec) < std::chrono::minutes(10))
        continue;
      fs::remove(e.path(), ec);
      spdlog::info("removed {} (left by an interrupted write)", e.path().string());
    }
  }
  // Published analyses: one file per cycle.
  for (const auto& e : fs::directory_iterator(analyses_dir_)) {
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, analysis_re)) archived_.insert(std::stoll(m[1]));
  }
  if (!archived_.empty()) last_published_ = *archived_.rbegin();
  for (const auto& e : fs::directory_iterator(checkpoint_dir_)) {
    const std::string name = e.path().filename().string();
    if (!std::regex_match(name, m, checkpoint_re)) continue;
    try {
      const io::Checkpoint c = io::read_checkpoint(e.path());
      if (c.config_hash != config_hash_) {
        spdlog::warn("checkpoint {}: configuration {} differs from this server's {}; ignored",
                     e.path().string(), c.config_hash, config_hash_);
        continue;
      }
      checkpoints_.insert(c.cycle);
    } catch (const std::exception& ex) {
      spdlog::warn("checkpoint {} unreadable, ignored: {}", e.path().string(), ex.what());
    }
  }
  if (!checkpoints_.empty()) newest_checkpoint_ = *checkpoints_.rbegin();
  load_latest();
}

void AnalysisStore::commit_published(const wire::Analysis& a) {
  const auto k = static_cast<std::int64_t>(a.cycle());
  wire::Analysis fields = a;
  fields.clear_ensemble();
  latest_ = std::move(fields);
  save_latest();
  last_published_ = k;
  fault_point("after-latest", k);
  write_analysis_file(a);
  fault_point("after-archive", k);
}

void AnalysisStore::add_checkpoint(std::int64_t cycle) {
  checkpoints_.insert(cycle);
  newest_checkpoint_ = std::max(newest_checkpoint_, cycle);
  counters_.add("checkpoints");
  // Keep the newest checkpoint_keep.
  std::error_code ec;
  while (static_cast<int>(checkpoints_.size()) > cfg_.server.checkpoint_keep) {
    fs::remove(checkpoint_path(*checkpoints_.begin()), ec);
    checkpoints_.erase(checkpoints_.begin());
  }
}

// The newest analysis survives a restart, for late joiners (COMMAND_LATEST_ANALYSIS), and is
// the durable record that its cycle was published.
void AnalysisStore::save_latest() {
  try {
    write_durably(data_dir_ / "latest-analysis.pb", latest_->SerializeAsString());
  } catch (const std::exception& e) {
    spdlog::error("latest analysis: {}", e.what());
    counters_.add("analysis_file_errors");
  }
}

void AnalysisStore::load_latest() {
  std::ifstream in(data_dir_ / "latest-analysis.pb", std::ios::binary);
  if (!in) return;
  wire::Analysis a;
  if (!a.ParseFromIstream(&in)) {
    spdlog::warn("{}: unreadable, ignored", (data_dir_ / "latest-analysis.pb").string());
    return;
  }
  latest_ = std::move(a);
  const auto k = static_cast<std::int64_t>(latest_->cycle());
  // Durable but not archived (a crash between the two): archive it now.
  if (k > last_published_ || !archived_.count(k)) {
    if (k > last_published_) last_published_ = k;
    write_analysis_file(*latest_);
  }
}

void AnalysisStore::write_analysis_file(const wire::Analysis& a) {
  const auto k = static_cast<std::int64_t>(a.cycle());
  const fs::path path = analysis_path(k);
  try {
    std::map<std::string, io::Diagnostic> diag;
    for (const auto& [name, value] : a.diagnostics())
      diag[name] = {value, diagnostic_units(name), name};
    const auto& l = a.latency();
    diag["seconds_forecast"] = {l.forecast_seconds(), "s", "forecast stage"};
    diag["seconds_latency"] = {l.total_seconds(), "s", "last observation in -> published"};
    diag["seconds_overhead"] = {l.overhead_seconds(), "s", "latency not spent computing"};
    diag["backlog_cycles"] = {static_cast<double>(a.backlog_cycles()), "1",
                              "closed windows waiting behind this one"};
    diag["degraded"] = {a.degraded() ? 1.0 : 0.0, "1",
                        "1: forecast only, to catch up (server.behind_policy)"};
    {
      // Written as path.partial and renamed by close(): a crash leaves no half file.
      io::ArchiveWriter w(path, cfg_.model.field_model(), 0,
                          {{"created_by", "rtda-server"},
                           {"filter", a.filter()},
                           {"analysis_cycle", std::to_string(a.cycle())},
                           {"service_config_hash", config_hash_}},
                          k);
      w.append(a.valid_time_seconds(), std::vector<double>(a.mean().begin(), a.mean().end()),
               std::vector<double>(a.spread().begin(), a.spread().end()), diag);
      w.close();
    }
    archived_.insert(k);
  } catch (const std::exception& e) {
    spdlog::error("analysis file for cycle {}: {}", a.cycle(), e.what());
    counters_.add("analysis_file_errors");
  }
  // Retention: the newest archive_keep_cycles files stay.
  if (cfg_.server.archive_keep_cycles > 0) {
    while (static_cast<int>(archived_.size()) > cfg_.server.archive_keep_cycles) {
      std::error_code ec;
      fs::remove(analysis_path(*archived_.begin()), ec);
      archived_.erase(archived_.begin());
      counters_.add("analysis_files_retired");
    }
  }
}

}  // namespace rtda::server
