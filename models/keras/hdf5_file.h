#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mnv2 {

/// A read-only HDF5 file through Debian's libhdf5 (its C API), with every
/// failure a WeightsError naming the file and HDF5's own innermost reason.
/// HDF5's printing of error stacks to stderr is switched off.
class Hdf5File {
 public:
  /// Throws WeightsError when the file is not a readable HDF5 file
  /// (truncated, corrupt, absent).
  explicit Hdf5File(const std::string& path);
  ~Hdf5File();
  Hdf5File(const Hdf5File&) = delete;
  Hdf5File& operator=(const Hdf5File&) = delete;

  const std::string& path() const {
    return path_;
  }
  /// Whether `object` ("a/b/c" from the root) is a link in the file.
  bool exists(const std::string& object) const;
  /// The strings of the attribute `name` of `object` (a 1-D array of fixed
  /// or variable length strings, as Keras writes them); empty when absent.
  std::vector<std::string> string_attribute(const std::string& object,
                                            const std::string& name) const;
  /// The shape of the float dataset `object`.
  std::vector<int64_t> dataset_shape(const std::string& object) const;
  /// The float dataset `object` as a float32 tensor of its shape. Its size is
  /// checked against the file's before anything is allocated.
  torch::Tensor read_float_dataset(const std::string& object) const;

 private:
  std::string path_;
  int64_t file_bytes_ = 0;
  int64_t id_ = -1;  // hid_t
};

/// Whether the file starts with HDF5's signature (at 0 or a user block
/// offset of 512, 1024 or 2048 bytes).
bool is_hdf5_file(const std::string& path);

}  // namespace mnv2
