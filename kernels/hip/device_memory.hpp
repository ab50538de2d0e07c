// Device memory of the GPU backend: allocation, copies (counted, for the residency
// diagnostics), synchronisation, an owning array, and the device queries behind
// hip/device.hpp. Plain C++ (no GPU runtime header), so both g++ code (the filters' and the
// cycle's host side) and the .hip kernels include it. Defined in device_memory.hip on HIP or
// CUDA (gpu_runtime.hpp); without a backend device_memory_standin.cpp refuses every call
// except the counters and the queries, so code that names them (the parity tests) still links.
//
// Every function throws std::runtime_error naming the toolchain, the failed call and the
// runtime's reason. Copies between host and device go through the default stream and
// synchronise with it; a copy on the device is queued like a kernel (synchronize() waits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rtda::hip::detail {

// What a kernel entry point of a build without a GPU backend throws (after naming itself).
inline constexpr const char* kNoGpuBackend =
    "this build has no GPU backend (RTDA_GPU=OFF, or neither hipcc nor nvcc was found)";

// "HIP" or "CUDA": the toolchain the kernels of this binary were built with; "none" without.
const char* toolchain();
// Devices the runtime lets this process see; 0 with `why_none` set to the runtime's reason
// (or to kNoGpuBackend) when there are none.
int visible_devices(std::string* why_none);
struct DeviceDescription {
  std::string toolchain;  // "HIP" or "CUDA"
  std::string name;       // "NVIDIA H200", "AMD Instinct MI250X", ...
  std::string arch;       // "sm_90", "gfx90a", ...
};
// Makes device `index` this thread's current device and describes it.
DeviceDescription select_device(int index);

void* device_malloc(std::size_t bytes, const char* what);
void device_free(void* p) noexcept;
void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes);
void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes);
void copy_on_device(void* device_dst, const void* device_src, std::size_t bytes);
void fill_zero(void* device_dst, std::size_t bytes);
void synchronize(const char* what);
int multiprocessors();  // compute units of the current device
// Bytes this process has copied between host and device so far, both directions: every
// copy_to_device / copy_to_host above and nn::copy_to_device / nn::copy_to_host (nn_hip.hpp)
// adds to it. The device-resident cycle reports the difference per cycle (docs/gpu.md,
// "Residency"). 0 in a build without the HIP backend.
std::uint64_t host_device_bytes();
void count_host_device_bytes(std::size_t bytes);

// An owning device array of T (trivially copyable). Empty arrays hold no allocation.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(std::size_t count, const char* what)
      : data_(count ? static_cast<T*>(device_malloc(count * sizeof(T), what)) : nullptr),
        size_(count) {}
  explicit DeviceArray(const std::vector<T>& host, const char* what)
      : DeviceArray(host.size(), what) {
    upload(host);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(o.size_) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      device_free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = o.size_;
    }
    return *this;
  }
  ~DeviceArray() { device_free(data_); }

  T* get() const { return data_; }
  std::size_t size() const { return size_; }
  void upload(const std::vector<T>& host) { copy_to_device(data_, host.data(), size_ * sizeof(T)); }
  void upload(const T* host) { copy_to_device(data_, host, size_ * sizeof(T)); }
  std::vector<T> download() const {
    std::vector<T> host(size_);
    copy_to_host(host.data(), data_, size_ * sizeof(T));
    return host;
  }
  void zero() { fill_zero(data_, size_ * sizeof(T)); }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace rtda::hip::detail
