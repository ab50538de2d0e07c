// The device memory of device_memory.hpp on the HIP runtime.
#include <hip/hip_runtime.h>

#include <atomic>
#include <stdexcept>
#include <string>

#include "hip/device_memory.hpp"

namespace rtda::hip::detail {

namespace {

void check(hipError_t err, const char* call) {
  if (err != hipSuccess)
    throw std::runtime_error(std::string("HIP: ") + call + " failed: " + hipGetErrorString(err));
}

}  // namespace

void* device_malloc(std::size_t bytes, const char* what) {
  void* p = nullptr;
  const hipError_t err = hipMalloc(&p, bytes);
  if (err != hipSuccess)
    throw std::runtime_error(std::string("HIP: hipMalloc(") + std::to_string(bytes) +
                             " bytes for " + what + ") failed: " + hipGetErrorString(err));
  return p;
}

void device_free(void* p) noexcept {
  if (p) (void)hipFree(p);  // a destructor cannot throw; hipFree only fails on a dead context
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
  check(hipMemcpy(device_dst, host_src, bytes, hipMemcpyHostToDevice), "hipMemcpy(host to device)");
  count_host_device_bytes(bytes);
}

void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) {
  if (bytes == 0) return;
  check(hipMemcpy(host_dst, device_src, bytes, hipMemcpyDeviceToHost), "hipMemcpy(device to host)");
  count_host_device_bytes(bytes);
}

void copy_on_device(void* device_dst, const void* device_src, std::size_t bytes) {
  if (bytes == 0 || device_dst == device_src) return;
  check(hipMemcpy(device_dst, device_src, bytes, hipMemcpyDeviceToDevice),
        "hipMemcpy(device to device)");
}

void fill_zero(void* device_dst, std::size_t bytes) {
  if (bytes == 0) return;
  check(hipMemset(device_dst, 0, bytes), "hipMemset");
}

void synchronize(const char* what) {
  const hipError_t err = hipDeviceSynchronize();
  if (err != hipSuccess)
    throw std::runtime_error(std::string("HIP: hipDeviceSynchronize after ") + what +
                             " failed: " + hipGetErrorString(err));
}

int multiprocessors() {
  int device = 0;
  check(hipGetDevice(&device), "hipGetDevice");
  int count = 0;
  check(hipDeviceGetAttribute(&count, hipDeviceAttributeMultiprocessorCount, device),
        "hipDeviceGetAttribute(multiprocessors)");
  return count;
}

}  // namespace rtda::hip::detail
