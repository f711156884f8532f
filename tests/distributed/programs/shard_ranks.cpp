// Run under `mpirun -np 2` with WebDataset shards: each rank streams its
// training epochs as mnv2-train's loader does (shuffled, padded to equal
// steps), and the ranks compare through the process group what they read.
// Exits 0 when, in every epoch, the ranks took the same number of steps, no
// sample went to both ranks, and every sample was read at least once (but
// those skipped as undecodable).
#include "data/data_loader.h"
#include "data/dataset.h"
#include "distributed/process_group.h"
#include "two_ranks.h"

#include <torch/torch.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mpirun -np 2 %s SHARDS\n", argv[0]);
    return 2;
  }
  const auto launch = mnv2::test::two_rank_launch();
  mnv2::Distributed dist(launch, torch::kCPU, {});
  const auto dataset = mnv2::open_dataset(argv[1]);
  mnv2::LoaderOptions options;
  options.batch_size = 4;
  options.workers = 1;
  options.train = true;
  options.shuffle = true;
  options.shuffle_buffer = 100;
  options.seed = 3;
  options.train_transform.size = 16;
  options.rank = launch.rank;
  options.world_size = launch.world_size;
  mnv2::DataLoader loader(dataset, options);
  bool ok = true;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    // reads[r][i]: how often rank r read sample i this epoch.
    auto reads = torch::zeros({2, dataset.size()}, torch::kLong);
    auto steps = torch::zeros({2}, torch::kLong);
    auto skipped = torch::zeros({1}, torch::kLong);
    loader.start_epoch(epoch);
    while (auto batch = loader.next()) {
      for (const auto i : batch->indices) {
        reads[launch.rank][i] += 1;
      }
      steps[launch.rank] += 1;
    }
    skipped[0] = loader.skipped_in_epoch();
    std::vector<torch::Tensor> tensors{reads, steps, skipped};
    dist.all_reduce(tensors);
    const auto by_both =
        (reads[0] > 0).logical_and(reads[1] > 0).sum().item<int64_t>();
    const auto unread = (reads.sum(0) == 0).sum().item<int64_t>();
    const bool same_steps =
        steps[0].item<int64_t>() == steps[1].item<int64_t>();
    if (launch.rank == 0) {
      std::printf(
          "epoch %lld: %lld samples in %zu shards; steps %lld and %lld; read "
          "by "
          "both ranks: %lld; never read: %lld; skipped %lld; reads %lld\n",
          static_cast<long long>(epoch),
          static_cast<long long>(dataset.size()),
          dataset.shards.size(),
          static_cast<long long>(steps[0].item<int64_t>()),
          static_cast<long long>(steps[1].item<int64_t>()),
          static_cast<long long>(by_both),
          static_cast<long long>(unread),
          static_cast<long long>(skipped.item<int64_t>()),
          static_cast<long long>(reads.sum().item<int64_t>()));
    }
    ok = ok && same_steps && by_both == 0 &&
         unread <= skipped.item<int64_t>() &&
         steps[0].item<int64_t>() == loader.batches_per_epoch();
  }
  return ok ? 0 : 1;
}
