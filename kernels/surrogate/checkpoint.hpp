// HDF5 checkpoints of the ViT surrogate (docs/science.md §5): weights, the normalisation, the
// architecture needed to rebuild the model, training provenance and, for resuming, the AdamW
// state. Layout (readable with h5py; rtda_io conventions):
//   /                      file_kind = "surrogate", rtda_version, one string attribute per
//                          architecture entry, norm_mean and norm_std (float64[level])
//   /blocks/3/attn/qkv/weight   float32 [rows][cols], one per parameter: the dotted name
//                               "blocks.3.attn.qkv.weight" becomes groups + dataset
//   /training              string attributes (provenance); optional float64 datasets
//                          train_loss[step] and val_rmse_K[evaluation]
//   /optimizer             (when saved with an optimizer) attribute steps (int64), the
//                          settings as float64/int32 attributes, moments m/<path> and v/<path>
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "surrogate/optimizer.hpp"
#include "surrogate/tensor.hpp"

namespace rtda::surrogate {

struct SurrogateFile {
  // How to rebuild the model, e.g. {"grid_n", "64"}, {"patch", "4"}, {"width", "128"}; root
  // string attributes. The names file_kind, rtda_version, norm_mean and norm_std are taken.
  std::map<std::string, std::string> architecture;
  // Per-level normalisation z = (q - mean) / std, m s-1; root attributes (omitted when empty).
  std::vector<double> norm_mean, norm_std;
  // Training data, seed, steps, final losses, ...: string attributes of the "training" group.
  std::map<std::string, std::string> provenance;
  // Learning curves (omitted when empty): training loss per step, validation RMSE in K.
  std::vector<double> train_loss, val_rmse_K;
  // Set by load_surrogate: the file holds optimizer state (ignored by save_surrogate).
  bool has_optimizer_state = false;
};

// "blocks.3.attn.qkv.weight" -> "blocks/3/attn/qkv/weight". Throws std::invalid_argument for
// a name that cannot be a checkpoint path (empty components, '/', top level "training" or
// "optimizer").
std::string checkpoint_path_of(const std::string& parameter_name);

// Writes `path` through a temporary sibling renamed on success, so an interrupted save never
// leaves a truncated checkpoint under the final name. With `optimizer`, its moments and step
// count are saved too (their names come from the optimizer's own parameter list).
void save_surrogate(const std::filesystem::path& path, const ParameterList& params,
                    const SurrogateFile& file, const AdamW* optimizer = nullptr);

// Fills every parameter's value. Fails (io::IoError) without changing anything, naming the
// file and EVERY parameter that is missing, extra or of the wrong shape, e.g.
//   file "vit.h5": blocks/3/attn/qkv/weight: shape 128x384, expected 64x192; missing: head/bias
// With `optimizer`, its state is restored when the file holds one (has_optimizer_state);
// a mismatch of the moments fails the same way.
SurrogateFile load_surrogate(const std::filesystem::path& path, const ParameterList& params,
                             AdamW* optimizer = nullptr);

// The architecture attributes alone, to build the model before load_surrogate.
std::map<std::string, std::string> read_surrogate_architecture(const std::filesystem::path& path);

}  // namespace rtda::surrogate
