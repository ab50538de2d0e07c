// The GPU runtime under the .hip kernels, on either toolchain: HIP (hipcc, AMD GPUs) or CUDA
// (nvcc, NVIDIA GPUs). The kernels are written in the subset the two languages share
// (__global__, __shared__, __syncthreads, atomics, kernel<<<grid, block, shared bytes,
// stream>>>(...)); the few runtime calls they make go through this header, which also owns
// the error reporting, so no .hip file names a vendor's API. HIP's runtime API mirrors
// CUDA's name for name (hipMalloc / cudaMalloc, hipMemcpyHostToDevice / ...), so one token
// paste covers both; the few places where they differ are spelled out.
//
// Included by .hip files only (hipcc or nvcc); plain C++ code reaches the device through the
// kernel-interface headers next to them.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

#if defined(__HIPCC__)
#include <hip/hip_runtime.h>
#define RTDA_GPU_API(name) hip##name
#elif defined(__CUDACC__)
#include <cuda_runtime.h>
#define RTDA_GPU_API(name) cuda##name
#else
#error "gpu_runtime.hpp is for .hip files compiled by hipcc or nvcc"
#endif

namespace rtda::gpu {

#if defined(__HIPCC__)
inline constexpr const char* kToolchain = "HIP";
#else
inline constexpr const char* kToolchain = "CUDA";
#endif

using Error = RTDA_GPU_API(Error_t);
using StreamHandle = RTDA_GPU_API(Stream_t);
inline constexpr Error kSuccess = RTDA_GPU_API(Success);

inline const char* error_string(Error err) {
  return RTDA_GPU_API(GetErrorString)(err);
}

// Throws std::runtime_error "<toolchain>: <call> failed: <the runtime's reason>".
inline void check(Error err, const char* call) {
  if (err != kSuccess)
    throw std::runtime_error(std::string(kToolchain) + ": " + call +
                             " failed: " + error_string(err));
}

// A launch queues work and reports a bad configuration through the last-error slot (reading
// it clears it); failures of the kernel itself surface at the next synchronisation.
inline Error last_error() {
  return RTDA_GPU_API(GetLastError)();
}
inline void check_launch(const char* kernel) {
  check(last_error(), kernel);
}

inline Error allocate(void** p, std::size_t bytes) {
  return RTDA_GPU_API(Malloc)(p, bytes);
}
inline Error release(void* p) {
  return RTDA_GPU_API(Free)(p);
}

enum class Direction { kHostToDevice, kDeviceToHost, kDeviceToDevice };

inline Error copy(void* dst, const void* src, std::size_t bytes, Direction direction) {
  const auto kind = direction == Direction::kHostToDevice   ? RTDA_GPU_API(MemcpyHostToDevice)
                    : direction == Direction::kDeviceToHost ? RTDA_GPU_API(MemcpyDeviceToHost)
                                                            : RTDA_GPU_API(MemcpyDeviceToDevice);
  return RTDA_GPU_API(Memcpy)(dst, src, bytes, kind);
}
inline Error zero(void* p, std::size_t bytes) {
  return RTDA_GPU_API(Memset)(p, 0, bytes);
}
inline Error synchronize_device() {
  return RTDA_GPU_API(DeviceSynchronize)();
}
inline Error synchronize_stream(StreamHandle stream) {
  return RTDA_GPU_API(StreamSynchronize)(stream);
}
inline Error device_count(int* count) {
  return RTDA_GPU_API(GetDeviceCount)(count);
}
inline Error set_device(int index) {
  return RTDA_GPU_API(SetDevice)(index);
}
inline Error current_device(int* index) {
  return RTDA_GPU_API(GetDevice)(index);
}

// Compute units (AMD) or streaming multiprocessors (NVIDIA) of a device.
inline Error multiprocessors(int device, int* count) {
#if defined(__HIPCC__)
  return hipDeviceGetAttribute(count, hipDeviceAttributeMultiprocessorCount, device);
#else
  return cudaDeviceGetAttribute(count, cudaDevAttrMultiProcessorCount, device);
#endif
}

// The device's marketing name and its instruction-set target ("gfx90a", "sm_90").
inline Error describe(int device, std::string* name, std::string* arch) {
#if defined(__HIPCC__)
  hipDeviceProp_t props{};
#else
  cudaDeviceProp props{};
#endif
  const Error err = RTDA_GPU_API(GetDeviceProperties)(&props, device);
  if (err != kSuccess) return err;
  *name = props.name;
#if defined(__HIPCC__)
  const std::string gcn = props.gcnArchName;  // "gfx90a:sramecc+:xnack-"
  *arch = gcn.substr(0, gcn.find(':'));
#else
  *arch = "sm_" + std::to_string(props.major) + std::to_string(props.minor);
#endif
  return kSuccess;
}

// Dynamic shared memory (LDS) a block of `kernel` may take, after asking for the most the
// device allows: CUDA grants 48 KiB unless a kernel opts in to more; an AMD work-group has
// its 64 KiB without asking.
template <typename Kernel>
std::size_t opt_in_dynamic_shared(Kernel kernel, std::size_t bytes) {
  int device = 0;
  check(current_device(&device), "current device");
#if defined(__HIPCC__)
  (void)kernel;
  (void)bytes;
  int most = 0;
  check(hipDeviceGetAttribute(&most, hipDeviceAttributeMaxSharedMemoryPerBlock, device),
        "hipDeviceGetAttribute(shared memory per block)");
  return static_cast<std::size_t>(most);
#else
  int most = 0;
  check(cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
        "cudaDeviceGetAttribute(opt-in shared memory per block)");
  if (bytes > 48 * 1024 && bytes <= static_cast<std::size_t>(most))
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(bytes)),
          "cudaFuncSetAttribute(dynamic shared memory)");
  return static_cast<std::size_t>(most);
#endif
}

}  // namespace rtda::gpu

#undef RTDA_GPU_API
