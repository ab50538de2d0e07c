// The surrogate's HIP kernels in a build without the HIP backend (RTDA_HIP=OFF or no hipcc):
// every entry point of nn_hip.hpp exists, so callers and tests link, and throws
// std::runtime_error saying why. With the backend on, nn_hip.hip defines them instead (and
// CMake does not compile this file).
#include <stdexcept>
#include <string>

#include "hip/device_memory.hpp"
#include "hip/nn_hip.hpp"

#if RTDA_HAVE_GPU
#error "nn_hip.cpp is the no-GPU stand-in; with a GPU backend nn_hip.hip defines these"
#endif

namespace rtda::hip::nn {

namespace {
[[noreturn]] void no_backend(const char* function) {
  throw std::runtime_error(std::string(function) + ": " + detail::kNoGpuBackend);
}
}  // namespace

float* device_alloc(std::size_t count) {
  if (count == 0) return nullptr;
  no_backend("rtda::hip::nn::device_alloc");
}
void device_free(float* /*device_ptr*/) noexcept {}
void copy_to_device(float*, const float*, std::size_t) {
  no_backend("rtda::hip::nn::copy_to_device");
}
void copy_to_host(float*, const float*, std::size_t) {
  no_backend("rtda::hip::nn::copy_to_host");
}
void copy_on_device(float*, const float*, std::size_t) {
  no_backend("rtda::hip::nn::copy_on_device");
}
void synchronize(Stream) {
  no_backend("rtda::hip::nn::synchronize");
}

DeviceArray::DeviceArray(std::size_t count) : data_(device_alloc(count)), size_(count) {}
DeviceArray::~DeviceArray() = default;
DeviceArray::DeviceArray(DeviceArray&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}
DeviceArray& DeviceArray::operator=(DeviceArray&& other) noexcept {
  data_ = other.data_;
  size_ = other.size_;
  other.data_ = nullptr;
  other.size_ = 0;
  return *this;
}
void DeviceArray::upload(const float*) {
  no_backend("rtda::hip::nn::DeviceArray::upload");
}
void DeviceArray::download(float*) const {
  no_backend("rtda::hip::nn::DeviceArray::download");
}

void gemm(const GemmArgs&, Stream) {
  no_backend("rtda::hip::nn::gemm");
}
void linear(const float*, int, int, const float*, const float*, int, float*, bool, const float*,
            Stream) {
  no_backend("rtda::hip::nn::linear");
}
void layer_norm(const float*, float*, const float*, const float*, std::int64_t, int, float,
                Stream) {
  no_backend("rtda::hip::nn::layer_norm");
}
void gelu(const float*, float*, std::int64_t, Stream) {
  no_backend("rtda::hip::nn::gelu");
}
void add_in_place(float*, const float*, std::int64_t, Stream) {
  no_backend("rtda::hip::nn::add_in_place");
}
void softmax_rows(float*, std::int64_t, int, float, Stream) {
  no_backend("rtda::hip::nn::softmax_rows");
}
std::size_t attention_workspace_size(int batch, int tokens, int heads) {
  return static_cast<std::size_t>(batch) * heads * tokens * tokens;
}
void attention(const float*, float*, float*, int, int, int, int, Stream) {
  no_backend("rtda::hip::nn::attention");
}
void patchify(const float*, float*, int, int, int, Stream) {
  no_backend("rtda::hip::nn::patchify");
}
void unpatchify(const float*, const float*, float*, int, int, int, Stream) {
  no_backend("rtda::hip::nn::unpatchify");
}

}  // namespace rtda::hip::nn
