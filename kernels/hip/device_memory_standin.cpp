// device_memory.hpp without a GPU backend: every allocation and copy refuses, the counters
// read 0 and no device is visible, so code that names them (the parity tests, the device
// buffer, the device choice) still builds.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "hip/device_memory.hpp"

namespace rtda::hip::detail {
namespace {
[[noreturn]] void refuse(const std::string& what) {
  throw std::runtime_error("gpu: cannot " + what + ": " + kNoGpuBackend);
}
}  // namespace

const char* toolchain() {
  return "none";
}
int visible_devices(std::string* why_none) {
  if (why_none) *why_none = kNoGpuBackend;
  return 0;
}
DeviceDescription select_device(int index) {
  refuse("select device " + std::to_string(index));
}
void* device_malloc(std::size_t, const char* what) {
  refuse(std::string("allocate ") + what);
}
void device_free(void*) noexcept {}
void copy_to_device(void*, const void*, std::size_t) {
  refuse("copy to the device");
}
void copy_to_host(void*, const void*, std::size_t) {
  refuse("copy to the host");
}
void copy_on_device(void*, const void*, std::size_t) {
  refuse("copy on the device");
}
void fill_zero(void*, std::size_t) {
  refuse("fill device memory");
}
void synchronize(const char* what) {
  refuse(std::string("synchronise after ") + what);
}
int multiprocessors() {
  refuse("count multiprocessors");
}
std::uint64_t host_device_bytes() {
  return 0;
}
void count_host_device_bytes(std::size_t) {}
}  // namespace rtda::hip::detail
