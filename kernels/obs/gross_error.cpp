#include "obs/gross_error.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace rtda::obs {

GrossErrorResult gross_error_check(const ObservationSpace& space, std::span<const double> moments,
                                   double sigmas) {
  const std::size_t p = space.size();
  GrossErrorResult r;
  if (!(sigmas > 0)) {
    r.kept.resize(p);
    for (std::size_t o = 0; o < p; ++o)
      r.kept[o] = o;
    return r;
  }
  if (moments.size() != 2 * p) {
    throw std::invalid_argument("gross_error_check: expected " + std::to_string(2 * p) +
                                " moments, got " + std::to_string(moments.size()));
  }
  r.kept.reserve(p);
  for (std::size_t o = 0; o < p; ++o) {
    const double d = space.value()[o] - moments[o];
    const double sd = space.error_sd()[o];
    const double var = moments[p + o];
    const double bound = sigmas * std::sqrt(sd * sd + var);
    if (std::abs(d) > bound) {
      std::ostringstream m;
      m.precision(6);
      m << "innovation = " << d << " exceeds " << sigmas
        << " * sqrt(error_sd^2 + var h(x_b)) = " << sigmas << " * sqrt(" << sd << "^2 + " << var
        << ") = " << bound << " (qc.gross_error_sigmas)";
      r.refused.push_back({space.row()[o], space.id()[o], m.str(), "innovation", "gross_error"});
    } else {
      r.kept.push_back(o);
    }
  }
  return r;
}

std::vector<double> select_columns(std::span<const double> values, std::size_t p,
                                   std::span<const std::size_t> keep) {
  if (p == 0) return {};
  const std::size_t rows = values.size() / p;
  std::vector<double> out(rows * keep.size());
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < keep.size(); ++j)
      out[r * keep.size() + j] = values[r * p + keep[j]];
  return out;
}

std::vector<double> select_moments(std::span<const double> moments,
                                   std::span<const std::size_t> keep) {
  const std::size_t p = moments.size() / 2;
  std::vector<double> out(2 * keep.size());
  for (std::size_t j = 0; j < keep.size(); ++j) {
    out[j] = moments[keep[j]];
    out[keep.size() + j] = moments[p + keep[j]];
  }
  return out;
}

}  // namespace rtda::obs
