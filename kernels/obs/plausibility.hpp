// Plausibility of one observation at ingest (docs/service.md, "Quality control"): the one rule
// the server applies when a batch arrives and the worker applies again when it builds the
// observations of an analysis (ObservationSpace), so the two cannot disagree.
//
// Header-only and free of HDF5 and of the configuration types: the limits are plain doubles
// (config::QcConfig::max_abs_kelvin / max_error_sd_kelvin) and the kelvin scale is the grid's
// sqg::SqgParams::kelvin_per_pv() = f theta0 / g.
//
//   linear_K (0): |value| <= max_abs_kelvin,          error_sd <= max_error_sd_kelvin   (K)
//   identity (2): |value| s <= max_abs_kelvin,        error_sd s <= max_error_sd_kelvin (q in m/s)
//   arctan   (1): |value| <= pi/2 + 10 error_sd,      error_sd <= 1
//
// Finite values and error_sd > 0 are the caller's first checks (obs::check_observation,
// obs/validity.hpp, calls this last); this function is total anyway
// (NaN, inf, error_sd <= 0 and unknown operator codes are implausible, with a reason).
#pragma once

#include <charconv>
#include <cmath>
#include <numbers>
#include <sstream>
#include <string>

namespace rtda::obs {

// The limits of qc.max_abs_kelvin / qc.max_error_sd_kelvin (defaults as config::QcConfig).
struct PlausibilityLimits {
  double max_abs_kelvin = 500.0;
  double max_error_sd_kelvin = 100.0;
};

namespace detail {
// The value as the shortest text that reads back to it ("1e+300", "0.1").
inline std::string plausibility_value(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return r.ec == std::errc() ? std::string(buf, r.ptr) : std::string("?");
}
inline std::string plausibility_reason(const char* field, double value,
                                       const std::string& expected) {
  return std::string(field) + " = " + plausibility_value(value) + ": expected " + expected;
}
inline std::string plausibility_number(double v) {
  std::ostringstream m;
  m.precision(6);
  m << v;
  return m.str();
}
}  // namespace detail

// "" when the observation is plausible, else why not, naming the field, its value and the
// allowed range, e.g. "value = 1e+300: expected |value| <= 500 K for linear_K
// (qc.max_abs_kelvin)". `op` is the ObsOperator code (0 linear_K, 1 arctan, 2 identity);
// `kelvin_per_pv` the grid's f theta0 / g (K per m/s of q).
inline std::string implausible_observation(int op, double value, double error_sd,
                                           double max_abs_kelvin, double max_error_sd_kelvin,
                                           double kelvin_per_pv) {
  using detail::plausibility_number;
  using detail::plausibility_reason;
  if (!std::isfinite(value)) return plausibility_reason("value", value, "a finite number");
  if (!(std::isfinite(error_sd) && error_sd > 0)) {
    return plausibility_reason("error_sd", error_sd, "a positive finite number");
  }
  switch (op) {
    case 0: {  // linear_K, kelvin
      if (!(std::abs(value) <= max_abs_kelvin)) {
        return plausibility_reason("value", value,
                                   "|value| <= " + plausibility_number(max_abs_kelvin) +
                                       " K for linear_K (qc.max_abs_kelvin)");
      }
      if (!(error_sd <= max_error_sd_kelvin)) {
        return plausibility_reason("error_sd", error_sd,
                                   "error_sd <= " + plausibility_number(max_error_sd_kelvin) +
                                       " K for linear_K (qc.max_error_sd_kelvin)");
      }
      return "";
    }
    case 2: {  // identity, q in m/s: the same bounds in kelvin after scaling by s
      const double s = kelvin_per_pv;
      if (!(std::isfinite(s) && s > 0)) {
        return plausibility_reason("kelvin_per_pv", s, "a positive finite scale f theta0 / g");
      }
      if (!(std::abs(value) * s <= max_abs_kelvin)) {
        return plausibility_reason("value", value,
                                   "|value| <= " + plausibility_number(max_abs_kelvin / s) +
                                       " m/s for identity (" + plausibility_number(max_abs_kelvin) +
                                       " K / " + plausibility_number(s) +
                                       " K per m/s, qc.max_abs_kelvin)");
      }
      if (!(error_sd * s <= max_error_sd_kelvin)) {
        return plausibility_reason(
            "error_sd", error_sd,
            "error_sd <= " + plausibility_number(max_error_sd_kelvin / s) + " m/s for identity (" +
                plausibility_number(max_error_sd_kelvin) + " K / " + plausibility_number(s) +
                " K per m/s, qc.max_error_sd_kelvin)");
      }
      return "";
    }
    case 1: {  // arctan(s q): within (-pi/2, pi/2), widened by 10 error_sd
      if (!(error_sd <= 1.0)) {
        return plausibility_reason("error_sd", error_sd, "error_sd <= 1 for arctan");
      }
      const double bound = std::numbers::pi / 2 + 10.0 * error_sd;
      if (!(std::abs(value) <= bound)) {
        return plausibility_reason(
            "value", value,
            "|value| <= pi/2 + 10 error_sd = " + plausibility_number(bound) + " for arctan");
      }
      return "";
    }
    default:
      return "operator = " + std::to_string(op) +
             ": expected 0 (linear_K), 1 (arctan) or 2 (identity)";
  }
}

inline std::string implausible_observation(int op, double value, double error_sd,
                                           const PlausibilityLimits& limits, double kelvin_per_pv) {
  return implausible_observation(op, value, error_sd, limits.max_abs_kelvin,
                                 limits.max_error_sd_kelvin, kelvin_per_pv);
}

// The same from anything with max_abs_kelvin and max_error_sd_kelvin members (config::QcConfig),
// without this header depending on the configuration.
template <class Qc>
requires requires(const Qc& q) {
  q.max_abs_kelvin;
  q.max_error_sd_kelvin;
}
inline std::string implausible_observation(int op, double value, double error_sd, const Qc& qc,
                                           double kelvin_per_pv) {
  return implausible_observation(op, value, error_sd, static_cast<double>(qc.max_abs_kelvin),
                                 static_cast<double>(qc.max_error_sd_kelvin), kelvin_per_pv);
}

// Which field a reason of implausible_observation() names ("value", "error_sd", "operator").
inline std::string plausibility_field(const std::string& reason) {
  const auto at = reason.find(" = ");
  return at == std::string::npos ? std::string() : reason.substr(0, at);
}

}  // namespace rtda::obs
