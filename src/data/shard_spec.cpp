// Naming and opening shards: the spec forms, counting, the split by rank.
#include "data/shard_spec.h"
#include "data/shard_reader.h"

#include "common/errors.h"
#include "common/log.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace mnv2 {

namespace {

bool ends_with_tar(const std::string& path) {
  return path.size() > 4 && path.compare(path.size() - 4, 4, ".tar") == 0;
}

std::string trimmed(const std::string& line) {
  const auto first = line.find_first_not_of(" \t\r");
  if (first == std::string::npos) {
    return {};
  }
  return line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
}

// The first line of a text file that is neither blank nor a comment.
std::string first_entry(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    line = trimmed(line);
    if (!line.empty() && line[0] != '#') {
      return line;
    }
  }
  return {};
}

bool folder_has_tar(const std::string& folder) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (entry.is_regular_file() && ends_with_tar(entry.path().string())) {
      return true;
    }
  }
  return false;
}

// braceexpand: the first {...} group, expanded, then the rest recursively.
void expand_braces(const std::string& pattern, std::vector<std::string>& out) {
  const auto open = pattern.find('{');
  if (open == std::string::npos) {
    out.push_back(pattern);
    return;
  }
  const auto close = pattern.find('}', open);
  if (close == std::string::npos) {
    throw DataError("shard pattern '" + pattern + "' has an unclosed '{'");
  }
  const std::string head = pattern.substr(0, open);
  const std::string body = pattern.substr(open + 1, close - open - 1);
  const std::string tail = pattern.substr(close + 1);
  std::vector<std::string> choices;
  const auto dots = body.find("..");
  const auto digits = [](const std::string& s) {
    return !s.empty() && s.size() <= 12 &&
           s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (dots != std::string::npos && digits(body.substr(0, dots)) &&
      digits(body.substr(dots + 2))) {
    const std::string first = body.substr(0, dots);
    const std::string last = body.substr(dots + 2);
    const auto from = std::stoll(first);
    const auto to = std::stoll(last);
    // Zero padding when either bound has it (braceexpand's rule).
    const bool padded = (first.size() > 1 && first[0] == '0') ||
                        (last.size() > 1 && last[0] == '0');
    const auto width = std::max(first.size(), last.size());
    if (std::llabs(to - from) > 10'000'000) {
      throw DataError("shard pattern '" + pattern + "' names over 10^7 shards");
    }
    const int64_t step = to >= from ? 1 : -1;
    for (auto i = from;; i += step) {
      std::string number = std::to_string(i);
      if (padded && number.size() < width) {
        number.insert(0, width - number.size(), '0');
      }
      choices.push_back(number);
      if (i == to) {
        break;
      }
    }
  } else {
    size_t start = 0;
    while (true) {
      const auto comma = body.find(',', start);
      choices.push_back(body.substr(start, comma - start));
      if (comma == std::string::npos) {
        break;
      }
      start = comma + 1;
    }
  }
  for (const auto& choice : choices) {
    expand_braces(head + choice + tail, out);
  }
}

}  // namespace

bool names_shards(const std::string& spec) {
  if (spec.find('{') != std::string::npos || ends_with_tar(spec)) {
    return true;
  }
  std::error_code ec;
  if (fs::is_directory(spec, ec)) {
    return folder_has_tar(spec);
  }
  return fs::is_regular_file(spec, ec) && ends_with_tar(first_entry(spec));
}

std::vector<std::string> expand_shards(const std::string& spec) {
  std::vector<std::string> paths;
  std::error_code ec;
  if (fs::is_directory(spec, ec)) {
    for (const auto& entry : fs::directory_iterator(spec, ec)) {
      if (entry.is_regular_file() && ends_with_tar(entry.path().string())) {
        paths.push_back(entry.path().string());
      }
    }
    std::sort(paths.begin(), paths.end());
  } else if (spec.find('{') != std::string::npos || ends_with_tar(spec)) {
    expand_braces(spec, paths);
  } else {
    std::ifstream in(spec);
    if (!in) {
      throw DataError("shard list '" + spec + "' cannot be read");
    }
    const auto base = fs::path(spec).parent_path();
    std::string line;
    while (std::getline(in, line)) {
      line = trimmed(line);
      if (!line.empty() && line[0] != '#') {
        paths.push_back(fs::path(line).is_absolute() ? line
                                                     : (base / line).string());
      }
    }
  }
  if (paths.empty()) {
    throw DataError("shards '" + spec + "' name no .tar file");
  }
  for (const auto& path : paths) {
    if (!fs::is_regular_file(path, ec)) {
      throw DataError("shard '" + path + "' (of '" + spec +
                      "') does not exist");
    }
  }
  return paths;
}

// A shard with many incomplete samples (a folder of stray files packed
// beside the images) logs this many of its problems, then their count.
constexpr size_t kProblemsNamedPerShard = 3;

Dataset open_shards(const std::string& spec) {
  Dataset dataset;
  dataset.origin = spec;
  int64_t max_label = -1;
  int64_t next_index = 0;
  const auto paths = expand_shards(spec);
  // A label beyond classes.txt's classes is a sample skipped, as an
  // unreadable label is (it stopped the run).
  const auto names_file = fs::path(paths.front()).parent_path() / "classes.txt";
  const int64_t label_limit =
      fs::exists(names_file)
          ? static_cast<int64_t>(read_class_names(names_file.string()).size())
          : kMaxClasses;
  for (const auto& path : paths) {
    ShardFile shard{path, 0, next_index, {}};
    std::vector<std::string> problems;
    ShardReader reader(
        shard,
        [&problems](const std::string& message) {
          if (problems.size() < kProblemsNamedPerShard) {
            log::warn(message);
          }
          problems.push_back(message);
        },
        label_limit);
    while (const auto sample = reader.next(/*read_image=*/false)) {
      ++shard.samples;
      max_label = std::max(max_label, sample->label);
    }
    if (problems.size() > kProblemsNamedPerShard) {
      log::warn("shard '" + path + "': " + std::to_string(problems.size()) +
                " problems in all (samples skipped, the first " +
                std::to_string(kProblemsNamedPerShard) + " named above); " +
                std::to_string(shard.samples) + " complete samples");
    }
    next_index += shard.samples;
    shard.problems = std::move(problems);
    dataset.shards.push_back(shard);
  }
  if (next_index == 0) {
    throw DataError("shards '" + spec +
                    "' hold no complete sample (an image member and a .cls "
                    "or .json label)");
  }
  dataset.class_names = class_names_beside(
      fs::path(dataset.shards.front().path).parent_path().string(),
      max_label,
      "shards '" + spec + "'");
  return dataset;
}

std::vector<size_t> shards_of_rank(size_t shards,
                                   int64_t rank,
                                   int64_t world_size) {
  std::vector<size_t> mine;
  for (auto i = static_cast<size_t>(rank); i < shards;
       i += static_cast<size_t>(world_size)) {
    mine.push_back(i);
  }
  return mine;
}

int64_t shard_samples_of_rank(const Dataset& dataset,
                              int64_t rank,
                              int64_t world_size,
                              bool padded) {
  const auto count = [&](int64_t r) {
    int64_t n = 0;
    for (const auto i : shards_of_rank(dataset.shards.size(), r, world_size)) {
      n += dataset.shards[i].samples;
    }
    return n;
  };
  if (!padded) {
    return count(rank);
  }
  int64_t most = 0;
  for (int64_t r = 0; r < world_size; ++r) {
    most = std::max(most, count(r));
  }
  return most;
}

}  // namespace mnv2
