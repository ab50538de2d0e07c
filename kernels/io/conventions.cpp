#include "io/conventions.hpp"

#include <array>
#include <cstdint>
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

sqg::SqgParams read_model_attributes(const Object& root) {
  sqg::SqgParams p;
  p.N = root.numeric_attribute<std::int32_t>("N");
  p.L_m = root.numeric_attribute<double>("L");
  p.H_m = root.numeric_attribute<double>("H");
  p.U_ms = root.numeric_attribute<double>("U");
  p.f_per_s = root.numeric_attribute<double>("f");
  p.nsq_per_s2 = root.numeric_attribute<double>("nsq");
  p.g_ms2 = root.numeric_attribute<double>("g");
  p.theta0_K = root.numeric_attribute<double>("theta0");
  p.tdiab_s = root.numeric_attribute<double>("tdiab");
  p.ekman_r_ms = root.numeric_attribute<double>("ekman_r");
  p.diff_order = root.numeric_attribute<std::int32_t>("diff_order");
  p.diff_efold_s = root.numeric_attribute<double>("diff_efold");
  p.dt_s = root.numeric_attribute<double>("dt");
  p.symmetric = root.numeric_attribute<std::int32_t>("symmetric") != 0;
  p.dealias = root.numeric_attribute<std::int32_t>("dealias") != 0;
  // Added after the first files were written; its absence means the normal model.
  p.advection =
      !root.has_attribute("advection") || root.numeric_attribute<std::int32_t>("advection") != 0;
  try {
    p.dynamics = sqg::dynamics_from_string(root.string_attribute("dynamics"));
    p.validate();
  } catch (const std::invalid_argument& e) {
    root.fail(std::string("root attributes: ") + e.what());
  }
  return p;
}

FieldModel read_field_model(const Object& root) {
  if (!root.has_attribute("model_kind")) return FieldModel(read_model_attributes(root));
  const std::string kind = root.string_attribute("model_kind");
  if (kind != "lorenz96") {
    root.fail("attribute \"model_kind\" is \"" + kind +
              "\": expected \"lorenz96\" (or none, for SQG)");
  }
  l96::Lorenz96Params p;
  p.n = root.numeric_attribute<std::int32_t>("l96_n");
  p.forcing = root.numeric_attribute<double>("l96_forcing");
  p.dt = root.numeric_attribute<double>("l96_dt");
  try {
    p.validate();
  } catch (const std::invalid_argument& e) {
    root.fail(std::string("root attributes: ") + e.what());
  }
  return FieldModel(p);
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

GridScales write_grid_coordinates(Group& group, const core::Grid& grid, std::string_view level_name,
                                  std::string_view y_name, std::string_view x_name) {
  std::vector<std::int32_t> levels(static_cast<std::size_t>(grid.levels));
  for (int l = 0; l < grid.levels; ++l)
    levels[static_cast<std::size_t>(l)] = l;
  const auto coords = [](int n, double length) {
    std::vector<double> c(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
      c[static_cast<std::size_t>(i)] = i * length / n;
    return c;
  };
  return GridScales{
      write_coordinate<std::int32_t>(
          group, level_name, levels, "1",
          grid.levels == 2 ? "boundary: 0 = surface, 1 = lid" : "model level"),
      write_coordinate<double>(group, y_name, coords(grid.ny, grid.length_y_m), "m",
                               "y coordinate of grid points"),
      write_coordinate<double>(group, x_name, coords(grid.nx, grid.length_x_m), "m",
                               "x coordinate of grid points"),
  };
}

}  // namespace rtda::io
