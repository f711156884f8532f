#include <mobilenetv2/weights/sidecar.h>

#include <mobilenetv2/util/atomic_file.h>
#include <mobilenetv2/util/weights_error.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace mnv2 {

std::string metadata_path_for(const std::string& weights_path) {
  return std::filesystem::path(weights_path)
      .replace_extension(".json")
      .string();
}

void write_weights_metadata(const ModelInfo& info,
                            const std::string& weights_path,
                            const std::string& extra_json_fields) {
  auto j = nlohmann::json::parse(extra_json_fields);
  j["weights_file"] = std::filesystem::path(weights_path).filename().string();
  write_file_atomically(metadata_path_for(weights_path),
                        model_info_to_json(info, j.dump()));
}

std::optional<Sidecar> read_sidecar(const std::string& weights_path) {
  Sidecar sidecar;
  sidecar.path = metadata_path_for(weights_path);
  std::ifstream in(sidecar.path);
  if (!in) {
    return std::nullopt;
  }
  const std::string json{std::istreambuf_iterator<char>(in), {}};
  // Validates every field, so the raw values below are well typed.
  sidecar.info = model_info_from_json(json, sidecar.path);
  const auto raw = nlohmann::json::parse(json);
  if (raw.contains("num_classes")) {
    sidecar.stated_classes = raw["num_classes"].get<int64_t>();
  }
  if (raw.contains("class_names")) {
    sidecar.class_names = raw["class_names"].get<std::vector<std::string>>();
  }
  return sidecar;
}

}  // namespace mnv2
