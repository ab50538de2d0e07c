// The device memory of device_memory.hpp, and the device queries of device.hpp, on the GPU
// runtime (gpu_runtime.hpp: HIP or CUDA).

#include <atomic>
#include <stdexcept>
#include <string>

#include "hip/device_memory.hpp"
#include "hip/gpu_runtime.hpp"

namespace rtda::hip::detail {

using gpu::check;

void* device_malloc(std::size_t bytes, const char* what) {
  void* p = nullptr;
  const gpu::Error err = gpu::allocate(&p, bytes);
  if (err != gpu::kSuccess)
    throw std::runtime_error(std::string(gpu::kToolchain) + ": allocating " +
                             std::to_string(bytes) + " bytes for " + what +
                             " failed: " + gpu::error_string(err));
  return p;
}

void device_free(void* p) noexcept {
  if (p) (void)gpu::release(p);  // a destructor cannot throw; freeing fails only on a dead context
}

namespace {
std::atomic<std::uint64_t> transferred_bytes{0};
}  // namespace

std::uint64_t host_device_bytes() {
  return transferred_bytes.load(std::memory_order_relaxed);
}

void count_host_device_bytes(std::size_t bytes) {
  transferred_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) {
  if (bytes == 0) return;
  check(gpu::copy(device_dst, host_src, bytes, gpu::Direction::kHostToDevice),
        "copy host to device");
  count_host_device_bytes(bytes);
}

void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) {
  if (bytes == 0) return;
  check(gpu::copy(host_dst, device_src, bytes, gpu::Direction::kDeviceToHost),
        "copy device to host");
  count_host_device_bytes(bytes);
}

void copy_on_device(void* device_dst, const void* device_src, std::size_t bytes) {
  if (bytes == 0 || device_dst == device_src) return;
  check(gpu::copy(device_dst, device_src, bytes, gpu::Direction::kDeviceToDevice),
        "copy device to device");
}

void fill_zero(void* device_dst, std::size_t bytes) {
  if (bytes == 0) return;
  check(gpu::zero(device_dst, bytes), "memset");
}

void synchronize(const char* what) {
  const gpu::Error err = gpu::synchronize_device();
  if (err != gpu::kSuccess)
    throw std::runtime_error(std::string(gpu::kToolchain) + ": device synchronisation after " +
                             what + " failed: " + gpu::error_string(err));
}

int multiprocessors() {
  int device = 0;
  check(gpu::current_device(&device), "current device");
  int count = 0;
  check(gpu::multiprocessors(device, &count), "multiprocessor count");
  return count;
}

int visible_devices(std::string* why_none) {
  int count = 0;
  const gpu::Error err = gpu::device_count(&count);
  if (err != gpu::kSuccess) {
    if (why_none) *why_none = gpu::error_string(err);
    return 0;
  }
  if (count == 0 && why_none)
    *why_none = std::string("the ") + gpu::kToolchain + " runtime sees no device";
  return count;
}

DeviceDescription select_device(int index) {
  check(gpu::set_device(index), ("selecting device " + std::to_string(index)).c_str());
  DeviceDescription d;
  d.toolchain = gpu::kToolchain;
  if (gpu::describe(index, &d.name, &d.arch) != gpu::kSuccess) d.name = "unnamed device";
  return d;
}

const char* toolchain() {
  return gpu::kToolchain;
}

}  // namespace rtda::hip::detail
