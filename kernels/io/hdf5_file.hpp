// A small RAII layer over the HDF5 C API, shaped by what netCDF-4 readers need
// (docs/architecture.md §7): dimension scales on every dimension, string attributes that netCDF
// reads as text, and link/attribute creation order tracked and indexed.
//
// Every failure throws IoError whose message names the file, the object (variable or
// attribute) and what was expected, e.g.
//   file "runs/a/state.h5": variable "q": expected units "m s-1", found "K"
// HDF5's own automatic error printing is switched off; the innermost HDF5 message is appended
// to ours instead, so nothing is written to stderr behind the caller's back.
//
// The Debian HDF5 build is thread-safe (H5_HAVE_THREADSAFE), but an object of these classes
// must not be shared between threads without a lock.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rtda::io {

// The one exception type of rtda_io.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Formats `file "F": what` and, when `object` is non-empty, `file "F": <object>: what`.
std::string describe(std::string_view file, std::string_view object, std::string_view what);

// Owns one HDF5 identifier and closes it with the matching H5?close function.
class Hid {
 public:
  using Closer = herr_t (*)(hid_t);

  Hid() = default;
  Hid(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Hid() { reset(); }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  Hid(Hid&& other) noexcept : id_(other.id_), closer_(other.closer_) {
    other.id_ = H5I_INVALID_HID;
  }
  Hid& operator=(Hid&& other) noexcept;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; returns the close status (negative on failure) so File::close can check it.
  herr_t reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// The element types rtda files use. The explicit instantiations in hdf5_file.cpp are the
// complete list; another type is a link error, not a silent conversion.
template <class T>
hid_t native_type();
template <>
hid_t native_type<double>();
template <>
hid_t native_type<float>();
template <>
hid_t native_type<std::int8_t>();
template <>
hid_t native_type<std::int32_t>();
template <>
hid_t native_type<std::int64_t>();
template <>
hid_t native_type<std::uint64_t>();

// A group, dataset or file: anything that carries attributes. Remembers the file path and
// object name so every error can say where it happened.
class Object {
 public:
  hid_t id() const { return id_.get(); }
  const std::string& file_path() const { return file_path_; }
  // "variable \"q\"" for a dataset, "root group" for the file, "group \"g\"" for a group.
  const std::string& label() const { return label_; }

  bool has_attribute(std::string_view name) const;
  std::vector<std::string> attribute_names() const;

  // Written as a scalar fixed-length string, which netCDF-4 reads as a text attribute
  // (a Python str in netCDF4/xarray/h5py).
  void set_string_attribute(std::string_view name, std::string_view value);
  // Scalar numeric attribute, stored in the native type of T.
  template <class T>
  void set_attribute(std::string_view name, T value);
  template <class T>
  void set_array_attribute(std::string_view name, std::span<const T> values);

  // Reads fixed- or variable-length string attributes (h5py writes the latter).
  std::string string_attribute(std::string_view name) const;
  // Reads a scalar or one-element numeric attribute, converting to T; a string or missing
  // attribute is an error that names the attribute.
  template <class T>
  T numeric_attribute(std::string_view name) const;
  template <class T>
  std::vector<T> array_attribute(std::string_view name) const;

  // Throws IoError: file "F": <label>: what.
  [[noreturn]] void fail(std::string_view what) const;

 protected:
  Object(Hid id, std::string file_path, std::string label)
      : id_(std::move(id)), file_path_(std::move(file_path)), label_(std::move(label)) {}

  Hid id_;
  std::string file_path_;
  std::string label_;
};

// Storage layout options for Group::create_dataset.
struct DatasetLayout {
  std::vector<hsize_t> max_dims;  // empty = same as dims; H5S_UNLIMITED for extendable
  std::vector<hsize_t> chunk;     // empty = contiguous (required non-empty when extendable)
  int deflate_level = 0;          // 0 = no compression; 1..9 with byte shuffle
};

class Dataset : public Object {
 public:
  const std::string& name() const { return name_; }
  int rank() const;
  std::vector<hsize_t> dims() const;
  H5T_class_t type_class() const;

  // Whole-dataset transfers; the span length must equal the number of elements.
  template <class T>
  void write(std::span<const T> values);
  template <class T>
  std::vector<T> read() const;
  // Hyperslab transfers: `start` and `count` have one entry per dimension.
  template <class T>
  void write_slab(const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                  std::span<const T> values);
  template <class T>
  void read_slab(const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                 std::span<T> out) const;

  // Grows an extendable (chunked) dataset.
  void extend(const std::vector<hsize_t>& new_dims);

  // units and long_name, the two attributes every rtda variable carries.
  void set_units(std::string_view units, std::string_view long_name);
  // Fails with `expected units "<units>", found "<actual>"` (or missing).
  void require_units(std::string_view units) const;

  // Turns this dataset into the dimension scale `dimension_name` (H5DSset_scale).
  void make_scale(std::string_view dimension_name);
  bool is_scale() const;
  // Attaches `scale` to dimension `index` of this dataset (H5DSattach_scale).
  void attach_scale(const Dataset& scale, unsigned index);
  // Attaches scales to dimensions 0, 1, ... in order.
  void attach_scales(std::initializer_list<const Dataset*> scales);

 private:
  friend class Group;
  Dataset(Hid id, std::string file_path, std::string name);
  std::string name_;
};

class Group : public Object {
 public:
  bool has(std::string_view name) const;

  template <class T>
  Dataset create_dataset(std::string_view name, const std::vector<hsize_t>& dims,
                         const DatasetLayout& layout = {});
  // Fails with `variable "name": missing (expected <expected>)` when absent.
  Dataset open_dataset(std::string_view name, std::string_view expected = "") const;

  // Child groups (netCDF readers of the root see them as sub-groups and leave them alone).
  Group create_group(std::string_view name);
  // Fails with `group "name": missing` when absent.
  Group open_group(std::string_view name) const;
  // Names of the datasets directly in this group, sorted.
  std::vector<std::string> dataset_names() const;

 protected:
  using Object::Object;
};

class File : public Group {
 public:
  // Creates (truncating) `path`. Errors name `display_path` instead when given, so a file
  // staged under a temporary name is reported by the name the user asked for. With
  // `lock_file` false the writer takes no HDF5 file lock, so other processes can open the file
  // read-only while it is being written (what a streamed nature run wants).
  static File create(const std::filesystem::path& path, const std::string& display_path = "",
                     bool lock_file = true);
  static File open_read(const std::filesystem::path& path);
  static File open_read_write(const std::filesystem::path& path);

  void flush();
  // Closes the file and reports failure (the destructor closes silently).
  void close();

 private:
  using Group::Group;
};

// Stages a whole-file write under a sibling temporary name: commit() makes the data durable
// (fsync) and renames it over the final path, so a crash never leaves a half-written file under
// the final name. Without commit() the destructor removes the temporary.
class StagedPath {
 public:
  explicit StagedPath(std::filesystem::path final_path,
                      std::string_view suffix = "");  // empty suffix = unique ".tmp.<pid>.<n>"
  ~StagedPath();
  StagedPath(const StagedPath&) = delete;
  StagedPath& operator=(const StagedPath&) = delete;

  const std::filesystem::path& temp_path() const { return temp_path_; }
  const std::filesystem::path& final_path() const { return final_path_; }
  // Set false to keep the temporary when the destructor runs without commit (a partial
  // nature run is worth keeping; a partial state file is not).
  void keep_on_abandon(bool keep) { keep_on_abandon_ = keep; }
  void commit();

 private:
  std::filesystem::path final_path_;
  std::filesystem::path temp_path_;
  bool committed_ = false;
  bool keep_on_abandon_ = false;
};

// ---- netCDF-4 conventions ----------------------------------------------------------------

// A coordinate variable: a 1-D dataset that is its own dimension scale, so netCDF sees the
// dimension `name` with these values. With `unlimited` it starts at the given values but can
// grow (chunked; netCDF reports the dimension as UNLIMITED).
template <class T>
Dataset write_coordinate(Group& group, std::string_view name, std::span<const T> values,
                         std::string_view units, std::string_view long_name,
                         bool unlimited = false);

// A dimension without a coordinate variable, in netCDF-4's own encoding: an unwritten
// float32 scale dataset whose NAME starts with "This is a netCDF dimension but not a netCDF
// variable." (netCDF hides it; xarray shows a dimension without coordinates).
Dataset write_pure_dimension(Group& group, std::string_view name, hsize_t size);

}  // namespace rtda::io
