#include "server/cycle_scheduler.hpp"

#include <algorithm>
#include <cmath>

namespace rtda::server {

std::int64_t CycleScheduler::cycle_of(double t) const {
  // (t_k − Δ/2, t_k + Δ/2] -> k = ceil((t − t0)/Δ − 1/2).
  // Client times can be any double: clamp before converting (far beyond any window either way).
  const double c = std::ceil((t - s_.t0_seconds) / s_.cycle_seconds - 0.5);
  constexpr double kFar = 1e15;
  if (!(c > -kFar)) return -static_cast<std::int64_t>(kFar);
  if (!(c < kFar)) return static_cast<std::int64_t>(kFar);
  return static_cast<std::int64_t>(c);
}

bool CycleScheduler::analysis_cycle(double t, std::int64_t& k) const {
  if (!std::isfinite(t)) return false;
  const double c = (t - s_.t0_seconds) / s_.cycle_seconds;
  if (!(std::abs(c) < 1e15)) return false;
  k = static_cast<std::int64_t>(std::llround(c));
  return k >= 0 && std::abs(time_of(k) - t) <= 1e-6;
}

CycleScheduler::Place CycleScheduler::place(double t, std::int64_t closed_through) const {
  const std::int64_t k = cycle_of(t);
  if (k < 0) return {Placement::kBeforeFirstWindow, k};
  if (k <= closed_through) {
    if (!s_.late_to_next) return {Placement::kLateRejected, k};
    return {Placement::kLate, closed_through + 1};
  }
  if (k > closed_through + 1 + s_.max_windows_ahead) return {Placement::kTooFarAhead, k};
  return {Placement::kWindow, k};
}

std::string BatchObservations::check_columns() const {
  if (!b_.has_columns()) return {};
  const auto& c = b_.columns();
  const int n = c.id_size();
  const std::pair<const char*, int> sizes[] = {{"time_seconds", c.time_seconds_size()},
                                               {"level", c.level_size()},
                                               {"x_m", c.x_m_size()},
                                               {"y_m", c.y_m_size()},
                                               {"value", c.value_size()},
                                               {"error_sd", c.error_sd_size()},
                                               {"op", c.op_size()}};
  for (const auto& [name, size] : sizes) {
    if (size != n) {
      return "columns." + std::string(name) + " has " + std::to_string(size) +
             " values, columns.id has " + std::to_string(n);
    }
  }
  return {};
}

void CycleScheduler::add(std::int64_t cycle, const StoredObservation& o, double wall, bool late) {
  Window& w = windows_[cycle];
  w.observations.push_back(o);
  if (w.first_wall < 0) w.first_wall = wall;
  w.last_wall = std::max(w.last_wall, wall);
  if (late) ++w.late;
}

void CycleScheduler::set_truth(std::int64_t cycle, const wire::TruthState& t) {
  windows_[cycle].truth = t;
}

bool CycleScheduler::close(std::int64_t cycle, double wall) {
  if (cycle <= closed_through_) return false;
  for (auto it = windows_.upper_bound(closed_through_); it != windows_.end() && it->first <= cycle;
       ++it)
    it->second.closed_wall = wall;
  closed_through_ = cycle;
  return true;
}

std::int64_t CycleScheduler::due_closure(double wall, std::string& reason) const {
  std::int64_t due = -1;
  for (const auto& [k, w] : windows_) {
    if (k <= closed_through_ || w.first_wall < 0) continue;
    if (s_.deadline_seconds > 0 && wall - w.first_wall >= s_.deadline_seconds) {
      due = k;
      reason = "deadline";
    }
    // Data for window k has waited `grace`: every earlier window is complete.
    if (wall - w.first_wall >= s_.grace_seconds && k - 1 > closed_through_ && k - 1 > due) {
      due = k - 1;
      reason = "later-window";
    }
  }
  return due;
}

const Window* CycleScheduler::window(std::int64_t cycle) const {
  auto it = windows_.find(cycle);
  return it == windows_.end() ? nullptr : &it->second;
}

std::vector<StoredObservation> CycleScheduler::sorted_observations(std::int64_t cycle) const {
  std::vector<StoredObservation> v;
  if (const Window* w = window(cycle)) v.assign(w->observations.begin(), w->observations.end());
  std::stable_sort(v.begin(), v.end(), [](const StoredObservation& a, const StoredObservation& b) {
    return a.id < b.id;
  });
  return v;
}

void CycleScheduler::drop_through(std::int64_t cycle) {
  windows_.erase(windows_.begin(), windows_.upper_bound(cycle));
}

std::size_t CycleScheduler::open_windows() const {
  std::size_t n = 0;
  for (const auto& [k, w] : windows_)
    n += k > closed_through_ ? 1 : 0;
  return n;
}

}  // namespace rtda::server
