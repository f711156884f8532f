// Run under `mpirun -np 2` with a validation folder: each rank evaluates its
// disjoint shard and the counts are added up (what mnv2-train does each
// epoch); rank 0 then evaluates the whole folder alone. Exits 0 when top-1,
// top-5, the sample count and the confusion matrix are equal and the mean
// loss agrees to 1e-12.
#include "data/data_loader.h"
#include "data/dataset.h"
#include "distributed/launch.h"
#include "distributed/process_group.h"
#include "train/run/distributed_eval.h"
#include "two_ranks.h"

#include <mobilenetv2/nn/mobilenet_v2.h>

#include <torch/torch.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mpirun -np 2 %s VAL_FOLDER\n", argv[0]);
    return 2;
  }
  const auto launch = mnv2::test::two_rank_launch();
  mnv2::Distributed dist(launch, torch::kCPU, {});
  const auto dataset = mnv2::open_dataset(argv[1]);
  const auto classes = static_cast<int64_t>(dataset.class_names.size());
  torch::manual_seed(5);
  mnv2::MobileNetV2 model(
      mnv2::MobileNetV2Options().num_classes(classes).width_mult(0.35));
  {
    // Confident, varied predictions (a fresh head gives near-uniform ones).
    torch::NoGradGuard no_grad;
    for (auto& p : model->classifier->parameters()) {
      p.normal_(0, 0.5);
    }
  }
  model->eval();
  const auto forward = [&](const torch::Tensor& x) {
    return model->forward(x);
  };
  mnv2::LoaderOptions options;
  options.batch_size = 50;  // shards of 180: a partial last batch on each
  options.workers = 1;
  options.eval_transform.resize_size = 32;
  options.eval_transform.crop_size = 32;
  options.rank = launch.rank;
  options.world_size = launch.world_size;
  options.pad_shards = false;
  mnv2::DataLoader shard(dataset, options);
  const auto together =
      mnv2::evaluate_across_ranks(forward, shard, classes, {}, &dist);
  if (launch.rank != 0) {
    return 0;
  }
  options.rank = 0;
  options.world_size = 1;
  options.batch_size = 64;
  mnv2::DataLoader whole(dataset, options);
  const auto alone =
      mnv2::evaluate_across_ranks(forward, whole, classes, {}, nullptr);
  const bool same_counts = together.samples == alone.samples &&
                           together.correct1 == alone.correct1 &&
                           together.correct5 == alone.correct5 &&
                           torch::equal(together.confusion, alone.confusion);
  const double loss_gap = std::abs(together.loss - alone.loss) / alone.loss;
  std::printf(
      "2 ranks: %lld images, top-1 %.4f%%, top-5 %.4f%%, loss %.15f; one "
      "process: %lld images, top-1 %.4f%%, top-5 %.4f%%, loss %.15f; "
      "confusion matrices equal: %s; loss relative gap %.2g\n",
      static_cast<long long>(together.samples),
      together.top1,
      together.top5,
      together.loss,
      static_cast<long long>(alone.samples),
      alone.top1,
      alone.top5,
      alone.loss,
      torch::equal(together.confusion, alone.confusion) ? "yes" : "no",
      loss_gap);
  return same_counts && loss_gap < 1e-12 && alone.samples == 360 ? 0 : 1;
}
