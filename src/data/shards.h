#pragma once

// WebDataset tar shards, as Python's `webdataset` writes and reads them: a
// sample is the run of consecutive members sharing a key (the member path up
// to the first dot of its file name); its image is the member with an image
// extension (jpg, jpeg, png, webp, ...) and its label the integer in
// `KEY.cls` or the "label" field of `KEY.json`.

#include <mobilenetv2/weights/model_info.h>
#include "data/dataset.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mnv2 {

/// Whether `spec` names shards: a `.tar` file, a brace pattern
/// (`train-{000000..000146}.tar`), a folder holding `.tar` files, or a text
/// file whose lines are `.tar` paths.
bool names_shards(const std::string& spec);

/// The shard paths `spec` names, in order: braces expanded as webdataset's
/// braceexpand does (`{a..b}` numeric ranges keeping zero padding, `{x,y}`
/// alternatives), a folder's `.tar` files sorted, a list file's lines
/// (relative to its folder). Throws DataError for a shard that does not
/// exist or an empty list.
std::vector<std::string> expand_shards(const std::string& spec);

/// Opens shards: every shard's header walk counts its complete samples and
/// finds the largest label (images are skipped over, not read). Class names
/// come from `classes.txt` in the first shard's folder, else the label
/// numbers. Problems (a sample without image or label, a truncated shard)
/// are logged once here; the loader meets them again and skips the same
/// samples. Throws DataError when no shard holds a sample.
Dataset open_shards(const std::string& spec);

/// One sample read from a shard.
struct ShardSample {
  int64_t index = 0;  ///< dataset index: the shard's first_index + ordinal
  int64_t label = 0;
  std::string name;   ///< "shard.tar:KEY.jpg", for messages
  std::string image;  ///< the image member's bytes (empty when skipped)
};

/// Called for a sample that is skipped and for a shard that ends early; may
/// throw to stop (--strict-data).
using ShardProblem = std::function<void(const std::string& message)>;

/// Reads one shard front to back, streaming (no seeking back).
class ShardReader {
 public:
  /// A sample whose label is `label_limit` or more (beyond the classes of
  /// classes.txt) is skipped and reported, as an unreadable label is.
  ShardReader(const ShardFile& shard,
              ShardProblem problem,
              int64_t label_limit = kMaxClasses);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  /// The next complete sample, or nullopt at the end of the shard. Without
  /// `read_image` the image's bytes are skipped over (counting).
  std::optional<ShardSample> next(bool read_image = true);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

/// The shards rank `rank` of `world_size` reads: every world_size-th in the
/// order named, starting at `rank` (webdataset's split_by_node on an
/// unshuffled list). Fixed for the whole run, so every rank knows every
/// rank's sample count and all ranks agree on the steps of an epoch.
std::vector<size_t> shards_of_rank(size_t shards,
                                   int64_t rank,
                                   int64_t world_size);

/// Samples in `ranks` shards; `padded`: the largest rank's count, which
/// every rank reaches by reading its shards again (as DistributedSampler
/// pads); else this rank's own.
int64_t shard_samples_of_rank(const Dataset& dataset,
                              int64_t rank,
                              int64_t world_size,
                              bool padded);

struct ShardStreamOptions {
  int64_t epoch = 0;
  uint64_t seed = 0;
  bool shuffle = false;
  /// Samples held for shuffling (webdataset's shuffle(bufsize)).
  int64_t shuffle_buffer = 1000;
  int64_t rank = 0;
  int64_t world_size = 1;
  /// Samples in the epoch (shard_samples_of_rank).
  int64_t length = 0;
};

/// One rank's samples for one epoch, in a fixed order given (seed, epoch,
/// rank): its shards in an order shuffled per pass, each read sequentially
/// into a bounded shuffle buffer from which samples leave at random. A pass
/// over every shard ends with the buffer drained, so each sample comes once
/// before any comes twice; padding starts a new pass.
class ShardStream {
 public:
  ShardStream(const Dataset& dataset,
              ShardStreamOptions options,
              ShardProblem problem);
  ~ShardStream();
  ShardStream(const ShardStream&) = delete;
  ShardStream& operator=(const ShardStream&) = delete;

  /// The next `count` samples, fewer at the end of the epoch.
  std::vector<ShardSample> take(int64_t count);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace mnv2
