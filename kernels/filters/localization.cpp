// The taper and distance functions are inline in localization.hpp (LETKF's inner loop).
#include "filters/localization.hpp"

namespace rtda::filters {

double vertical_localization_factor(double radius_km, double vertical_distance_km) {
  return gaspari_cohn(2.0 * vertical_distance_km / radius_km);
}

}  // namespace rtda::filters
