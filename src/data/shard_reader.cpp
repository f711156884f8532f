// Reading one shard front to back: libarchive's tar reader, members grouped
// into samples by key as webdataset groups them.
#include "data/shard_reader.h"

#include <mobilenetv2/weights/model_info.h>
#include "common/errors.h"

#include <archive.h>
#include <archive_entry.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace fs = std::filesystem;

namespace mnv2 {

namespace {

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

// The label in a `.cls` member: an integer, white space around it allowed.
std::optional<int64_t> parse_cls(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    return std::nullopt;
  }
  const auto t =
      text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
  if (t.size() > 9 || t.find_first_not_of("0123456789") != std::string::npos) {
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

}  // namespace

struct ShardReader::State {
  ShardFile shard;
  ShardProblem problem;
  int64_t label_limit = kMaxClasses;
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
    std::string bad_label;  // why a label member was not taken
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
      if (label && *label < label_limit) {
        g.label = label;
      } else if (!g.label) {
        g.bad_label = label ? "label " + std::to_string(*label) +
                                  " is beyond the " +
                                  std::to_string(label_limit) + " classes"
                            : "its label in " + path + " is unreadable";
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
      problem(where() + ": sample '" + g.key + "' is skipped: " +
              (!g.has_image           ? "it has no image member"
               : !g.bad_label.empty() ? g.bad_label
                                      : "it has no label (.cls or .json)"));
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

ShardReader::ShardReader(const ShardFile& shard,
                         ShardProblem problem,
                         int64_t label_limit)
    : s_(std::make_unique<State>()) {
  s_->shard = shard;
  s_->problem = std::move(problem);
  s_->label_limit = label_limit;
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
      s.group = State::Group{key, {}, {}, false, false, std::nullopt, {}};
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

}  // namespace mnv2
