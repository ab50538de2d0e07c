// Numbers in messages: every digit a double holds (%.17g), so an error names the exact value
// that was refused.
#pragma once

#include <cstdio>
#include <string>

namespace rtda::core {

inline std::string format_double(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace rtda::core
