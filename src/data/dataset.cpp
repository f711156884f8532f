#include "data/dataset.h"

#include <mobilenetv2/weights/checkpoint.h>
#include "common/errors.h"
#include "data/shard_spec.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace mnv2 {

bool has_image_extension(const std::string& path) {
  static const std::vector<std::string> extensions = {".jpg",
                                                      ".jpeg",
                                                      ".png",
                                                      ".ppm",
                                                      ".bmp",
                                                      ".pgm",
                                                      ".tif",
                                                      ".tiff",
                                                      ".webp"};
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) {
    return std::tolower(c);
  });
  return std::find(extensions.begin(), extensions.end(), ext) !=
         extensions.end();
}

ImageList list_images(const std::vector<std::string>& arguments) {
  ImageList list;
  for (const auto& argument : arguments) {
    std::error_code ec;
    if (!fs::is_directory(argument, ec)) {
      if (!fs::exists(argument, ec)) {
        throw DataError("image '" + argument + "' does not exist");
      }
      list.paths.push_back(argument);
      list.in_folder.push_back(false);
      continue;
    }
    std::vector<std::string> images;
    for (const auto& entry : fs::recursive_directory_iterator(
             argument, fs::directory_options::follow_directory_symlink, ec)) {
      if (!entry.is_regular_file()) {
        continue;
      }
      if (has_image_extension(entry.path().string())) {
        images.push_back(entry.path().string());
      } else {
        ++list.other_files;
      }
    }
    if (ec) {
      throw DataError("folder '" + argument +
                      "' cannot be read: " + ec.message());
    }
    if (images.empty()) {
      throw DataError("folder '" + argument + "' holds no image");
    }
    std::sort(images.begin(), images.end());
    list.paths.insert(list.paths.end(), images.begin(), images.end());
    list.in_folder.resize(list.paths.size(), true);
  }
  return list;
}

Dataset load_image_folder(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    throw DataError("dataset folder '" + root + "' does not exist");
  }
  Dataset dataset{root, {}, {}, {}};
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.is_directory()) {
      dataset.class_names.push_back(entry.path().filename().string());
    }
  }
  if (dataset.class_names.empty()) {
    throw DataError("dataset folder '" + root +
                    "' has no class folders (expected root/<class>/<image>)");
  }
  std::sort(dataset.class_names.begin(), dataset.class_names.end());
  for (size_t label = 0; label < dataset.class_names.size(); ++label) {
    const auto folder = fs::path(root) / dataset.class_names[label];
    std::vector<std::string> files;
    for (const auto& entry : fs::recursive_directory_iterator(
             folder, fs::directory_options::follow_directory_symlink, ec)) {
      if (entry.is_regular_file() &&
          has_image_extension(entry.path().string())) {
        files.push_back(entry.path().string());
      }
    }
    if (files.empty()) {
      throw DataError("class folder '" + folder.string() + "' has no images");
    }
    std::sort(files.begin(), files.end());
    for (auto& file : files) {
      dataset.samples.push_back({std::move(file), static_cast<int64_t>(label)});
    }
  }
  return dataset;
}

std::vector<std::string> read_class_names(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw DataError("cannot read class names from '" + path + "'");
  }
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() &&
           std::isspace(static_cast<unsigned char>(line.back()))) {
      line.pop_back();
    }
    if (!line.empty()) {
      names.push_back(line);
    }
  }
  if (names.empty()) {
    throw DataError("class name file '" + path + "' is empty");
  }
  return names;
}

Dataset load_list_file(const std::string& list_path) {
  std::ifstream in(list_path);
  if (!in) {
    throw DataError("list file '" + list_path + "' cannot be read");
  }
  const auto base = fs::path(list_path).parent_path();
  Dataset dataset{list_path, {}, {}, {}};
  int64_t max_label = -1;
  std::string line;
  for (int line_number = 1; std::getline(in, line); ++line_number) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') {
      continue;
    }
    // The label is the last field, so paths may contain spaces.
    const auto end = line.find_last_not_of(" \t\r");
    const auto split = line.find_last_of(" \t", end);
    const auto where = list_path + ":" + std::to_string(line_number);
    if (split == std::string::npos || split < first) {
      throw DataError(where + ": expected '<path> <label>', got '" + line +
                      "'");
    }
    const std::string label_text = line.substr(split + 1, end - split);
    if (label_text.find_first_not_of("0123456789") != std::string::npos ||
        label_text.size() > 9) {
      throw DataError(where + ": label '" + label_text +
                      "' is not a non-negative integer");
    }
    std::string file = line.substr(first, split - first);
    file.erase(file.find_last_not_of(" \t") + 1);
    const auto label = std::stoll(label_text);  // at most 9 digits: fits
    if (label >= kMaxClasses) {
      throw DataError(where + ": label " + label_text + " is beyond " +
                      std::to_string(kMaxClasses - 1) +
                      ", the largest class index accepted");
    }
    const fs::path path =
        fs::path(file).is_absolute() ? fs::path(file) : base / file;
    dataset.samples.push_back({path.string(), label});
    max_label = std::max<int64_t>(max_label, label);
  }
  if (dataset.samples.empty()) {
    throw DataError("list file '" + list_path + "' lists no images");
  }
  dataset.class_names = class_names_beside(
      base.string(), max_label, "list file '" + list_path + "'");
  return dataset;
}

std::vector<std::string> class_names_beside(const std::string& folder,
                                            int64_t max_label,
                                            const std::string& what) {
  const auto names_file = fs::path(folder) / "classes.txt";
  std::vector<std::string> names;
  if (fs::exists(names_file)) {
    names = read_class_names(names_file.string());
    if (static_cast<int64_t>(names.size()) <= max_label) {
      throw DataError(what + " has label " + std::to_string(max_label) +
                      " but '" + names_file.string() + "' names only " +
                      std::to_string(names.size()) + " classes");
    }
  } else {
    for (int64_t i = 0; i <= max_label; ++i) {
      names.push_back(std::to_string(i));
    }
  }
  return names;
}

Dataset open_dataset(const std::string& path) {
  if (names_shards(path)) {
    return open_shards(path);
  }
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return load_image_folder(path);
  }
  if (fs::is_regular_file(path, ec)) {
    return load_list_file(path);
  }
  throw DataError("dataset '" + path + "' does not exist");
}

}  // namespace mnv2
