#include "export/int8_gate.h"

#include <mobilenetv2/quantization/quantize.h>
#include "common/progress.h"
#include "data/data_loader.h"
#include "data/dataset.h"
#include "eval/evaluate.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <sstream>

namespace fs = std::filesystem;

namespace mnv2 {

namespace {

// The table shows the layers that lose the most; the sidecar keeps all.
constexpr size_t kLayersShown = 8;

std::vector<std::string> layer_names(const QuantizedNetwork& q) {
  std::vector<std::string> names;
  for (size_t b = 0; b < q.network.blocks.size(); ++b) {
    for (size_t c = 0; c < q.network.blocks[b].convs.size(); ++c) {
      const auto& conv = q.network.blocks[b].convs[c];
      const auto k = std::to_string(conv.weight.size(2));
      const auto kind = k + "x" + k +
                        (is_depthwise(conv) ? " depthwise"
                         : conv.relu6       ? ", ReLU6"
                                            : ", linear");
      names.push_back("features." + std::to_string(b) + ".conv" +
                      std::to_string(c) + " (" + kind + ")");
    }
  }
  return names;
}

}  // namespace

Int8Accuracy measure_int8_accuracy(const ExportCommand& c,
                                   const ImageClassifier& fp32,
                                   const InferenceModel& int8,
                                   const FoldedNetwork& folded,
                                   const QuantizedNetwork& quantized) {
  const auto& flag = "--validation-data '" + c.validation_data + "'";
  std::error_code ec;
  if (!fs::is_directory(c.validation_data, ec)) {
    throw ConfigError(flag + " is not a folder");
  }
  Dataset dataset;
  try {
    dataset = open_dataset(c.validation_data);
  } catch (const DataError& e) {
    throw ConfigError(flag + ": " + e.what());
  }
  const auto classes = fp32.info().options.num_classes();
  if (static_cast<int64_t>(dataset.class_names.size()) != classes) {
    throw ConfigError(
        flag + " has " + std::to_string(dataset.class_names.size()) +
        " class folders but the model has " + std::to_string(classes) +
        " classes (the gate needs one folder of images per "
        "class, in the model's order)");
  }
  LoaderOptions lo;
  lo.batch_size = c.calibration_batch;
  lo.eval_transform = fp32.eval_transform();
  lo.normalize = true;
  lo.normalization = fp32.info().normalization;
  DataLoader loader(dataset, lo);
  Progress progress("validate", loader.batches_per_epoch(), 1);
  progress.at_most_every(5);
  Int8Accuracy accuracy;
  int64_t fp32_correct = 0;
  int64_t int8_correct = 0;
  torch::NoGradGuard no_grad;
  loader.start_epoch(0);
  int64_t batches = 0;
  while (auto batch = loader.next()) {
    const auto& x = batch->images;
    fp32_correct += correct_counts(fp32.logits(x), batch->labels, 1).first;
    int8_correct += correct_counts(int8.forward(x), batch->labels, 1).first;
    if (accuracy.images == 0) {
      accuracy.sqnr_db = layer_sqnr_db(folded, quantized, x);
    }
    accuracy.images += x.size(0);
    progress.update(++batches, accuracy.images, "fp32 and int8");
  }
  progress.finish();
  if (accuracy.images == 0) {
    throw ConfigError(flag + ": no readable image");
  }
  accuracy.fp32_top1 = 100.0 * fp32_correct / accuracy.images;
  accuracy.int8_top1 = 100.0 * int8_correct / accuracy.images;
  return accuracy;
}

std::string int8_accuracy_report(const Int8Accuracy& a,
                                 const QuantizedNetwork& q,
                                 const ExportCommand& c) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(2);
  out << "validation '" << c.validation_data << "' (" << a.images
      << " images): top-1 fp32 " << a.fp32_top1 << "%, int8 " << a.int8_top1
      << "%, a drop of " << a.drop() << " points";
  if (c.max_top1_drop >= 0) {
    out << " (at most " << c.max_top1_drop << " allowed)";
  }
  out << "\n";
  const auto names = layer_names(q);
  std::vector<size_t> order(a.sqnr_db.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return a.sqnr_db[x] < a.sqnr_db[y];
  });
  out.precision(1);
  const auto shown = std::min(kLayersShown, order.size());
  out << "the " << shown << " of " << order.size()
      << " layers that lose the most (output SQNR against fp32, dB; "
         "higher is better; all in the .json):\n";
  for (size_t i = 0; i < shown; ++i) {
    out << "  " << names[order[i]] << "  " << a.sqnr_db[order[i]] << "\n";
  }
  return out.str();
}

std::string int8_accuracy_json(const Int8Accuracy& a,
                               const QuantizedNetwork& q) {
  nlohmann::json layers = nlohmann::json::object();
  const auto names = layer_names(q);
  for (size_t n = 0; n < a.sqnr_db.size(); ++n) {
    layers[names[n]] = std::isfinite(a.sqnr_db[n]) ? a.sqnr_db[n] : 999.0;
  }
  return nlohmann::json{{"images", a.images},
                        {"fp32_top1", a.fp32_top1},
                        {"int8_top1", a.int8_top1},
                        {"layer_sqnr_db", layers}}
      .dump();
}

}  // namespace mnv2
