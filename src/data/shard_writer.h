#pragma once

#include "data/dataset.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mnv2 {

struct ShardWriteOptions {
  /// Shard paths: one printf integer field, e.g. "out/train-%06d.tar".
  std::string pattern;
  /// A shard is closed before it would pass this many bytes (a sample
  /// larger than that gets a shard of its own).
  int64_t max_bytes = int64_t{1} << 30;
  /// Images whose longer side is larger are re-encoded as JPEG at this
  /// side (FFCV's trick: decoding gets cheaper); 0 keeps every file as is.
  int max_side = 0;
  int jpeg_quality = 90;
  /// Samples are written in an order shuffled from this seed, so that each
  /// shard mixes the classes (a shuffle buffer cannot mix class-sorted
  /// shards).
  uint64_t seed = 0;
  /// Replace existing shards and classes.txt instead of refusing.
  bool overwrite = false;
  /// An unreadable image stops the packing instead of being skipped.
  bool strict = false;
};

struct ShardWriteReport {
  std::vector<std::string> shards;
  int64_t samples = 0;
  int64_t bytes = 0;
  int64_t reencoded = 0;
  int64_t skipped = 0;
};

/// Packs a dataset of files into WebDataset shards: members `KEY.<ext>`
/// (the file's bytes, or `KEY.jpg` when re-encoded) and `KEY.cls` (the label
/// as text), KEY the sample's index in `source` (9 digits), plus
/// `classes.txt` beside the shards. Each shard is written under a temporary
/// name and renamed when complete. Throws ConfigError for a bad pattern or
/// existing output (without `overwrite`), DataError for an unreadable image
/// when strict.
ShardWriteReport write_shards(const Dataset& source,
                              const ShardWriteOptions& options);

}  // namespace mnv2
