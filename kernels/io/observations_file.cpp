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
constexpr std::string_view kValueUnits = "by operator: linear_K K, arctan 1, identity m s-1";

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
    column("time", set.time_seconds, "s", "observation time since the experiment epoch");
    column("level", set.level, "1", "boundary: 0 = surface, 1 = lid");
    column("x", set.x_m, "m", "x position of the observation");
    column("y", set.y_m, "m", "y position of the observation");
    column("value", set.value, kValueUnits, "observed value");
    column("error_sd", set.error_sd, kValueUnits, "observation error standard deviation");
    std::vector<std::int8_t> codes(n);
    for (std::size_t i = 0; i < n; ++i)
      codes[i] = static_cast<std::int8_t>(set.op[i]);
    Dataset op = column("operator", codes, "1", "observation operator");
    op.set_array_attribute<std::int8_t>("flag_values", kFlagValues);
    op.set_string_attribute("flag_meanings", obs::kOperatorNames.joined(" "));
    column("id", set.id, "1", "observation identifier");

    auto per_cycle = [&](std::string_view name, const std::vector<double>& values,
                         std::string_view units, std::string_view long_name) {
      Dataset ds = file.create_dataset<double>(name, {c});
      ds.set_units(units, long_name);
      ds.attach_scale(cycle, 0);
      ds.write(std::span<const double>(values));
    };
    per_cycle("cycle_time", set.cycle_time_seconds, "s", "analysis time of the cycle");
    per_cycle("shock_sd", set.shock_sd, kPvUnits,
              "standard deviation of the shock added to the truth (0 = no shock)");

    if (!set.shock.empty()) {
      GridScales grid =
          write_grid_coordinates(file, params.grid(), "grid_level", "grid_y", "grid_x");
      const core::Grid g = params.grid();
      const hsize_t nl = hsize_t(g.levels), ny = hsize_t(g.ny), nx = hsize_t(g.nx);
      DatasetLayout layout;
      layout.chunk = {1, nl, ny, nx};
      layout.deflate_level = 4;  // shocks are rare, so the field is mostly zeros
      Dataset shock = file.create_dataset<double>("shock", {c, nl, ny, nx}, layout);
      shock.set_units(kPvUnits, "PV shock added to the truth at the cycle");
      shock.attach_scales({&cycle, &grid.level, &grid.y, &grid.x});
      shock.write(std::span<const double>(set.shock));
    }
  }
  file.close();
  staged.commit();
}

ObservationFile read_observations(const std::filesystem::path& path) {
  File file = File::open_read(path);
  require_file_kind(file, {"observation_set"});
  ObservationFile out;
  const FieldModel model = read_field_model(file);
  out.params = model.sqg;
  out.l96 = model.l96;
  out.provenance = read_provenance(file);
  obs::ObservationSet& set = out.set;
  set.experiment = file.string_attribute("experiment");
  set.seed = file.numeric_attribute<std::uint64_t>("seed");

  auto read_column = [&]<class T>(std::string_view name, std::string_view units,
                                  std::string_view expected, std::vector<T>& into) {
    Dataset ds = file.open_dataset(name, expected);
    if (ds.rank() != 1) {
      ds.fail("expected rank 1, found rank " + std::to_string(ds.rank()));
    }
    if (!units.empty()) ds.require_units(units);
    into = ds.read<T>();
  };
  read_column("time", "s", "observation times along obs", set.time_seconds);
  read_column("level", "", "observation levels along obs", set.level);
  read_column("x", "m", "observation x positions along obs", set.x_m);
  read_column("y", "m", "observation y positions along obs", set.y_m);
  read_column("value", "", "observed values along obs", set.value);
  read_column("error_sd", "", "observation error standard deviations along obs", set.error_sd);
  std::vector<std::int32_t> codes;  // read wider than stored so a bad code cannot wrap
  read_column("operator", "", "observation operator codes along obs", codes);
  set.op.resize(codes.size());
  for (std::size_t i = 0; i < codes.size(); ++i) {
    if (!obs::known_operator(codes[i])) {
      fail_row(path, "operator", i, codes[i], obs::kOperatorCodes);
    }
    set.op[i] = static_cast<obs::ObsOperator>(codes[i]);
  }
  read_column("id", "", "observation ids along obs", set.id);
  read_column("cycle_time", "s", "cycle times along cycle", set.cycle_time_seconds);
  read_column("shock_sd", kPvUnits, "shock standard deviations along cycle", set.shock_sd);
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
