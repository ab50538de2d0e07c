// Model time and the calendar (docs/file-formats.md, "Time"): rtda's model time is seconds
// since the run's epoch (model.epoch, an ISO 8601 UTC instant); files state it the CF way,
// as the units "seconds since <epoch>" of their time variables. Reading a file made by
// another tool converts its "<unit> since <instant>" times to seconds since the run's epoch.
//
// Accepted instants: YYYY-MM-DD, optionally followed by a 'T' or a space and hh:mm[:ss[.f]],
// then optionally 'Z', "UTC" or an offset ±hh[:mm]. Proleptic Gregorian calendar (CF's
// "standard" calendar for every date rtda can meet).
#pragma once

#include <cctype>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rtda::core {

// The default model.epoch: model time 0.
inline constexpr std::string_view kDefaultEpoch = "2000-01-01T00:00:00Z";

namespace detail {

// Days from 1970-01-01 to y-m-d, proleptic Gregorian (counted in 400-year eras).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

inline bool read_int(std::string_view s, std::size_t& at, int digits, int& out) {
  if (at + static_cast<std::size_t>(digits) > s.size()) return false;
  out = 0;
  for (int i = 0; i < digits; ++i) {
    const char c = s[at + static_cast<std::size_t>(i)];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    out = out * 10 + (c - '0');
  }
  at += static_cast<std::size_t>(digits);
  return true;
}

}  // namespace detail

// Seconds since 1970-01-01T00:00:00Z of an instant in the form above, or nothing.
inline std::optional<double> parse_instant(std::string_view s) {
  while (!s.empty() && s.front() == ' ')
    s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ')
    s.remove_suffix(1);
  std::size_t at = 0;
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!detail::read_int(s, at, 4, y) || at >= s.size() || s[at++] != '-' ||
      !detail::read_int(s, at, 2, mo) || at >= s.size() || s[at++] != '-' ||
      !detail::read_int(s, at, 2, d))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return std::nullopt;
  double fraction = 0;
  if (at < s.size() && (s[at] == 'T' || s[at] == ' ') && at + 1 < s.size() &&
      std::isdigit(static_cast<unsigned char>(s[at + 1]))) {
    ++at;
    if (!detail::read_int(s, at, 2, h) || at >= s.size() || s[at++] != ':' ||
        !detail::read_int(s, at, 2, mi))
      return std::nullopt;
    if (at < s.size() && s[at] == ':') {
      ++at;
      if (!detail::read_int(s, at, 2, sec)) return std::nullopt;
      if (at < s.size() && s[at] == '.') {
        double scale = 0.1;
        ++at;
        while (at < s.size() && std::isdigit(static_cast<unsigned char>(s[at]))) {
          fraction += scale * (s[at++] - '0');
          scale /= 10;
        }
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
  }
  while (at < s.size() && s[at] == ' ')
    ++at;
  int offset_minutes = 0;
  const std::string_view zone = s.substr(at);
  if (zone.empty() || zone == "Z" || zone == "UTC") {
  } else if (zone.front() == '+' || zone.front() == '-') {
    std::size_t z = 1;
    int oh, om = 0;
    if (!detail::read_int(zone, z, 2, oh)) return std::nullopt;
    if (z < zone.size() && zone[z] == ':') ++z;
    if (z < zone.size() && !detail::read_int(zone, z, 2, om)) return std::nullopt;
    if (z != zone.size() || oh > 23 || om > 59) return std::nullopt;
    offset_minutes = (zone.front() == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  const std::int64_t days =
      detail::days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return static_cast<double>(days * 86400 + h * 3600 + mi * 60 + sec - offset_minutes * 60) +
         fraction;
}

// The CF units of rtda's time variables for a run with this epoch.
inline std::string time_units(std::string_view epoch) {
  return "seconds since " + std::string(epoch);
}

// What the units of a time variable say: seconds per unit, and the instant of 0 (Unix
// seconds) when they are "<unit> since <instant>". Plain "s" (the units of files from before
// rtda wrote CF times) has no instant: seconds since the run's own epoch.
struct TimeAxis {
  double seconds_per_unit = 1;
  std::optional<double> origin_unix;
};

// Nothing when the units are not a time: the caller names the variable in its error.
inline std::optional<TimeAxis> parse_time_units(std::string_view units) {
  const auto unit_seconds = [](std::string_view u) -> std::optional<double> {
    for (std::string_view s : {"s", "sec", "secs", "second", "seconds"})
      if (u == s) return 1.0;
    for (std::string_view s : {"min", "mins", "minute", "minutes"})
      if (u == s) return 60.0;
    for (std::string_view s : {"h", "hr", "hrs", "hour", "hours"})
      if (u == s) return 3600.0;
    for (std::string_view s : {"d", "day", "days"})
      if (u == s) return 86400.0;
    return std::nullopt;
  };
  const std::size_t since = units.find(" since ");
  if (since == std::string_view::npos) {
    const auto scale = unit_seconds(units);
    if (!scale) return std::nullopt;
    return TimeAxis{*scale, std::nullopt};
  }
  const auto scale = unit_seconds(units.substr(0, since));
  const auto origin = parse_instant(units.substr(since + 7));
  if (!scale || !origin) return std::nullopt;
  return TimeAxis{*scale, *origin};
}

// A time value of `axis` as seconds since the epoch at Unix second `epoch_unix`.
inline double to_epoch_seconds(double value, const TimeAxis& axis, double epoch_unix) {
  const double seconds = value * axis.seconds_per_unit;
  return axis.origin_unix ? seconds + (*axis.origin_unix - epoch_unix) : seconds;
}

}  // namespace rtda::core
