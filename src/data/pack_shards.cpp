// mnv2-train --write-shards: packs a dataset into WebDataset shards.
#include "data/pack_shards.h"

#include "common/log.h"
#include "data/dataset.h"

#include <filesystem>

namespace mnv2 {

ShardWriteReport pack_into_shards(const std::string& given,
                                  const ShardWriteOptions& options) {
  // A folder holding train/ (and val/) is read as training reads --data:
  // its train/ split, not train and val as two classes.
  std::string data = given;
  std::error_code ec;
  if (std::filesystem::is_directory(std::filesystem::path(data) / "train",
                                    ec)) {
    data = (std::filesystem::path(data) / "train").string();
    log::info(log::cat("'",
                       given,
                       "' holds train/: packing '",
                       data,
                       "'; pack val/ with its own --data and --write-shards"));
  }
  const auto source = open_dataset(data);
  log::info(log::cat("packing ",
                     source.size(),
                     " images of '",
                     source.origin,
                     "' into shards '",
                     options.pattern,
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
      options.max_side > 0 ? log::cat(report.reencoded,
                                      " re-encoded at a longer side of ",
                                      options.max_side,
                                      ", ")
                           : std::string(),
      report.skipped,
      " unreadable skipped; classes.txt beside them"));
  return report;
}

}  // namespace mnv2
