// device_memory.hpp without the HIP backend: every allocation and copy refuses, the counters
// read 0, so code that names them (the parity tests, the device buffer) still builds.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "hip/device_memory.hpp"

namespace rtda::hip::detail {
void* device_malloc(std::size_t, const char* what) {
  throw std::runtime_error(std::string("hip: cannot allocate ") + what +
                           ": this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
void device_free(void*) noexcept {}
void copy_to_device(void*, const void*, std::size_t) {
  throw std::runtime_error("hip: this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
void copy_to_host(void*, const void*, std::size_t) {
  throw std::runtime_error("hip: this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
void copy_on_device(void*, const void*, std::size_t) {
  throw std::runtime_error("hip: this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
void fill_zero(void*, std::size_t) {
  throw std::runtime_error("hip: this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
void synchronize(const char*) {
  throw std::runtime_error("hip: this build has no HIP backend (RTDA_HIP=OFF or no hipcc)");
}
std::uint64_t host_device_bytes() {
  return 0;
}
void count_host_device_bytes(std::size_t) {}
}  // namespace rtda::hip::detail
