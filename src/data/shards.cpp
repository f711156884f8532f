#include "data/shards.h"

#include "common/errors.h"
#include "common/log.h"
#include "common/model_info.h"

#include <archive.h>
#include <archive_entry.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>

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

// webdataset's base_plus_ext: the key is the path up to the first dot of the
// file name, the extension (lower-cased) the rest.
std::pair<std::string, std::string> key_and_extension(const std::string& path) {
  const auto slash = path.rfind('/');
  const auto name_start = slash == std::string::npos ? 0 : slash + 1;
  const auto dot = path.find('.', name_start);
  if (dot == std::string::npos || dot == name_start) {
    return {};
  }
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) {
    return std::tolower(c);
  });
  return {path.substr(0, dot), ext};
}

bool is_image_extension(const std::string& ext) {
  return has_image_extension("x." + ext);
}

// The label in a `.cls` member (an integer, blanks around it allowed).
std::optional<int64_t> parse_cls(const std::string& text) {
  const std::string t = trimmed(text);
  if (t.empty() || t.size() > 9 ||
      t.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(t);
}

// The "label" field of a `.json` member.
std::optional<int64_t> parse_json_label(const std::string& text) {
  const auto j =
      nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("label") ||
      !j["label"].is_number_integer() || j["label"].get<int64_t>() < 0) {
    return std::nullopt;
  }
  return j["label"].get<int64_t>();
}

constexpr int64_t kMaxLabelMemberBytes = 1 << 20;
// An image member larger than this is skipped (PIL's pixel budget as an
// uncompressed 8-bit RGB image is about 512 MiB).
constexpr int64_t kMaxImageMemberBytes = int64_t{1} << 30;
// The shuffle buffer stops filling at this many bytes of images, whatever
// --shuffle-buffer says, so its memory is bounded.
constexpr int64_t kShuffleBufferBytes = int64_t{1} << 30;

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

struct ShardReader::State {
  ShardFile shard;
  ShardProblem problem;
  archive* reader = nullptr;
  int64_t file_size = 0;
  int64_t ordinal = 0;
  bool done = false;

  // The sample being gathered: consecutive members sharing `key`.
  struct Group {
    std::string key;
    std::string image_name;
    std::string image;
    bool has_image = false;
    bool too_large = false;  // reported when met
    std::optional<int64_t> label;
  };
  std::optional<Group> group;

  ~State() {
    if (reader != nullptr) {
      archive_read_free(reader);
    }
  }

  std::string where() const {
    return "shard '" + shard.path + "'";
  }

  // Reads the current member's bytes; false (after reporting) on an error.
  bool read_member(int64_t size, int64_t limit, std::string& bytes) {
    if (size > limit || size > file_size) {
      problem(where() + ": a member declares " + std::to_string(size) +
              " bytes, more than the shard or the limit holds; shard ends "
              "here");
      return false;
    }
    bytes.resize(static_cast<size_t>(size));
    size_t filled = 0;
    while (filled < bytes.size()) {
      const auto got = archive_read_data(
          reader, bytes.data() + filled, bytes.size() - filled);
      if (got <= 0) {
        problem(where() + " is truncated or damaged after " +
                std::to_string(ordinal) + " samples (" +
                (got < 0 ? archive_error_string(reader) : "data ends early") +
                ")");
        return false;
      }
      filled += static_cast<size_t>(got);
    }
    return true;
  }

  // Adds the current member to `g`; false when the shard cannot go on.
  bool add_member(Group& g,
                  const std::string& path,
                  const std::string& ext,
                  int64_t size,
                  bool read_image) {
    if (is_image_extension(ext) && !g.has_image) {
      g.has_image = true;
      g.image_name = path;
      if (size > kMaxImageMemberBytes && size <= file_size) {
        g.too_large = true;
        problem(where() + ": sample '" + g.key + "' is skipped: its image " +
                path + " takes " + std::to_string(size) +
                " bytes, over the 1 GiB an image may take");
        return archive_read_data_skip(reader) == ARCHIVE_OK || skip_failed();
      }
      if (read_image) {
        return read_member(size, kMaxImageMemberBytes, g.image);
      }
      return archive_read_data_skip(reader) == ARCHIVE_OK || skip_failed();
    }
    if (ext == "cls" || ext == "json") {
      std::string text;
      if (!read_member(size, kMaxLabelMemberBytes, text)) {
        return false;
      }
      const auto label =
          ext == "cls" ? parse_cls(text) : parse_json_label(text);
      if (label && *label < kMaxClasses) {
        g.label = label;
      } else if (!g.label) {
        problem(where() + ": sample '" + g.key +
                "' has an unreadable label in " + path);
      }
      return true;
    }
    return archive_read_data_skip(reader) == ARCHIVE_OK || skip_failed();
  }

  bool skip_failed() {
    problem(where() + " is truncated or damaged after " +
            std::to_string(ordinal) + " samples (" +
            archive_error_string(reader) + ")");
    return false;
  }

  // The finished group as a sample, or nullopt (reported) when incomplete.
  std::optional<ShardSample> finish(Group g) {
    if (g.too_large) {
      return std::nullopt;
    }
    if (!g.has_image || !g.label) {
      problem(where() + ": sample '" + g.key + "' is skipped: it has no " +
              (g.has_image ? "label (.cls or .json)" : "image member"));
      return std::nullopt;
    }
    ShardSample out;
    out.index = shard.first_index + ordinal++;
    out.label = *g.label;
    out.name = shard.path + ":" + g.image_name;
    out.image = std::move(g.image);
    return out;
  }
};

ShardReader::ShardReader(const ShardFile& shard, ShardProblem problem)
    : s_(std::make_unique<State>()) {
  s_->shard = shard;
  s_->problem = std::move(problem);
  std::error_code ec;
  s_->file_size = static_cast<int64_t>(fs::file_size(shard.path, ec));
  if (ec) {
    throw DataError("shard '" + shard.path +
                    "' cannot be read: " + ec.message());
  }
  s_->reader = archive_read_new();
  archive_read_support_format_tar(s_->reader);
  if (archive_read_open_filename(s_->reader, shard.path.c_str(), 1 << 20) !=
      ARCHIVE_OK) {
    throw DataError("shard '" + shard.path + "' cannot be opened as a tar: " +
                    archive_error_string(s_->reader));
  }
}

ShardReader::~ShardReader() = default;

std::optional<ShardSample> ShardReader::next(bool read_image) {
  auto& s = *s_;
  while (!s.done) {
    archive_entry* entry = nullptr;
    const int status = archive_read_next_header(s.reader, &entry);
    if (status == ARCHIVE_EOF) {
      s.done = true;
      break;
    }
    if (status < ARCHIVE_WARN) {
      s.done = true;
      s.group.reset();  // its remaining members may be lost
      s.problem(s.where() + " is truncated or damaged after " +
                std::to_string(s.ordinal) + " samples (" +
                archive_error_string(s.reader) + ")");
      break;
    }
    if (archive_entry_filetype(entry) != AE_IFREG) {
      continue;
    }
    const std::string path = archive_entry_pathname(entry);
    const auto [key, ext] = key_and_extension(path);
    const std::string name = fs::path(path).filename().string();
    // webdataset skips members without an extension and __meta__ files.
    if (key.empty() || (name.rfind("__", 0) == 0)) {
      continue;
    }
    std::optional<State::Group> finished;
    if (s.group && s.group->key != key) {
      finished = std::move(s.group);
      s.group.reset();
    }
    if (!s.group) {
      s.group = State::Group{key, {}, {}, false, false, std::nullopt};
    }
    if (!s.add_member(
            *s.group, path, ext, archive_entry_size(entry), read_image)) {
      s.done = true;
      s.group.reset();
    }
    if (finished) {
      if (auto sample = s.finish(std::move(*finished))) {
        return sample;
      }
    }
  }
  if (s.group) {
    auto last = std::move(*s.group);
    s.group.reset();
    return s.finish(std::move(last));
  }
  return std::nullopt;
}

Dataset open_shards(const std::string& spec) {
  Dataset dataset;
  dataset.origin = spec;
  int64_t max_label = -1;
  int64_t next_index = 0;
  for (const auto& path : expand_shards(spec)) {
    ShardFile shard{path, 0, next_index, {}};
    std::vector<std::string> problems;
    ShardReader reader(shard, [&problems](const std::string& message) {
      log::warn(message);
      problems.push_back(message);
    });
    while (const auto sample = reader.next(/*read_image=*/false)) {
      ++shard.samples;
      max_label = std::max(max_label, sample->label);
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

struct ShardStream::State {
  const Dataset* dataset = nullptr;
  ShardStreamOptions options;
  ShardProblem problem;
  std::vector<size_t> shards;  // this rank's
  int64_t pass = -1;
  std::vector<size_t> order;  // the pass's shard order
  size_t position = 0;        // next shard of `order` to open
  std::unique_ptr<ShardReader> reader;
  bool pass_done = true;
  int64_t pass_samples = 0;
  std::vector<ShardSample> buffer;
  int64_t buffer_bytes = 0;
  std::mt19937_64 rng;
  int64_t emitted = 0;

  std::mt19937_64 seeded(int64_t pass_number, uint32_t purpose) const {
    std::seed_seq seeds{static_cast<uint32_t>(options.seed),
                        static_cast<uint32_t>(options.seed >> 32),
                        static_cast<uint32_t>(options.epoch),
                        static_cast<uint32_t>(options.rank),
                        static_cast<uint32_t>(pass_number),
                        purpose};
    return std::mt19937_64(seeds);
  }

  void start_pass() {
    if (pass >= 0 && pass_samples == 0) {
      throw DataError("the shards of rank " + std::to_string(options.rank) +
                      " of '" + dataset->origin + "' yielded no sample");
    }
    ++pass;
    pass_samples = 0;
    order = shards;
    if (options.shuffle) {
      auto shard_rng = seeded(pass, 1);
      std::shuffle(order.begin(), order.end(), shard_rng);
      rng = seeded(pass, 2);
    }
    position = 0;
    reader.reset();
    pass_done = false;
  }

  // The pass's next sample in stored order, or nullopt when it is over.
  std::optional<ShardSample> read_next() {
    while (!pass_done) {
      if (!reader) {
        if (position == order.size()) {
          pass_done = true;
          break;
        }
        reader = std::make_unique<ShardReader>(
            dataset->shards[order[position++]], problem);
      }
      if (auto sample = reader->next()) {
        ++pass_samples;
        return sample;
      }
      reader.reset();
    }
    return std::nullopt;
  }

  ShardSample pull() {
    while (true) {
      if (!options.shuffle) {
        if (auto sample = read_next()) {
          return std::move(*sample);
        }
        start_pass();
        continue;
      }
      while (static_cast<int64_t>(buffer.size()) < options.shuffle_buffer &&
             buffer_bytes < kShuffleBufferBytes) {
        auto sample = read_next();
        if (!sample) {
          break;
        }
        buffer_bytes += static_cast<int64_t>(sample->image.size());
        buffer.push_back(std::move(*sample));
      }
      if (buffer.empty()) {
        start_pass();
        continue;
      }
      std::uniform_int_distribution<size_t> pick(0, buffer.size() - 1);
      std::swap(buffer[pick(rng)], buffer.back());
      ShardSample out = std::move(buffer.back());
      buffer.pop_back();
      buffer_bytes -= static_cast<int64_t>(out.image.size());
      return out;
    }
  }
};

ShardStream::ShardStream(const Dataset& dataset,
                         ShardStreamOptions options,
                         ShardProblem problem)
    : s_(std::make_unique<State>()) {
  s_->dataset = &dataset;
  s_->options = options;
  s_->options.shuffle_buffer = std::max<int64_t>(options.shuffle_buffer, 1);
  s_->problem = std::move(problem);
  s_->shards =
      shards_of_rank(dataset.shards.size(), options.rank, options.world_size);
  s_->start_pass();
}

ShardStream::~ShardStream() = default;

std::vector<ShardSample> ShardStream::take(int64_t count) {
  std::vector<ShardSample> out;
  auto& s = *s_;
  while (static_cast<int64_t>(out.size()) < count &&
         s.emitted < s.options.length) {
    out.push_back(s.pull());
    ++s.emitted;
  }
  return out;
}

}  // namespace mnv2
