// One rank's epoch of samples: shard order per pass, the shuffle buffer,
// padding by further passes.
#include "data/shard_stream.h"
#include "data/shard_spec.h"

#include "common/errors.h"

#include <algorithm>
#include <random>

namespace mnv2 {

namespace {

// The shuffle buffer stops filling at this many bytes of images, whatever
// --shuffle-buffer says, so its memory is bounded.
constexpr int64_t kShuffleBufferBytes = int64_t{1} << 30;

}  // namespace

struct ShardStream::State {
  const Dataset* dataset = nullptr;
  ShardStreamOptions options;
  ShardProblem problem;
  std::vector<size_t> shards;  // this rank's
  int64_t pass = -1;
  std::vector<size_t> order;  // the pass's shard order
  size_t position = 0;        // next shard of `order` to open
  std::unique_ptr<ShardReader> reader;
  bool pass_done = true;
  int64_t pass_samples = 0;
  std::vector<ShardSample> buffer;
  int64_t buffer_bytes = 0;
  std::mt19937_64 rng;
  int64_t emitted = 0;

  std::mt19937_64 seeded(int64_t pass_number, uint32_t purpose) const {
    std::seed_seq seeds{static_cast<uint32_t>(options.seed),
                        static_cast<uint32_t>(options.seed >> 32),
                        static_cast<uint32_t>(options.epoch),
                        static_cast<uint32_t>(options.rank),
                        static_cast<uint32_t>(pass_number),
                        purpose};
    return std::mt19937_64(seeds);
  }

  void start_pass() {
    if (pass >= 0 && pass_samples == 0) {
      throw DataError("the shards of rank " + std::to_string(options.rank) +
                      " of '" + dataset->origin + "' yielded no sample");
    }
    ++pass;
    pass_samples = 0;
    order = shards;
    if (options.shuffle) {
      auto shard_rng = seeded(pass, 1);
      std::shuffle(order.begin(), order.end(), shard_rng);
      rng = seeded(pass, 2);
    }
    position = 0;
    reader.reset();
    pass_done = false;
  }

  // The pass's next sample in stored order, or nullopt when it is over.
  std::optional<ShardSample> read_next() {
    while (!pass_done) {
      if (!reader) {
        if (position == order.size()) {
          pass_done = true;
          break;
        }
        reader = std::make_unique<ShardReader>(
            dataset->shards[order[position++]],
            problem,
            static_cast<int64_t>(dataset->class_names.size()));
      }
      if (auto sample = reader->next()) {
        ++pass_samples;
        return sample;
      }
      reader.reset();
    }
    return std::nullopt;
  }

  ShardSample pull() {
    while (true) {
      if (!options.shuffle) {
        if (auto sample = read_next()) {
          return std::move(*sample);
        }
        start_pass();
        continue;
      }
      while (static_cast<int64_t>(buffer.size()) < options.shuffle_buffer &&
             buffer_bytes < kShuffleBufferBytes) {
        auto sample = read_next();
        if (!sample) {
          break;
        }
        buffer_bytes += static_cast<int64_t>(sample->image.size());
        buffer.push_back(std::move(*sample));
      }
      if (buffer.empty()) {
        start_pass();
        continue;
      }
      std::uniform_int_distribution<size_t> pick(0, buffer.size() - 1);
      std::swap(buffer[pick(rng)], buffer.back());
      ShardSample out = std::move(buffer.back());
      buffer.pop_back();
      buffer_bytes -= static_cast<int64_t>(out.image.size());
      return out;
    }
  }
};

ShardStream::ShardStream(const Dataset& dataset,
                         ShardStreamOptions options,
                         ShardProblem problem)
    : s_(std::make_unique<State>()) {
  s_->dataset = &dataset;
  s_->options = options;
  s_->options.shuffle_buffer = std::max<int64_t>(options.shuffle_buffer, 1);
  s_->problem = std::move(problem);
  s_->shards =
      shards_of_rank(dataset.shards.size(), options.rank, options.world_size);
  s_->start_pass();
}

ShardStream::~ShardStream() = default;

std::vector<ShardSample> ShardStream::take(int64_t count) {
  std::vector<ShardSample> out;
  auto& s = *s_;
  while (static_cast<int64_t>(out.size()) < count &&
         s.emitted < s.options.length) {
    out.push_back(s.pull());
    ++s.emitted;
  }
  return out;
}

}  // namespace mnv2
