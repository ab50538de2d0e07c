#include "hip/vit_hip.hpp"

#include <climits>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "hip/device.hpp"
#include "hip/nn_hip.hpp"
#include "surrogate/nn_math.hpp"

namespace rtda::hip {

namespace {

using surrogate::Parameter;
using surrogate::ParameterList;
using surrogate::Vit;
using surrogate::VitConfig;

// Vit::collect order: patch_embed (weight, bias), then per block these twelve, then norm and
// head (weight, bias each).
enum BlockParameter {
  kNorm1Weight,
  kNorm1Bias,
  kQkvWeight,
  kQkvBias,
  kProjWeight,
  kProjBias,
  kNorm2Weight,
  kNorm2Bias,
  kFc1Weight,
  kFc1Bias,
  kFc2Weight,
  kFc2Bias,
  kPerBlock
};
constexpr int kFirstBlock = 2;

struct Expected {
  std::string name;
  long long rows;
  long long cols;
};

// The parameter list a Vit of this configuration collects, by name and shape: the device
// copy relies on it, so a change of the model's layout fails here instead of computing
// nonsense.
std::vector<Expected> expected_parameters(const VitConfig& c) {
  const long long d = c.dim;
  const long long pd = 2LL * c.patch * c.patch;
  const long long hidden = static_cast<long long>(c.mlp_ratio) * d;
  std::vector<Expected> e = {{"patch_embed.weight", pd, d}, {"patch_embed.bias", 1, d}};
  for (int b = 0; b < c.depth; ++b) {
    const std::string p = "blocks." + std::to_string(b) + ".";
    e.push_back({p + "norm1.weight", 1, d});
    e.push_back({p + "norm1.bias", 1, d});
    e.push_back({p + "attn.qkv.weight", d, 3 * d});
    e.push_back({p + "attn.qkv.bias", 1, 3 * d});
    e.push_back({p + "attn.proj.weight", d, d});
    e.push_back({p + "attn.proj.bias", 1, d});
    e.push_back({p + "norm2.weight", 1, d});
    e.push_back({p + "norm2.bias", 1, d});
    e.push_back({p + "mlp.fc1.weight", d, hidden});
    e.push_back({p + "mlp.fc1.bias", 1, hidden});
    e.push_back({p + "mlp.fc2.weight", hidden, d});
    e.push_back({p + "mlp.fc2.bias", 1, d});
  }
  e.push_back({"norm.weight", 1, d});
  e.push_back({"norm.bias", 1, d});
  e.push_back({"head.weight", d, pd});
  e.push_back({"head.bias", 1, pd});
  return e;
}

bool same_shape(const VitConfig& a, const VitConfig& b) {
  return a.grid_n == b.grid_n && a.patch == b.patch && a.dim == b.dim && a.depth == b.depth &&
         a.heads == b.heads && a.mlp_ratio == b.mlp_ratio &&
         a.predict_increment == b.predict_increment;
}

ParameterList checked_parameters(Vit& vit) {
  ParameterList params;
  vit.collect(params);
  const std::vector<Expected> expected = expected_parameters(vit.config());
  if (params.size() != expected.size()) {
    throw std::logic_error("VitForwardHip: the Vit collects " + std::to_string(params.size()) +
                           " parameters, expected " + std::to_string(expected.size()));
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Parameter& p = *params[i];
    const Expected& e = expected[i];
    if (p.name != e.name || p.value.rows() != e.rows || p.value.cols() != e.cols) {
      throw std::logic_error("VitForwardHip: parameter " + std::to_string(i) + " is '" + p.name +
                             "' [" + std::to_string(p.value.rows()) + "][" +
                             std::to_string(p.value.cols()) + "], expected '" + e.name + "' [" +
                             std::to_string(e.rows) + "][" + std::to_string(e.cols) + "]");
    }
  }
  return params;
}

}  // namespace

struct VitForwardHip::Impl {
  VitConfig config;
  int tokens = 0;
  int patch_dim = 0;
  int hidden = 0;
  int state_size = 0;

  std::vector<nn::DeviceArray> params;  // Vit::collect order
  nn::DeviceArray pos_embed;            // [tokens][dim]

  // Activations for `capacity` samples (stacked batches, rows = samples x tokens).
  int capacity = 0;
  nn::DeviceArray staging;   // [B][state]: forward()'s input and output
  nn::DeviceArray patches;   // [B T][patch_dim]: patchified input, later the head's output
  nn::DeviceArray residual;  // [B T][dim]: the transformer's residual stream h
  nn::DeviceArray normed;    // [B T][dim]: layer-norm outputs
  nn::DeviceArray qkv;       // [B T][3 dim]
  nn::DeviceArray scores;    // [B heads T][T]
  nn::DeviceArray heads;     // [B T][dim]: concatenated attention heads
  nn::DeviceArray mlp;       // [B T][mlp_ratio dim]: GELU(fc1)

  const float* param(int i) const { return params[static_cast<std::size_t>(i)].data(); }
  const float* block_param(int block, BlockParameter which) const {
    return param(kFirstBlock + block * kPerBlock + which);
  }

  void upload(Vit& vit) {
    const ParameterList list = checked_parameters(vit);
    if (params.empty()) {
      for (const Parameter* p : list)
        params.emplace_back(static_cast<std::size_t>(p->value.size()));
      pos_embed = nn::DeviceArray(static_cast<std::size_t>(vit.position_embedding().size()));
    }
    for (std::size_t i = 0; i < list.size(); ++i)
      params[i].upload(list[i]->value.data());
    pos_embed.upload(vit.position_embedding().data());
  }

  void ensure_capacity(int batch) {
    if (batch <= capacity) return;
    if (static_cast<long long>(batch) * tokens > INT_MAX) {
      throw std::invalid_argument("VitForwardHip: batch " + std::to_string(batch) + " of " +
                                  std::to_string(tokens) + " tokens exceeds 2^31 token rows");
    }
    const std::size_t b = static_cast<std::size_t>(batch);
    const std::size_t rows = b * static_cast<std::size_t>(tokens);
    const std::size_t dim = static_cast<std::size_t>(config.dim);
    // Free the old buffers first, so that growing never holds both sizes at once.
    for (nn::DeviceArray* a : {&staging, &patches, &residual, &normed, &qkv, &scores, &heads, &mlp})
      *a = nn::DeviceArray();
    capacity = 0;
    staging = nn::DeviceArray(b * static_cast<std::size_t>(state_size));
    patches = nn::DeviceArray(rows * static_cast<std::size_t>(patch_dim));
    residual = nn::DeviceArray(rows * dim);
    normed = nn::DeviceArray(rows * dim);
    qkv = nn::DeviceArray(rows * 3 * dim);
    scores = nn::DeviceArray(nn::attention_workspace_size(batch, tokens, config.heads));
    heads = nn::DeviceArray(rows * dim);
    mlp = nn::DeviceArray(rows * static_cast<std::size_t>(hidden));
    capacity = batch;
  }

  void forward_device(const float* d_in, float* d_out, int batch);
};

void VitForwardHip::Impl::forward_device(const float* d_in, float* d_out, int batch) {
  const VitConfig& c = config;
  const int rows = batch * tokens;
  const int dim = c.dim;
  const float eps = surrogate::nn::kLayerNormEps;  // as every LayerNorm of the Vit

  nn::patchify(d_in, patches.data(), batch, c.grid_n, c.patch);

  // h = patches W + b + position embedding: one product per sample, so the [T][dim] position
  // embedding is the residual operand of every sample (batch stride 0).
  nn::GemmArgs embed;
  embed.m = tokens;
  embed.n = dim;
  embed.k = patch_dim;
  embed.batch_outer = batch;
  embed.a = patches.data();
  embed.a_layout = {patch_dim, static_cast<std::int64_t>(tokens) * patch_dim, 0};
  embed.b = param(0);
  embed.b_layout = {dim, 0, 0};
  embed.c = residual.data();
  embed.c_layout = {dim, static_cast<std::int64_t>(tokens) * dim, 0};
  embed.bias = param(1);
  embed.residual = pos_embed.data();
  embed.residual_layout = {dim, 0, 0};
  nn::gemm(embed);

  float* h = residual.data();
  for (int b = 0; b < c.depth; ++b) {
    // h = h + proj(attention(qkv(norm1(h))))
    nn::layer_norm(h, normed.data(), block_param(b, kNorm1Weight), block_param(b, kNorm1Bias), rows,
                   dim, eps);
    nn::linear(normed.data(), rows, dim, block_param(b, kQkvWeight), block_param(b, kQkvBias),
               3 * dim, qkv.data());
    nn::attention(qkv.data(), scores.data(), heads.data(), batch, tokens, dim, c.heads);
    nn::linear(heads.data(), rows, dim, block_param(b, kProjWeight), block_param(b, kProjBias), dim,
               h, /*gelu=*/false, /*residual=*/h);
    // h = h + fc2(gelu(fc1(norm2(h))))
    nn::layer_norm(h, normed.data(), block_param(b, kNorm2Weight), block_param(b, kNorm2Bias), rows,
                   dim, eps);
    nn::linear(normed.data(), rows, dim, block_param(b, kFc1Weight), block_param(b, kFc1Bias),
               hidden, mlp.data(), /*gelu=*/true);
    nn::linear(mlp.data(), rows, hidden, block_param(b, kFc2Weight), block_param(b, kFc2Bias), dim,
               h, /*gelu=*/false, /*residual=*/h);
  }

  const int last = kFirstBlock + c.depth * kPerBlock;  // norm.weight
  nn::layer_norm(h, normed.data(), param(last), param(last + 1), rows, dim, eps);
  nn::linear(normed.data(), rows, dim, param(last + 2), param(last + 3), patch_dim, patches.data());
  nn::unpatchify(patches.data(), c.predict_increment ? d_in : nullptr, d_out, batch, c.grid_n,
                 c.patch);
}

VitForwardHip::VitForwardHip(Vit& vit) : impl_(std::make_unique<Impl>()) {
  if (vit.config().embedding != surrogate::PatchEmbedding::kJoint) {
    throw std::invalid_argument(
        "VitForwardHip: surrogate.embedding = \"" +
        std::string(surrogate::kPatchEmbeddingNames.name(vit.config().embedding)) +
        "\" is not on the HIP backend yet (only \"joint\"); run this model on the CPU "
        "(--device cpu)");
  }
  std::string why;
  if (device::gpu_device_count(&why) == 0) {
    throw std::runtime_error("VitForwardHip: no usable HIP device (" + why + ")");
  }
  Impl& m = *impl_;
  m.config = vit.config();
  m.tokens = vit.tokens_per_sample();
  m.patch_dim = 2 * m.config.patch * m.config.patch;
  m.hidden = m.config.mlp_ratio * m.config.dim;
  m.state_size = vit.state_size();
  m.upload(vit);
}

VitForwardHip::~VitForwardHip() = default;
VitForwardHip::VitForwardHip(VitForwardHip&&) noexcept = default;
VitForwardHip& VitForwardHip::operator=(VitForwardHip&&) noexcept = default;

void VitForwardHip::upload_weights(Vit& vit) {
  if (!same_shape(vit.config(), impl_->config)) {
    throw std::invalid_argument(
        "VitForwardHip::upload_weights: the model's configuration differs from the one "
        "uploaded at construction (grid, patch, dim, depth, heads, mlp_ratio and "
        "predict_increment must match)");
  }
  impl_->upload(vit);
}

void VitForwardHip::forward(const float* host_in, float* host_out, int batch) {
  if (batch <= 0 || host_in == nullptr || host_out == nullptr) {
    throw std::invalid_argument("VitForwardHip::forward: batch " + std::to_string(batch) +
                                " (expected >= 1) or a null host pointer");
  }
  Impl& m = *impl_;
  m.ensure_capacity(batch);
  const std::size_t count = static_cast<std::size_t>(batch) * m.state_size;
  nn::copy_to_device(m.staging.data(), host_in, count);
  m.forward_device(m.staging.data(), m.staging.data(), batch);
  nn::copy_to_host(host_out, m.staging.data(), count);  // waits for the forward pass
}

void VitForwardHip::forward_device(const float* d_in, float* d_out, int batch) {
  if (batch <= 0 || d_in == nullptr || d_out == nullptr) {
    throw std::invalid_argument("VitForwardHip::forward_device: batch " + std::to_string(batch) +
                                " (expected >= 1) or a null device pointer");
  }
  impl_->ensure_capacity(batch);
  impl_->forward_device(d_in, d_out, batch);
}

const VitConfig& VitForwardHip::config() const {
  return impl_->config;
}

int VitForwardHip::state_size() const {
  return impl_->state_size;
}

int VitForwardHip::tokens_per_sample() const {
  return impl_->tokens;
}

int VitForwardHip::capacity() const {
  return impl_->capacity;
}

}  // namespace rtda::hip
