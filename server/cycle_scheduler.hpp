// Assimilation windows and their closing (docs/architecture.md §3). Pure bookkeeping, no sockets or
// clocks of its own: the coordinator feeds it observations and wall-clock times, and the same
// calls replayed from the observation log rebuild the same windows.
//
// Cycle k analyses t_k = t0 + k·Δ; its window holds observation times in (t_k − Δ/2, t_k + Δ/2].
// Windows close in order: closing k closes every earlier window, so the state is one number,
// closed_through() (−1 before the first close).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rtda.pb.h"

namespace rtda::server {

struct WindowSettings {
  double t0_seconds = 0;
  double cycle_seconds = 43200;
  bool late_to_next = true;  // window.late_policy = "next"
  double deadline_seconds = 10;
  double grace_seconds = 2;
  int max_windows_ahead = 64;
};

// An accepted observation as a window keeps it: plain values, stored in chunks (a deque), so a
// window of millions grows without reallocating and copying what it holds.
struct StoredObservation {
  std::uint64_t id;
  double time_seconds;
  double x_m, y_m;
  double value;
  double error_sd;
  std::uint32_t level;
  std::int32_t op;
  std::uint32_t source = 0;  // the feeder source's index (SourceBook), for per-source counts

  static StoredObservation from_wire(const wire::Observation& o) {
    return {o.id(),    o.time_seconds(), o.x_m(),   o.y_m(),
            o.value(), o.error_sd(),     o.level(), static_cast<std::int32_t>(o.op()),
            0};
  }
  void to_wire(wire::Observation& o) const {
    o.set_id(id);
    o.set_time_seconds(time_seconds);
    o.set_level(level);
    o.set_x_m(x_m);
    o.set_y_m(y_m);
    o.set_value(value);
    o.set_error_sd(error_sd);
    o.set_op(static_cast<wire::ObservationOperator>(op));
  }
};

// The observations of a batch in either form, by index: the messages first, then the
// columns (the order acks and the log count them in).
class BatchObservations {
 public:
  explicit BatchObservations(const wire::ObservationBatch& b)
      : b_(b), messages_(static_cast<std::size_t>(b.observations_size())) {}
  // "" when every column has the length of `id`, else which one differs.
  std::string check_columns() const;
  std::size_t size() const {
    return messages_ + static_cast<std::size_t>(b_.has_columns() ? b_.columns().id_size() : 0);
  }
  StoredObservation operator[](std::size_t i) const {
    if (i < messages_) return StoredObservation::from_wire(b_.observations(static_cast<int>(i)));
    const auto& c = b_.columns();
    const int j = static_cast<int>(i - messages_);
    return {c.id(j),    c.time_seconds(j), c.x_m(j),   c.y_m(j),
            c.value(j), c.error_sd(j),     c.level(j), static_cast<std::int32_t>(c.op(j)),
            0};
  }

 private:
  const wire::ObservationBatch& b_;
  std::size_t messages_;
};

struct Window {
  std::deque<StoredObservation> observations;  // in arrival (log) order
  std::optional<wire::TruthState> truth;
  double first_wall = -1;   // wall clock of the first observation, s
  double last_wall = -1;    // of the newest one
  std::uint64_t late = 0;   // observations moved here from closed windows
  double closed_wall = -1;  // when it closed (live only)
};

class CycleScheduler {
 public:
  explicit CycleScheduler(WindowSettings s) : s_(s) {}
  const WindowSettings& settings() const { return s_; }

  enum class Placement { kWindow, kLate, kLateRejected, kBeforeFirstWindow, kTooFarAhead };
  struct Place {
    Placement kind;
    std::int64_t cycle;  // where it goes (kWindow, kLate) or would have gone
  };
  // The window index of model time t (may be negative).
  std::int64_t cycle_of(double t) const;
  double time_of(std::int64_t cycle) const { return s_.t0_seconds + cycle * s_.cycle_seconds; }
  // Is t an analysis time t0 + kΔ (to 1 µs)? Sets k.
  bool analysis_cycle(double t, std::int64_t& k) const;
  Place place(double t) const { return place(t, closed_through_); }
  // As if windows were closed through `closed_through` (what a log record saw when it was
  // validated: replay after compaction must not depend on the records that were deleted).
  Place place(double t, std::int64_t closed_through) const;

  void add(std::int64_t cycle, const StoredObservation& o, double wall, bool late);
  void add(std::int64_t cycle, const wire::Observation& o, double wall, bool late) {
    add(cycle, StoredObservation::from_wire(o), wall, late);
  }
  void set_truth(std::int64_t cycle, const wire::TruthState& t);
  // Closes `cycle` and every earlier window; false when already closed.
  bool close(std::int64_t cycle, double wall = -1);
  std::int64_t closed_through() const { return closed_through_; }
  // The window the deadline or grace rule closes at `wall` (−1: none), with the reason.
  std::int64_t due_closure(double wall, std::string& reason) const;

  const Window* window(std::int64_t cycle) const;
  // Observations of `cycle` sorted by id (stable: ties keep log order), the order the worker
  // group assimilates them in whatever order they arrived.
  std::vector<StoredObservation> sorted_observations(std::int64_t cycle) const;
  // Frees windows up to and including `cycle` (checkpointed and published).
  void drop_through(std::int64_t cycle);
  std::size_t open_windows() const;
  std::size_t windows() const { return windows_.size(); }

 private:
  WindowSettings s_;
  std::map<std::int64_t, Window> windows_;
  std::int64_t closed_through_ = -1;
};

}  // namespace rtda::server
