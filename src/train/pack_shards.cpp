// mnv2-train --write-shards: packs --data into WebDataset shards and stops.
#include "train/trainer.h"

#include <mobilenetv2/image_decode.h>
#include "common/errors.h"
#include "common/log.h"
#include "common/runtime.h"
#include "data/dataset.h"
#include "data/shard_writer.h"

#include <filesystem>

namespace mnv2 {

Outcome pack_into_shards(const TrainConfig& config) {
  apply_max_image_pixels(config.max_image_pixels);
  // A folder holding train/ (and val/) is read as training reads --data:
  // its train/ split, not train and val as two classes.
  std::string data = config.data;
  std::error_code ec;
  if (std::filesystem::is_directory(std::filesystem::path(data) / "train",
                                    ec)) {
    data = (std::filesystem::path(data) / "train").string();
    log::info(log::cat("'",
                       config.data,
                       "' holds train/: packing '",
                       data,
                       "'; pack val/ with its own --data and --write-shards"));
  }
  const auto source = open_dataset(data);
  ShardWriteOptions options;
  options.pattern = config.write_shards;
  options.max_bytes = config.shard_max_mb * 1024 * 1024;
  options.max_side = static_cast<int>(config.shard_max_side);
  options.seed = config.seed;
  options.overwrite = config.overwrite;
  options.strict = config.strict_data;
  log::info(log::cat("packing ",
                     source.size(),
                     " images of '",
                     source.origin,
                     "' into shards '",
                     config.write_shards,
                     "'"));
  const auto report = write_shards(source, options);
  log::info(log::cat(
      "wrote ",
      report.samples,
      " samples (",
      report.bytes / (1024.0 * 1024.0),
      " MiB of images) into ",
      report.shards.size(),
      " shards, ",
      report.shards.front(),
      report.shards.size() > 1 ? " to " + report.shards.back() : std::string(),
      "; ",
      config.shard_max_side > 0 ? log::cat(report.reencoded,
                                           " re-encoded at a longer side of ",
                                           config.shard_max_side,
                                           ", ")
                                : std::string(),
      report.skipped,
      " unreadable skipped; classes.txt beside them"));
  return Outcome::kDone;
}

}  // namespace mnv2
