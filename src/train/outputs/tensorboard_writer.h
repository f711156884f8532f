#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace mnv2 {

/// Writes TensorBoard event files (TFRecord framing of `Event` protocol
/// buffers with scalar summaries) that TensorBoard and its Python reader
/// read. The few protobuf fields needed are encoded directly.
class TensorBoardWriter {
 public:
  /// Creates `folder/events.out.tfevents.<time>.<host>.<pid>.mnv2` (the
  /// process id keeps two runs in one second apart).
  explicit TensorBoardWriter(const std::string& folder);
  void add_scalar(const std::string& tag, double value, int64_t step);
  void flush();
  const std::string& path() const {
    return path_;
  }

 private:
  void write_record(const std::string& event);
  std::string path_;
  std::ofstream out_;
};

}  // namespace mnv2
