// What the coordinator keeps on disk besides the observation log (docs/service.md "Data
// directory"): the per-cycle analysis files with their retention, latest-analysis.pb (the
// durable record that a cycle was published, and what COMMAND_LATEST_ANALYSIS answers), and
// the bookkeeping of the worker group's checkpoints.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "config/config.hpp"
#include "rtda.pb.h"
#include "server/service_util.hpp"

namespace rtda::server {

class AnalysisStore {
 public:
  // Creates `cfg.server.data_dir`'s checkpoint and analysis directories. `config_hash`: the
  // science hash a checkpoint must carry to be used.
  AnalysisStore(const config::Config& cfg, std::string config_hash, Counters& counters);

  // On start: removes what interrupted writes left, finds the published analyses and the usable
  // checkpoints, loads latest-analysis.pb (and archives it when a crash came between the two).
  void recover();

  // Makes `a` published, durably: latest-analysis.pb (without the members), then the analysis
  // file. The chaos tests' fault points after-latest and after-archive lie between the steps.
  void commit_published(const wire::Analysis& a);
  // The worker group wrote the checkpoint of `cycle`: the newest server.checkpoint_keep stay.
  void add_checkpoint(std::int64_t cycle);

  std::int64_t last_published() const { return last_published_; }
  std::int64_t newest_checkpoint() const { return newest_checkpoint_; }
  const std::set<std::int64_t>& checkpoints() const { return checkpoints_; }
  // The newest analysis published (without the members), if any.
  const std::optional<wire::Analysis>& latest() const { return latest_; }

  const std::filesystem::path& data_dir() const { return data_dir_; }
  const std::filesystem::path& checkpoint_dir() const { return checkpoint_dir_; }
  std::filesystem::path checkpoint_path(std::int64_t cycle) const;
  std::filesystem::path analysis_path(std::int64_t cycle) const;

 private:
  void save_latest();
  void load_latest();
  void write_analysis_file(const wire::Analysis& a);

  const config::Config& cfg_;
  std::string config_hash_;
  Counters& counters_;
  std::filesystem::path data_dir_, checkpoint_dir_, analyses_dir_;
  std::int64_t last_published_ = -1;
  std::int64_t newest_checkpoint_ = -1;
  std::set<std::int64_t> checkpoints_;  // cycles with a good checkpoint file
  std::set<std::int64_t> archived_;     // cycles with an analysis file
  std::optional<wire::Analysis> latest_;
};

}  // namespace rtda::server
