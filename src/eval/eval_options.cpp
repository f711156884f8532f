#include "eval/eval_commands.h"

#include <mobilenetv2/weights/checkpoint.h>
#include "eval/weights_flags.h"

namespace mnv2 {

const FlagTable<EvalCommand>& eval_flags() {
  using C = EvalCommand;
  static const FlagTable<EvalCommand> table = {
      {"weights", "", "weights file", &C::weights, "weights"},
      {"data",
       "",
       "ImageFolder, list file or WebDataset shards to evaluate on",
       &C::data,
       "data"},
      {"predict",
       "",
       "classify these images (files, or folders searched recursively)",
       &C::images,
       "predict"},
      {"benchmark",
       "",
       "measure latency and throughput",
       &C::benchmark,
       "benchmark",
       FlagKind::kSwitch},
      {"json",
       "",
       "write a JSON summary here (--predict: every image's top-k)",
       &C::json,
       ""},
      {"csv",
       "",
       "--predict: write every image's top-k here as CSV rows",
       &C::csv,
       ""},
      {"report-dir",
       "",
       "folder for the confusion matrix CSV and PNG (default: the JSON's "
       "folder)",
       &C::report_dir,
       ""},
      {"labels",
       "",
       "class-name file (one per line), e.g. data/imagenet_classes.txt",
       &C::labels,
       "labels"},
      {"topk", "", "classes shown per image", &C::topk, "topk"},
      {"batch-size", "", "batch size", &C::batch_size, "batch_size"},
      {"resize-size",
       "",
       "resize of the shorter side (default: the weights' setting, else 256)",
       &C::resize_size,
       "resize_size"},
      {"crop-size",
       "",
       "centre crop, or the square size for weights that squash images "
       "(Keras'); default: the weights' setting, else 224",
       &C::crop_size,
       "crop_size"},
      {"img-size",
       "",
       "benchmark input size (0: the weights' evaluation crop size)",
       &C::img_size,
       "img_size"},
      {"dtypes",
       "",
       "benchmark these, e.g. fp32,bf16 (default: fp32 and the 16-bit types "
       "the device runs natively)",
       &C::dtypes,
       "dtypes"},
      {"iterations",
       "",
       "benchmark iterations at batch 1",
       &C::iterations,
       "iterations"},
      {"device", "", "auto, cpu, cuda or cuda:N", &C::device, "device"},
      {"amp-dtype",
       "",
       "fp32, bf16 or fp16 (benchmark: only this one)",
       &C::amp_dtype,
       "amp_dtype"},
      {"channels-last",
       "",
       "channels_last memory format (--channels-last=false to turn off)",
       &C::channels_last,
       "channels_last",
       FlagKind::kToggle},
      raw_weights_flag<C>(),
      {"engine",
       "",
       "fused (CPU: BatchNorm folded, convolutions fused; fp32 through oneDNN "
       "primitives where built with them, bf16 through oneDNN Graph), graph "
       "(oneDNN Graph for fp32 too) or eager",
       &C::engine,
       "engine"},
      allow_non_finite_flag<C>(),
      {"threads",
       "",
       "intra-op threads (0: all cores)",
       &C::threads,
       "threads"},
      {"workers",
       "",
       "image decoding threads (0: all cores)",
       &C::workers,
       "workers"},
      {"strict-data",
       "",
       "stop on an unreadable image instead of skipping it",
       &C::strict_data,
       "strict_data",
       FlagKind::kSwitch},
      {"max-image-pixels",
       "",
       "refuse images whose header declares more pixels, before decoding",
       &C::max_image_pixels,
       "max_image_pixels"},
  };
  return table;
}

std::vector<std::string> EvalCommand::problems() const {
  Problems p;
  p.need(!weights.empty(), "--weights is required");
  p.need(max_image_pixels >= 1, "--max-image-pixels must be at least 1");
  p.need(batch_size >= 1 && topk >= 1 && iterations >= 1,
         "--batch-size, --topk and --iterations must be >= 1");
  const auto in_range = [](int64_t size) {
    return size >= kMinImageSize && size <= kMaxImageSize;
  };
  p.need((img_size == 0 || in_range(img_size)) &&
             (resize_size == 0 || in_range(resize_size)) &&
             (crop_size == 0 || in_range(crop_size)),
         "--img-size, --resize-size and --crop-size must be in [16, 4096] "
         "(0: the weights' setting)");
  p.need(batch_size <= 65536 && topk <= 100000 && iterations <= 100000,
         "--batch-size must be at most 65536, --topk and --iterations at most "
         "100000");
  p.need(threads >= 0 && threads <= 1024 && workers >= 0 && workers <= 1024,
         "--threads and --workers must be in [0, 1024] (0: all cores)");
  p.need(engine == "fused" || engine == "graph" || engine == "eager",
         "--engine must be fused, graph or eager, got '" + engine + "'");
  const int modes = static_cast<int>(!data.empty()) +
                    static_cast<int>(!images.empty()) +
                    static_cast<int>(benchmark);
  p.need(modes == 1, "give exactly one of --data, --predict, --benchmark");
  const auto is_dtype = [](const std::string& name) {
    return name == "fp32" || name == "bf16" || name == "fp16";
  };
  p.need(amp_dtype.empty() || is_dtype(amp_dtype),
         "--amp-dtype must be fp32, bf16 or fp16, got '" + amp_dtype + "'");
  for (const auto& dtype : dtypes) {
    p.need(is_dtype(dtype),
           "--dtypes takes fp32, bf16 and fp16, got '" + dtype + "'");
  }
  p.need(dtypes.empty() || amp_dtype.empty(),
         "give --dtypes or --amp-dtype, not both");
  p.need(dtypes.empty() || benchmark, "--dtypes is for --benchmark");
  p.need(csv.empty() || !images.empty(), "--csv is for --predict");
  return std::move(p).list();
}

}  // namespace mnv2
