#pragma once

#include "common/flag_table.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mnv2 {

/// Everything mnv2-train can be told. Defaults are the `torchvision-v1`
/// recipe's; `apply_recipe` sets a named recipe's values, and flags given
/// explicitly override them one by one.
struct TrainConfig {
  // Data
  std::string data;
  std::string val_data;  ///< empty: a val/ beside a train/ folder
  std::string output;
  int64_t img_size = 224;
  int64_t val_resize = 256;
  int64_t val_crop = 224;
  double crop_scale_min = 0.08;
  double hflip = 0.5;
  double random_erase = 0.0;
  bool trivial_augment = false;
  bool strict_data = false;
  /// Images declaring more pixels are skipped (refused with --strict-data)
  /// before decoding; PIL's default.
  int64_t max_image_pixels = 178956970;
  int workers = 0;  ///< <= 0: available cores
  /// Shards: samples held for shuffling (webdataset's shuffle buffer).
  int64_t shuffle_buffer = 1000;
  /// Pack --data into WebDataset shards at this pattern and stop (no
  /// training): "out/train-%06d.tar".
  std::string write_shards;
  int64_t shard_max_mb = 1024;
  int64_t shard_max_side = 0;  ///< 0: images kept as they are

  // Model
  double width_mult = 1.0;
  /// With --pretrained, take the weights' width instead of `width_mult`
  /// (mnv2-train: when --width-mult is not given).
  bool width_from_pretrained = false;
  double dropout = 0.2;
  /// "auto" (the --pretrained weights', else "torch"), "torch" or "tf_same".
  std::string padding = "auto";
  std::string pretrained;
  bool freeze_features = false;
  /// Quantization-aware training: the forward pass simulates the int8
  /// engine (mnv2::qat_forward); checkpoints keep the activation ranges,
  /// from which `mnv2-export --format int8` writes the int8 file.
  bool qat = false;
  /// With --qat: the epoch from which BatchNorm is folded with frozen
  /// running statistics (before, batch statistics as in float training).
  int64_t qat_freeze_bn_epoch = 1;

  // Optimisation
  std::string recipe = "torchvision-v1";
  int64_t epochs = 300;
  int64_t batch_size = 32;
  std::string optimizer = "sgd";  ///< sgd | rmsprop | adamw
  double lr = 0.045;
  double momentum = 0.9;
  bool nesterov = false;
  double opt_eps = 1e-3;  ///< RMSProp (inside the sqrt) and AdamW epsilon
  double weight_decay = 4e-5;
  double norm_weight_decay = 0.0;     ///< for BN and bias parameters
  std::string lr_scheduler = "step";  ///< step | exponential | cosine
  int64_t lr_step_size = 1;
  double lr_gamma = 0.98;
  double lr_min = 0.0;
  int64_t warmup_epochs = 0;
  double warmup_decay = 0.01;
  double label_smoothing = 0.0;
  double mixup_alpha = 0.0;
  double cutmix_alpha = 0.0;
  double clip_grad_norm = 0.0;  ///< 0: off
  bool ema = false;
  int64_t ema_steps = 32;
  double ema_decay = 0.99998;

  // Execution
  std::string device = "auto";
  bool amp = false;
  /// auto (bf16 on a CPU with native bf16, fp16 on CUDA) | fp16 | bf16
  std::string amp_dtype = "auto";
  /// NHWC memory: 1.6-2x faster training on CPU here. Default: on.
  bool channels_last = true;
  /// Training BatchNorm + ReLU6 through the fused CPU kernels
  /// (mnv2::fused_batchnorm_relu6) where they apply. Default: on.
  bool fused_batchnorm = true;
  bool deterministic = false;
  uint64_t seed = 0;
  int threads = 0;  ///< <= 0: available cores
  std::string resume;
  bool overwrite = false;     ///< start over in a folder that holds a run
  int64_t log_interval = 20;  ///< steps between progress lines off a terminal
  /// Micro-batches whose gradients add up before one optimiser step.
  int64_t accumulate_steps = 1;

  // Distributed (used when a launcher starts several processes)
  std::string dist_backend = "auto";  ///< auto | nccl | mpi
  int64_t dist_timeout = 600;         ///< seconds a rank waits for the others
  double ddp_bucket_mb = 25;          ///< DDP's bucket cap (the first is 1 MiB)
  std::string ddp_comm_hook = "none";  ///< none | fp16 | bf16

  /// One-line reasons the configuration cannot run; empty when it can.
  std::vector<std::string> problems() const;
};

/// Recipe names `apply_recipe` knows.
std::vector<std::string> recipe_names();

/// Sets the named recipe's published settings (see README); returns false
/// and changes nothing for an unknown name (which `problems()` reports).
bool apply_recipe(TrainConfig& config, const std::string& name);

/// With a training size other than its recipe's and a validation size not
/// given (`*_given` false), sets that validation size to the recipe's scaled
/// by the ratio of the training sizes, so that evaluation follows training
/// as the recipe has it (digits at 64: validation 64/64; torchvision-v1 at
/// 32: 37/32).
void follow_training_size(TrainConfig& config,
                          bool resize_given,
                          bool crop_given);

/// mnv2-train's flags, each declared once (train_options.cpp).
const FlagTable<TrainConfig>& train_flags();

/// The configuration as a JSON object (logged, saved with checkpoints).
std::string to_json(const TrainConfig& config);

}  // namespace mnv2
