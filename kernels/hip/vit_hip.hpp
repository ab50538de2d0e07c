// The ViT surrogate's forward pass on a HIP device (docs/architecture.md §6): the same function as
// surrogate::Vit::forward (patch embedding, position embedding, pre-norm blocks, final norm,
// head, unpatchify, plus the input when the model predicts increments), with the ensemble
// resident on the device between the stages. Plain C++: no HIP headers.
//
// The weights are a snapshot: the constructor uploads the model's parameters once, and
// upload_weights() copies them again after the host changed them (online training updates
// the host model; forecasts then use the new weights only after the re-upload). Device
// buffers for the activations are allocated on the first forward and grown when a larger
// batch arrives, never shrunk. The device is the calling thread's current HIP device. Not
// thread-safe: one instance per thread.
#pragma once

#include <cstddef>
#include <memory>

#include "surrogate/vit.hpp"

namespace rtda::hip {

class VitForwardHip {
 public:
  // Uploads the parameters of `vit` (collect() order) and its position embedding. Throws
  // std::runtime_error when there is no usable HIP device (or the build has no HIP backend).
  explicit VitForwardHip(surrogate::Vit& vit);
  ~VitForwardHip();
  VitForwardHip(VitForwardHip&&) noexcept;
  VitForwardHip& operator=(VitForwardHip&&) noexcept;
  VitForwardHip(const VitForwardHip&) = delete;
  VitForwardHip& operator=(const VitForwardHip&) = delete;

  // Copies the current parameters of `vit` to the device; `vit` must have this model's
  // configuration (std::invalid_argument otherwise).
  void upload_weights(surrogate::Vit& vit);

  // host_in, host_out: [batch][state_size()] row-major host arrays (they may be the same).
  // Synchronous: returns with the result in host_out.
  void forward(const float* host_in, float* host_out, int batch);

  // d_in, d_out: [batch][state_size()] device arrays (they may be the same). Queued on the
  // default stream; the result is ready for later work on that stream, or after
  // nn::synchronize().
  void forward_device(const float* d_in, float* d_out, int batch);

  const surrogate::VitConfig& config() const;
  int state_size() const;
  int tokens_per_sample() const;
  // The batch the activation buffers currently hold (0 before the first forward).
  int capacity() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtda::hip
