#include "hdf5_file.h"

#include <mobilenetv2/util/weights_error.h>

#include <hdf5.h>
#include <torch/torch.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

namespace mnv2 {

namespace {

// Closes an HDF5 identifier with its own close function.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) {
      close_(id_);
    }
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const {
    return id_;
  }
  bool valid() const {
    return id_ >= 0;
  }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

herr_t innermost_message(unsigned /*n*/,
                         const H5E_error2_t* error,
                         void* client_data) {
  if (error->desc != nullptr && error->desc[0] != '\0') {
    *static_cast<std::string*>(client_data) = error->desc;
  }
  return 0;
}

// HDF5's own reason for the last failure (the deepest entry of its stack).
std::string hdf5_reason() {
  std::string reason;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, innermost_message, &reason);
  H5Eclear2(H5E_DEFAULT);
  return reason.empty() ? "HDF5 error" : reason;
}

}  // namespace

bool is_hdf5_file(const std::string& path) {
  static constexpr std::array<char, 8> kSignature = {
      '\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  std::ifstream in(path, std::ios::binary);
  for (std::streamoff offset : {0, 512, 1024, 2048}) {
    std::array<char, 8> head{};
    in.seekg(offset);
    if (!in.read(head.data(), head.size())) {
      return false;
    }
    if (head == kSignature) {
      return true;
    }
  }
  return false;
}

Hdf5File::Hdf5File(const std::string& path) : path_(path) {
  // Errors come back as values; HDF5 must not print its stacks.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  std::error_code ec;
  file_bytes_ = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  if (ec) {
    throw WeightsError("'" + path + "' cannot be read: " + ec.message());
  }
  id_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id_ < 0) {
    throw WeightsError("'" + path + "' is not a readable HDF5 file (" +
                       hdf5_reason() + ")");
  }
}

Hdf5File::~Hdf5File() {
  if (id_ >= 0) {
    H5Fclose(id_);
  }
}

bool Hdf5File::exists(const std::string& object) const {
  // H5Lexists needs every parent to exist: check the path step by step.
  std::string prefix;
  size_t start = 0;
  while (start <= object.size()) {
    const auto end = std::min(object.find('/', start), object.size());
    if (!prefix.empty()) {
      prefix += '/';
    }
    prefix.append(object, start, end - start);
    if (H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
    start = end + 1;
  }
  return true;
}

std::vector<std::string> Hdf5File::string_attribute(
    const std::string& object, const std::string& name) const {
  Handle target(H5Oopen(id_, object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!target.valid() || H5Aexists(target.get(), name.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return {};
  }
  Handle attribute(H5Aopen(target.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attribute.get()), H5Tclose);
  Handle space(H5Aget_space(attribute.get()), H5Sclose);
  if (!attribute.valid() || !type.valid() || !space.valid() ||
      H5Tget_class(type.get()) != H5T_STRING) {
    throw WeightsError("'" + path_ + "': attribute '" + name + "' of '" +
                       object + "' is not a list of strings");
  }
  const auto count = H5Sget_simple_extent_npoints(space.get());
  const auto width = static_cast<int64_t>(H5Tget_size(type.get()));
  if (count < 0 || width <= 0 || count * width > file_bytes_) {
    throw WeightsError("'" + path_ + "': attribute '" + name + "' of '" +
                       object + "' has an impossible size");
  }
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle memory(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(memory.get(), H5T_VARIABLE);
    // h5py writes UTF-8; HDF5 converts only between equal character sets.
    H5Tset_cset(memory.get(), H5Tget_cset(type.get()));
    std::vector<char*> strings(static_cast<size_t>(count), nullptr);
    if (H5Aread(attribute.get(), memory.get(), strings.data()) < 0) {
      throw WeightsError("'" + path_ + "': attribute '" + name +
                         "' cannot be read (" + hdf5_reason() + ")");
    }
    for (char* s : strings) {
      out.emplace_back(s == nullptr ? "" : s);
    }
    H5Dvlen_reclaim(memory.get(), space.get(), H5P_DEFAULT, strings.data());
    return out;
  }
  std::vector<char> buffer(static_cast<size_t>(count * width));
  if (H5Aread(attribute.get(), type.get(), buffer.data()) < 0) {
    throw WeightsError("'" + path_ + "': attribute '" + name +
                       "' cannot be read (" + hdf5_reason() + ")");
  }
  for (int64_t i = 0; i < count; ++i) {
    const char* s = buffer.data() + i * width;
    out.emplace_back(s, strnlen(s, static_cast<size_t>(width)));
  }
  return out;
}

std::vector<int64_t> Hdf5File::dataset_shape(const std::string& object) const {
  Handle dataset(H5Dopen2(id_, object.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) {
    throw WeightsError("'" + path_ + "': dataset '" + object +
                       "' cannot be opened (" + hdf5_reason() + ")");
  }
  Handle type(H5Dget_type(dataset.get()), H5Tclose);
  Handle space(H5Dget_space(dataset.get()), H5Sclose);
  if (!type.valid() || !space.valid() ||
      H5Tget_class(type.get()) != H5T_FLOAT) {
    throw WeightsError("'" + path_ + "': dataset '" + object +
                       "' does not hold floating-point values");
  }
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 4) {
    throw WeightsError("'" + path_ + "': dataset '" + object + "' has " +
                       std::to_string(rank) + " dimensions");
  }
  std::array<hsize_t, 4> dims{};
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return {dims.begin(), dims.begin() + rank};
}

torch::Tensor Hdf5File::read_float_dataset(const std::string& object) const {
  const auto shape = dataset_shape(object);
  int64_t elements = 1;
  for (auto d : shape) {
    // Keras stores weights uncompressed: more values than the file has
    // bytes for is a corrupt header, not a tensor to allocate.
    if (d < 0 || (d > 0 && elements > file_bytes_ / d)) {
      throw WeightsError("'" + path_ + "': dataset '" + object +
                         "' claims more values than the file holds");
    }
    elements *= d;
  }
  auto tensor = torch::empty(shape, torch::kFloat);
  Handle dataset(H5Dopen2(id_, object.c_str(), H5P_DEFAULT), H5Dclose);
  if (H5Dread(dataset.get(),
              H5T_NATIVE_FLOAT,
              H5S_ALL,
              H5S_ALL,
              H5P_DEFAULT,
              tensor.data_ptr<float>()) < 0) {
    throw WeightsError("'" + path_ + "': dataset '" + object +
                       "' cannot be read (" + hdf5_reason() + ")");
  }
  return tensor;
}

}  // namespace mnv2
