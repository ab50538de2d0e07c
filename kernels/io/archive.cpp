#include "io/archive.hpp"

#include <optional>
#include <vector>

#include "io/hdf5_file.hpp"

namespace rtda::io {

struct ArchiveWriter::Impl {
  Impl(const std::filesystem::path& final_path, const FieldModel& p, int k)
      : grid(p.grid()),
        members(k),
        staged(final_path, ".partial"),
        file(File::create(staged.temp_path(), "", /*lock_file=*/false)) {}

  core::Grid grid;
  int members;
  StagedPath staged;
  File file;
  std::optional<Dataset> cycle, time, mean, spread, q, member_scale;
  std::optional<GridScales> scales;
  std::map<std::string, Dataset> diagnostics;
  std::size_t count = 0;
  bool closed = false;
  std::int64_t first_cycle = 0;
};

ArchiveWriter::ArchiveWriter(const std::filesystem::path& path, const FieldModel& params,
                             int members_to_store, const Provenance& provenance,
                             std::int64_t first_cycle)
    : impl_(std::make_unique<Impl>(path, params, members_to_store)) {
  impl_->first_cycle = first_cycle;
  impl_->staged.keep_on_abandon(true);
  File& f = impl_->file;
  write_conventions(f);
  write_file_kind(f, "analysis_archive");
  write_model_attributes(f, params);
  write_provenance(f, provenance);
  impl_->cycle = write_coordinate<double>(f, "cycle", std::span<const double>(), "1",
                                          "assimilation cycle index", true);
  impl_->scales = write_grid_coordinates(f, params);
  const hsize_t nl = hsize_t(impl_->grid.levels), ny = hsize_t(impl_->grid.ny),
                nx = hsize_t(impl_->grid.nx);
  DatasetLayout field;
  field.max_dims = {H5S_UNLIMITED, nl, ny, nx};
  field.chunk = {1, nl, ny, nx};
  GridScales& g = *impl_->scales;
  const std::string coordinates = g.coordinates("time");
  impl_->mean = f.create_dataset<double>("mean", {0, nl, ny, nx}, field);
  impl_->mean->set_units(kPvUnits, "analysis ensemble mean of boundary PV");
  impl_->mean->attach_scales({&*impl_->cycle, &g.level, &g.y, &g.x});
  impl_->mean->set_string_attribute("coordinates", coordinates);
  impl_->spread = f.create_dataset<double>("spread", {0, nl, ny, nx}, field);
  impl_->spread->set_units(kPvUnits, "analysis ensemble standard deviation of boundary PV");
  impl_->spread->attach_scales({&*impl_->cycle, &g.level, &g.y, &g.x});
  impl_->spread->set_string_attribute("coordinates", coordinates);
  DatasetLayout series;
  series.max_dims = {H5S_UNLIMITED};
  series.chunk = {256};
  impl_->time = f.create_dataset<double>("time", {0}, series);
  // An auxiliary coordinate along `cycle` (the fields name it in `coordinates`).
  set_time_attributes(*impl_->time, params.epoch, "analysis valid time");
  impl_->time->attach_scales({&*impl_->cycle});
  if (members_to_store > 0) {
    std::vector<double> ids(static_cast<std::size_t>(members_to_store));
    for (std::size_t m = 0; m < ids.size(); ++m)
      ids[m] = double(m);
    impl_->member_scale = write_coordinate<double>(f, "member", ids, "1", "ensemble member");
    set_cf_identity(*impl_->member_scale, "realization");
    const hsize_t k = hsize_t(members_to_store);
    DatasetLayout members;
    members.max_dims = {H5S_UNLIMITED, k, nl, ny, nx};
    members.chunk = {1, 1, nl, ny, nx};
    impl_->q = f.create_dataset<double>("q", {0, k, nl, ny, nx}, members);
    impl_->q->set_units(kPvUnits, "analysis ensemble members of boundary PV");
    impl_->q->attach_scales({&*impl_->cycle, &*impl_->member_scale, &g.level, &g.y, &g.x});
    impl_->q->set_string_attribute("coordinates", coordinates);
  }
  f.flush();
}

ArchiveWriter::~ArchiveWriter() = default;

void ArchiveWriter::append(double time_seconds, std::span<const double> mean,
                           std::span<const double> spread,
                           const std::map<std::string, Diagnostic>& diagnostics,
                           std::span<const double> members) {
  Impl& s = *impl_;
  if (s.closed) s.file.fail("append after close");
  const std::size_t state = s.grid.state_size();
  if (mean.size() != state || spread.size() != state) {
    s.file.fail("archive append: mean/spread must hold a state of " + std::to_string(state) +
                " values");
  }
  if (s.q && members.size() != state * std::size_t(s.members)) {
    s.file.fail("archive append: expected " + std::to_string(s.members) + " members");
  }
  if (s.count > 0 && diagnostics.size() != s.diagnostics.size()) {
    s.file.fail("archive append: the diagnostics differ from the first cycle's");
  }
  const hsize_t k = s.count, nl = hsize_t(s.grid.levels), ny = hsize_t(s.grid.ny),
                nx = hsize_t(s.grid.nx);
  s.mean->extend({k + 1, nl, ny, nx});
  s.mean->write_slab<double>({k, 0, 0, 0}, {1, nl, ny, nx}, mean);
  s.spread->extend({k + 1, nl, ny, nx});
  s.spread->write_slab<double>({k, 0, 0, 0}, {1, nl, ny, nx}, spread);
  if (s.q) {
    const hsize_t km = hsize_t(s.members);
    s.q->extend({k + 1, km, nl, ny, nx});
    s.q->write_slab<double>({k, 0, 0, 0, 0}, {1, km, nl, ny, nx}, members);
  }
  for (const auto& [name, d] : diagnostics) {
    auto it = s.diagnostics.find(name);
    if (it == s.diagnostics.end()) {
      if (s.count > 0) s.file.fail("archive append: new diagnostic '" + name + "'");
      DatasetLayout series;
      series.max_dims = {H5S_UNLIMITED};
      series.chunk = {256};
      Dataset ds = s.file.create_dataset<double>(name, {0}, series);
      ds.set_units(d.units, d.long_name);
      ds.attach_scales({&*s.cycle});
      ds.set_string_attribute("coordinates", "time");
      it = s.diagnostics.emplace(name, std::move(ds)).first;
    }
    it->second.extend({k + 1});
    it->second.write_slab<double>({k}, {1}, std::span<const double>(&d.value, 1));
  }
  s.time->extend({k + 1});
  s.time->write_slab<double>({k}, {1}, std::span<const double>(&time_seconds, 1));
  // The coordinate last: readers of a .partial file count complete cycles by it.
  const double index = double(s.first_cycle + static_cast<std::int64_t>(k));
  s.cycle->extend({k + 1});
  s.cycle->write_slab<double>({k}, {1}, std::span<const double>(&index, 1));
  ++s.count;
  s.file.flush();
}

std::size_t ArchiveWriter::cycles() const {
  return impl_->count;
}

void ArchiveWriter::close() {
  Impl& s = *impl_;
  if (s.closed) return;
  s.diagnostics.clear();
  s.q.reset();
  s.member_scale.reset();
  s.mean.reset();
  s.spread.reset();
  s.time.reset();
  s.scales.reset();
  s.cycle.reset();
  s.file.close();
  s.staged.commit();
  s.closed = true;
}

}  // namespace rtda::io
