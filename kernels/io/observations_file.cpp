#include "io/observations_file.hpp"

#include <array>
#include <cmath>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "io/hdf5_file.hpp"

namespace rtda::io {

namespace {

constexpr std::array<std::int8_t, 3> kFlagValues = {0, 1, 2};
// What files written before the CF conventions say in place of a unit.
constexpr std::string_view kLegacyValueUnits = "by operator: linear_K K, arctan 1, identity m s-1";

// Spellings of each operator's unit that a file from another tool may use.
bool units_match(obs::ObsOperator op, std::string_view units) {
  switch (op) {
    case obs::ObsOperator::kLinearK:
      return units == "K" || units == "kelvin";
    case obs::ObsOperator::kArctan:
      return units == "1" || units == "";
    case obs::ObsOperator::kIdentity:
      return units == "m s-1" || units == "m/s" || units == "m s**-1" || units == "m.s-1";
  }
  return false;
}

[[noreturn]] void fail_row(const std::filesystem::path& path, std::string_view variable,
                           std::size_t row, double value, std::string_view expected) {
  std::ostringstream msg;
  msg << "row " << row << " has " << variable << " = " << value << ", expected " << expected;
  throw IoError(describe(path.string(), "variable \"" + std::string(variable) + "\"", msg.str()));
}

template <class T>
void require_length(const std::filesystem::path& path, std::string_view variable,
                    const std::vector<T>& column, std::size_t expected, std::string_view of) {
  if (column.size() != expected) {
    throw IoError(describe(path.string(), "variable \"" + std::string(variable) + "\"",
                           "has " + std::to_string(column.size()) + " entries, expected " +
                               std::to_string(expected) + " (the length of " + std::string(of) +
                               ")"));
  }
}

void require_finite(const std::filesystem::path& path, std::string_view variable,
                    const std::vector<double>& column) {
  for (std::size_t i = 0; i < column.size(); ++i) {
    if (!std::isfinite(column[i])) fail_row(path, variable, i, column[i], "a finite number");
  }
}

}  // namespace

void validate(const obs::ObservationSet& set, const FieldModel& model,
              const std::filesystem::path& path) {
  const core::Grid grid = model.grid();
  const std::size_t n = set.size();
  require_length(path, "level", set.level, n, "time");
  require_length(path, "x", set.x_m, n, "time");
  require_length(path, "y", set.y_m, n, "time");
  require_length(path, "value", set.value, n, "time");
  require_length(path, "error_sd", set.error_sd, n, "time");
  require_length(path, "operator", set.op, n, "time");
  require_length(path, "id", set.id, n, "time");
  require_finite(path, "time", set.time_seconds);
  require_finite(path, "x", set.x_m);
  require_finite(path, "y", set.y_m);
  require_finite(path, "value", set.value);
  for (std::size_t i = 0; i < n; ++i) {
    if (set.level[i] < 0 || set.level[i] >= grid.levels) {
      fail_row(path, "level", i, set.level[i],
               grid.levels == 2 ? "0 (surface) or 1 (lid)"
                                : "a level in [0, " + std::to_string(grid.levels) + ")");
    }
    const auto code = static_cast<std::int64_t>(set.op[i]);
    if (!obs::known_operator(code)) {
      fail_row(path, "operator", i, double(code), obs::kOperatorCodes);
    }
    if (!(std::isfinite(set.error_sd[i]) && set.error_sd[i] > 0)) {
      fail_row(path, "error_sd", i, set.error_sd[i], "a positive finite number");
    }
  }

  const std::size_t c = set.cycles();
  require_finite(path, "cycle_time", set.cycle_time_seconds);
  require_length(path, "shock_sd", set.shock_sd, c, "cycle_time");
  for (std::size_t i = 0; i < c; ++i) {
    if (!(std::isfinite(set.shock_sd[i]) && set.shock_sd[i] >= 0)) {
      fail_row(path, "shock_sd", i, set.shock_sd[i], "a finite number >= 0");
    }
  }
  if (!set.shock.empty()) {
    require_length(path, "shock", set.shock, c * grid.state_size(), "cycle_time x level x y x x");
    require_finite(path, "shock", set.shock);
  }
}

void write_observations(const std::filesystem::path& path, const obs::ObservationSet& set,
                        const FieldModel& params, const Provenance& provenance) {
  try {
    params.validate();
  } catch (const std::invalid_argument& e) {
    throw IoError(describe(path.string(), "", std::string("not written: ") + e.what()));
  }
  validate(set, params, path);

  StagedPath staged(path);
  File file = File::create(staged.temp_path(), path.string());
  {
    write_conventions(file);
    // A CF discrete sampling geometry: every observation is a point in space and time.
    file.set_string_attribute("featureType", "point");
    write_file_kind(file, "observation_set");
    file.set_string_attribute("experiment", set.experiment);
    file.set_attribute<std::uint64_t>("seed", set.seed);
    write_model_attributes(file, params);
    write_provenance(file, provenance);

    const hsize_t n = set.size();
    const hsize_t c = set.cycles();
    Dataset obs = write_pure_dimension(file, "obs", n);
    std::vector<std::int32_t> cycle_index(c);
    std::iota(cycle_index.begin(), cycle_index.end(), 0);
    Dataset cycle =
        write_coordinate<std::int32_t>(file, "cycle", cycle_index, "1", "assimilation cycle");

    auto column = [&](std::string_view name, const auto& values, std::string_view units,
                      std::string_view long_name) {
      using T = typename std::decay_t<decltype(values)>::value_type;
      Dataset ds = file.create_dataset<T>(name, {n});
      ds.set_units(units, long_name);
      ds.attach_scale(obs, 0);
      ds.write(std::span<const T>(values));
      return ds;
    };
    Dataset time = column("time", set.time_seconds, "s", "observation time");
    set_time_attributes(time, params.epoch, "observation time");
    column("level", set.level, "1", "boundary: 0 = surface, 1 = lid");
    Dataset x = column("x", set.x_m, "m", "x position of the observation");
    set_cf_identity(x, "projection_x_coordinate");
    Dataset y = column("y", set.y_m, "m", "y position of the observation");
    set_cf_identity(y, "projection_y_coordinate");
    std::string coordinates = "time y x";
    if (!params.l96) {
      std::vector<double> z(n);
      for (std::size_t i = 0; i < n; ++i)
        z[i] = set.level[i] == 0 ? 0.0 : params.sqg.H_m;
      Dataset alt = column("altitude", z, "m", "height of the observed boundary");
      set_cf_identity(alt, "altitude");
      alt.set_string_attribute("positive", "up");
      coordinates += " altitude";
    }
    // One unit for the column when every observation has the same operator (the usual set);
    // a mixed set has no single unit, so it names each operator's (docs/file-formats.md).
    const std::string_view value_units = obs::common_units(set.op);
    for (auto [name, values, long_name] :
         {std::tuple{"value", &set.value, "observed value"},
          std::tuple{"error_sd", &set.error_sd, "observation error standard deviation"}}) {
      Dataset ds = file.create_dataset<double>(name, {n});
      if (value_units != obs::kMixedUnits) {
        ds.set_units(value_units, long_name);
      } else {
        ds.set_string_attribute("long_name", long_name);
        ds.set_string_attribute("units_by_operator", obs::kUnitsByOperator);
      }
      ds.set_string_attribute("coordinates", coordinates);
      ds.attach_scale(obs, 0);
      ds.write(std::span<const double>(*values));
    }
    std::vector<std::int8_t> codes(n);
    for (std::size_t i = 0; i < n; ++i)
      codes[i] = static_cast<std::int8_t>(set.op[i]);
    Dataset op = column("operator", codes, "1", "observation operator");
    op.set_array_attribute<std::int8_t>("flag_values", kFlagValues);
    op.set_string_attribute("flag_meanings", obs::kOperatorNames.joined(" "));
    op.set_string_attribute("coordinates", coordinates);
    column("id", set.id, "1", "observation identifier");

    auto per_cycle = [&](std::string_view name, const std::vector<double>& values,
                         std::string_view units, std::string_view long_name) {
      Dataset ds = file.create_dataset<double>(name, {c});
      ds.set_units(units, long_name);
      ds.attach_scale(cycle, 0);
      ds.write(std::span<const double>(values));
      return ds;
    };
    Dataset cycle_time =
        per_cycle("cycle_time", set.cycle_time_seconds, "s", "analysis time of the cycle");
    set_time_attributes(cycle_time, params.epoch, "analysis time of the cycle");
    per_cycle("shock_sd", set.shock_sd, kPvUnits,
              "standard deviation of the shock added to the truth (0 = no shock)");

    if (!set.shock.empty()) {
      GridScales grid = write_grid_coordinates(file, params, "grid_");
      const core::Grid g = params.grid();
      const hsize_t nl = hsize_t(g.levels), ny = hsize_t(g.ny), nx = hsize_t(g.nx);
      DatasetLayout layout;
      layout.chunk = {1, nl, ny, nx};
      layout.deflate_level = 4;  // shocks are rare, so the field is mostly zeros
      Dataset shock = file.create_dataset<double>("shock", {c, nl, ny, nx}, layout);
      shock.set_units(kPvUnits, "PV shock added to the truth at the cycle");
      shock.attach_scales({&cycle, &grid.level, &grid.y, &grid.x});
      shock.set_string_attribute("coordinates", grid.coordinates("cycle_time"));
      shock.write(std::span<const double>(set.shock));
    }
  }
  file.close();
  staged.commit();
}

ObservationFile read_observations(const std::filesystem::path& path, const RunDefaults* run) {
  File file = File::open_read(path);
  require_file_kind(file, {"observation_set"});
  ObservationFile out;
  const FieldModel model = read_field_model(file, run);
  out.params = model.sqg;
  out.l96 = model.l96;
  out.provenance = read_provenance(file);
  obs::ObservationSet& set = out.set;
  // Extras of rtda observe's files; a file with the observation columns alone is complete.
  if (file.has_attribute("experiment")) set.experiment = file.string_attribute("experiment");
  if (file.has_attribute("seed")) set.seed = file.numeric_attribute<std::uint64_t>("seed");

  auto open_column = [&](std::string_view name, std::string_view expected) {
    Dataset ds = file.open_dataset(name, expected);
    if (ds.rank() != 1) {
      ds.fail("expected rank 1, found rank " + std::to_string(ds.rank()));
    }
    return ds;
  };
  auto read_column = [&]<class T>(std::string_view name, std::string_view expected,
                                  std::vector<T>& into) {
    into = open_column(name, expected).read<T>();
  };
  const std::string epoch = run ? run->model.epoch : "";
  set.time_seconds = read_times(open_column("time", "observation times along obs"), epoch);
  read_column("level", "observation levels along obs", set.level);
  // Positions in metres; kilometres are converted.
  auto read_position = [&](std::string_view name, std::vector<double>& into) {
    Dataset ds = open_column(name, "observation positions along obs");
    const std::string units = ds.has_attribute("units") ? ds.string_attribute("units") : "";
    double scale = 1;
    if (units == "km") {
      scale = 1e3;
    } else if (units != "m") {
      ds.fail("units \"" + units + "\": expected \"m\" (or \"km\")");
    }
    into = ds.read<double>();
    for (double& v : into)
      v *= scale;
  };
  read_position("x", set.x_m);
  read_position("y", set.y_m);
  std::vector<std::int32_t> codes;  // read wider than stored so a bad code cannot wrap
  read_column("operator", "observation operator codes along obs", codes);
  set.op.resize(codes.size());
  for (std::size_t i = 0; i < codes.size(); ++i) {
    if (!obs::known_operator(codes[i])) {
      fail_row(path, "operator", i, codes[i], obs::kOperatorCodes);
    }
    set.op[i] = static_cast<obs::ObsOperator>(codes[i]);
  }
  // value and error_sd: in each observation's operator units, which `units` must state when
  // it is given (a mixed set names them in units_by_operator instead).
  auto read_valued = [&](std::string_view name, std::string_view expected,
                         std::vector<double>& into) {
    Dataset ds = open_column(name, expected);
    into = ds.read<double>();
    if (!ds.has_attribute("units")) return;
    const std::string units = ds.string_attribute("units");
    if (units == kLegacyValueUnits) return;
    for (std::size_t i = 0; i < set.op.size() && i < into.size(); ++i) {
      if (!units_match(set.op[i], units)) {
        ds.fail("units \"" + units + "\" do not fit row " + std::to_string(i) + "'s operator " +
                std::string(obs::to_string(set.op[i])) + ", whose values are in \"" +
                std::string(obs::operator_units(set.op[i])) + "\"");
      }
    }
  };
  read_valued("value", "observed values along obs", set.value);
  read_valued("error_sd", "observation error standard deviations along obs", set.error_sd);
  read_column("id", "observation ids along obs", set.id);
  if (file.has("cycle_time")) {
    set.cycle_time_seconds =
        read_times(open_column("cycle_time", "cycle times along cycle"), epoch);
    if (file.has("shock_sd")) {
      Dataset sd = open_column("shock_sd", "shock standard deviations along cycle");
      sd.require_units(kPvUnits);
      set.shock_sd = sd.read<double>();
    } else {
      set.shock_sd.assign(set.cycle_time_seconds.size(), 0.0);
    }
  }
  if (file.has("shock")) {
    Dataset shock = file.open_dataset("shock");
    const auto d = shock.dims();
    const core::Grid g = model.grid();
    if (d.size() != 4 || d[0] != set.cycles() || d[1] != hsize_t(g.levels) ||
        d[2] != hsize_t(g.ny) || d[3] != hsize_t(g.nx)) {
      shock.fail("expected shape (cycle, grid_level, grid_y, grid_x) = (" +
                 std::to_string(set.cycles()) + ", " + std::to_string(g.levels) + ", " +
                 std::to_string(g.ny) + ", " + std::to_string(g.nx) + ")");
    }
    shock.require_units(kPvUnits);
    set.shock = shock.read<double>();
  }
  validate(set, model, path);
  return out;
}

}  // namespace rtda::io
