#pragma once

// The metadata file beside a weights file (`<stem>.json`): written by
// mnv2-train and mnv2-export, read by every loader, here and only here.

#include <mobilenetv2/weights/model_info.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mnv2 {

/// `<stem>.json` beside `weights_path`.
std::string metadata_path_for(const std::string& weights_path);

/// Writes `info` (plus `extra_json_fields` and the weights' file name) as
/// the metadata of `weights_path`, atomically.
void write_weights_metadata(const ModelInfo& info,
                            const std::string& weights_path,
                            const std::string& extra_json_fields = "{}");

/// A metadata file as read.
struct Sidecar {
  std::string path;
  /// Validated; classes numbered when the names do not count them.
  ModelInfo info;
  /// `num_classes` as written, or nullopt where absent.
  std::optional<int64_t> stated_classes;
  /// `class_names` as written (empty where absent).
  std::vector<std::string> class_names;
};

/// The metadata beside `weights_path`, or nullopt where there is none.
/// Throws WeightsError naming the file when it is not valid.
std::optional<Sidecar> read_sidecar(const std::string& weights_path);

}  // namespace mnv2
