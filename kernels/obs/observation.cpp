#include "obs/observation.hpp"

namespace rtda::obs {

void ObservationSet::push_back(const Observation& o) {
  time_seconds.push_back(o.time_seconds);
  level.push_back(o.level);
  x_m.push_back(o.x_m);
  y_m.push_back(o.y_m);
  value.push_back(o.value);
  error_sd.push_back(o.error_sd);
  op.push_back(o.op);
  id.push_back(o.id);
}

Observation ObservationSet::at(std::size_t i) const {
  return Observation{time_seconds.at(i), level.at(i),    x_m.at(i), y_m.at(i),
                     value.at(i),        error_sd.at(i), op.at(i),  id.at(i)};
}

}  // namespace rtda::obs
