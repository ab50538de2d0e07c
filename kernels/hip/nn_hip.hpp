// The HIP kernels of the ViT surrogate's forward pass (docs/architecture.md §6), behind a plain C++
// interface (no HIP headers here): device memory, a batched tiled SGEMM with a bias / GELU /
// residual epilogue, row-wise layer norm and softmax, GELU, residual add, multi-head attention,
// and the patch <-> state maps. The element arithmetic is surrogate/nn_math.hpp, shared with
// the CPU layers; tests/hip/nn_hip_test.cpp holds every kernel against the CPU path.
//
// Conventions: float32, row-major, all pointers are device pointers unless named host_*.
// Every entry point validates its arguments (std::invalid_argument naming the function and
// the value), launches on `stream` (nullptr: the default stream) without waiting for the
// kernel, and checks the launch; any failing HIP call throws std::runtime_error naming the
// call and hipGetErrorString. Errors of a kernel's execution surface at the next synchronising
// call (copy_to_host, synchronize). The device is the calling thread's current HIP device
// (rtda::device::choose selects it).
// In a build without the HIP backend (RTDA_HIP=OFF) every function throws std::runtime_error.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtda::hip::nn {

// An opaque hipStream_t; nullptr is the default stream.
using Stream = void*;

// ---------------------------------------------------------------------------- Device memory

// `count` floats of device memory (nullptr for 0); free with device_free.
float* device_alloc(std::size_t count);
// Never throws (destructors call it); a failure is reported on stderr.
void device_free(float* device_ptr) noexcept;
// Synchronous copies of `count` floats.
void copy_to_device(float* device_dst, const float* host_src, std::size_t count);
void copy_to_host(float* host_dst, const float* device_src, std::size_t count);
void copy_on_device(float* device_dst, const float* device_src, std::size_t count);
// Waits for all work queued on `stream`.
void synchronize(Stream stream = nullptr);

// Owning device array of floats (move-only).
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(std::size_t count);
  ~DeviceArray();
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& other) noexcept;
  DeviceArray& operator=(DeviceArray&& other) noexcept;

  float* data() { return data_; }
  const float* data() const { return data_; }
  std::size_t size() const { return size_; }
  // Copies size() floats from / to the host.
  void upload(const float* host_src);
  void download(float* host_dst) const;

 private:
  float* data_ = nullptr;
  std::size_t size_ = 0;
};

// -------------------------------------------------------------------------------- Kernels

// Where the matrices of a batch lie: matrix (o, i) of a batch_outer x batch_inner batch starts
// at o * outer + i * inner elements from the base pointer, and its rows are `ld` apart.
struct Layout {
  std::int64_t ld = 0;
  std::int64_t outer = 0;
  std::int64_t inner = 0;
};

// C = gelu?(alpha A op(B) + bias) + R for every matrix of the batch, with A m x k, op(B) k x n
// (B is stored k x n, or n x k when transpose_b), C and R m x n; bias [n] is added to every
// row. bias and residual may be nullptr. The residual may be C itself (same pointer and
// layout: an in-place residual add); no other operands may overlap C.
struct GemmArgs {
  int m = 0;
  int n = 0;
  int k = 0;
  int batch_outer = 1;
  int batch_inner = 1;
  const float* a = nullptr;
  Layout a_layout;
  const float* b = nullptr;
  Layout b_layout;
  bool transpose_b = false;
  float* c = nullptr;
  Layout c_layout;
  float alpha = 1.0f;
  const float* bias = nullptr;
  bool gelu = false;
  const float* residual = nullptr;
  Layout residual_layout;
};
void gemm(const GemmArgs& args, Stream stream = nullptr);

// y = x W + b for a stacked batch x [rows][in] and a Linear's W [in][out], b [1][out]
// (surrogate::Linear::forward), optionally followed by GELU and/or plus a residual [rows][out]
// (which may be y).
void linear(const float* x, int rows, int in, const float* weight, const float* bias, int out,
            float* y, bool gelu = false, const float* residual = nullptr, Stream stream = nullptr);

// Per-row layer norm of x [rows][cols] into y (y may be x), eps as surrogate::LayerNorm.
void layer_norm(const float* x, float* y, const float* gamma, const float* beta, std::int64_t rows,
                int cols, float eps, Stream stream = nullptr);

// y = gelu(x) elementwise (y may be x).
void gelu(const float* x, float* y, std::int64_t count, Stream stream = nullptr);

// y += x elementwise.
void add_in_place(float* y, const float* x, std::int64_t count, Stream stream = nullptr);

// In place, each of `rows` rows of `cols` scores: softmax(scale (s - max s)).
void softmax_rows(float* scores, std::int64_t rows, int cols, float scale, Stream stream = nullptr);

// Multi-head self-attention core of surrogate::MultiHeadSelfAttention: from qkv [B T][3 dim]
// (q | k | v, head h in columns [h dh, (h+1) dh) of each third, dh = dim / heads) to the
// concatenated heads out [B T][dim]: out_sh = softmax(q_sh k_sh^T / sqrt(dh)) v_sh.
// `scores` is a workspace of attention_workspace_size(...) floats.
std::size_t attention_workspace_size(int batch, int tokens, int heads);
void attention(const float* qkv, float* scores, float* out, int batch, int tokens, int dim,
               int heads, Stream stream = nullptr);

// States [B][2 N^2] <-> patches [B T][2 p^2] (surrogate::nn::patch_state_index).
// unpatchify adds `residual` [B][2 N^2] (nullptr: none; may be `states`) to the result.
void patchify(const float* states, float* patches, int batch, int grid_n, int patch,
              Stream stream = nullptr);
void unpatchify(const float* patches, const float* residual, float* states, int batch, int grid_n,
                int patch, Stream stream = nullptr);

}  // namespace rtda::hip::nn
