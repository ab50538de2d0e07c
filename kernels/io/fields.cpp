#include "io/fields.hpp"

#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include "io/hdf5_file.hpp"

namespace rtda::io {

namespace {

constexpr std::string_view kTimeLongName = "model time";

void validate_params(const FieldModel& params, const std::filesystem::path& path) {
  try {
    params.validate();
  } catch (const std::invalid_argument& e) {
    throw IoError(describe(path.string(), "", std::string("not written: ") + e.what()));
  }
}

void require_state_count(std::span<const double> q, std::size_t states, const FieldModel& model,
                         const std::filesystem::path& path) {
  const core::Grid g = model.grid();
  const std::size_t expected = states * g.state_size();
  if (q.size() != expected) {
    throw IoError(describe(path.string(), "variable \"q\"",
                           "given " + std::to_string(q.size()) + " values, expected " +
                               std::to_string(expected) + " (" + std::to_string(states) + " x " +
                               std::to_string(g.levels) + " x " + std::to_string(g.ny) + " x " +
                               std::to_string(g.nx) + " with " + model.describe_grid() + ")"));
  }
}

std::string shape_string(const std::vector<hsize_t>& d) {
  std::ostringstream out;
  out << "(";
  for (std::size_t i = 0; i < d.size(); ++i)
    out << (i ? ", " : "") << d[i];
  out << ")";
  return out.str();
}

// q's trailing (level, y, x) dimensions must match the file's own grid.
void require_grid_dims(const Dataset& q, const std::vector<hsize_t>& d, std::size_t first,
                       const FieldModel& model) {
  const core::Grid g = model.grid();
  if (d[first] != hsize_t(g.levels) || d[first + 1] != hsize_t(g.ny) ||
      d[first + 2] != hsize_t(g.nx)) {
    q.fail("shape " + shape_string(d) + " does not match the file's " + model.describe_grid() +
           ": expected (level, y, x) = (" + std::to_string(g.levels) + ", " + std::to_string(g.ny) +
           ", " + std::to_string(g.nx) + ")");
  }
}

// State (members == 0) and ensemble files differ only in the member dimension.
void write_fields(const std::filesystem::path& path, const FieldModel& params, double time_seconds,
                  int members, std::span<const double> q, const Provenance& provenance) {
  validate_params(params, path);
  if (!std::isfinite(time_seconds)) {
    throw IoError(describe(path.string(), "attribute \"time_seconds\"", "expected a finite time"));
  }
  require_state_count(q, members == 0 ? 1 : std::size_t(members), params, path);

  StagedPath staged(path);
  File file = File::create(staged.temp_path(), path.string());
  {
    write_conventions(file);
    write_file_kind(file, members == 0 ? "state" : "ensemble");
    write_model_attributes(file, params);
    file.set_attribute("time_seconds", time_seconds);
    write_provenance(file, provenance);

    const core::Grid g = params.grid();
    const hsize_t nl = hsize_t(g.levels), ny = hsize_t(g.ny), nx = hsize_t(g.nx);
    // The valid time as a CF scalar coordinate.
    Dataset time = file.create_dataset<double>("time", {});
    set_time_attributes(time, params.epoch, kTimeLongName);
    time.write(std::span<const double>(&time_seconds, 1));
    std::optional<Dataset> member;
    if (members > 0) {
      std::vector<std::int32_t> ids(members);
      std::iota(ids.begin(), ids.end(), 0);
      member = write_coordinate<std::int32_t>(file, "member", ids, "1", "ensemble member");
      set_cf_identity(*member, "realization");
    }
    GridScales grid = write_grid_coordinates(file, params);
    if (members > 0) {
      Dataset var = file.create_dataset<double>("q", {hsize_t(members), nl, ny, nx});
      var.set_units(kPvUnits, kPvLongName);
      var.attach_scales({&*member, &grid.level, &grid.y, &grid.x});
      var.set_string_attribute("coordinates", grid.coordinates("time"));
      var.write(q);
    } else {
      Dataset var = file.create_dataset<double>("q", {nl, ny, nx});
      var.set_units(kPvUnits, kPvLongName);
      var.attach_scales({&grid.level, &grid.y, &grid.x});
      var.set_string_attribute("coordinates", grid.coordinates("time"));
      var.write(q);
    }
  }
  file.close();
  staged.commit();
}

}  // namespace

void write_state(const std::filesystem::path& path, const FieldModel& params, double time_seconds,
                 std::span<const double> q, const Provenance& provenance) {
  write_fields(path, params, time_seconds, 0, q, provenance);
}

void write_ensemble(const std::filesystem::path& path, const FieldModel& params,
                    double time_seconds, int members, std::span<const double> q,
                    const Provenance& provenance) {
  if (members < 1) {
    throw IoError(describe(path.string(), "variable \"q\"",
                           "members = " + std::to_string(members) + ": expected at least 1"));
  }
  write_fields(path, params, time_seconds, members, q, provenance);
}

FieldFile read_fields(const std::filesystem::path& path, const RunDefaults* run) {
  File file = File::open_read(path);
  require_file_kind(file, {"state", "ensemble"});
  FieldFile out;
  const FieldModel model = read_field_model(file, run);
  out.params = model.sqg;
  out.l96 = model.l96;
  Dataset q = file.open_dataset("q", "boundary PV (level, y, x) or (member, level, y, x)");
  // rtda's own attribute first (exact, in the run's model time); else the CF time variable.
  if (file.has_attribute("time_seconds") || !file.has("time")) {
    out.time_seconds = file.numeric_attribute<double>("time_seconds");
  } else {
    Dataset time = file.open_dataset("time");
    const std::vector<double> t = read_times(time, run ? run->model.epoch : "");
    if (t.size() != 1) {
      time.fail("holds " + std::to_string(t.size()) +
                " values: expected the one valid time of the fields");
    }
    out.time_seconds = t[0];
  }
  const auto d = q.dims();
  if (d.size() != 3 && d.size() != 4) {
    q.fail("expected rank 3 (level, y, x) or 4 (member, level, y, x), found rank " +
           std::to_string(d.size()) + " with shape " + shape_string(d));
  }
  require_grid_dims(q, d, d.size() - 3, model);
  if (d.size() == 4) {
    if (d[0] == 0) q.fail("has no members: expected at least one");
    out.members = int(d[0]);
  }
  q.require_units(kPvUnits);
  out.q = q.read<double>();
  out.provenance = read_provenance(file);
  return out;
}

void check_compatible(const FieldFile& file, const FieldModel& expected_model,
                      const std::filesystem::path& path) {
  const FieldModel model = file.model();
  if (model.l96.has_value() != expected_model.l96.has_value() ||
      (model.l96 && model.l96->n != expected_model.l96->n)) {
    throw IoError(describe(
        path.string(), "",
        "q is on " + model.describe_grid() + ", expected " + expected_model.describe_grid()));
  }
  if (model.l96) return;
  const sqg::SqgParams& expected = expected_model.sqg;
  if (file.params.N != expected.N) {
    throw IoError(describe(
        path.string(), "",
        "q has N = " + std::to_string(file.params.N) + ", expected " + std::to_string(expected.N)));
  }
  // Relative tolerance: L may have passed through a text config and a decimal round trip.
  if (std::abs(file.params.L_m - expected.L_m) > 1e-12 * std::abs(expected.L_m)) {
    std::ostringstream msg;
    msg << "q has L = " << file.params.L_m << " m, expected " << expected.L_m << " m";
    throw IoError(describe(path.string(), "", msg.str()));
  }
}

// ---- nature run ----------------------------------------------------------------------------

struct NatureWriter::Impl {
  Impl(const std::filesystem::path& final_path, const FieldModel& p)
      : params(p.sqg),
        staged(final_path, ".partial"),
        file(File::create(staged.temp_path(), "", /*lock_file=*/false)) {}

  sqg::SqgParams params;
  StagedPath staged;
  File file;
  std::optional<Dataset> time;
  std::optional<Dataset> q;
  std::size_t count = 0;
  double last_time = 0;
  bool closed = false;
};

NatureWriter::NatureWriter(const std::filesystem::path& path, const FieldModel& params,
                           const Provenance& provenance) {
  validate_params(params, path);
  if (params.l96) {
    throw IoError(describe(path.string(), "", "a nature run file holds SQG states only"));
  }
  impl_ = std::make_unique<Impl>(path, params);
  // A run that dies keeps what it wrote: the .partial file is valid up to the last flush.
  impl_->staged.keep_on_abandon(true);
  File& file = impl_->file;
  write_conventions(file);
  write_file_kind(file, "nature_run");
  write_model_attributes(file, params);
  write_provenance(file, provenance);

  impl_->time =
      write_coordinate<double>(file, "time", std::span<const double>(), "s", kTimeLongName, true);
  set_time_attributes(*impl_->time, params.epoch, kTimeLongName);
  GridScales grid = write_grid_coordinates(file, params);
  const hsize_t n = hsize_t(params.sqg.N);
  DatasetLayout layout;
  layout.max_dims = {H5S_UNLIMITED, 2, n, n};
  layout.chunk = {1, 2, n, n};  // one state per chunk: appends and reads by time index
  impl_->q = file.create_dataset<double>("q", {0, 2, n, n}, layout);
  impl_->q->set_units(kPvUnits, kPvLongName);
  impl_->q->attach_scales({&*impl_->time, &grid.level, &grid.y, &grid.x});
  impl_->q->set_string_attribute("coordinates", grid.coordinates());
  file.flush();
}

NatureWriter::~NatureWriter() = default;
NatureWriter::NatureWriter(NatureWriter&&) noexcept = default;
NatureWriter& NatureWriter::operator=(NatureWriter&&) noexcept = default;

void NatureWriter::append(double time_seconds, std::span<const double> q) {
  Impl& s = *impl_;
  if (s.closed) s.file.fail("append after close");
  require_state_count(q, 1, s.params, s.staged.temp_path());
  if (!std::isfinite(time_seconds) || (s.count > 0 && !(time_seconds > s.last_time))) {
    std::ostringstream msg;
    msg << "append at time " << time_seconds << " s: expected a finite time after the last one";
    s.time->fail(msg.str());
  }
  const hsize_t n = hsize_t(s.params.N);
  const hsize_t k = s.count;
  // q before time: the time axis only ever counts complete states, so a reader of a crashed
  // .partial file can trust it.
  s.q->extend({k + 1, 2, n, n});
  s.q->write_slab<double>({k, 0, 0, 0}, {1, 2, n, n}, q);
  s.time->extend({k + 1});
  s.time->write_slab<double>({k}, {1}, std::span<const double>(&time_seconds, 1));
  ++s.count;
  s.last_time = time_seconds;
  s.file.flush();
}

std::size_t NatureWriter::size() const {
  return impl_->count;
}

void NatureWriter::close() {
  Impl& s = *impl_;
  if (s.closed) return;
  s.q.reset();
  s.time.reset();
  s.file.close();
  s.staged.commit();
  s.closed = true;
}

namespace {

struct NatureDatasets {
  Dataset time;
  Dataset q;
  std::size_t states;
};

NatureDatasets open_nature(const File& file, const sqg::SqgParams& params) {
  Dataset time = file.open_dataset("time", "model times in s along dimension time");
  if (time.rank() != 1)
    time.fail("expected rank 1 (time), found rank " + std::to_string(time.rank()));
  read_time_axis(time);
  Dataset q = file.open_dataset("q", "boundary PV (time, level, y, x)");
  const auto d = q.dims();
  if (d.size() != 4) {
    q.fail("expected rank 4 (time, level, y, x), found rank " + std::to_string(d.size()) +
           " with shape " + shape_string(d));
  }
  require_grid_dims(q, d, 1, params);
  q.require_units(kPvUnits);
  const hsize_t n_time = time.dims()[0];
  // The writer extends q before time, so a crashed run may hold one more (possibly torn) q
  // state than times; the time axis is the count of complete states.
  if (n_time > d[0]) {
    time.fail("has " + std::to_string(n_time) + " entries but q has only " + std::to_string(d[0]) +
              " states");
  }
  return NatureDatasets{std::move(time), std::move(q), std::size_t(n_time)};
}

}  // namespace

NatureRun read_nature(const std::filesystem::path& path, std::optional<IndexRange> range,
                      const RunDefaults* run) {
  File file = File::open_read(path);
  require_file_kind(file, {"nature_run"});
  NatureRun out;
  out.params = read_model_attributes(file, run);
  NatureDatasets ds = open_nature(file, out.params);
  const IndexRange r = range.value_or(IndexRange{0, ds.states});
  if (r.begin > r.end || r.end > ds.states) {
    ds.q.fail("asked for states [" + std::to_string(r.begin) + ", " + std::to_string(r.end) +
              "), the file holds " + std::to_string(ds.states));
  }
  const hsize_t count = r.end - r.begin;
  const hsize_t n = hsize_t(out.params.N);
  out.first_index = r.begin;
  const std::vector<double> times = read_times(ds.time, run ? run->model.epoch : "");
  out.times_seconds.assign(times.begin() + std::ptrdiff_t(r.begin),
                           times.begin() + std::ptrdiff_t(r.end));
  out.q.resize(count * 2 * n * n);
  ds.q.read_slab<double>({r.begin, 0, 0, 0}, {count, 2, n, n}, out.q);
  out.provenance = read_provenance(file);
  return out;
}

std::vector<double> read_nature_times(const std::filesystem::path& path) {
  File file = File::open_read(path);
  require_file_kind(file, {"nature_run"});
  const sqg::SqgParams params = read_model_attributes(file);
  NatureDatasets ds = open_nature(file, params);
  std::vector<double> times = read_times(ds.time);
  times.resize(ds.states);
  return times;
}

}  // namespace rtda::io
