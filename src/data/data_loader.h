#pragma once

#include <mobilenetv2/preprocessing/preprocessing.h>
#include "data/dataset.h"
#include "data/transforms.h"

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>

namespace mnv2 {

struct LoaderOptions {
  int64_t batch_size = 32;
  /// Decoding threads; <= 0: the available cores.
  int workers = 0;
  /// Batches decoded ahead of the consumer.
  int prefetch_batches = 4;
  bool shuffle = false;
  /// Shards only: samples held for shuffling (webdataset's shuffle buffer);
  /// memory grows with it (its size times the mean image file, filling
  /// stops at 1 GiB of images).
  int64_t shuffle_buffer = 1000;
  bool drop_last = false;
  uint64_t seed = 0;
  int64_t rank = 0;
  int64_t world_size = 1;
  /// Shards padded to equal sizes (DistributedSampler's, for training);
  /// false: disjoint shards that may differ by one sample (evaluation).
  bool pad_shards = true;
  /// An unreadable image is an error instead of a skipped sample.
  bool strict = false;
  /// JPEGs decoded at 1/2, 1/4 or 1/8 scale where the transform needs no
  /// more pixels (eval_jpeg_reduction, train_jpeg_reduction); false: always
  /// at full size (the benchmark's comparison).
  bool reduced_jpeg_decode = true;
  /// Train transforms when true, eval transforms otherwise.
  bool train = false;
  TrainTransformOptions train_transform;
  EvalTransformOptions eval_transform;
  /// Normalised float batches, made by the workers (best on CPU). When false,
  /// 8-bit batches that `normalize_images` normalises on the device (a
  /// quarter of the bytes to copy to a GPU).
  bool normalize = true;
  /// The weights' input normalisation (applied when `normalize`).
  Normalization normalization;
  /// Batches in channels_last memory (NHWC storage) instead of NCHW.
  bool channels_last = false;
  /// Page-locked batches for asynchronous copies to a CUDA device.
  bool pin_memory = false;
};

/// A batch as the loader yields it: RGB images [N, 3, H, W], normalised float
/// (or 8-bit, see LoaderOptions::normalize), and int64 labels [N].
struct Batch {
  torch::Tensor images;
  torch::Tensor labels;
  std::vector<int64_t> indices;  ///< dataset indices of the samples
};

/// Decodes and transforms images on worker threads into batches, in a fixed
/// order per epoch; the augmentation of a sample depends only on (seed,
/// epoch, index), so results do not depend on the number of workers. Files
/// are sampled as DistributedSampler does; shards are streamed as
/// ShardStream describes (whole shards per rank, a shuffle buffer). An
/// unreadable image is skipped with one warning (or is an error when strict);
/// any other worker error is rethrown by `next()`.
class DataLoader {
 public:
  DataLoader(Dataset dataset, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Starts (or restarts) an epoch at batch `first_batch` (to resume an
  /// interrupted epoch); workers begin decoding at once.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  /// The next batch of the epoch, or nullopt after the last one.
  std::optional<Batch> next();

  int64_t batches_per_epoch() const;
  int64_t samples_per_epoch() const;
  /// Images skipped as unreadable so far in this epoch.
  int64_t skipped_in_epoch() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace mnv2
