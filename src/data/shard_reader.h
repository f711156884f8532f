#pragma once

// One WebDataset shard read front to back (see data/shard_spec.h).

#include <mobilenetv2/weights/model_info.h>
#include "data/dataset.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace mnv2 {

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

}  // namespace mnv2
