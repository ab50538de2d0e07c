#include "io/hdf5_file.hpp"

#include <H5DSpublic.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <sstream>
#include <type_traits>

namespace rtda::io {

namespace {

// HDF5 prints its whole error stack to stderr by default. rtda reports errors as exceptions,
// so the printing is turned off; the setting is per thread in a thread-safe HDF5 build.
void silence_hdf5_error_printing() {
  thread_local bool silenced = false;
  if (silenced) return;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  silenced = true;
}

// The most specific message on HDF5's error stack (e.g. "unable to open file: ... No such
// file or directory"), cleared after reading so it cannot leak into a later error.
std::string hdf5_detail() {
  std::string detail;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
        if (n == 0 && err->desc != nullptr) *static_cast<std::string*>(data) = err->desc;
        return 0;
      },
      &detail);
  H5Eclear2(H5E_DEFAULT);
  return detail.empty() ? std::string() : " (HDF5: " + detail + ")";
}

// Built by appending: GCC 12 warns falsely (-Wrestrict, PR 105651) on "literal" + string&&.
std::string in_quotes(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

std::string attr_label(std::string_view name) {
  return "attribute " + in_quotes(name);
}

hsize_t element_count(const std::vector<hsize_t>& dims) {
  return std::accumulate(dims.begin(), dims.end(), hsize_t{1}, std::multiplies<>());
}

std::string dims_string(const std::vector<hsize_t>& dims) {
  std::ostringstream out;
  out << "(";
  for (std::size_t i = 0; i < dims.size(); ++i)
    out << (i ? ", " : "") << dims[i];
  out << ")";
  return out.str();
}

}  // namespace

std::string describe(std::string_view file, std::string_view object, std::string_view what) {
  std::string msg = "file " + in_quotes(file) + ": ";
  if (!object.empty()) msg += std::string(object) + ": ";
  return msg + std::string(what);
}

Hid& Hid::operator=(Hid&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

herr_t Hid::reset() {
  herr_t status = 0;
  if (id_ >= 0 && closer_ != nullptr) status = closer_(id_);
  id_ = H5I_INVALID_HID;
  return status;
}

template <>
hid_t native_type<double>() {
  return H5T_NATIVE_DOUBLE;
}
template <>
hid_t native_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t native_type<std::int8_t>() {
  return H5T_NATIVE_INT8;
}
template <>
hid_t native_type<std::int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t native_type<std::int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t native_type<std::uint64_t>() {
  return H5T_NATIVE_UINT64;
}

// ---- Object: attributes --------------------------------------------------------------------

void Object::fail(std::string_view what) const {
  throw IoError(describe(file_path_, label_, what));
}

bool Object::has_attribute(std::string_view name) const {
  return H5Aexists(id(), std::string(name).c_str()) > 0;
}

std::vector<std::string> Object::attribute_names() const {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  };
  // Creation order when the file tracks it (ours do), name order otherwise.
  if (H5Aiterate2(id(), H5_INDEX_CRT_ORDER, H5_ITER_INC, nullptr, collect, &names) < 0) {
    names.clear();
    H5Eclear2(H5E_DEFAULT);
    if (H5Aiterate2(id(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &names) < 0) {
      fail("cannot list attributes" + hdf5_detail());
    }
  }
  return names;
}

namespace {

// Replaces an existing attribute of the same name, so writers can be re-run on an open file.
Hid create_attribute(const Object& obj, std::string_view name, hid_t type, hid_t space) {
  const std::string n(name);
  if (H5Aexists(obj.id(), n.c_str()) > 0) H5Adelete(obj.id(), n.c_str());
  Hid attr(H5Acreate2(obj.id(), n.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid()) obj.fail("cannot create " + attr_label(name) + hdf5_detail());
  return attr;
}

Hid open_attribute(const Object& obj, std::string_view name, std::string_view expected) {
  const std::string n(name);
  if (H5Aexists(obj.id(), n.c_str()) <= 0) {
    obj.fail(attr_label(name) + ": missing (expected " + std::string(expected) + ")");
  }
  Hid attr(H5Aopen(obj.id(), n.c_str(), H5P_DEFAULT), H5Aclose);
  if (!attr.valid()) obj.fail("cannot open " + attr_label(name) + hdf5_detail());
  return attr;
}

hssize_t attribute_points(const Object& obj, hid_t attr, std::string_view name) {
  Hid space(H5Aget_space(attr), H5Sclose);
  if (H5Sget_simple_extent_type(space.get()) == H5S_NULL) return 0;
  hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) obj.fail("cannot read the size of " + attr_label(name) + hdf5_detail());
  return n;
}

}  // namespace

void Object::set_string_attribute(std::string_view name, std::string_view value) {
  // Fixed-length, null-terminated, one scalar: exactly how netCDF-4 stores a text (NC_CHAR)
  // attribute. HDF5 forbids size 0, so "" is stored as a single NUL, which netCDF reads as "".
  Hid type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<std::size_t>(value.size(), 1));
  H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid attr = create_attribute(*this, name, type.get(), space.get());
  std::string buffer(value);
  buffer.resize(std::max<std::size_t>(value.size(), 1), '\0');
  if (H5Awrite(attr.get(), type.get(), buffer.data()) < 0) {
    fail("cannot write " + attr_label(name) + hdf5_detail());
  }
}

template <class T>
void Object::set_attribute(std::string_view name, T value) {
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid attr = create_attribute(*this, name, native_type<T>(), space.get());
  if (H5Awrite(attr.get(), native_type<T>(), &value) < 0) {
    fail("cannot write " + attr_label(name) + hdf5_detail());
  }
}

template <class T>
void Object::set_array_attribute(std::string_view name, std::span<const T> values) {
  const hsize_t n = values.size();
  Hid space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Hid attr = create_attribute(*this, name, native_type<T>(), space.get());
  if (H5Awrite(attr.get(), native_type<T>(), values.data()) < 0) {
    fail("cannot write " + attr_label(name) + hdf5_detail());
  }
}

std::string Object::string_attribute(std::string_view name) const {
  Hid attr = open_attribute(*this, name, "a string");
  Hid type(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING) {
    fail(attr_label(name) + ": expected a string, found a number");
  }
  const hssize_t points = attribute_points(*this, attr.get(), name);
  if (points == 0) return "";
  if (points != 1) {
    fail(attr_label(name) + ": expected one string, found " + std::to_string(points));
  }
  if (H5Tis_variable_str(type.get()) > 0) {
    Hid mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* text = nullptr;
    if (H5Aread(attr.get(), mem.get(), &text) < 0) {
      fail("cannot read " + attr_label(name) + hdf5_detail());
    }
    std::string out = text != nullptr ? text : "";
    H5free_memory(text);
    return out;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::string buffer(size, '\0');
  if (H5Aread(attr.get(), type.get(), buffer.data()) < 0) {
    fail("cannot read " + attr_label(name) + hdf5_detail());
  }
  buffer.resize(std::min(buffer.find('\0'), buffer.size()));
  if (H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD) {
    buffer.erase(buffer.find_last_not_of(' ') + 1);
  }
  return buffer;
}

template <class T>
T Object::numeric_attribute(std::string_view name) const {
  constexpr bool kIntegral = std::is_integral_v<T>;
  Hid attr = open_attribute(*this, name, kIntegral ? "an integer" : "a number");
  Hid type(H5Aget_type(attr.get()), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
    fail(attr_label(name) + ": expected a number, found a non-numeric attribute");
  }
  const hssize_t points = attribute_points(*this, attr.get(), name);
  if (points != 1) {
    fail(attr_label(name) + ": expected one value, found " + std::to_string(points));
  }
  if (kIntegral && cls == H5T_FLOAT) {
    // Another writer may have stored an integer setting as a float (e.g. N = 64.0); accept it
    // only when it is exactly an integer that fits T.
    double value = 0;
    if (H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value) < 0) {
      fail("cannot read " + attr_label(name) + hdf5_detail());
    }
    if (!(std::trunc(value) == value && value >= double(std::numeric_limits<T>::lowest()) &&
          value <= double(std::numeric_limits<T>::max()))) {
      std::ostringstream msg;
      msg << attr_label(name) << " = " << value << ": expected an integer";
      fail(msg.str());
    }
    return static_cast<T>(value);
  }
  T value{};
  if (H5Aread(attr.get(), native_type<T>(), &value) < 0) {
    fail("cannot read " + attr_label(name) + hdf5_detail());
  }
  return value;
}

template <class T>
std::vector<T> Object::array_attribute(std::string_view name) const {
  Hid attr = open_attribute(*this, name, "numbers");
  Hid type(H5Aget_type(attr.get()), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
    fail(attr_label(name) + ": expected numbers, found a non-numeric attribute");
  }
  std::vector<T> values(attribute_points(*this, attr.get(), name));
  if (!values.empty() && H5Aread(attr.get(), native_type<T>(), values.data()) < 0) {
    fail("cannot read " + attr_label(name) + hdf5_detail());
  }
  return values;
}

// ---- Dataset -------------------------------------------------------------------------------

Dataset::Dataset(Hid id, std::string file_path, std::string name)
    : Object(std::move(id), std::move(file_path), "variable " + in_quotes(name)),
      name_(std::move(name)) {}

int Dataset::rank() const {
  Hid space(H5Dget_space(id()), H5Sclose);
  return H5Sget_simple_extent_ndims(space.get());
}

std::vector<hsize_t> Dataset::dims() const {
  Hid space(H5Dget_space(id()), H5Sclose);
  const int n = H5Sget_simple_extent_ndims(space.get());
  if (n < 0) fail("cannot read the shape" + hdf5_detail());
  std::vector<hsize_t> d(n);
  H5Sget_simple_extent_dims(space.get(), d.data(), nullptr);
  return d;
}

H5T_class_t Dataset::type_class() const {
  Hid type(H5Dget_type(id()), H5Tclose);
  return H5Tget_class(type.get());
}

template <class T>
void Dataset::write(std::span<const T> values) {
  const auto d = dims();
  if (values.size() != element_count(d)) {
    fail("writing " + std::to_string(values.size()) + " values into shape " + dims_string(d));
  }
  if (values.empty()) return;
  if (H5Dwrite(id(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
    fail("cannot write" + hdf5_detail());
  }
}

template <class T>
std::vector<T> Dataset::read() const {
  std::vector<T> values(element_count(dims()));
  if (values.empty()) return values;
  if (H5Dread(id(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
    fail("cannot read as numbers" + hdf5_detail());
  }
  return values;
}

namespace {
// File and memory dataspaces for one hyperslab; fails when it lies outside the dataset.
std::pair<Hid, Hid> slab_spaces(const Dataset& ds, const std::vector<hsize_t>& start,
                                const std::vector<hsize_t>& count, std::size_t span_size) {
  const auto d = ds.dims();
  bool inside = start.size() == d.size() && count.size() == d.size();
  for (std::size_t i = 0; inside && i < d.size(); ++i)
    inside = start[i] + count[i] <= d[i];
  if (!inside) {
    ds.fail("hyperslab start " + dims_string(start) + " count " + dims_string(count) +
            " outside shape " + dims_string(d));
  }
  if (span_size != element_count(count)) {
    ds.fail("hyperslab of " + std::to_string(element_count(count)) + " values given a buffer of " +
            std::to_string(span_size));
  }
  Hid file_space(H5Dget_space(ds.id()), H5Sclose);
  H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                      nullptr);
  Hid mem_space(H5Screate_simple(int(count.size()), count.data(), nullptr), H5Sclose);
  return {std::move(file_space), std::move(mem_space)};
}
}  // namespace

template <class T>
void Dataset::write_slab(const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                         std::span<const T> values) {
  auto [file_space, mem_space] = slab_spaces(*this, start, count, values.size());
  if (values.empty()) return;
  if (H5Dwrite(id(), native_type<T>(), mem_space.get(), file_space.get(), H5P_DEFAULT,
               values.data()) < 0) {
    fail("cannot write hyperslab" + hdf5_detail());
  }
}

template <class T>
void Dataset::read_slab(const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                        std::span<T> out) const {
  auto [file_space, mem_space] = slab_spaces(*this, start, count, out.size());
  if (out.empty()) return;
  if (H5Dread(id(), native_type<T>(), mem_space.get(), file_space.get(), H5P_DEFAULT, out.data()) <
      0) {
    fail("cannot read hyperslab" + hdf5_detail());
  }
}

void Dataset::extend(const std::vector<hsize_t>& new_dims) {
  if (H5Dset_extent(id(), new_dims.data()) < 0) {
    fail("cannot extend to shape " + dims_string(new_dims) + hdf5_detail());
  }
}

void Dataset::set_units(std::string_view units, std::string_view long_name) {
  set_string_attribute("units", units);
  set_string_attribute("long_name", long_name);
}

void Dataset::require_units(std::string_view units) const {
  if (!has_attribute("units"))
    fail("attribute \"units\": missing (expected " + in_quotes(units) + ")");
  const std::string found = string_attribute("units");
  if (found != units) fail("expected units " + in_quotes(units) + ", found " + in_quotes(found));
}

void Dataset::make_scale(std::string_view dimension_name) {
  if (H5DSset_scale(id(), std::string(dimension_name).c_str()) < 0) {
    fail("cannot make it a dimension scale" + hdf5_detail());
  }
}

bool Dataset::is_scale() const {
  return H5DSis_scale(id()) > 0;
}

void Dataset::attach_scale(const Dataset& scale, unsigned index) {
  if (H5DSattach_scale(id(), scale.id(), index) < 0) {
    fail("cannot attach dimension " + in_quotes(scale.name()) + " to dimension " +
         std::to_string(index) + hdf5_detail());
  }
}

void Dataset::attach_scales(std::initializer_list<const Dataset*> scales) {
  if (int(scales.size()) != rank()) {
    fail("given " + std::to_string(scales.size()) + " dimension scales for rank " +
         std::to_string(rank()));
  }
  unsigned i = 0;
  for (const Dataset* s : scales)
    attach_scale(*s, i++);
}

// ---- Group ---------------------------------------------------------------------------------

bool Group::has(std::string_view name) const {
  return H5Lexists(id(), std::string(name).c_str(), H5P_DEFAULT) > 0;
}

template <class T>
Dataset Group::create_dataset(std::string_view name, const std::vector<hsize_t>& dims,
                              const DatasetLayout& layout) {
  const std::string n(name);
  const std::vector<hsize_t>& max_dims = layout.max_dims.empty() ? dims : layout.max_dims;
  // No dimensions: a scalar (netCDF's 0-d variable, e.g. the time of a state file).
  Hid space(dims.empty() ? H5Screate(H5S_SCALAR)
                         : H5Screate_simple(int(dims.size()), dims.data(), max_dims.data()),
            H5Sclose);
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  // netCDF-4 lists attributes in creation order and relies on the index to do it quickly.
  H5Pset_attr_creation_order(dcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  if (!layout.chunk.empty()) {
    H5Pset_chunk(dcpl.get(), int(layout.chunk.size()), layout.chunk.data());
    if (layout.deflate_level > 0) {
      H5Pset_shuffle(dcpl.get());
      H5Pset_deflate(dcpl.get(), unsigned(layout.deflate_level));
    }
  }
  Hid ds(H5Dcreate2(id(), n.c_str(), native_type<T>(), space.get(), H5P_DEFAULT, dcpl.get(),
                    H5P_DEFAULT),
         H5Dclose);
  if (!ds.valid()) {
    throw IoError(describe(file_path(), "variable " + in_quotes(name),
                           "cannot create with shape " + dims_string(dims) + hdf5_detail()));
  }
  return Dataset(std::move(ds), file_path(), n);
}

Group Group::create_group(std::string_view name) {
  const std::string n(name);
  Hid gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  H5Pset_attr_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  Hid g(H5Gcreate2(id(), n.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
  if (!g.valid())
    throw IoError(
        describe(file_path(), "group " + in_quotes(name), "cannot create" + hdf5_detail()));
  return Group(std::move(g), file_path(), "group " + in_quotes(name));
}

Group Group::open_group(std::string_view name) const {
  const std::string n(name);
  if (!has(name)) throw IoError(describe(file_path(), "group " + in_quotes(name), "missing"));
  Hid g(H5Gopen2(id(), n.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid())
    throw IoError(describe(file_path(), "group " + in_quotes(name), "cannot open" + hdf5_detail()));
  return Group(std::move(g), file_path(), "group " + in_quotes(name));
}

std::vector<std::string> Group::dataset_names() const {
  std::vector<std::string> names;
  const herr_t status = H5Literate(
      id(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t g, const char* name, const H5L_info_t* info, void* data) -> herr_t {
        if (info->type != H5L_TYPE_HARD) return 0;
        Hid object(H5Oopen(g, name, H5P_DEFAULT), H5Oclose);
        if (!object.valid()) return -1;
        if (H5Iget_type(object.get()) == H5I_DATASET)
          static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
      },
      &names);
  if (status < 0) fail("cannot list its datasets" + hdf5_detail());
  std::sort(names.begin(), names.end());
  return names;
}

Dataset Group::open_dataset(std::string_view name, std::string_view expected) const {
  const std::string n(name);
  const std::string object = "variable " + in_quotes(name);
  if (!has(name)) {
    throw IoError(describe(file_path(), object,
                           expected.empty() ? std::string("missing")
                                            : "missing (expected " + std::string(expected) + ")"));
  }
  Hid ds(H5Dopen2(id(), n.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) {
    throw IoError(describe(file_path(), object, "cannot open as a dataset" + hdf5_detail()));
  }
  return Dataset(std::move(ds), file_path(), n);
}

// ---- File ----------------------------------------------------------------------------------

File File::create(const std::filesystem::path& path, const std::string& display_path,
                  bool lock_file) {
  silence_hdf5_error_printing();
  const std::string shown = display_path.empty() ? path.string() : display_path;
  Hid fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  // Tracked and indexed creation order on the root group: netCDF-4 reads variables and
  // attributes back in the order they were written (its own files always have it).
  H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  H5Pset_attr_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // HDF5 >= 1.10 holds an exclusive lock on a file open for writing, which makes every reader
  // in another process fail until the writer closes.
  if (!lock_file) H5Pset_file_locking(fapl.get(), false, true);
  Hid file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose);
  if (!file.valid()) throw IoError(describe(shown, "", "cannot create" + hdf5_detail()));
  return File(std::move(file), shown, "");
}

namespace {
Hid open_file(const std::filesystem::path& path, unsigned flags) {
  silence_hdf5_error_printing();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw IoError(describe(path.string(), "", "does not exist"));
  }
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw IoError(describe(path.string(), "", "is not an HDF5/netCDF-4 file"));
  }
  Hid file(H5Fopen(path.c_str(), flags, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) throw IoError(describe(path.string(), "", "cannot open" + hdf5_detail()));
  return file;
}
}  // namespace

File File::open_read(const std::filesystem::path& path) {
  return File(open_file(path, H5F_ACC_RDONLY), path.string(), "");
}

File File::open_read_write(const std::filesystem::path& path) {
  return File(open_file(path, H5F_ACC_RDWR), path.string(), "");
}

void File::flush() {
  if (H5Fflush(id(), H5F_SCOPE_GLOBAL) < 0) fail("cannot flush" + hdf5_detail());
}

void File::close() {
  if (!id_.valid()) return;
  // HDF5 keeps a file open while any object in it is open, so a forgotten dataset handle
  // would let us rename a file that is not yet complete on disk.
  const ssize_t open_objects = H5Fget_obj_count(
      id(), H5F_OBJ_LOCAL | H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_ATTR | H5F_OBJ_DATATYPE);
  if (open_objects > 0) {
    fail("closing with " + std::to_string(open_objects) + " objects still open (internal error)");
  }
  if (id_.reset() < 0) fail("cannot close" + hdf5_detail());
}

// ---- StagedPath ----------------------------------------------------------------------------

StagedPath::StagedPath(std::filesystem::path final_path, std::string_view suffix)
    : final_path_(std::move(final_path)) {
  static std::atomic<unsigned> counter{0};
  std::string name = final_path_.filename().string();
  if (suffix.empty()) {
    name += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  } else {
    name += suffix;
  }
  temp_path_ = final_path_.parent_path() / name;
}

StagedPath::~StagedPath() {
  if (!committed_ && !keep_on_abandon_) {
    std::error_code ec;
    std::filesystem::remove(temp_path_, ec);
  }
}

namespace {
// Best effort for directories (some file systems refuse), required for the file itself.
bool fsync_path(const std::filesystem::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}
}  // namespace

void StagedPath::commit() {
  // Without the fsync a crash shortly after the rename could leave the final name pointing at
  // a file whose data never reached the disk.
  if (!fsync_path(temp_path_, false)) {
    throw IoError(describe(final_path_.string(), "", "cannot sync " + temp_path_.string()));
  }
  std::error_code ec;
  std::filesystem::rename(temp_path_, final_path_, ec);
  if (ec) {
    throw IoError(describe(final_path_.string(), "",
                           "cannot rename from " + temp_path_.string() + ": " + ec.message()));
  }
  committed_ = true;
  const auto dir = final_path_.parent_path();
  fsync_path(dir.empty() ? std::filesystem::path(".") : dir, true);
}

// ---- netCDF-4 conventions ------------------------------------------------------------------

template <class T>
Dataset write_coordinate(Group& group, std::string_view name, std::span<const T> values,
                         std::string_view units, std::string_view long_name, bool unlimited) {
  DatasetLayout layout;
  if (unlimited) {
    layout.max_dims = {H5S_UNLIMITED};
    layout.chunk = {1024};  // a coordinate is small; one chunk holds many appends
  }
  Dataset ds = group.create_dataset<T>(name, {hsize_t(values.size())}, layout);
  ds.write(values);
  ds.make_scale(name);
  ds.set_units(units, long_name);
  return ds;
}

Dataset write_pure_dimension(Group& group, std::string_view name, hsize_t size) {
  // netCDF-C (libhdf5/hdf5var.c) writes "%s%10d" with this sentence and the length, and
  // recognises the dimension by the sentence prefix alone.
  char scale_name[128];
  std::snprintf(scale_name, sizeof scale_name, "%s%10llu",
                "This is a netCDF dimension but not a netCDF variable.",
                static_cast<unsigned long long>(size));
  Dataset ds = group.create_dataset<float>(name, {size});
  ds.make_scale(scale_name);
  return ds;
}

// ---- explicit instantiations: the element types rtda files use -----------------------------

#define RTDA_IO_INSTANTIATE(T)                                                                   \
  template void Object::set_attribute<T>(std::string_view, T);                                   \
  template void Object::set_array_attribute<T>(std::string_view, std::span<const T>);            \
  template T Object::numeric_attribute<T>(std::string_view) const;                               \
  template std::vector<T> Object::array_attribute<T>(std::string_view) const;                    \
  template void Dataset::write<T>(std::span<const T>);                                           \
  template std::vector<T> Dataset::read<T>() const;                                              \
  template void Dataset::write_slab<T>(const std::vector<hsize_t>&, const std::vector<hsize_t>&, \
                                       std::span<const T>);                                      \
  template void Dataset::read_slab<T>(const std::vector<hsize_t>&, const std::vector<hsize_t>&,  \
                                      std::span<T>) const;                                       \
  template Dataset Group::create_dataset<T>(std::string_view, const std::vector<hsize_t>&,       \
                                            const DatasetLayout&);                               \
  template Dataset write_coordinate<T>(Group&, std::string_view, std::span<const T>,             \
                                       std::string_view, std::string_view, bool);

RTDA_IO_INSTANTIATE(double)
RTDA_IO_INSTANTIATE(float)
RTDA_IO_INSTANTIATE(std::int8_t)
RTDA_IO_INSTANTIATE(std::int32_t)
RTDA_IO_INSTANTIATE(std::int64_t)
RTDA_IO_INSTANTIATE(std::uint64_t)

#undef RTDA_IO_INSTANTIATE

}  // namespace rtda::io
