// Who sent what (docs/service.md "Ingest", docs/security.md): per-source idempotency
// records and the sources each CURVE key may send as.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "rtda.pb.h"

namespace rtda::server {

// Per-source idempotency records: the highest durable seq, the most recent `window` sequence
// numbers with their content hash, and counters. Bounded: at most `max_sources` sources and
// `window` records per source.
class SourceBook {
 public:
  struct SeqRecord {
    std::uint64_t hash = 0;
    std::uint32_t accepted = 0;
    std::uint32_t rejected = 0;
  };
  struct Source {
    std::optional<std::uint64_t> high_seq;
    std::map<std::uint64_t, SeqRecord> recent;
    std::uint64_t observations_accepted = 0;
    std::uint64_t observations_refused_qc = 0;
  };
  enum class Lookup { kNew, kDuplicate, kConflict, kStale };

  SourceBook(std::size_t window, std::size_t max_sources)
      : window_(window), max_sources_(max_sources) {}

  Lookup lookup(const std::string& source, std::uint64_t seq, std::uint64_t hash,
                SeqRecord* found) const;
  void record(const std::string& source, std::uint64_t seq, const SeqRecord& r);
  const Source* find(const std::string& source) const;
  Source* find(const std::string& source);
  // Room for `source` (known already, or fewer than max_sources named so far).
  bool can_add(const std::string& source) const {
    return index_.count(source) > 0 || sources_.count(source) > 0 ||
           std::max(index_.size(), sources_.size()) < max_sources_;
  }
  const std::map<std::string, Source>& sources() const { return sources_; }
  // A small stable number for `source` (observations carry it), and back.
  std::uint32_t intern(const std::string& source);
  const std::string& source_name(std::uint32_t index) const;

  // For the log's base record after compaction, and back.
  std::vector<wire::SourcePosition> positions() const;
  void restore(const wire::SourcePosition& p);

 private:
  std::size_t window_;
  std::size_t max_sources_;
  std::map<std::string, Source> sources_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, std::uint32_t> index_;
};

// Which sources a CURVE key may send as (security.feeder_keys lines with `sources=`). Without
// any grant every key may send as any source; once a source is granted to some key, only the
// keys granted it may use it, and a key with grants may use only those.
class SourceGrants {
 public:
  void grant(const std::string& key, const std::vector<std::string>& patterns);
  // "" when `key` may send as `source`, else why not.
  std::string check(const std::string& key, const std::string& source) const;
  bool empty() const { return grants_.empty(); }
  // Forgets every grant (a re-read of the allow-lists grants them again).
  void clear() { grants_.clear(); }

 private:
  static bool matches(const std::string& pattern, const std::string& source);
  std::map<std::string, std::vector<std::string>> grants_;
};

}  // namespace rtda::server
