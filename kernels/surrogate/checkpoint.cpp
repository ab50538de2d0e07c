#include "surrogate/checkpoint.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <span>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "io/conventions.hpp"
#include "io/hdf5_file.hpp"

namespace rtda::surrogate {

namespace {

using io::Dataset;
using io::File;
using io::Hid;
using io::IoError;

constexpr std::string_view kFileKind = "surrogate";
constexpr std::string_view kTrainingGroup = "training";
constexpr std::string_view kOptimizerGroup = "optimizer";

// Root attributes that rtda writes itself, so an architecture entry may not use them.
bool is_reserved_root_attribute(std::string_view name) {
  return name == "file_kind" || name == "rtda_version" || name == "norm_mean" || name == "norm_std";
}

// io::Group opened or created by path below a file (io::Group's constructor is protected so
// that only the io layer makes groups; checkpoints need nested ones, which it does not offer).
class SubGroup : public io::Group {
 public:
  SubGroup(Hid id, std::string file_path, std::string name)
      : io::Group(std::move(id), std::move(file_path), "group \"" + name + "\"") {}
};

SubGroup open_group(const io::Group& parent, const std::string& name) {
  Hid id(H5Gopen2(parent.id(), name.c_str(), H5P_DEFAULT), H5Gclose);
  if (!id.valid()) parent.fail("group \"" + name + "\": cannot open");
  return SubGroup(std::move(id), parent.file_path(), name);
}

// Creates `path` ("a/b/c") and any missing parent, each tracking link creation order like
// the rest of rtda's files.
void ensure_group(io::Group& root, const std::string& path) {
  std::size_t end = 0;
  while (end != std::string::npos) {
    end = path.find('/', end + 1);
    const std::string prefix = path.substr(0, end);
    if (root.has(prefix)) continue;
    Hid gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
    H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    Hid id(H5Gcreate2(root.id(), prefix.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
    if (!id.valid()) root.fail("group \"" + prefix + "\": cannot create");
  }
}

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

void write_matrix(File& file, const std::string& path, const Mat& value) {
  const std::string parent = parent_of(path);
  if (!parent.empty()) ensure_group(file, parent);
  Dataset ds = file.create_dataset<float>(
      path, {static_cast<hsize_t>(value.rows()), static_cast<hsize_t>(value.cols())});
  // Row-major float32 is exactly HDF5's C order: the bytes go through unchanged.
  ds.write(std::span<const float>(value.data(), static_cast<std::size_t>(value.size())));
}

std::string shape_string(const std::vector<hsize_t>& dims) {
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i)
    s += (i ? "x" : "") + std::to_string(dims[i]);
  return s.empty() ? "scalar" : s;
}

// Paths (relative to `group_path`, "" = root) of every dataset below it.
std::set<std::string> datasets_below(const File& file, const std::string& group_path) {
  struct Visit {
    std::set<std::string> names;
  } visit;
  Hid group(H5Gopen2(file.id(), group_path.empty() ? "/" : group_path.c_str(), H5P_DEFAULT),
            H5Gclose);
  if (!group.valid()) file.fail("group \"" + group_path + "\": cannot open");
  const herr_t status = H5Lvisit(
      group.get(), H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t g, const char* name, const H5L_info_t* info, void* data) -> herr_t {
        if (info->type != H5L_TYPE_HARD) return 0;
        Hid object(H5Oopen(g, name, H5P_DEFAULT), H5Oclose);
        if (!object.valid()) return -1;
        if (H5Iget_type(object.get()) == H5I_DATASET) static_cast<Visit*>(data)->names.insert(name);
        return 0;
      },
      &visit);
  if (status < 0) file.fail("group \"" + group_path + "\": cannot list its datasets");
  return std::move(visit.names);
}

std::map<std::string, std::string> string_attributes(const io::Object& object) {
  std::map<std::string, std::string> out;
  for (const std::string& name : object.attribute_names()) {
    Hid attr(H5Aopen(object.id(), name.c_str(), H5P_DEFAULT), H5Aclose);
    Hid type(H5Aget_type(attr.get()), H5Tclose);
    if (attr.valid() && type.valid() && H5Tget_class(type.get()) == H5T_STRING)
      out[name] = object.string_attribute(name);
  }
  return out;
}

std::map<std::string, std::string> read_architecture(const File& file) {
  std::map<std::string, std::string> out = string_attributes(file);
  std::erase_if(out, [](const auto& kv) { return is_reserved_root_attribute(kv.first); });
  return out;
}

// Reads the matrices `expected[i]` at `prefix + checkpoint_path_of(names[i])` into `out`,
// appending every problem to `errors` (and reading nothing more once one is found).
struct MatrixRequest {
  std::string path;
  Eigen::Index rows;
  Eigen::Index cols;
};

std::vector<Mat> read_matrices(const File& file, const std::string& prefix,
                               const std::vector<MatrixRequest>& requests,
                               std::set<std::string> present, std::vector<std::string>& errors) {
  std::vector<std::string> missing;
  std::vector<Mat> out;
  out.reserve(requests.size());
  for (const MatrixRequest& r : requests) {
    const std::string full = prefix + r.path;
    if (present.erase(r.path) == 0) {
      missing.push_back(full);
      out.emplace_back();
      continue;
    }
    Dataset ds = file.open_dataset(full);
    const std::vector<hsize_t> dims = ds.dims();
    const std::vector<hsize_t> want = {static_cast<hsize_t>(r.rows), static_cast<hsize_t>(r.cols)};
    if (ds.type_class() != H5T_FLOAT) {
      errors.push_back(full + ": not a floating-point dataset, expected float32 " +
                       shape_string(want));
    } else if (dims != want) {
      errors.push_back(full + ": shape " + shape_string(dims) + ", expected " + shape_string(want));
    }
    if (!errors.empty()) {
      out.emplace_back();
      continue;
    }
    Mat m(r.rows, r.cols);
    const std::vector<float> values = ds.read<float>();
    std::copy(values.begin(), values.end(), m.data());
    out.push_back(std::move(m));
  }
  if (!missing.empty()) {
    std::string s = "missing: ";
    for (std::size_t i = 0; i < missing.size(); ++i)
      s += (i ? ", " : "") + missing[i];
    errors.push_back(s);
  }
  if (!present.empty()) {
    std::string s = "extra: ";
    bool first = true;
    for (const std::string& p : present) {
      s += (first ? "" : ", ") + prefix + p;
      first = false;
    }
    errors.push_back(s);
  }
  return out;
}

std::vector<MatrixRequest> requests_of(const ParameterList& params) {
  std::vector<MatrixRequest> out;
  out.reserve(params.size());
  for (const Parameter* p : params)
    out.push_back({checkpoint_path_of(p->name), p->value.rows(), p->value.cols()});
  return out;
}

void check_unique_paths(const ParameterList& params, const char* who) {
  std::set<std::string> paths;
  for (const Parameter* p : params) {
    if (p == nullptr) throw std::invalid_argument(std::string(who) + ": null parameter");
    if (!paths.insert(checkpoint_path_of(p->name)).second) {
      throw std::invalid_argument(std::string(who) + ": parameter \"" + p->name +
                                  "\" is listed twice");
    }
  }
}

}  // namespace

std::string checkpoint_path_of(const std::string& name) {
  std::string path = name;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= path.size(); ++i) {
    if (i < path.size() && path[i] == '/') {
      throw std::invalid_argument("parameter \"" + name + "\": '/' is not allowed in a name");
    }
    if (i == path.size() || path[i] == '.') {
      if (i == start) {
        throw std::invalid_argument("parameter \"" + name + "\": empty component in a dotted name");
      }
      const std::string_view component(path.data() + start, i - start);
      if (start == 0 && (component == kTrainingGroup || component == kOptimizerGroup)) {
        throw std::invalid_argument("parameter \"" + name + "\": top-level name \"" +
                                    std::string(component) + "\" is reserved in checkpoints");
      }
      if (i < path.size()) path[i] = '/';
      start = i + 1;
    }
  }
  return path;
}

void save_surrogate(const std::filesystem::path& path, const ParameterList& params,
                    const SurrogateFile& meta, const AdamW* optimizer) {
  const std::string shown = path.string();
  check_unique_paths(params, "save_surrogate");
  if (optimizer != nullptr) check_unique_paths(optimizer->parameters(), "save_surrogate");
  for (const auto& [name, value] : meta.architecture) {
    if (is_reserved_root_attribute(name)) {
      throw IoError(io::describe(shown, "attribute \"" + name + "\"",
                                 "reserved for rtda's own use, cannot be an architecture entry"));
    }
  }
  if (meta.norm_mean.size() != meta.norm_std.size()) {
    throw IoError(io::describe(shown, "attribute \"norm_std\"",
                               "has " + std::to_string(meta.norm_std.size()) +
                                   " values, expected one per norm_mean entry (" +
                                   std::to_string(meta.norm_mean.size()) + ")"));
  }

  io::StagedPath staged(path);
  {
    File file = File::create(staged.temp_path(), shown);
    io::write_file_kind(file, kFileKind);
    io::write_provenance(file, {});  // rtda_version
    for (const auto& [name, value] : meta.architecture)
      file.set_string_attribute(name, value);
    if (!meta.norm_mean.empty()) {
      file.set_array_attribute<double>("norm_mean", meta.norm_mean);
      file.set_array_attribute<double>("norm_std", meta.norm_std);
    }
    for (const Parameter* p : params)
      write_matrix(file, checkpoint_path_of(p->name), p->value);

    ensure_group(file, std::string(kTrainingGroup));
    {
      SubGroup training = open_group(file, std::string(kTrainingGroup));
      for (const auto& [name, value] : meta.provenance)
        training.set_string_attribute(name, value);
      auto write_curve = [&](const char* name, const std::vector<double>& values,
                             std::string_view units, std::string_view long_name) {
        if (values.empty()) return;
        Dataset ds = training.create_dataset<double>(name, {values.size()});
        ds.write(std::span<const double>(values));
        ds.set_units(units, long_name);
      };
      write_curve("train_loss", meta.train_loss, "1",
                  "training loss (MSE of normalised fields) per step");
      write_curve("val_rmse_K", meta.val_rmse_K, "K", "validation RMSE per evaluation");
    }

    if (optimizer != nullptr) {
      const std::string group(kOptimizerGroup);
      ensure_group(file, group);
      {
        SubGroup opt = open_group(file, group);
        const AdamWSettings& s = optimizer->settings();
        opt.set_string_attribute("algorithm", "AdamW");
        opt.set_attribute<std::int64_t>("steps", optimizer->steps());
        opt.set_attribute("lr", s.lr);
        opt.set_attribute("beta1", s.beta1);
        opt.set_attribute("beta2", s.beta2);
        opt.set_attribute("eps", s.eps);
        opt.set_attribute("weight_decay", s.weight_decay);
        opt.set_attribute("clip_norm", s.clip_norm);
        opt.set_attribute<std::int32_t>("warmup_steps", s.warmup_steps);
        opt.set_attribute<std::int32_t>("total_steps", s.total_steps);
        opt.set_attribute("min_lr_fraction", s.min_lr_fraction);
      }
      const ParameterList& op = optimizer->parameters();
      for (std::size_t i = 0; i < op.size(); ++i) {
        const std::string p = checkpoint_path_of(op[i]->name);
        write_matrix(file, group + "/m/" + p, optimizer->m()[i]);
        write_matrix(file, group + "/v/" + p, optimizer->v()[i]);
      }
    }
    file.close();
  }
  staged.commit();
}

SurrogateFile load_surrogate(const std::filesystem::path& path, const ParameterList& params,
                             AdamW* optimizer) {
  check_unique_paths(params, "load_surrogate");
  File file = File::open_read(path);
  io::require_file_kind(file, {kFileKind});

  SurrogateFile out;
  out.architecture = read_architecture(file);
  if (file.has_attribute("norm_mean")) out.norm_mean = file.array_attribute<double>("norm_mean");
  if (file.has_attribute("norm_std")) out.norm_std = file.array_attribute<double>("norm_std");
  if (file.has(kTrainingGroup)) {
    SubGroup training = open_group(file, std::string(kTrainingGroup));
    out.provenance = string_attributes(training);
    if (training.has("train_loss"))
      out.train_loss = training.open_dataset("train_loss").read<double>();
    if (training.has("val_rmse_K"))
      out.val_rmse_K = training.open_dataset("val_rmse_K").read<double>();
  }

  // Every mismatch is collected before anything is assigned, so a failed load leaves the
  // model (and optimizer) as they were and the message lists all problems at once.
  std::vector<std::string> errors;
  std::set<std::string> weights = datasets_below(file, "");
  std::erase_if(weights, [](const std::string& p) {
    const std::string_view top = std::string_view(p).substr(0, p.find('/'));
    return top == kTrainingGroup || top == kOptimizerGroup;
  });
  std::vector<Mat> values = read_matrices(file, "", requests_of(params), weights, errors);

  out.has_optimizer_state = file.has(kOptimizerGroup);
  std::int64_t steps = 0;
  std::vector<Mat> m, v;
  if (optimizer != nullptr && out.has_optimizer_state) {
    const std::string group(kOptimizerGroup);
    SubGroup opt = open_group(file, group);
    steps = opt.numeric_attribute<std::int64_t>("steps");
    if (steps < 0 || steps > std::numeric_limits<int>::max())
      opt.fail("attribute \"steps\": " + std::to_string(steps) + ", expected a step count");
    const std::vector<MatrixRequest> requests = requests_of(optimizer->parameters());
    for (auto [moment, dest] : {std::pair{"/m", &m}, std::pair{"/v", &v}}) {
      const std::string sub = group + moment;
      std::set<std::string> present;
      if (file.has(sub)) present = datasets_below(file, sub);
      *dest = read_matrices(file, sub + "/", requests, std::move(present), errors);
    }
  }

  if (!errors.empty()) {
    std::string message;
    for (const std::string& e : errors)
      message += (message.empty() ? "" : "; ") + e;
    throw IoError(io::describe(path.string(), "", message));
  }
  for (std::size_t i = 0; i < params.size(); ++i)
    params[i]->value = std::move(values[i]);
  if (optimizer != nullptr && out.has_optimizer_state)
    optimizer->set_state(static_cast<int>(steps), std::move(m), std::move(v));
  return out;
}

std::map<std::string, std::string> read_surrogate_architecture(const std::filesystem::path& path) {
  File file = File::open_read(path);
  io::require_file_kind(file, {kFileKind});
  return read_architecture(file);
}

}  // namespace rtda::surrogate
