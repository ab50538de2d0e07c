// fuzz_ingest: rtda::server::Ingest as the coordinator drives it, on a sequence of batches.
//
// Each input is a script (FuzzedDataProvider): batches as raw bytes, as structured
// ObservationBatch messages built from the input, or repeats of earlier bodies (retries,
// duplicates, conflicts), with group commits that succeed or fail and deadline closes in
// between, as IngestEndpoint::handle_readable and the window closes do. Properties (a violation
// traps):
//  * decide() never throws; store <=> ACK_ACCEPTED; accepted = observations placed;
//  * the LogRecord it stores parses, and Ingest::replay of the committed records on a second
//    Ingest + CycleScheduler (a restart) yields the same placements (window, every field, the
//    source), the same late/rejected counts, truth, closes, windows and idempotency records;
//  * a body that was committed is never stored again (a retry is a duplicate, never new data).
#include <fuzzer/FuzzedDataProvider.h>
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "fuzz_builders.hpp"
#include "rtda.pb.h"
#include "server/cycle_scheduler.hpp"
#include "server/ingest.hpp"

using rtda::server::BatchDecision;
using rtda::server::CycleScheduler;
using rtda::server::Ingest;
using rtda::server::StoredObservation;
using rtda::server::WindowSettings;
namespace wire = rtda::wire;

namespace {

#define FUZZ_CHECK(cond, ...)                                              \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "fuzz_ingest: property violated: %s: ", #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                   \
      std::fprintf(stderr, "\n");                                          \
      __builtin_trap();                                                    \
    }                                                                      \
  } while (0)

std::vector<rtda::config::Config> configs;

WindowSettings settings_of(const rtda::config::Config& c) {
  return WindowSettings{c.window.t0_seconds,
                        c.experiment.cycle_hours * 3600.0,
                        c.window.late_policy == rtda::config::LatePolicy::kNext,
                        c.window.deadline_seconds,
                        c.window.grace_seconds,
                        c.window.max_windows_ahead};
}

// One Ingest with its scheduler: the live server, or the one rebuilt from its log.
struct Side {
  CycleScheduler scheduler;
  Ingest ingest;
  explicit Side(const rtda::config::Config& c) : scheduler(settings_of(c)), ingest(c, scheduler) {
    // Key grants as security.feeder_keys would set them: keyA may send as src-a*.
    ingest.grants().grant("keyA", {"src-a*"});
  }
};

bool same_observation(const StoredObservation& a, const StoredObservation& b) {
  // Bitwise: replay must rebuild the very values (NaN cannot be placed, so == would do, but
  // -0.0 vs 0.0 would not be seen).
  return a.id == b.id && std::memcmp(&a.time_seconds, &b.time_seconds, 8) == 0 &&
         std::memcmp(&a.x_m, &b.x_m, 8) == 0 && std::memcmp(&a.y_m, &b.y_m, 8) == 0 &&
         std::memcmp(&a.value, &b.value, 8) == 0 && std::memcmp(&a.error_sd, &b.error_sd, 8) == 0 &&
         a.level == b.level && a.op == b.op;
}

void compare_state(const Side& live, const Side& replica) {
  FUZZ_CHECK(live.scheduler.closed_through() == replica.scheduler.closed_through(),
             "closed_through %lld vs %lld", static_cast<long long>(live.scheduler.closed_through()),
             static_cast<long long>(replica.scheduler.closed_through()));
  FUZZ_CHECK(live.scheduler.windows() == replica.scheduler.windows(), "windows %zu vs %zu",
             live.scheduler.windows(), replica.scheduler.windows());
  for (std::int64_t k = -1; k <= 200; ++k) {
    const auto* a = live.scheduler.window(k);
    const auto* b = replica.scheduler.window(k);
    FUZZ_CHECK((a == nullptr) == (b == nullptr), "window %lld exists on one side only",
               static_cast<long long>(k));
    if (!a) continue;
    FUZZ_CHECK(a->observations.size() == b->observations.size(), "window %lld: %zu vs %zu obs",
               static_cast<long long>(k), a->observations.size(), b->observations.size());
    for (std::size_t i = 0; i < a->observations.size(); ++i)
      FUZZ_CHECK(same_observation(a->observations[i], b->observations[i]),
                 "window %lld observation %zu differs", static_cast<long long>(k), i);
    FUZZ_CHECK(a->late == b->late, "window %lld late %llu vs %llu", static_cast<long long>(k),
               static_cast<unsigned long long>(a->late), static_cast<unsigned long long>(b->late));
    FUZZ_CHECK(a->truth.has_value() == b->truth.has_value(), "window %lld truth",
               static_cast<long long>(k));
  }
  const auto& sa = live.ingest.sources().sources();
  const auto& sb = replica.ingest.sources().sources();
  FUZZ_CHECK(sa.size() == sb.size(), "sources %zu vs %zu", sa.size(), sb.size());
  for (const auto& [name, a] : sa) {
    const auto* b = replica.ingest.sources().find(name);
    FUZZ_CHECK(b != nullptr, "source %s missing after replay", name.c_str());
    FUZZ_CHECK(a.high_seq == b->high_seq, "source %s high_seq", name.c_str());
    FUZZ_CHECK(a.observations_accepted == b->observations_accepted,
               "source %s observations_accepted %llu vs %llu", name.c_str(),
               static_cast<unsigned long long>(a.observations_accepted),
               static_cast<unsigned long long>(b->observations_accepted));
    FUZZ_CHECK(a.recent.size() == b->recent.size(), "source %s recent", name.c_str());
    for (auto ia = a.recent.begin(), ib = b->recent.begin(); ia != a.recent.end(); ++ia, ++ib) {
      FUZZ_CHECK(ia->first == ib->first && ia->second.hash == ib->second.hash &&
                     ia->second.accepted == ib->second.accepted &&
                     ia->second.rejected == ib->second.rejected,
                 "source %s seq record %llu differs", name.c_str(),
                 static_cast<unsigned long long>(ia->first));
    }
  }
}

struct Pending {
  std::string body;
  std::string key;
  BatchDecision d;
};

void commit(Side& live, Side& replica, std::vector<Pending>& group, bool ok, double wall,
            std::set<std::string>& committed) {
  if (ok) {
    for (const Pending& g : group) {
      const BatchDecision& d = g.d;
      live.ingest.apply(d, wall);
      wire::LogRecord rec;
      FUZZ_CHECK(rec.ParseFromString(d.record) && rec.has_batch(),
                 "stored record of %zu bytes is not a LogRecord batch", d.record.size());
      const BatchDecision r = replica.ingest.replay(rec.batch());
      FUZZ_CHECK(r.placed.size() == d.placed.size(), "replay placed %zu, live %zu", r.placed.size(),
                 d.placed.size());
      for (std::size_t i = 0; i < d.placed.size(); ++i) {
        FUZZ_CHECK(r.placed[i].cycle == d.placed[i].cycle && r.placed[i].late == d.placed[i].late,
                   "observation %zu: replay window %lld, live %lld", i,
                   static_cast<long long>(r.placed[i].cycle),
                   static_cast<long long>(d.placed[i].cycle));
        FUZZ_CHECK(same_observation(r.placed[i].observation, d.placed[i].observation),
                   "observation %zu differs after replay", i);
        FUZZ_CHECK(live.ingest.sources().source_name(d.placed[i].observation.source) ==
                       replica.ingest.sources().source_name(r.placed[i].observation.source),
                   "observation %zu: source differs after replay", i);
      }
      FUZZ_CHECK(r.late == d.late, "late %u vs %u", r.late, d.late);
      FUZZ_CHECK(r.rejected == d.rejected, "rejected %u vs %u", r.rejected, d.rejected);
      FUZZ_CHECK(r.source == d.source && r.seq == d.seq && r.hash == d.hash, "identity");
      FUZZ_CHECK(r.truth.has_value() == d.truth.has_value() &&
                     (!d.truth || r.truth->first == d.truth->first),
                 "truth placement differs after replay");
      FUZZ_CHECK(live.scheduler.closed_through() == replica.scheduler.closed_through(),
                 "after a marker: closed_through %lld vs %lld",
                 static_cast<long long>(live.scheduler.closed_through()),
                 static_cast<long long>(replica.scheduler.closed_through()));
      committed.insert(g.body);
    }
  }
  group.clear();
  live.ingest.end_group();
  compare_state(live, replica);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Invalid UTF-8 in a string field is a parse failure the server reports; no log lines.
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  const char* base = R"(
[model]
preset = "N32"
[window]
t0_seconds = 432000.0
max_windows_ahead = 8
deadline_seconds = 30.0
grace_seconds = 5.0
[server]
idempotency_window = 16
[limits]
max_batch_observations = 8
max_sources = 6
source_rate_observations_per_second = 5.0
source_burst_observations = 40.0
)";
  configs.push_back(rtda::config::load_text(base, "fuzz_ingest"));
  configs.push_back(rtda::config::load_text(base, "fuzz_ingest", {"window.late_policy=reject"}));
  return 0;
}

// The input is a script of records, read from the front (tests/fuzz/README.md):
//   [u8 config: bit 0 = late_policy "reject"] then records
//   [u8 op][u8 wall step, 1/4 s][u8 key: 0-1 none, 2 keyA, 3 keyB][u16 length, LE][body]
// op % 16: 0 the body is an ObservationBatch as raw bytes; 1 resend an earlier body (chosen by
// the length); 2 the same with its last byte changed (a conflict); 3 commit the group; 4 the
// group's commit fails; 5 commit, then the deadline/grace close; else the body drives a
// structured batch (fuzz_builders.hpp). The seed corpus holds valid batches as op 0 records.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t pos = 0;
  const auto byte = [&]() -> unsigned { return pos < size ? data[pos++] : 0u; };
  const auto& cfg = configs[byte() & 1];
  Side live(cfg), replica(cfg);
  const rtda::fuzz::Grid grid{cfg.window.t0_seconds, cfg.experiment.cycle_hours * 3600.0,
                              cfg.model.sqg.L_m, cfg.model.sqg.N};
  // Bodies handed to decide() with slack after them (RTDA_FUZZ_PAD_BODIES=1): hides the
  // scan_batch over-read of tests/fuzz/crashes/README.md from ASan, so a long run can look
  // for other bugs before it is fixed.
  static const bool pad = std::getenv("RTDA_FUZZ_PAD_BODIES") != nullptr;
  std::vector<std::string> sent;
  std::set<std::string> committed;  // body of every committed stored batch (any key)
  std::vector<Pending> group;
  double wall = 1000.0;
  for (int step = 0; step < 48 && pos < size; ++step) {
    const unsigned op = byte() % 16;
    wall += byte() * 0.25;
    const unsigned key_index = byte() & 3;
    std::size_t len = byte();
    len |= static_cast<std::size_t>(byte()) << 8;
    len = std::min(len, size - pos);
    const std::uint8_t* chunk = data + pos;
    pos += len;
    std::string body;
    if (op == 0) {
      body.assign(reinterpret_cast<const char*>(chunk), len);
    } else if (op == 1 || op == 2) {
      if (sent.empty()) continue;
      body = sent[len % sent.size()];
      if (op == 2 && !body.empty()) {  // the same (source, seq), other bytes: a conflict
        body.back() = static_cast<char>(body.back() ^ (len % 255 + 1));
      }
    } else if (op == 3) {
      commit(live, replica, group, true, wall, committed);
      continue;
    } else if (op == 4) {
      commit(live, replica, group, false, wall, committed);
      continue;
    } else if (op == 5) {
      // close_due_windows: after the group commit, a deadline or later-window close.
      commit(live, replica, group, true, wall, committed);
      std::string reason;
      const std::int64_t k = live.scheduler.due_closure(wall, reason);
      if (k >= 0) {
        FUZZ_CHECK(k > live.scheduler.closed_through(), "due_closure %lld already closed",
                   static_cast<long long>(k));
        live.scheduler.close(k, wall);
        replica.scheduler.close(k);  // the WindowClosed record, replayed
      }
      continue;
    } else {
      FuzzedDataProvider p(chunk, len);
      wire::ObservationBatch b = rtda::fuzz::build_batch(p, grid);
      body = b.SerializeAsString();
      if (p.ConsumeIntegralInRange<int>(0, 7) == 0) body += p.ConsumeRandomLengthString(64);
    }
    static const char* const keys[] = {"", "", "keyA", "keyB"};
    const std::string key = keys[key_index];
    // A heap block of exactly the body's size, as a ZeroMQ message holds it: ASan sees a read
    // one byte past the end (a std::string has capacity slack and a terminating NUL).
    const std::size_t alloc = pad ? 2 * body.size() + 16 : body.size();
    const std::unique_ptr<char[]> exact(new char[std::max<std::size_t>(alloc, 1)]());
    std::memcpy(exact.get(), body.data(), body.size());
    const char* bytes = exact.get();
    BatchDecision d = live.ingest.decide(std::as_bytes(std::span(bytes, body.size())), wall, key);
    FUZZ_CHECK(d.store == (d.ack.status() == wire::ACK_ACCEPTED), "store %d with ack status %d",
               d.store, d.ack.status());
    FUZZ_CHECK(d.ack.version() == wire::PROTOCOL_VERSION_1, "ack without version");
    FUZZ_CHECK(!d.store || !committed.count(body),
               "a committed batch (source %s seq %llu) was stored again", d.source.c_str(),
               static_cast<unsigned long long>(d.seq));
    if (d.store) {
      FUZZ_CHECK(d.ack.accepted() == d.placed.size(), "ack accepted %u, placed %zu",
                 d.ack.accepted(), d.placed.size());
      FUZZ_CHECK(d.ack.accepted() + d.ack.rejected() >= d.placed.size(), "counts");
      for (const auto& p : d.placed)
        FUZZ_CHECK(
            p.cycle > live.scheduler.closed_through() &&
                p.cycle <= live.scheduler.closed_through() + 1 + cfg.window.max_windows_ahead,
            "observation placed in window %lld (closed through %lld)",
            static_cast<long long>(p.cycle),
            static_cast<long long>(live.scheduler.closed_through()));
    } else {
      FUZZ_CHECK(d.placed.empty() || d.ack.status() == wire::ACK_ACCEPTED,
                 "refused batch with placements");
    }
    if (sent.size() < 16) sent.push_back(body);
    const bool closes = d.close_cycle >= 0;
    if (d.store) group.push_back({body, key, std::move(d)});
    // The coordinator ends a group after a batch that closes a window, and at its byte/time
    // budget (a few batches here).
    if (closes || group.size() >= 4) commit(live, replica, group, true, wall, committed);
  }
  commit(live, replica, group, true, wall, committed);
  return 0;
}
