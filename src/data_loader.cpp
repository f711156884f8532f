#include "data_loader.h"

#include "errors.h"
#include "image_decode.h"
#include "log.h"
#include "runtime.h"
#include "sampler.h"

#include <torch/torch.h>

#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace mnv2 {

struct DataLoader::State {
  Dataset dataset;
  LoaderOptions options;

  std::vector<int64_t> order;
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

  // The image of one sample, or an empty matrix when it was skipped.
  cv::Mat load_sample(int64_t index) {
    const auto& sample = dataset.samples[static_cast<size_t>(index)];
    try {
      const cv::Mat rgb = decode_rgb(sample.path);
      if (!options.train) {
        return eval_transform(rgb, options.eval_transform);
      }
      std::seed_seq seeds{static_cast<uint32_t>(options.seed),
                          static_cast<uint32_t>(options.seed >> 32),
                          static_cast<uint32_t>(epoch),
                          static_cast<uint32_t>(index)};
      std::mt19937_64 rng(seeds);
      return train_transform(rgb, options.train_transform, rng);
    } catch (const DataError& e) {
      if (options.strict) {
        throw;
      }
      std::lock_guard<std::mutex> lock(mutex);
      ++skipped;
      if (warned.insert(sample.path).second) {
        log::warn(log::cat("skipping unreadable image: ", e.what()));
      }
      return {};
    }
  }

  Batch make_batch(int64_t batch) {
    const auto begin = static_cast<size_t>(batch * options.batch_size);
    const auto end =
        std::min(order.size(), begin + static_cast<size_t>(options.batch_size));
    const int64_t size = image_size();
    std::vector<cv::Mat> images;
    Batch out;
    for (size_t i = begin; i < end; ++i) {
      cv::Mat image = load_sample(order[i]);
      if (image.empty()) {
        continue;
      }
      images.push_back(std::move(image));
      out.indices.push_back(order[i]);
    }
    const auto count = static_cast<int64_t>(images.size());
    auto tensor_options = torch::TensorOptions().dtype(torch::kUInt8);
    if (options.pin_memory) {
      tensor_options = tensor_options.pinned_memory(true);
    }
    // Filled as NHWC, returned as an NCHW view: channels_last memory.
    auto nhwc = torch::empty({count, size, size, 3}, tensor_options);
    const auto bytes_per_image = static_cast<size_t>(size * size * 3);
    for (int64_t i = 0; i < count; ++i) {
      const auto& image = images[static_cast<size_t>(i)];
      TORCH_CHECK(
          image.isContinuous() && image.rows == size && image.cols == size,
          "internal: transform produced a ",
          image.rows,
          "x",
          image.cols,
          " image");
      std::memcpy(nhwc.data_ptr<uint8_t>() + i * bytes_per_image,
                  image.data,
                  bytes_per_image);
    }
    out.images = nhwc.permute({0, 3, 1, 2});
    auto labels = torch::empty({count}, torch::kLong);
    for (int64_t i = 0; i < count; ++i) {
      labels[i] = dataset.samples[static_cast<size_t>(out.indices[i])].label;
    }
    out.labels = labels;
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
  if (dataset.samples.empty()) {
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
  if (options.workers <= 0) {
    options.workers = default_thread_count();
  }
  options.prefetch_batches = std::max(options.prefetch_batches, 1);
  state_->dataset = std::move(dataset);
  state_->options = options;
}

DataLoader::~DataLoader() {
  state_->stop_workers();
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  auto& s = *state_;
  s.stop_workers();
  const auto& o = s.options;
  s.order = epoch_order(static_cast<int64_t>(s.dataset.samples.size()),
                        epoch,
                        o.seed,
                        o.shuffle,
                        o.rank,
                        o.world_size,
                        o.drop_last);
  const auto n = static_cast<int64_t>(s.order.size());
  s.num_batches =
      o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size;
  s.epoch = epoch;
  s.next_to_assign = std::clamp<int64_t>(first_batch, 0, s.num_batches);
  s.next_to_consume = s.next_to_assign;
  s.ready.clear();
  s.error = nullptr;
  s.stopping = false;
  s.skipped = 0;
  for (int i = 0; i < o.workers; ++i) {
    s.workers.emplace_back([&s] { s.work(); });
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
  const auto& o = state_->options;
  const auto n = static_cast<int64_t>(state_->dataset.samples.size());
  return o.drop_last ? n / o.world_size : (n + o.world_size - 1) / o.world_size;
}

int64_t DataLoader::skipped_in_epoch() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->skipped;
}

const Dataset& DataLoader::dataset() const {
  return state_->dataset;
}

torch::Tensor normalize_images(const torch::Tensor& images,
                               const torch::Device& device,
                               bool channels_last) {
  static const std::vector<float> mean = {0.485f, 0.456f, 0.406f};
  static const std::vector<float> std = {0.229f, 0.224f, 0.225f};
  auto options = torch::TensorOptions().dtype(torch::kFloat).device(device);
  const auto mean_t = torch::tensor(mean, options).view({1, 3, 1, 1}) * 255;
  const auto std_t = torch::tensor(std, options).view({1, 3, 1, 1}) * 255;
  auto x = images.to(device, /*non_blocking=*/true).to(torch::kFloat);
  x = (x - mean_t) / std_t;
  return x.contiguous(channels_last ? torch::MemoryFormat::ChannelsLast
                                    : torch::MemoryFormat::Contiguous);
}

}  // namespace mnv2
