#include "io/checkpoint.hpp"

#include "io/fields.hpp"
#include "io/hdf5_file.hpp"

namespace rtda::io {

namespace {
constexpr const char* kSurrogateGroup = "surrogate_online";
}

void write_checkpoint(const std::filesystem::path& path, const Checkpoint& c) {
  const core::Grid grid = c.model().grid();
  if (!c.ensf_initial_spread.empty() && c.ensf_initial_spread.size() != grid.state_size()) {
    throw IoError(describe(path.string(), "variable \"ensf_initial_spread\"",
                           "has " + std::to_string(c.ensf_initial_spread.size()) +
                               " values, expected a state of " +
                               std::to_string(grid.state_size())));
  }
  StagedPath staged(path);
  write_ensemble(staged.temp_path(), c.model(), c.time_seconds, c.members, c.q, c.provenance);
  {
    File file = File::open_read_write(staged.temp_path());
    file.set_attribute("cycle", c.cycle);
    file.set_string_attribute("config_hash", c.config_hash);
    if (!c.ensf_initial_spread.empty()) {
      Dataset level = file.open_dataset("level");
      Dataset y = file.open_dataset("y");
      Dataset x = file.open_dataset("x");
      Dataset s = file.create_dataset<double>(
          "ensf_initial_spread", {hsize_t(grid.levels), hsize_t(grid.ny), hsize_t(grid.nx)});
      s.set_units(kPvUnits, "EnSF target spread of spread_target = initial");
      s.attach_scales({&level, &y, &x});
      s.write(std::span<const double>(c.ensf_initial_spread));
    }
    if (!c.surrogate_online.empty()) {
      Group g = file.create_group(kSurrogateGroup);
      for (const auto& [name, values] : c.surrogate_online.arrays)
        g.create_dataset<float>(name, {values.size()}).write(std::span<const float>(values));
      for (const auto& [name, values] : c.surrogate_online.doubles)
        g.create_dataset<double>(name, {values.size()}).write(std::span<const double>(values));
      for (const auto& [name, value] : c.surrogate_online.attributes)
        g.set_string_attribute(name, value);
    }
    file.close();
  }
  staged.commit();
}

Checkpoint read_checkpoint(const std::filesystem::path& path) {
  FieldFile f = read_fields(path);
  if (f.members < 1) {
    throw IoError(describe(path.string(), "variable \"q\"",
                           "is a single state, expected an ensemble (member, level, y, x)"));
  }
  Checkpoint c;
  c.params = f.params;
  c.l96 = f.l96;
  c.time_seconds = f.time_seconds;
  c.members = f.members;
  c.q = std::move(f.q);
  File file = File::open_read(path);
  if (!file.has_attribute("cycle")) {
    throw IoError(describe(path.string(), "attribute \"cycle\"",
                           "missing: an ensemble file, not a checkpoint"));
  }
  c.cycle = file.numeric_attribute<std::int64_t>("cycle");
  if (file.has_attribute("config_hash")) c.config_hash = file.string_attribute("config_hash");
  if (file.has("ensf_initial_spread")) {
    Dataset s = file.open_dataset("ensf_initial_spread");
    const auto d = s.dims();
    const core::Grid g = c.model().grid();
    if (d != std::vector<hsize_t>{hsize_t(g.levels), hsize_t(g.ny), hsize_t(g.nx)})
      s.fail("expected shape (level, y, x) = (" + std::to_string(g.levels) + ", " +
             std::to_string(g.ny) + ", " + std::to_string(g.nx) + ")");
    c.ensf_initial_spread = s.read<double>();
  }
  if (file.has(kSurrogateGroup)) {
    const Group g = file.open_group(kSurrogateGroup);
    for (const std::string& name : g.dataset_names()) {
      Dataset d = g.open_dataset(name);
      if (d.rank() != 1) d.fail("expected a 1-D array");
      if (d.type_class() != H5T_FLOAT) d.fail("expected floating-point values");
      if (H5Tget_size(Hid(H5Dget_type(d.id()), H5Tclose).get()) == sizeof(float))
        c.surrogate_online.arrays[name] = d.read<float>();
      else
        c.surrogate_online.doubles[name] = d.read<double>();
    }
    for (const std::string& name : g.attribute_names())
      c.surrogate_online.attributes[name] = g.string_attribute(name);
  }
  c.provenance = std::move(f.provenance);
  return c;
}

}  // namespace rtda::io
