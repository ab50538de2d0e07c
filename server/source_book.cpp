#include "server/source_book.hpp"

namespace rtda::server {

// ---- SourceBook ---------------------------------------------------------------------------

SourceBook::Lookup SourceBook::lookup(const std::string& source, std::uint64_t seq,
                                      std::uint64_t hash, SeqRecord* found) const {
  const auto it = sources_.find(source);
  if (it == sources_.end()) return Lookup::kNew;
  const Source& s = it->second;
  if (const auto r = s.recent.find(seq); r != s.recent.end()) {
    if (found) *found = r->second;
    return r->second.hash == hash ? Lookup::kDuplicate : Lookup::kConflict;
  }
  // Evicted records are the oldest: below them nothing can be told apart.
  if (s.recent.size() >= window_ && !s.recent.empty() && seq < s.recent.begin()->first)
    return Lookup::kStale;
  return Lookup::kNew;
}

void SourceBook::record(const std::string& source, std::uint64_t seq, const SeqRecord& r) {
  Source& s = sources_[source];
  s.recent[seq] = r;
  while (s.recent.size() > window_)
    s.recent.erase(s.recent.begin());
  s.high_seq = s.high_seq ? std::max(*s.high_seq, seq) : seq;
  s.observations_accepted += r.accepted;
}

std::uint32_t SourceBook::intern(const std::string& source) {
  if (const auto it = index_.find(source); it != index_.end()) return it->second;
  const auto i = static_cast<std::uint32_t>(names_.size());
  names_.push_back(source);
  index_.emplace(source, i);
  return i;
}

const std::string& SourceBook::source_name(std::uint32_t index) const {
  static const std::string none;
  return index < names_.size() ? names_[index] : none;
}

const SourceBook::Source* SourceBook::find(const std::string& source) const {
  const auto it = sources_.find(source);
  return it == sources_.end() ? nullptr : &it->second;
}

SourceBook::Source* SourceBook::find(const std::string& source) {
  const auto it = sources_.find(source);
  return it == sources_.end() ? nullptr : &it->second;
}

std::vector<wire::SourcePosition> SourceBook::positions() const {
  std::vector<wire::SourcePosition> out;
  out.reserve(sources_.size());
  for (const auto& [name, s] : sources_) {
    wire::SourcePosition p;
    p.set_source(name);
    if (s.high_seq) p.set_high_seq(*s.high_seq);
    p.set_observations_accepted(s.observations_accepted);
    for (const auto& [seq, r] : s.recent) {
      auto* x = p.add_recent();
      x->set_seq(seq);
      x->set_content_hash(r.hash);
      x->set_accepted(r.accepted);
      x->set_rejected(r.rejected);
    }
    out.push_back(std::move(p));
  }
  return out;
}

void SourceBook::restore(const wire::SourcePosition& p) {
  Source& s = sources_[p.source()];
  for (const auto& x : p.recent())
    s.recent[x.seq()] = {x.content_hash(), x.accepted(), x.rejected()};
  while (s.recent.size() > window_)
    s.recent.erase(s.recent.begin());
  if (p.high_seq() > 0 || !p.recent().empty())
    s.high_seq = s.high_seq ? std::max(*s.high_seq, p.high_seq()) : p.high_seq();
  s.observations_accepted = std::max(s.observations_accepted, p.observations_accepted());
}

// ---- SourceGrants -------------------------------------------------------------------------

void SourceGrants::grant(const std::string& key, const std::vector<std::string>& patterns) {
  auto& g = grants_[key];
  g.insert(g.end(), patterns.begin(), patterns.end());
}

bool SourceGrants::matches(const std::string& pattern, const std::string& source) {
  if (!pattern.empty() && pattern.back() == '*')
    return source.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  return pattern == source;
}

std::string SourceGrants::check(const std::string& key, const std::string& source) const {
  if (grants_.empty()) return {};
  if (const auto it = grants_.find(key); it != grants_.end()) {
    for (const auto& p : it->second)
      if (matches(p, source)) return {};
    return "source \"" + source + "\" is not granted to this key (security.feeder_keys lists " +
           std::to_string(it->second.size()) + " source pattern(s) for it)";
  }
  for (const auto& [other, patterns] : grants_)
    for (const auto& p : patterns)
      if (matches(p, source))
        return "source \"" + source + "\" belongs to another key (security.feeder_keys)";
  return {};
}

}  // namespace rtda::server
