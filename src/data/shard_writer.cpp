#include "data/shard_writer.h"

#include <mobilenetv2/vision/image_decode.h>
#include "common/errors.h"
#include "common/log.h"

#include <mobilenetv2/util/atomic_file.h>

#include <archive.h>
#include <archive_entry.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <regex>
#include <sstream>

namespace fs = std::filesystem;

namespace mnv2 {

namespace {

// One sample as it goes into a shard.
struct Packed {
  std::string key;
  std::string extension;
  std::string image;
  int64_t label = 0;
  bool reencoded = false;
  bool skipped = false;
};

std::string shard_path(const std::string& pattern, int64_t number) {
  std::vector<char> out(pattern.size() + 32);
  std::snprintf(
      out.data(), out.size(), pattern.c_str(), static_cast<int>(number));
  return out.data();
}

std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  if (!ext.empty()) {
    ext.erase(0, 1);
  }
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) {
    return std::tolower(c);
  });
  return ext;
}

Packed pack_sample(const Sample& sample,
                   int64_t index,
                   const ShardWriteOptions& options) {
  char key[16];
  std::snprintf(key, sizeof key, "%09lld", static_cast<long long>(index));
  Packed out{key, lower_extension(sample.path), {}, sample.label};
  out.image = read_image_file(sample.path);
  if (options.max_side <= 0) {
    return out;
  }
  const cv::Mat bgr = decode_bgr_bytes(sample.path, out.image);
  const int longer = std::max(bgr.rows, bgr.cols);
  if (longer <= options.max_side) {
    return out;
  }
  const double scale = static_cast<double>(options.max_side) / longer;
  cv::Mat smaller;
  cv::resize(bgr,
             smaller,
             cv::Size(std::max(1, static_cast<int>(bgr.cols * scale + 0.5)),
                      std::max(1, static_cast<int>(bgr.rows * scale + 0.5))),
             0,
             0,
             cv::INTER_AREA);
  std::vector<uint8_t> jpeg;
  cv::imencode(
      ".jpg", smaller, jpeg, {cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality});
  out.image.assign(jpeg.begin(), jpeg.end());
  out.extension = "jpg";
  out.reencoded = true;
  return out;
}

// One tar being written under a temporary name.
class TarWriter {
 public:
  TarWriter(std::string path)
      : path_(std::move(path)), partial_(path_ + ".partial") {
    archive_ = archive_write_new();
    // pax with ustar headers where they suffice: what Python's tarfile
    // (webdataset) and GNU tar read.
    archive_write_set_format_pax_restricted(archive_);
    if (archive_write_open_filename(archive_, partial_.c_str()) != ARCHIVE_OK) {
      fail("cannot be created");
    }
  }
  ~TarWriter() {
    if (archive_ != nullptr) {
      archive_write_free(archive_);
      std::error_code ec;
      fs::remove(partial_, ec);
    }
  }
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  void add(const std::string& name, const std::string& bytes) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, name.c_str());
    archive_entry_set_size(entry, static_cast<la_int64_t>(bytes.size()));
    archive_entry_set_filetype(entry, AE_IFREG);
    archive_entry_set_perm(entry, 0644);
    archive_entry_set_mtime(entry, 0, 0);  // same input, same bytes
    const bool ok = archive_write_header(archive_, entry) == ARCHIVE_OK &&
                    archive_write_data(archive_, bytes.data(), bytes.size()) ==
                        static_cast<la_ssize_t>(bytes.size());
    archive_entry_free(entry);
    if (!ok) {
      fail("cannot be written");
    }
  }

  void finish() {
    if (archive_write_close(archive_) != ARCHIVE_OK) {
      fail("cannot be completed");
    }
    archive_write_free(archive_);
    archive_ = nullptr;
    std::error_code ec;
    fs::rename(partial_, path_, ec);
    if (ec) {
      throw DataError("shard '" + path_ +
                      "' cannot be put in place: " + ec.message());
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw DataError("shard '" + partial_ + "' " + what + ": " +
                    archive_error_string(archive_));
  }

  std::string path_;
  std::string partial_;
  archive* archive_ = nullptr;
};

void check_pattern(const ShardWriteOptions& options) {
  static const std::regex one_field(R"(^[^%]*%0?[1-9]?d[^%]*$)");
  if (!std::regex_match(options.pattern, one_field) ||
      options.pattern.size() < 5 ||
      options.pattern.compare(options.pattern.size() - 4, 4, ".tar") != 0) {
    throw ConfigError("--write-shards '" + options.pattern +
                      "' needs one integer field and a .tar name, e.g. "
                      "shards/train-%06d.tar");
  }
  if (options.max_bytes < 64 * 1024) {
    throw ConfigError("--write-shards: a shard must hold at least 64 KiB");
  }
  std::error_code ec;
  const auto first = shard_path(options.pattern, 0);
  if (!options.overwrite && fs::exists(first, ec)) {
    throw ConfigError("--write-shards: '" + first +
                      "' exists; --overwrite replaces shards");
  }
}

}  // namespace

ShardWriteReport write_shards(const Dataset& source,
                              const ShardWriteOptions& options) {
  check_pattern(options);
  if (!source.shards.empty()) {
    throw ConfigError("--write-shards packs an ImageFolder or list file; '" +
                      source.origin + "' is already sharded");
  }
  const auto folder = fs::path(shard_path(options.pattern, 0)).parent_path();
  std::error_code ec;
  if (!folder.empty()) {
    fs::create_directories(folder, ec);
    if (ec) {
      throw ConfigError("--write-shards: folder '" + folder.string() +
                        "' cannot be created: " + ec.message());
    }
  }
  std::vector<int64_t> order(source.samples.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(options.seed);
  std::shuffle(order.begin(), order.end(), rng);

  ShardWriteReport report;
  std::unique_ptr<TarWriter> tar;
  int64_t tar_bytes = 0;
  const auto close_tar = [&] {
    if (tar) {
      tar->finish();
      tar.reset();
    }
  };
  // Chunks are prepared in parallel (reading, re-encoding), written in order.
  constexpr int64_t kChunk = 256;
  const auto total = static_cast<int64_t>(order.size());
  for (int64_t begin = 0; begin < total; begin += kChunk) {
    const auto end = std::min(total, begin + kChunk);
    std::vector<Packed> chunk(static_cast<size_t>(end - begin));
    std::vector<std::string> errors(chunk.size());
    at::parallel_for(begin, end, 1, [&](int64_t from, int64_t to) {
      for (int64_t i = from; i < to; ++i) {
        const auto index = order[static_cast<size_t>(i)];
        auto& packed = chunk[static_cast<size_t>(i - begin)];
        try {
          packed = pack_sample(
              source.samples[static_cast<size_t>(index)], index, options);
        } catch (const DataError& e) {
          packed.skipped = true;
          errors[static_cast<size_t>(i - begin)] = e.what();
        }
      }
    });
    for (size_t i = 0; i < chunk.size(); ++i) {
      auto& packed = chunk[i];
      if (packed.skipped) {
        if (options.strict) {
          throw DataError(errors[i] + " (--strict-data)");
        }
        log::warn("skipping unreadable image: " + errors[i]);
        ++report.skipped;
        continue;
      }
      const std::string label = std::to_string(packed.label);
      // Each member takes a 512-byte header and is padded to 512 bytes.
      const auto padded = [](size_t n) {
        return static_cast<int64_t>((n + 511) / 512 * 512 + 512);
      };
      const int64_t size = padded(packed.image.size()) + padded(label.size());
      if (tar && tar_bytes + size > options.max_bytes - 1024) {
        close_tar();
      }
      if (!tar) {
        report.shards.push_back(shard_path(
            options.pattern, static_cast<int64_t>(report.shards.size())));
        if (!options.overwrite && fs::exists(report.shards.back(), ec)) {
          throw ConfigError("--write-shards: '" + report.shards.back() +
                            "' exists; --overwrite replaces shards");
        }
        tar = std::make_unique<TarWriter>(report.shards.back());
        tar_bytes = 0;
      }
      tar->add(packed.key + "." + packed.extension, packed.image);
      tar->add(packed.key + ".cls", label);
      tar_bytes += size;
      report.bytes += static_cast<int64_t>(packed.image.size());
      ++report.samples;
      report.reencoded += packed.reencoded ? 1 : 0;
    }
  }
  close_tar();
  if (report.samples == 0) {
    throw DataError("no image of '" + source.origin + "' could be packed");
  }
  std::string names;
  for (const auto& name : source.class_names) {
    names += name + "\n";
  }
  const auto names_path = (folder / "classes.txt").string();
  if (fs::exists(names_path, ec) && !options.overwrite) {
    std::ifstream in(names_path);
    std::ostringstream existing;
    existing << in.rdbuf();
    if (existing.str() != names) {
      throw ConfigError("--write-shards: '" + names_path +
                        "' exists with other class names; --overwrite "
                        "replaces it");
    }
  }
  write_file_atomically(names_path, names);
  return report;
}

}  // namespace mnv2
