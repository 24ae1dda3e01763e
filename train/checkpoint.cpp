// HDF5 checkpoints with the HDF5 C API (layout in docs/checkpoint.md).
//
// Every hid_t lives in an H5Handle, so an exception closes what was opened.
// HDF5's automatic error printing is switched off for the duration of each
// call (QuietHdf5) and every failure becomes an ssm::Error
// "[checkpoint] <path>: <what>[; HDF5: <HDF5's innermost reason>]".
#include "train/checkpoint.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "train/checkpoint_testing.h"

namespace ssm {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFormatName = "ssmkit-checkpoint";

// ------------------------------------------------------------------ plumbing

// Owns one HDF5 identifier and closes it with the matching H5?close.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  H5Handle(H5Handle&& other) noexcept
      : id_(std::exchange(other.id_, H5I_INVALID_HID)), closer_(other.closer_) {}
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
      closer_ = other.closer_;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  ~H5Handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; false when the close failed (for a file: the final flush).
  bool close() {
    const bool ok = !valid() || closer_(id_) >= 0;
    id_ = H5I_INVALID_HID;
    return ok;
  }

 private:
  void reset() {
    if (valid()) closer_(id_);
    id_ = H5I_INVALID_HID;
  }
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Silences HDF5's automatic error printing while alive and restores the
// previous handler afterwards (the setting is per thread in thread-safe builds).
class QuietHdf5 {
 public:
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietHdf5(const QuietHdf5&) = delete;
  QuietHdf5& operator=(const QuietHdf5&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

herr_t collect_reason(unsigned /*n*/, const H5E_error2_t* err, void* data) {
  if (err->desc != nullptr && err->desc[0] != '\0') *static_cast<std::string*>(data) = err->desc;
  return 0;
}

// "; HDF5: <innermost message of HDF5's error stack>", or "" when the stack
// is empty. Call it right after the failing HDF5 call.
std::string h5_reason() {
  std::string reason;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_reason, &reason);
  return reason.empty() ? std::string() : "; HDF5: " + reason;
}

// The file being written or read; its failures name it.
struct Ctx {
  std::string path;
  template <class... Parts>
  [[noreturn]] void fail(Parts&&... parts) const {
    ssm::fail("checkpoint", path, ": ", std::forward<Parts>(parts)...);
  }
};

std::string join(const std::string& group, const std::string& name) {
  return group == "/" ? "/" + name : group + "/" + name;
}

H5Handle make_plist(const Ctx& c, hid_t cls) {
  H5Handle p(H5Pcreate(cls), H5Pclose);
  if (!p.valid()) c.fail("cannot create an HDF5 property list", h5_reason());
  return p;
}

// File access: the 1.8 file format (checksummed metadata, attributes over
// 64 KiB), no file locking (files are replaced by rename, never shared
// while written; locking fails on some network file systems).
H5Handle file_access(const Ctx& c) {
  H5Handle fapl = make_plist(c, H5P_FILE_ACCESS);
  if (H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18) < 0) {
    c.fail("cannot set the HDF5 format version", h5_reason());
  }
#if H5_VERSION_GE(1, 10, 7)
  if (H5Pset_file_locking(fapl.get(), false, true) < 0) {
    c.fail("cannot disable HDF5 file locking", h5_reason());
  }
#endif
  return fapl;
}

H5Handle string_type(const Ctx& c) {
  H5Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!t.valid() || H5Tset_size(t.get(), H5T_VARIABLE) < 0 ||
      H5Tset_cset(t.get(), H5T_CSET_UTF8) < 0) {
    c.fail("cannot create the string type", h5_reason());
  }
  return t;
}

hid_t native_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return H5T_NATIVE_FLOAT;
    case DType::Float64: return H5T_NATIVE_DOUBLE;
    case DType::Int32: return H5T_NATIVE_INT32;
    case DType::Int64: return H5T_NATIVE_INT64;
    case DType::BFloat16: break;
  }
  return H5I_INVALID_HID;
}

// ------------------------------------------------------------------ writing

// Creates the attribute and writes `data` (nothing for a zero-element space).
void write_attribute(const Ctx& c, hid_t obj, const std::string& where, const char* name,
                     hid_t type, hid_t space, const void* data) {
  H5Handle attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid()) c.fail("cannot create attribute ", name, " on ", where, h5_reason());
  if (H5Sget_simple_extent_npoints(space) == 0) return;
  if (H5Awrite(attr.get(), type, data) < 0) {
    c.fail("cannot write attribute ", name, " on ", where, h5_reason());
  }
}

H5Handle scalar_space(const Ctx& c) {
  H5Handle s(H5Screate(H5S_SCALAR), H5Sclose);
  if (!s.valid()) c.fail("cannot create a dataspace", h5_reason());
  return s;
}

H5Handle simple_space(const Ctx& c, const std::vector<hsize_t>& dims) {
  H5Handle s(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  if (!s.valid()) c.fail("cannot create a dataspace", h5_reason());
  return s;
}

template <class T>
void write_number_attribute(const Ctx& c, hid_t obj, const std::string& where, const char* name,
                            hid_t type, T value) {
  H5Handle space = scalar_space(c);
  write_attribute(c, obj, where, name, type, space.get(), &value);
}

void write_string_attribute(const Ctx& c, hid_t obj, const std::string& where, const char* name,
                            const std::string& value) {
  H5Handle type = string_type(c);
  H5Handle space = scalar_space(c);
  const char* text = value.c_str();
  write_attribute(c, obj, where, name, type.get(), space.get(), &text);
}

void write_names_attribute(const Ctx& c, hid_t group, const std::string& where,
                           const std::vector<std::string>& names) {
  H5Handle type = string_type(c);
  H5Handle space = simple_space(c, {static_cast<hsize_t>(names.size())});
  std::vector<const char*> texts;
  texts.reserve(names.size());
  for (const auto& n : names) texts.push_back(n.c_str());
  write_attribute(c, group, where, "names", type.get(), space.get(), texts.data());
}

H5Handle create_group(const Ctx& c, hid_t loc, const std::string& name, const std::string& full) {
  H5Handle g(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!g.valid()) c.fail("cannot create group ", full, h5_reason());
  return g;
}

// A key becomes a path under its group: dots stay, each '/' opens a
// subgroup. Keys HDF5 would read differently are refused.
void check_key(const Ctx& c, const std::string& group, const std::string& key,
               std::set<std::string>& seen) {
  bool ok = !key.empty() && key.front() != '/' && key.back() != '/' &&
            key.find("//") == std::string::npos;
  std::istringstream parts(key);
  for (std::string part; ok && std::getline(parts, part, '/');) ok = part != ".";
  if (!ok) {
    c.fail("invalid name '", key, "' in ", group,
           " (empty, a leading, trailing or doubled '/', or a '.' component)");
  }
  if (!seen.insert(key).second) c.fail("duplicate name '", key, "' in ", group);
}

void write_tensor(const Ctx& c, hid_t group, hid_t lcpl, const std::string& key,
                  const std::string& full, const Tensor& tensor) {
  if (!tensor.defined()) c.fail(full, " is an undefined tensor");
  const hid_t type = native_type(tensor.dtype());
  if (type < 0) {
    c.fail(full, " has dtype ", dtype_name(tensor.dtype()),
           ", which checkpoints do not support (convert it to float32)");
  }
  const Tensor t = tensor.to(Device::cpu()).contiguous();
  H5Handle space;
  if (t.dim() == 0) {
    space = scalar_space(c);
  } else {
    std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
    space = simple_space(c, dims);
  }
  H5Handle ds(H5Dcreate2(group, key.c_str(), type, space.get(), lcpl, H5P_DEFAULT, H5P_DEFAULT),
              H5Dclose);
  if (!ds.valid()) c.fail("cannot create dataset ", full, h5_reason());
  if (t.numel() > 0 && H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) < 0) {
    c.fail("cannot write dataset ", full, h5_reason());
  }
}

template <class T>
void write_scalar(const Ctx& c, hid_t group, hid_t lcpl, const std::string& key,
                  const std::string& full, hid_t type, T value) {
  H5Handle space = scalar_space(c);
  H5Handle ds(H5Dcreate2(group, key.c_str(), type, space.get(), lcpl, H5P_DEFAULT, H5P_DEFAULT),
              H5Dclose);
  if (!ds.valid()) c.fail("cannot create dataset ", full, h5_reason());
  if (H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0) {
    c.fail("cannot write dataset ", full, h5_reason());
  }
}

// Writes /<parent>/<name> with its `names` attribute and one dataset per entry.
template <class Value, class WriteOne>
void write_named_group(const Ctx& c, hid_t parent, const std::string& full, const std::string& name,
                       const std::vector<std::pair<std::string, Value>>& entries,
                       WriteOne&& write_one) {
  H5Handle group = create_group(c, parent, name, full);
  std::set<std::string> seen;
  std::vector<std::string> names;
  names.reserve(entries.size());
  for (const auto& [key, value] : entries) {
    check_key(c, full, key, seen);
    names.push_back(key);
  }
  write_names_attribute(c, group.get(), full, names);
  for (const auto& [key, value] : entries) write_one(group.get(), key, join(full, key), value);
}

// Writes the whole checkpoint to `file_path` (the temporary file). Every
// handle is closed when this returns or throws.
void write_file(const Ctx& c, const std::string& file_path, const Checkpoint& ckpt) {
  H5Handle fapl = file_access(c);
  H5Handle lcpl = make_plist(c, H5P_LINK_CREATE);
  if (H5Pset_create_intermediate_group(lcpl.get(), 1) < 0 ||
      H5Pset_char_encoding(lcpl.get(), H5T_CSET_UTF8) < 0) {
    c.fail("cannot set up link creation", h5_reason());
  }
  H5Handle file(H5Fcreate(file_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!file.valid()) c.fail("cannot create ", file_path, h5_reason());
  {
    const hid_t root = file.get();
    write_string_attribute(c, root, "/", "format", kFormatName);
    write_number_attribute(c, root, "/", "format_version", H5T_NATIVE_INT64,
                           kCheckpointFormatVersion);
    write_number_attribute(c, root, "/", "step", H5T_NATIVE_INT64, ckpt.step);
    write_number_attribute(c, root, "/", "epoch", H5T_NATIVE_INT64, ckpt.epoch);
    write_number_attribute(c, root, "/", "best_metric", H5T_NATIVE_DOUBLE, ckpt.best_metric);
    write_string_attribute(c, root, "/", "config", ckpt.config_yaml);

    const hid_t link = lcpl.get();
    auto tensor_writer = [&](hid_t g, const std::string& key, const std::string& full,
                             const Tensor& t) { write_tensor(c, g, link, key, full, t); };
    write_named_group(c, root, "/model", "model", ckpt.model, tensor_writer);

    H5Handle optimizer = create_group(c, root, "optimizer", "/optimizer");
    write_named_group(c, optimizer.get(), "/optimizer/tensors", "tensors", ckpt.optimizer.tensors,
                      tensor_writer);
    write_named_group(
        c, optimizer.get(), "/optimizer/counters", "counters", ckpt.optimizer.counters,
        [&](hid_t g, const std::string& key, const std::string& full, std::int64_t v) {
          write_scalar(c, g, link, key, full, H5T_NATIVE_INT64, v);
        });

    H5Handle rng = create_group(c, root, "rng", "/rng");
    write_scalar(c, rng.get(), link, "seed", "/rng/seed", H5T_NATIVE_UINT64, ckpt.rng.seed);
    write_scalar(c, rng.get(), link, "stream", "/rng/stream", H5T_NATIVE_UINT32, ckpt.rng.stream);
    write_scalar(c, rng.get(), link, "offset", "/rng/offset", H5T_NATIVE_UINT64, ckpt.rng.offset);

    H5Handle data = create_group(c, root, "data", "/data");
    write_scalar(c, data.get(), link, "epoch", "/data/epoch", H5T_NATIVE_INT64, ckpt.data_epoch);
    write_scalar(c, data.get(), link, "index", "/data/index", H5T_NATIVE_INT64, ckpt.data_index);
  }
  if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) c.fail("cannot flush ", file_path, h5_reason());
  if (!file.close()) c.fail("cannot close ", file_path, h5_reason());
}

// fsync, so that the rename never publishes a file whose data is not yet on
// disk. Directories may refuse (EINVAL on some file systems): not an error.
void sync_path(const Ctx& c, const std::string& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) {
    if (directory) return;
    c.fail("cannot open ", p, " to sync it: ", std::strerror(errno));
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && !directory && err != EINVAL && err != ENOTSUP) {
    c.fail("cannot sync ", p, ": ", std::strerror(err));
  }
}

// ------------------------------------------------------------------ reading

bool link_exists(hid_t loc, const std::string& path) {
  // H5Lexists checks the last component only: walk the path one part at a time.
  std::string prefix;
  std::istringstream parts(path);
  for (std::string part; std::getline(parts, part, '/');) {
    prefix += prefix.empty() ? part : "/" + part;
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

H5Handle open_group(const Ctx& c, hid_t loc, const std::string& name, const std::string& full) {
  if (!link_exists(loc, name)) c.fail("missing group ", full);
  H5Handle g(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) c.fail(full, " is not a group", h5_reason());
  return g;
}

H5Handle open_dataset(const Ctx& c, hid_t loc, const std::string& name, const std::string& full) {
  if (!link_exists(loc, name)) c.fail("missing dataset ", full);
  H5Handle d(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.valid()) c.fail(full, " is not a dataset", h5_reason());
  return d;
}

H5Handle open_attribute(const Ctx& c, hid_t obj, const std::string& where, const char* name) {
  const htri_t exists = H5Aexists(obj, name);
  if (exists < 0) c.fail("cannot look up attribute ", name, " on ", where, h5_reason());
  if (exists == 0) c.fail("missing attribute ", name, " on ", where);
  H5Handle a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!a.valid()) c.fail("cannot open attribute ", name, " on ", where, h5_reason());
  return a;
}

// "unsigned 2-byte integer", "4-byte float", "string", ...
std::string describe_type(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t size = H5Tget_size(type);
  std::ostringstream os;
  switch (cls) {
    case H5T_INTEGER:
      os << (H5Tget_sign(type) == H5T_SGN_NONE ? "unsigned " : "signed ") << size
         << "-byte integer";
      break;
    case H5T_FLOAT: os << size << "-byte float"; break;
    case H5T_STRING: os << "string"; break;
    case H5T_BITFIELD: os << "bitfield"; break;
    case H5T_OPAQUE: os << "opaque"; break;
    case H5T_COMPOUND: os << "compound"; break;
    case H5T_REFERENCE: os << "reference"; break;
    case H5T_ENUM: os << "enum"; break;
    case H5T_VLEN: os << "variable-length sequence"; break;
    case H5T_ARRAY: os << "array"; break;
    default: os << "unknown type class " << static_cast<int>(cls); break;
  }
  return os.str();
}

// The tensor dtype of an HDF5 type; false when it has none.
bool tensor_dtype(hid_t type, DType& out) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT && (size == 4 || size == 8)) {
    out = size == 4 ? DType::Float32 : DType::Float64;
    return true;
  }
  if (cls == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_2 && (size == 4 || size == 8)) {
    out = size == 4 ? DType::Int32 : DType::Int64;
    return true;
  }
  return false;
}

// The shape of a scalar or simple dataspace.
Shape read_shape(const Ctx& c, hid_t space, const std::string& full) {
  const H5S_class_t cls = H5Sget_simple_extent_type(space);
  if (cls == H5S_SCALAR) return {};
  if (cls != H5S_SIMPLE) c.fail(full, " has no data (null dataspace)");
  const int ndim = H5Sget_simple_extent_ndims(space);
  if (ndim < 0) c.fail("cannot read the shape of ", full, h5_reason());
  std::vector<hsize_t> dims(static_cast<std::size_t>(ndim));
  if (H5Sget_simple_extent_dims(space, dims.data(), nullptr) < 0) {
    c.fail("cannot read the shape of ", full, h5_reason());
  }
  return Shape(dims.begin(), dims.end());
}

// Reads /<group>/<key> as a tensor; with load false only checks its dtype
// and shape and returns an undefined tensor.
Tensor read_tensor(const Ctx& c, hid_t group, const std::string& key, const std::string& full,
                   bool load) {
  H5Handle ds = open_dataset(c, group, key, full);
  H5Handle type(H5Dget_type(ds.get()), H5Tclose);
  if (!type.valid()) c.fail("cannot read the type of ", full, h5_reason());
  DType dtype = DType::Float32;
  if (!tensor_dtype(type.get(), dtype)) {
    c.fail(full, " has dtype ", describe_type(type.get()),
           " (expected float32, float64, int32 or int64)");
  }
  H5Handle space(H5Dget_space(ds.get()), H5Sclose);
  if (!space.valid()) c.fail("cannot read the dataspace of ", full, h5_reason());
  const Shape shape = read_shape(c, space.get(), full);
  if (!load) return Tensor();
  Tensor t = Tensor::empty(shape, dtype);
  if (t.numel() > 0 &&
      H5Dread(ds.get(), native_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) < 0) {
    c.fail("cannot read dataset ", full, h5_reason());
  }
  return t;
}

// Reads a one-element integer dataset as T (memory type `type`).
template <class T>
T read_integer(const Ctx& c, hid_t group, const std::string& key, const std::string& full,
               hid_t type) {
  H5Handle ds = open_dataset(c, group, key, full);
  H5Handle ftype(H5Dget_type(ds.get()), H5Tclose);
  if (!ftype.valid()) c.fail("cannot read the type of ", full, h5_reason());
  if (H5Tget_class(ftype.get()) != H5T_INTEGER) {
    c.fail(full, " has dtype ", describe_type(ftype.get()), " (expected an integer)");
  }
  H5Handle space(H5Dget_space(ds.get()), H5Sclose);
  if (!space.valid() || H5Sget_simple_extent_npoints(space.get()) != 1) {
    c.fail(full, " is not a single value");
  }
  T value{};
  if (H5Dread(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0) {
    c.fail("cannot read dataset ", full, h5_reason());
  }
  return value;
}

// One number from a one-element attribute whose class is `cls`.
template <class T>
T read_number_attribute(const Ctx& c, hid_t obj, const std::string& where, const char* name,
                        hid_t type, H5T_class_t cls, const char* expected) {
  H5Handle attr = open_attribute(c, obj, where, name);
  H5Handle ftype(H5Aget_type(attr.get()), H5Tclose);
  H5Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (!ftype.valid() || !space.valid()) c.fail("cannot inspect attribute ", name, h5_reason());
  if (H5Tget_class(ftype.get()) != cls) {
    c.fail("attribute ", name, " on ", where, " has dtype ", describe_type(ftype.get()),
           " (expected ", expected, ")");
  }
  if (H5Sget_simple_extent_npoints(space.get()) != 1) {
    c.fail("attribute ", name, " on ", where, " is not a single value");
  }
  T value{};
  if (H5Aread(attr.get(), type, &value) < 0) {
    c.fail("cannot read attribute ", name, " on ", where, h5_reason());
  }
  return value;
}

// The strings of a string attribute (variable or fixed length, scalar or 1-d).
std::vector<std::string> read_strings(const Ctx& c, hid_t obj, const std::string& where,
                                      const char* name) {
  H5Handle attr = open_attribute(c, obj, where, name);
  H5Handle ftype(H5Aget_type(attr.get()), H5Tclose);
  H5Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (!ftype.valid() || !space.valid()) c.fail("cannot inspect attribute ", name, h5_reason());
  if (H5Tget_class(ftype.get()) != H5T_STRING) {
    c.fail("attribute ", name, " on ", where, " has dtype ", describe_type(ftype.get()),
           " (expected a string)");
  }
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) c.fail("cannot read the size of attribute ", name, " on ", where, h5_reason());
  std::vector<std::string> out;
  if (n == 0) return out;
  out.reserve(static_cast<std::size_t>(n));
  H5Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!mtype.valid()) c.fail("cannot create the string type", h5_reason());
  H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get()));
  if (H5Tis_variable_str(ftype.get()) > 0) {
    H5Tset_size(mtype.get(), H5T_VARIABLE);
    std::vector<char*> texts(static_cast<std::size_t>(n), nullptr);
    if (H5Aread(attr.get(), mtype.get(), texts.data()) < 0) {
      c.fail("cannot read attribute ", name, " on ", where, h5_reason());
    }
    for (char* t : texts) out.emplace_back(t != nullptr ? t : "");
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(mtype.get(), space.get(), H5P_DEFAULT, texts.data());
#else
    H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, texts.data());
#endif
  } else {
    // Fixed length: read with null padding so no character is cut for a terminator.
    const std::size_t size = H5Tget_size(ftype.get());
    H5Tset_size(mtype.get(), size);
    H5Tset_strpad(mtype.get(), H5T_STR_NULLPAD);
    std::vector<char> buf(size * static_cast<std::size_t>(n));
    if (H5Aread(attr.get(), mtype.get(), buf.data()) < 0) {
      c.fail("cannot read attribute ", name, " on ", where, h5_reason());
    }
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
      const char* p = buf.data() + i * size;
      out.emplace_back(p, strnlen(p, size));
    }
  }
  return out;
}

std::string read_string(const Ctx& c, hid_t obj, const std::string& where, const char* name) {
  auto v = read_strings(c, obj, where, name);
  if (v.size() != 1) c.fail("attribute ", name, " on ", where, " is not a single string");
  return v[0];
}

// The entries of a group written by write_named_group, in the order of its
// `names` attribute.
template <class Value, class ReadOne>
std::vector<std::pair<std::string, Value>> read_named_group(const Ctx& c, hid_t parent,
                                                            const std::string& name,
                                                            const std::string& full,
                                                            ReadOne&& read_one) {
  H5Handle group = open_group(c, parent, name, full);
  std::vector<std::pair<std::string, Value>> out;
  std::set<std::string> seen;
  for (const auto& key : read_strings(c, group.get(), full, "names")) {
    check_key(c, full, key, seen);
    out.emplace_back(key, read_one(group.get(), key, join(full, key)));
  }
  return out;
}

// Opens a checkpoint file, checking that it is HDF5 and of this format.
H5Handle open_checkpoint(const Ctx& c) {
  std::error_code ec;
  const auto status = fs::status(c.path, ec);
  if (ec || !fs::exists(status)) c.fail("no such file");
  if (!fs::is_regular_file(status)) c.fail("not a regular file");
#if H5_VERSION_GE(1, 12, 0)
  const htri_t is_hdf5 = H5Fis_accessible(c.path.c_str(), H5P_DEFAULT);
#else
  const htri_t is_hdf5 = H5Fis_hdf5(c.path.c_str());
#endif
  if (is_hdf5 <= 0) c.fail("not an HDF5 file (truncated or foreign)");
  H5Handle fapl = file_access(c);
  H5Handle file(H5Fopen(c.path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  if (!file.valid()) c.fail("not an HDF5 file (truncated or foreign)", h5_reason());

  const htri_t has_format = H5Aexists(file.get(), "format");
  if (has_format <= 0) c.fail("not an ssmkit checkpoint (no attribute format on /)");
  const std::string format = read_string(c, file.get(), "/", "format");
  if (format != kFormatName) {
    c.fail("not an ssmkit checkpoint (attribute format on / is '", format, "', expected '",
           kFormatName, "')");
  }
  const auto version = read_number_attribute<std::int64_t>(
      c, file.get(), "/", "format_version", H5T_NATIVE_INT64, H5T_INTEGER, "an integer");
  if (version > kCheckpointFormatVersion) {
    c.fail("format '", kFormatName, "' version ", version, " is newer than this build (",
           kCheckpointFormatVersion, ")");
  }
  if (version < 1) c.fail("format '", kFormatName, "' has invalid version ", version);
  return file;
}

// Reads (load true) or only checks (load false: tensors stay undefined) a checkpoint.
Checkpoint read_file(const Ctx& c, bool load) {
  H5Handle file = open_checkpoint(c);
  Checkpoint ckpt;
  const hid_t root = file.get();
  ckpt.step = read_number_attribute<std::int64_t>(c, root, "/", "step", H5T_NATIVE_INT64,
                                                  H5T_INTEGER, "an integer");
  ckpt.epoch = read_number_attribute<std::int64_t>(c, root, "/", "epoch", H5T_NATIVE_INT64,
                                                   H5T_INTEGER, "an integer");
  ckpt.best_metric = read_number_attribute<double>(c, root, "/", "best_metric", H5T_NATIVE_DOUBLE,
                                                   H5T_FLOAT, "a float");
  ckpt.config_yaml = read_string(c, root, "/", "config");

  auto tensor_reader = [&](hid_t g, const std::string& key, const std::string& full) {
    return read_tensor(c, g, key, full, load);
  };
  ckpt.model = read_named_group<Tensor>(c, root, "model", "/model", tensor_reader);
  H5Handle optimizer = open_group(c, root, "optimizer", "/optimizer");
  ckpt.optimizer.tensors =
      read_named_group<Tensor>(c, optimizer.get(), "tensors", "/optimizer/tensors", tensor_reader);
  ckpt.optimizer.counters = read_named_group<std::int64_t>(
      c, optimizer.get(), "counters", "/optimizer/counters",
      [&](hid_t g, const std::string& key, const std::string& full) {
        return read_integer<std::int64_t>(c, g, key, full, H5T_NATIVE_INT64);
      });

  H5Handle rng = open_group(c, root, "rng", "/rng");
  ckpt.rng.seed = read_integer<std::uint64_t>(c, rng.get(), "seed", "/rng/seed", H5T_NATIVE_UINT64);
  ckpt.rng.stream =
      read_integer<std::uint32_t>(c, rng.get(), "stream", "/rng/stream", H5T_NATIVE_UINT32);
  ckpt.rng.offset =
      read_integer<std::uint64_t>(c, rng.get(), "offset", "/rng/offset", H5T_NATIVE_UINT64);

  H5Handle data = open_group(c, root, "data", "/data");
  ckpt.data_epoch =
      read_integer<std::int64_t>(c, data.get(), "epoch", "/data/epoch", H5T_NATIVE_INT64);
  ckpt.data_index =
      read_integer<std::int64_t>(c, data.get(), "index", "/data/index", H5T_NATIVE_INT64);
  return ckpt;
}

// Opens an existing file for editing (checkpoint_testing only).
H5Handle open_for_edit(const Ctx& c) {
  H5Handle fapl = file_access(c);
  H5Handle file(H5Fopen(c.path.c_str(), H5F_ACC_RDWR, fapl.get()), H5Fclose);
  if (!file.valid()) c.fail("cannot open for editing", h5_reason());
  return file;
}

void close_edited(const Ctx& c, H5Handle& file) {
  if (!file.close()) c.fail("cannot close after editing", h5_reason());
}

}  // namespace

// ------------------------------------------------------------------ public API

void write_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  const QuietHdf5 quiet;
  const Ctx c{path};
  const std::string tmp = path + ".tmp";
  std::error_code ec;
  try {
    fs::remove(tmp, ec);  // a leftover of a crashed write
    write_file(c, tmp, ckpt);
    sync_path(c, tmp, false);
    fs::rename(tmp, path, ec);
    if (ec) c.fail("cannot rename ", tmp, " onto ", path, ": ", ec.message());
  } catch (const Error&) {
    fs::remove(tmp, ec);
    throw;
  } catch (const std::exception& e) {
    fs::remove(tmp, ec);
    c.fail(e.what());
  }
  const fs::path parent = fs::path(path).parent_path();
  sync_path(c, parent.empty() ? std::string(".") : parent.string(), true);
}

void write_hdf5_tensors(const std::string& path, const StateDict& tensors,
                        const std::vector<std::pair<std::string, std::string>>& attributes) {
  const QuietHdf5 quiet;
  const Ctx c{path};
  const std::string tmp = path + ".tmp";
  std::error_code ec;
  auto write = [&] {
    H5Handle fapl = file_access(c);
    H5Handle lcpl = make_plist(c, H5P_LINK_CREATE);
    if (H5Pset_create_intermediate_group(lcpl.get(), 1) < 0 ||
        H5Pset_char_encoding(lcpl.get(), H5T_CSET_UTF8) < 0) {
      c.fail("cannot set up link creation", h5_reason());
    }
    H5Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
    if (!file.valid()) c.fail("cannot create ", tmp, h5_reason());
    for (const auto& [name, value] : attributes) {
      write_string_attribute(c, file.get(), "/", name.c_str(), value);
    }
    std::set<std::string> seen;
    for (const auto& [key, t] : tensors) {
      if (key.empty() || !seen.insert(key).second) c.fail("empty or repeated key '", key, "'");
      write_tensor(c, file.get(), lcpl.get(), key, "/" + key, t);
    }
    if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) c.fail("cannot flush ", tmp, h5_reason());
    if (!file.close()) c.fail("cannot close ", tmp, h5_reason());
  };
  try {
    fs::remove(tmp, ec);
    write();
    sync_path(c, tmp, false);
    fs::rename(tmp, path, ec);
    if (ec) c.fail("cannot rename ", tmp, " onto ", path, ": ", ec.message());
  } catch (const Error&) {
    fs::remove(tmp, ec);
    throw;
  } catch (const std::exception& e) {
    fs::remove(tmp, ec);
    c.fail(e.what());
  }
}

Checkpoint read_checkpoint(const std::string& path) {
  const QuietHdf5 quiet;
  return read_file(Ctx{path}, true);
}

StateDict read_hdf5_group(const std::string& path, const std::string& group) {
  const QuietHdf5 quiet;
  const Ctx c{path};
  if (!fs::is_regular_file(path)) c.fail("no such file");
  H5Handle fapl = file_access(c);
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  if (!file.valid()) c.fail("not an HDF5 file", h5_reason());
  if (group != "/" && !link_exists(file.get(), group.front() == '/' ? group.substr(1) : group)) {
    c.fail("no group ", group);
  }
  H5Handle g(H5Gopen2(file.get(), group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) c.fail(group, " is not a group", h5_reason());
  H5G_info_t info;
  if (H5Gget_info(g.get(), &info) < 0) c.fail("cannot list group ", group, h5_reason());
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n =
        H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) c.fail("cannot read a link name in ", group, h5_reason());
    std::string name(static_cast<std::size_t>(n), '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                       static_cast<std::size_t>(n) + 1, H5P_DEFAULT);
    // H5Oopen + H5Iget_type: the same call in HDF5 1.10 and 1.12+.
    H5Handle obj(H5Oopen(g.get(), name.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj.valid()) c.fail("cannot open ", join(group, name), h5_reason());
    if (H5Iget_type(obj.get()) == H5I_DATASET) names.push_back(name);
  }
  StateDict out;
  for (const auto& name : names) {
    out.emplace_back(name, read_tensor(c, g.get(), name, join(group, name), true));
  }
  return out;
}

bool is_valid_checkpoint(const std::string& path) {
  try {
    const QuietHdf5 quiet;
    read_file(Ctx{path}, false);
    return true;
  } catch (...) {
    return false;
  }
}

std::string find_latest_checkpoint(const std::string& dir) {
  try {
    const QuietHdf5 quiet;
    std::error_code ec;
    std::string best;
    std::int64_t best_step = 0;
    fs::file_time_type best_time;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& p = it->path();
      std::error_code fec;
      if (p.extension() != ".h5" || !it->is_regular_file(fec)) continue;
      Checkpoint head;
      try {
        head = read_file(Ctx{p.string()}, false);
      } catch (const std::exception&) {  // invalid: skipped
        continue;
      }
      const fs::file_time_type time = fs::last_write_time(p, fec);
      if (fec) continue;
      // Highest step, then newest file, then the greatest name (deterministic).
      const bool better = best.empty() || head.step > best_step ||
                          (head.step == best_step &&
                           (time > best_time || (time == best_time && p.string() > best)));
      if (better) {
        best = p.string();
        best_step = head.step;
        best_time = time;
      }
    }
    return best;
  } catch (...) {
    return "";
  }
}

namespace checkpoint_testing {

void remove_link(const std::string& path, const std::string& link) {
  const QuietHdf5 quiet;
  const Ctx c{path};
  H5Handle file = open_for_edit(c);
  if (H5Ldelete(file.get(), link.c_str(), H5P_DEFAULT) < 0) {
    c.fail("cannot delete ", link, h5_reason());
  }
  close_edited(c, file);
}

void remove_root_attribute(const std::string& path, const std::string& name) {
  const QuietHdf5 quiet;
  const Ctx c{path};
  H5Handle file = open_for_edit(c);
  if (H5Adelete(file.get(), name.c_str()) < 0) {
    c.fail("cannot delete attribute ", name, " on /", h5_reason());
  }
  close_edited(c, file);
}

void set_root_attribute(const std::string& path, const std::string& name, std::int64_t value) {
  const QuietHdf5 quiet;
  const Ctx c{path};
  H5Handle file = open_for_edit(c);
  if (H5Aexists(file.get(), name.c_str()) > 0 && H5Adelete(file.get(), name.c_str()) < 0) {
    c.fail("cannot delete attribute ", name, " on /", h5_reason());
  }
  write_number_attribute(c, file.get(), "/", name.c_str(), H5T_NATIVE_INT64, value);
  close_edited(c, file);
}

}  // namespace checkpoint_testing

}  // namespace ssm
