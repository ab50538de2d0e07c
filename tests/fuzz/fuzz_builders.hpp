// Structured messages built from fuzz bytes (FuzzedDataProvider): raw bytes rarely parse as
// the nested protobufs the server expects, so the fuzzers also build well-formed messages whose
// fields come from the input, with values chosen near the boundaries the server checks.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "rtda.pb.h"

namespace rtda::fuzz {

// What the builders need to know about the server's configuration.
struct Grid {
  double t0 = 0;
  double cycle_seconds = 43200;
  double L_m = 20.0e6;
  int N = 32;
};

// A double: mostly plausible, sometimes a value at or past a boundary.
inline double pick_special(FuzzedDataProvider& p, double plausible) {
  switch (p.ConsumeIntegralInRange<int>(0, 15)) {
    case 0:
      return std::numeric_limits<double>::quiet_NaN();
    case 1:
      return std::numeric_limits<double>::infinity();
    case 2:
      return -std::numeric_limits<double>::infinity();
    case 3:
      return 0.0;
    case 4:
      return -0.0;
    case 5:
      return std::numeric_limits<double>::max();
    case 6:
      return std::numeric_limits<double>::denorm_min();
    case 7:
      return p.ConsumeFloatingPoint<double>();
    default:
      return plausible;
  }
}

inline std::string pick_source(FuzzedDataProvider& p) {
  switch (p.ConsumeIntegralInRange<int>(0, 9)) {
    case 0:
      return "";
    case 1:
      return std::string(65, 's');
    case 2:
      return "bad source!";
    case 3:
      return p.ConsumeRandomLengthString(80);
    case 4:
      return "src-a" + std::to_string(p.ConsumeIntegralInRange<int>(0, 9));
    default:
      return "src-" + std::to_string(p.ConsumeIntegralInRange<int>(0, 3));
  }
}

// A model time in window k (−2..70 around cycle 0) or on its edges.
inline double pick_time(FuzzedDataProvider& p, const Grid& g) {
  const int k = p.ConsumeIntegralInRange<int>(-2, 70);
  const double tk = g.t0 + k * g.cycle_seconds;
  double t = tk;
  switch (p.ConsumeIntegralInRange<int>(0, 7)) {
    case 0:
      t = tk + g.cycle_seconds / 2;
      break;  // last time of window k
    case 1:
      t = tk - g.cycle_seconds / 2;
      break;  // last time of window k-1
    case 2:
      t = std::nextafter(tk - g.cycle_seconds / 2, 1e300);
      break;  // first of k
    case 3:
      t = tk + p.ConsumeFloatingPointInRange<double>(-g.cycle_seconds, g.cycle_seconds);
      break;
    default:
      break;
  }
  return pick_special(p, t);
}

inline void fill_observation(FuzzedDataProvider& p, const Grid& g, wire::Observation& o) {
  o.set_id(p.ConsumeIntegralInRange<std::uint64_t>(0, 1000));
  o.set_time_seconds(pick_time(p, g));
  o.set_level(p.ConsumeIntegralInRange<std::uint32_t>(0, 2));
  o.set_x_m(pick_special(p, p.ConsumeFloatingPointInRange<double>(0, g.L_m)));
  o.set_y_m(pick_special(p, p.ConsumeIntegralInRange<int>(0, 1) ? g.L_m : g.L_m / 3));
  o.set_value(pick_special(p, p.ConsumeFloatingPointInRange<double>(-20, 20)));
  o.set_error_sd(pick_special(p, 1.0));
  o.set_op(static_cast<wire::ObservationOperator>(p.ConsumeIntegralInRange<int>(0, 3)));
}

inline wire::ObservationBatch build_batch(FuzzedDataProvider& p, const Grid& g) {
  wire::ObservationBatch b;
  b.set_version(p.ConsumeIntegralInRange<int>(0, 15) == 0 ? wire::PROTOCOL_VERSION_UNSPECIFIED
                                                          : wire::PROTOCOL_VERSION_1);
  b.set_source(pick_source(p));
  b.set_seq(p.ConsumeIntegralInRange<int>(0, 7) == 0
                ? p.ConsumeIntegral<std::uint64_t>()
                : p.ConsumeIntegralInRange<std::uint64_t>(0, 12));
  const int messages = p.ConsumeIntegralInRange<int>(0, 4);
  for (int i = 0; i < messages; ++i)
    fill_observation(p, g, *b.add_observations());
  if (p.ConsumeBool()) {
    const int n = p.ConsumeIntegralInRange<int>(0, 6);
    auto* c = b.mutable_columns();
    for (int i = 0; i < n; ++i) {
      wire::Observation o;
      fill_observation(p, g, o);
      c->add_id(o.id());
      c->add_time_seconds(o.time_seconds());
      c->add_level(o.level());
      c->add_x_m(o.x_m());
      c->add_y_m(o.y_m());
      c->add_value(o.value());
      c->add_error_sd(o.error_sd());
      c->add_op(o.op());
    }
    // A column of another length.
    if (p.ConsumeIntegralInRange<int>(0, 7) == 0) c->add_x_m(1.0);
  }
  if (p.ConsumeIntegralInRange<int>(0, 3) == 0) {
    const int k = p.ConsumeIntegralInRange<int>(-1, 70);
    b.set_end_of_window_seconds(pick_special(
        p, g.t0 + k * g.cycle_seconds + (p.ConsumeIntegralInRange<int>(0, 7) == 0 ? 1e-3 : 0.0)));
  }
  if (p.ConsumeIntegralInRange<int>(0, 7) == 0) {
    auto* t = b.mutable_truth();
    const int k = p.ConsumeIntegralInRange<int>(-1, 70);
    t->set_time_seconds(pick_special(p, g.t0 + k * g.cycle_seconds));
    t->set_grid_n(p.ConsumeIntegralInRange<int>(0, 7) == 0 ? 16u : static_cast<std::uint32_t>(g.N));
    const int want = 2 * g.N * g.N;
    const int n = p.ConsumeIntegralInRange<int>(0, 7) == 0 ? want - 1 : want;
    const double fill = pick_special(p, 1.0);
    t->mutable_q()->Reserve(n);
    for (int i = 0; i < n; ++i)
      t->add_q(i == 0 ? fill : 0.5);
  }
  if (p.ConsumeIntegralInRange<int>(0, 7) == 0) b.set_position_query(true);
  return b;
}

}  // namespace rtda::fuzz
