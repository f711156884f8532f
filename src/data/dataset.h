#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnv2 {

struct Sample {
  std::string path;
  int64_t label;
};

/// One WebDataset tar shard and where its samples sit in the dataset's
/// numbering (shards in the order named, samples in the order stored).
struct ShardFile {
  std::string path;
  int64_t samples = 0;      ///< complete samples: an image and a label
  int64_t first_index = 0;  ///< dataset index of its first sample
  /// What opening it found and logged: samples skipped, an early end.
  std::vector<std::string> problems;
};

/// Images with integer labels and the class names those labels index: files
/// (`samples`, read in any order) or tar shards (`shards`, read front to
/// back; data/shard_spec.h).
struct Dataset {
  std::string origin;  ///< the folder, list file or shard pattern
  std::vector<Sample> samples;
  std::vector<std::string> class_names;
  std::vector<ShardFile> shards;

  int64_t size() const {
    return shards.empty() ? static_cast<int64_t>(samples.size())
                          : shards.back().first_index + shards.back().samples;
  }
};

/// torchvision's IMG_EXTENSIONS, compared case-blind.
bool has_image_extension(const std::string& path);

/// The images named on a command line: files as given, folders searched
/// recursively (in sorted order) for files with an image extension.
struct ImageList {
  std::vector<std::string> paths;
  std::vector<bool> in_folder;  ///< found in a folder (not named)
  int64_t other_files = 0;      ///< files in the folders that are not images
};

/// Throws DataError naming a path that does not exist or a folder holding
/// no image.
ImageList list_images(const std::vector<std::string>& arguments);

/// `root/<class>/<image>`: classes sorted as torchvision sorts them (by code
/// point), so class indices agree with `torchvision.datasets.ImageFolder`.
/// Files inside a class folder are found recursively and sorted. Throws
/// DataError for a missing or empty root or a class folder with no images.
Dataset load_image_folder(const std::string& root);

/// A text file of `<path> <label>` lines (paths relative to the file's folder;
/// blank lines and `#` comments ignored). Class names come from a
/// `classes.txt` beside it (one per line) or are the label numbers. Throws
/// DataError naming the file and line for a bad line.
Dataset load_list_file(const std::string& list_path);

/// Class names for labels up to `max_label`: `classes.txt` in `folder` when
/// it exists (DataError when it names too few), else the label numbers.
/// `what` names the data in the error.
std::vector<std::string> class_names_beside(const std::string& folder,
                                            int64_t max_label,
                                            const std::string& what);

/// Shards (data/shard_spec.h: a .tar, a brace pattern, a folder of .tar files
/// or a list of them), else a folder is an ImageFolder and a file a list file.
Dataset open_dataset(const std::string& path);

/// One class name per line (blank lines ignored). Throws DataError.
std::vector<std::string> read_class_names(const std::string& path);

}  // namespace mnv2
