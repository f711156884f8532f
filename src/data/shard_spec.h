#pragma once

// WebDataset tar shards, as Python's `webdataset` writes and reads them: a
// sample is the run of consecutive members sharing a key (the member path up
// to the first dot of its file name); its image is the member with an image
// extension (jpg, jpeg, png, webp, ...) and its label the integer in
// `KEY.cls` or the "label" field of `KEY.json`.
//
// This header: which shards a spec names, opening them as a dataset, and
// which of them each rank reads.

#include "data/dataset.h"

#include <cstddef>
#include <cstdint>
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

}  // namespace mnv2
