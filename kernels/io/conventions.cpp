#include "io/conventions.hpp"

#include <array>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <vector>

#ifndef RTDA_VERSION_STRING
#define RTDA_VERSION_STRING "unknown"
#endif

namespace rtda::io {

namespace {

constexpr std::array kReserved = {
    "N",
    "L",
    "H",
    "U",
    "f",
    "nsq",
    "g",
    "theta0",
    "tdiab",
    "ekman_r",
    "diff_order",
    "diff_efold",
    "dt",
    "symmetric",
    "dealias",
    "advection",
    "dynamics",
    "model_kind",
    "l96_n",
    "l96_forcing",
    "l96_dt",
    "file_kind",
    "time_seconds",
    "experiment",
    "seed",
    "cycle",
    "config_hash",
    "Conventions",
    "featureType",
};

}  // namespace

bool is_reserved_attribute(std::string_view name) {
  for (std::string_view r : kReserved) {
    if (r == name) return true;
  }
  return false;
}

void write_model_attributes(Object& root, const FieldModel& m) {
  if (m.l96) {
    root.set_string_attribute("model_kind", "lorenz96");
    root.set_attribute<std::int32_t>("l96_n", m.l96->n);
    root.set_attribute("l96_forcing", m.l96->forcing);
    root.set_attribute("l96_dt", m.l96->dt);
    return;
  }
  const sqg::SqgParams& p = m.sqg;
  root.set_attribute<std::int32_t>("N", p.N);
  root.set_attribute("L", p.L_m);
  root.set_attribute("H", p.H_m);
  root.set_attribute("U", p.U_ms);
  root.set_attribute("f", p.f_per_s);
  root.set_attribute("nsq", p.nsq_per_s2);
  root.set_attribute("g", p.g_ms2);
  root.set_attribute("theta0", p.theta0_K);
  root.set_attribute("tdiab", p.tdiab_s);
  root.set_attribute("ekman_r", p.ekman_r_ms);
  root.set_attribute<std::int32_t>("diff_order", p.diff_order);
  root.set_attribute("diff_efold", p.diff_efold_s);
  root.set_attribute("dt", p.dt_s);
  // netCDF has no boolean type; 0/1 integers are what CF-style readers expect.
  root.set_attribute<std::int32_t>("symmetric", p.symmetric ? 1 : 0);
  root.set_attribute<std::int32_t>("dealias", p.dealias ? 1 : 0);
  root.set_attribute<std::int32_t>("advection", p.advection ? 1 : 0);
  root.set_string_attribute("dynamics", sqg::to_string(p.dynamics));
}

namespace {

// Reads root attributes, taking the run's value (and noting the name) where one is missing.
class AttributeReader {
 public:
  AttributeReader(const Object& root, const RunDefaults* run) : root_(root), run_(run) {}
  template <class T>
  T get(std::string_view name, T run_value) {
    if (root_.has_attribute(name) || !run_) return root_.numeric_attribute<T>(name);
    note(name);
    return run_value;
  }
  std::string text(std::string_view name, std::string run_value) {
    if (root_.has_attribute(name) || !run_) return root_.string_attribute(name);
    note(name);
    return run_value;
  }
  // One warning for the file, naming every attribute taken from the run.
  void report(std::string_view model) const {
    if (assumed_.empty()) return;
    run_->warning(describe(root_.file_path(), "",
                           "no root attribute " + assumed_ + ": assumed the run's " +
                               std::string(model) + " (model.* keys)"));
  }

 private:
  void note(std::string_view name) {
    assumed_ += (assumed_.empty() ? "" : ", ") + std::string(name);
  }
  const Object& root_;
  const RunDefaults* run_;
  std::string assumed_;
};

}  // namespace

sqg::SqgParams read_model_attributes(const Object& root, const RunDefaults* run) {
  const sqg::SqgParams d = run ? run->model.sqg : sqg::SqgParams{};
  AttributeReader a(root, run);
  sqg::SqgParams p;
  p.N = a.get<std::int32_t>("N", d.N);
  p.L_m = a.get<double>("L", d.L_m);
  p.H_m = a.get<double>("H", d.H_m);
  p.U_ms = a.get<double>("U", d.U_ms);
  p.f_per_s = a.get<double>("f", d.f_per_s);
  p.nsq_per_s2 = a.get<double>("nsq", d.nsq_per_s2);
  p.g_ms2 = a.get<double>("g", d.g_ms2);
  p.theta0_K = a.get<double>("theta0", d.theta0_K);
  p.tdiab_s = a.get<double>("tdiab", d.tdiab_s);
  p.ekman_r_ms = a.get<double>("ekman_r", d.ekman_r_ms);
  p.diff_order = a.get<std::int32_t>("diff_order", d.diff_order);
  p.diff_efold_s = a.get<double>("diff_efold", d.diff_efold_s);
  p.dt_s = a.get<double>("dt", d.dt_s);
  p.symmetric = a.get<std::int32_t>("symmetric", d.symmetric ? 1 : 0) != 0;
  p.dealias = a.get<std::int32_t>("dealias", d.dealias ? 1 : 0) != 0;
  // Added after the first files were written; its absence means the normal model.
  p.advection =
      !root.has_attribute("advection") || root.numeric_attribute<std::int32_t>("advection") != 0;
  try {
    p.dynamics =
        sqg::dynamics_from_string(a.text("dynamics", std::string(sqg::to_string(d.dynamics))));
    p.validate();
  } catch (const std::invalid_argument& e) {
    root.fail(std::string("root attributes: ") + e.what());
  }
  a.report("SQG model");
  return p;
}

FieldModel read_field_model(const Object& root, const RunDefaults* run) {
  FieldModel out;
  const bool run_l96 = run && run->model.l96;
  // A file without any model attribute is of the run's model.
  const bool bare = run && !root.has_attribute("model_kind") && !root.has_attribute("N");
  if (run_l96 && bare) {
    out = FieldModel(*run->model.l96);
    run->warning(describe(root.file_path(), "",
                          "no model attributes: assumed the run's Lorenz-96 ring of " +
                              std::to_string(run->model.l96->n) + " variables (model.* keys)"));
  } else if (!root.has_attribute("model_kind")) {
    out = FieldModel(read_model_attributes(root, run));
  } else {
    const std::string kind = root.string_attribute("model_kind");
    if (kind != "lorenz96") {
      root.fail("attribute \"model_kind\" is \"" + kind +
                "\": expected \"lorenz96\" (or none, for SQG)");
    }
    const l96::Lorenz96Params d = run_l96 ? *run->model.l96 : l96::Lorenz96Params{};
    AttributeReader a(root, run_l96 ? run : nullptr);
    l96::Lorenz96Params p;
    p.n = a.get<std::int32_t>("l96_n", d.n);
    p.forcing = a.get<double>("l96_forcing", d.forcing);
    p.dt = a.get<double>("l96_dt", d.dt);
    try {
      p.validate();
    } catch (const std::invalid_argument& e) {
      root.fail(std::string("root attributes: ") + e.what());
    }
    a.report("Lorenz-96 model");
    out = FieldModel(p);
  }
  if (run) out.epoch = run->model.epoch;
  return out;
}

sqg::SqgParams read_params(const std::filesystem::path& path) {
  return read_model_attributes(File::open_read(path));
}

void write_provenance(Object& root, const Provenance& provenance) {
  for (const auto& [name, value] : provenance) {
    if (is_reserved_attribute(name)) {
      root.fail("attribute \"" + name +
                "\": reserved for rtda's own use, cannot be given as provenance");
    }
    root.set_string_attribute(name, value);
  }
  if (!provenance.contains("rtda_version")) {
    root.set_string_attribute("rtda_version", RTDA_VERSION_STRING);
  }
}

Provenance read_provenance(const Object& root) {
  Provenance out;
  for (const std::string& name : root.attribute_names()) {
    if (is_reserved_attribute(name)) continue;
    Hid attr(H5Aopen(root.id(), name.c_str(), H5P_DEFAULT), H5Aclose);
    Hid type(H5Aget_type(attr.get()), H5Tclose);
    if (H5Tget_class(type.get()) == H5T_STRING) out[name] = root.string_attribute(name);
  }
  return out;
}

void write_file_kind(Object& root, std::string_view kind) {
  root.set_string_attribute("file_kind", kind);
}

void require_file_kind(const Object& root, std::initializer_list<std::string_view> kinds) {
  if (!root.has_attribute("file_kind")) return;
  const std::string kind = root.string_attribute("file_kind");
  std::string expected;
  for (std::string_view k : kinds) {
    if (k == kind) return;
    expected += (expected.empty() ? "\"" : " or \"") + std::string(k) + "\"";
  }
  root.fail("file_kind is \"" + kind + "\", expected " + expected);
}

void write_conventions(Object& root) {
  root.set_string_attribute("Conventions", kConventions);
}

void set_cf_identity(Object& variable, std::string_view standard_name, std::string_view axis) {
  variable.set_string_attribute("standard_name", standard_name);
  if (!axis.empty()) variable.set_string_attribute("axis", axis);
}

void set_time_attributes(Dataset& time, std::string_view epoch, std::string_view long_name) {
  time.set_units(core::time_units(epoch), long_name);
  set_cf_identity(time, "time", "T");
  time.set_string_attribute("calendar", "standard");
}

core::TimeAxis read_time_axis(const Dataset& time) {
  if (!time.has_attribute("units")) {
    time.fail("has no units: expected seconds (\"s\") or \"<unit> since <instant>\"");
  }
  const std::string units = time.string_attribute("units");
  const auto axis = core::parse_time_units(units);
  if (!axis) {
    time.fail("units \"" + units +
              "\" are not a time: expected seconds (\"s\") or \"<unit> since <instant>\", "
              "e.g. \"seconds since 2000-01-01T00:00:00Z\"");
  }
  return *axis;
}

std::vector<double> read_times(const Dataset& time, std::string_view epoch) {
  core::TimeAxis axis = read_time_axis(time);
  const auto origin = epoch.empty() ? std::nullopt : core::parse_instant(epoch);
  if (!origin) axis.origin_unix.reset();
  std::vector<double> t = time.read<double>();
  for (double& v : t)
    v = core::to_epoch_seconds(v, axis, origin.value_or(0.0));
  return t;
}

std::string GridScales::coordinates(std::string_view extra) const {
  std::string out(extra);
  if (altitude) out += (out.empty() ? "" : " ") + altitude->name();
  return out;
}

GridScales write_grid_coordinates(Group& group, const FieldModel& model, std::string_view prefix) {
  const core::Grid grid = model.grid();
  const std::string p(prefix);
  std::vector<std::int32_t> levels(static_cast<std::size_t>(grid.levels));
  for (int l = 0; l < grid.levels; ++l)
    levels[static_cast<std::size_t>(l)] = l;
  const auto coords = [](int n, double length) {
    std::vector<double> c(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
      c[static_cast<std::size_t>(i)] = i * length / n;
    return c;
  };
  GridScales g{
      write_coordinate<std::int32_t>(
          group, p + "level", levels, "1",
          grid.levels == 2 ? "boundary: 0 = surface, 1 = lid" : "model level"),
      write_coordinate<double>(group, p + "y", coords(grid.ny, grid.length_y_m), "m",
                               "y coordinate of grid points"),
      write_coordinate<double>(group, p + "x", coords(grid.nx, grid.length_x_m), "m",
                               "x coordinate of grid points"),
      std::nullopt,
  };
  set_cf_identity(g.y, "projection_y_coordinate", "Y");
  set_cf_identity(g.x, "projection_x_coordinate", "X");
  if (!model.l96) {
    // The two boundaries' heights: an auxiliary coordinate along `level`.
    Dataset alt = group.create_dataset<double>(p + "altitude", {hsize_t(grid.levels)});
    alt.set_units("m", "height of the boundary above the surface");
    set_cf_identity(alt, "altitude", "Z");
    alt.set_string_attribute("positive", "up");
    alt.attach_scale(g.level, 0);
    const std::vector<double> z = {0.0, model.sqg.H_m};
    alt.write(std::span<const double>(z));
    g.altitude = std::move(alt);
  }
  return g;
}

}  // namespace rtda::io
