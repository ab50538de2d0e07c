#include "l96/lorenz96_params.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace rtda::l96 {

void Lorenz96Params::validate() const {
  if (n < 4 || n > 1000000) {
    throw std::invalid_argument("model.l96_n = " + std::to_string(n) +
                                ": expected 4 .. 1000000 variables on the ring");
  }
  if (!std::isfinite(forcing)) {
    throw std::invalid_argument("model.l96_forcing = " + std::to_string(forcing) +
                                ": expected a finite number");
  }
  if (!(dt > 0) || !std::isfinite(dt)) {
    throw std::invalid_argument("model.l96_dt = " + std::to_string(dt) + ": expected > 0");
  }
}

}  // namespace rtda::l96
