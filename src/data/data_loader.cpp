#include "data/data_loader.h"

#include <mobilenetv2/vision/image_decode.h>
#include "common/errors.h"
#include "common/log.h"
#include "common/runtime.h"
#include "data/batch_writer.h"
#include "data/sampler.h"
#include "data/shard_spec.h"
#include "data/shard_stream.h"
#include "data/trivial_augment.h"

#include <torch/torch.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_set>

namespace mnv2 {

namespace {

// Problems met while loading that opening the shards did not find (a shard
// changed since) are named up to this many, then counted silently.
constexpr size_t kNewProblemsNamed = 3;

}  // namespace

struct DataLoader::State {
  Dataset dataset;
  LoaderOptions options;

  std::vector<int64_t> order;  // files: the epoch's dataset indices
  // Shards: the epoch's sample stream, read in batch order by the worker
  // whose turn it is (so the order does not depend on the worker count).
  std::unique_ptr<ShardStream> stream;
  std::mutex stream_mutex;
  std::condition_variable stream_turn;
  int64_t stream_batch = 0;  // the batch whose samples are read next
  int64_t epoch = 0;
  int64_t num_batches = 0;

  std::vector<std::thread> workers;
  std::mutex mutex;
  std::condition_variable changed;
  int64_t next_to_assign = 0;
  int64_t next_to_consume = 0;
  std::map<int64_t, Batch> ready;
  std::exception_ptr error;
  bool stopping = false;
  int64_t skipped = 0;
  std::set<std::string> warned;  // each unreadable file is reported once
  // What opening the shards found and logged (summarised), looked up per
  // problem the stream meets again.
  std::unordered_set<std::string> known_problems;
  size_t new_shard_problems = 0;
  std::optional<BatchWriter> writer;  // made once the options are final

  // A sample to load: a file (its path in `name`) or a shard member's bytes.
  struct Item {
    int64_t index = 0;
    int64_t label = 0;
    std::string name;
    std::optional<std::string> bytes;
  };

  bool sharded() const {
    return !dataset.shards.empty();
  }

  int64_t samples_in_epoch() const {
    if (sharded()) {
      return shard_samples_of_rank(
          dataset, options.rank, options.world_size, options.pad_shards);
    }
    const auto n = dataset.size();
    if (!options.pad_shards) {
      return (n - options.rank + options.world_size - 1) / options.world_size;
    }
    return options.drop_last
               ? n / options.world_size
               : (n + options.world_size - 1) / options.world_size;
  }

  // A shard's problem: an error when strict, else a warning (once; those
  // found when the shards were opened were logged then).
  void report(const std::string& message) {
    if (options.strict) {
      throw DataError(message + " (--strict-data)");
    }
    std::lock_guard<std::mutex> lock(mutex);
    if (known_problems.count(message) || !warned.insert(message).second) {
      return;
    }
    ++new_shard_problems;
    if (new_shard_problems <= kNewProblemsNamed) {
      log::warn(message);
    } else if (new_shard_problems == kNewProblemsNamed + 1) {
      log::warn("further problems in the shards are not named");
    }
  }

  std::vector<Item> items_of_batch(int64_t batch) {
    std::vector<Item> items;
    if (sharded()) {
      std::unique_lock<std::mutex> lock(stream_mutex);
      stream_turn.wait(lock, [&] { return stream_batch == batch; });
      try {
        for (auto& sample : stream->take(options.batch_size)) {
          items.push_back({sample.index,
                           sample.label,
                           std::move(sample.name),
                           std::move(sample.image)});
        }
      } catch (...) {
        ++stream_batch;
        stream_turn.notify_all();
        throw;
      }
      ++stream_batch;
      stream_turn.notify_all();
      return items;
    }
    const auto begin = static_cast<size_t>(batch * options.batch_size);
    const auto end =
        std::min(order.size(), begin + static_cast<size_t>(options.batch_size));
    for (size_t i = begin; i < end; ++i) {
      const auto& sample = dataset.samples[static_cast<size_t>(order[i])];
      items.push_back({order[i], sample.label, sample.path, std::nullopt});
    }
    return items;
  }

  int64_t image_size() const {
    return options.train ? options.train_transform.size
                         : options.eval_transform.crop_size;
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    changed.notify_all();
    for (auto& worker : workers) {
      worker.join();
    }
    workers.clear();
  }

  // The transformed image of one sample (BGR), or an empty one when skipped.
  PreparedImage load_sample(const Item& item) {
    const auto index = item.index;
    try {
      const auto reduction = [this](int64_t width, int64_t height) {
        if (!options.reduced_jpeg_decode) {
          return 1;
        }
        return options.train
                   ? train_jpeg_reduction(
                         width, height, options.train_transform)
                   : eval_jpeg_reduction(width, height, options.eval_transform);
      };
      const cv::Mat bgr =
          item.bytes ? decode_bgr_bytes(item.name, *item.bytes, reduction)
                     : decode_bgr(item.name, reduction);
      if (!options.train) {
        check_resize_budget(bgr.rows,
                            bgr.cols,
                            options.eval_transform,
                            "image '" + item.name + "'");
        return {eval_transform(bgr, options.eval_transform), std::nullopt};
      }
      auto rng = sample_rng(options.seed, epoch, index);
      PreparedImage out{train_transform(bgr, options.train_transform, rng),
                        std::nullopt};
      if (options.train_transform.trivial_augment) {
        trivial_augment_wide(out.bgr, /*bgr=*/true, rng);
      }
      out.erase = random_erase_box(out.bgr.rows,
                                   out.bgr.cols,
                                   options.train_transform.random_erase_prob,
                                   rng);
      return out;
    } catch (const DataError& e) {
      if (options.strict) {
        throw;
      }
      std::lock_guard<std::mutex> lock(mutex);
      ++skipped;
      if (warned.insert(item.name).second) {
        log::warn(log::cat("skipping unreadable image: ", e.what()));
      }
      return {};
    }
  }

  Batch make_batch(int64_t batch) {
    const int64_t size = image_size();
    std::vector<PreparedImage> images;
    std::vector<int64_t> labels_of_images;
    Batch out;
    for (const auto& item : items_of_batch(batch)) {
      PreparedImage image = load_sample(item);
      if (image.bgr.empty()) {
        continue;
      }
      images.push_back(std::move(image));
      out.indices.push_back(item.index);
      labels_of_images.push_back(item.label);
    }
    out.images = writer->write(images, size);
    out.labels = torch::tensor(labels_of_images, torch::kLong);
    return out;
  }

  void work() {
    while (true) {
      int64_t batch = 0;
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] {
          return stopping || error || next_to_assign >= num_batches ||
                 next_to_assign < next_to_consume + options.prefetch_batches;
        });
        if (stopping || error || next_to_assign >= num_batches) {
          return;
        }
        batch = next_to_assign++;
      }
      try {
        Batch made = make_batch(batch);
        std::lock_guard<std::mutex> lock(mutex);
        ready.emplace(batch, std::move(made));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) {
          error = std::current_exception();
        }
      }
      changed.notify_all();
    }
  }
};

DataLoader::DataLoader(Dataset dataset, LoaderOptions options)
    : state_(std::make_unique<State>()) {
  if (dataset.size() == 0) {
    throw DataError("dataset '" + dataset.origin + "' has no samples");
  }
  if (options.batch_size < 1) {
    throw std::invalid_argument("--batch-size must be at least 1");
  }
  if (!options.train &&
      options.eval_transform.resize_size < options.eval_transform.crop_size) {
    throw std::invalid_argument(
        "the resize size must not be smaller than the crop size");
  }
  if (!dataset.shards.empty() && options.pad_shards &&
      options.world_size > static_cast<int64_t>(dataset.shards.size())) {
    throw DataError("'" + dataset.origin + "' has " +
                    std::to_string(dataset.shards.size()) + " shards for " +
                    std::to_string(options.world_size) +
                    " ranks: training needs at least one shard per rank");
  }
  if (options.strict) {
    for (const auto& shard : dataset.shards) {
      if (!shard.problems.empty()) {
        throw DataError(shard.problems.front() + " (--strict-data)");
      }
    }
  }
  if (options.workers <= 0) {
    options.workers = default_thread_count();
  }
  options.prefetch_batches = std::max(options.prefetch_batches, 1);
  for (const auto& shard : dataset.shards) {
    state_->known_problems.insert(shard.problems.begin(), shard.problems.end());
  }
  state_->dataset = std::move(dataset);
  state_->options = options;
  state_->writer.emplace(options.normalization,
                         options.normalize,
                         options.channels_last,
                         options.pin_memory);
}

DataLoader::~DataLoader() {
  state_->stop_workers();
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  auto& s = *state_;
  s.stop_workers();
  const auto& o = s.options;
  s.num_batches = batches_per_epoch();
  s.epoch = epoch;
  first_batch = std::clamp<int64_t>(first_batch, 0, s.num_batches);
  if (s.sharded()) {
    ShardStreamOptions so;
    so.epoch = epoch;
    so.seed = o.seed;
    so.shuffle = o.shuffle;
    so.shuffle_buffer = o.shuffle_buffer;
    so.rank = o.rank;
    so.world_size = o.world_size;
    so.length = std::min(s.samples_in_epoch(), s.num_batches * o.batch_size);
    s.stream = std::make_unique<ShardStream>(
        s.dataset, so, [&s](const std::string& m) { s.report(m); });
    // Resuming: the stream is read (not decoded) up to where the epoch
    // stopped, so the rest comes in the order the whole epoch would have.
    s.stream->take(first_batch * o.batch_size);
    s.stream_batch = first_batch;
  } else {
    s.order = epoch_order(s.dataset.size(),
                          epoch,
                          o.seed,
                          o.shuffle,
                          o.rank,
                          o.world_size,
                          o.drop_last,
                          o.pad_shards);
  }
  s.next_to_assign = first_batch;
  s.next_to_consume = s.next_to_assign;
  s.ready.clear();
  s.error = nullptr;
  s.stopping = false;
  s.skipped = 0;
  for (int i = 0; i < o.workers; ++i) {
    s.workers.emplace_back([&s] {
      run_intra_op_on_this_thread_only();
      s.work();
    });
  }
}

std::optional<Batch> DataLoader::next() {
  auto& s = *state_;
  while (true) {
    std::unique_lock<std::mutex> lock(s.mutex);
    if (s.next_to_consume >= s.num_batches) {
      return std::nullopt;
    }
    s.changed.wait(
        lock, [&] { return s.error || s.ready.count(s.next_to_consume) != 0; });
    if (s.error) {
      auto error = s.error;
      lock.unlock();
      s.stop_workers();
      std::rethrow_exception(error);
    }
    auto node = s.ready.extract(s.next_to_consume);
    ++s.next_to_consume;
    lock.unlock();
    s.changed.notify_all();
    if (node.mapped().indices.empty()) {
      continue;  // every image of this batch was skipped
    }
    return std::move(node.mapped());
  }
}

int64_t DataLoader::batches_per_epoch() const {
  const auto& o = state_->options;
  const auto n = samples_per_epoch();
  return o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size;
}

int64_t DataLoader::samples_per_epoch() const {
  return state_->samples_in_epoch();
}

int64_t DataLoader::skipped_in_epoch() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->skipped;
}

}  // namespace mnv2
