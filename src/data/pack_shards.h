#pragma once

#include "data/shard_writer.h"

#include <string>

namespace mnv2 {

/// Packs `data` (an ImageFolder or list file; a folder holding train/ packs
/// its train/ split, as training reads --data) into WebDataset shards as
/// `options` say, and logs what it wrote.
ShardWriteReport pack_into_shards(const std::string& data,
                                  const ShardWriteOptions& options);

}  // namespace mnv2
