#include "eval/eval_commands.h"

#include "common/autocast.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/runtime.h"
#include "common/thread_governor.h"
#include "data/data_loader.h"
#include "data/dataset.h"
#include "data/image_decode.h"
#include "data/transforms.h"
#include "eval/eval_report.h"
#include "eval/eval_setup.h"
#include "eval/inference_model.h"

#include <mobilenetv2/atomic_file.h>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;

namespace mnv2 {

Outcome run_eval(const EvalCommand& c) {
  set_max_image_pixels(c.max_image_pixels);
  if (!c.data.empty()) {
    return run_eval_on_data(c);
  }
  if (!c.images.empty()) {
    return run_predict(c);
  }
  return run_benchmark(c);
}

Outcome run_eval_on_data(const EvalCommand& c) {
  auto p = prepare(c);
  const auto amp = amp_dtype_of(c.amp_dtype, p.device);
  auto dataset = open_dataset(c.data);
  const auto classes = p.model.info().options.num_classes();
  if (static_cast<int64_t>(dataset.class_names.size()) != classes) {
    throw ConfigError("'" + c.data + "' has " +
                      std::to_string(dataset.class_names.size()) +
                      " classes but the model has " + std::to_string(classes));
  }
  LoaderOptions lo;
  lo.batch_size = c.batch_size;
  lo.workers = c.workers;
  lo.strict = c.strict_data;
  lo.eval_transform = p.transform;
  lo.pin_memory = p.device.is_cuda();
  lo.normalize = !p.device.is_cuda();
  lo.channels_last = c.channels_last;
  lo.normalization = p.model.info().normalization;
  DataLoader loader(dataset, lo);
  Progress bar("eval", loader.batches_per_epoch(), 20);
  EvalOptions options;
  options.device = p.device;
  options.amp_dtype = amp;
  options.channels_last = c.channels_last;
  options.normalization = lo.normalization;
  // Threads follow the idle cores during a long pass, unless chosen.
  ThreadGovernor threads(c.threads <= 0);
  options.on_batch = [&](int64_t done, int64_t, int64_t images) {
    bar.update(done, images, "");
    threads.poll();
  };
  const auto result =
      evaluate([&](const torch::Tensor& x) { return p.model.forward(x); },
               loader,
               classes,
               options);
  bar.finish();
  if (loader.skipped_in_epoch() > 0) {
    log::warn(
        log::cat(loader.skipped_in_epoch(), " unreadable images were skipped"));
  }
  // Names from the data folder win over numbered defaults.
  auto names = p.class_names;
  if (c.labels.empty() && p.model.kind() == "state_dict" &&
      !fs::exists(metadata_path_for(c.weights))) {
    names = dataset.class_names;
  }
  const auto classes_report = per_class_report(result.confusion, names);
  std::cout << "weights " << c.weights << " (" << p.model.kind() << "), data "
            << c.data << ", resize " << p.transform.resize_size << " crop "
            << p.transform.crop_size << " ("
            << resize_policy_name(p.transform.policy) << ")\n"
            << text_report(result, classes_report);
  if (!c.json.empty() || !c.report_dir.empty()) {
    const fs::path folder = !c.report_dir.empty()
                                ? fs::path(c.report_dir)
                                : fs::absolute(c.json).parent_path();
    fs::create_directories(folder);
    write_file_atomically((folder / "confusion_matrix.csv").string(),
                          confusion_csv(result.confusion, names));
    write_confusion_png(
        result.confusion, names, (folder / "confusion_matrix.png").string());
    if (!c.json.empty()) {
      const nlohmann::json context = {
          {"weights", c.weights},
          {"weights_kind", p.model.kind()},
          {"data", c.data},
          {"resize_size", p.transform.resize_size},
          {"crop_size", p.transform.crop_size},
          {"resize_policy", resize_policy_name(p.transform.policy)},
          {"device", p.device.str()},
          {"amp_dtype", c.amp_dtype.empty() ? "fp32" : c.amp_dtype},
          {"config", config_json(eval_flags(), c)},
          {"skipped_images", loader.skipped_in_epoch()}};
      write_file_atomically(
          c.json, json_report(result, classes_report, context.dump()));
    }
    std::cout << "reports in " << folder.string() << "\n";
  }
  return Outcome::kDone;
}

namespace {

// A CSV field, quoted when it holds a comma, quote or line break.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) {
    return text;
  }
  std::string quoted = "\"";
  for (const char ch : text) {
    quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  }
  return quoted + "\"";
}

}  // namespace

Outcome run_predict(const EvalCommand& c) {
  const auto list = list_images(c.images);
  auto p = prepare(c);
  const auto amp = amp_dtype_of(c.amp_dtype, p.device);
  nlohmann::json all = nlohmann::json::array();
  std::string csv = "image,rank,class,name,probability\n";
  int64_t unreadable = 0;
  for (size_t n = 0; n < list.paths.size(); ++n) {
    const auto& path = list.paths[n];
    cv::Mat image;
    try {
      image = eval_transform(decode_rgb(path,
                                        [&](int64_t width, int64_t height) {
                                          return eval_jpeg_reduction(
                                              width, height, p.transform);
                                        }),
                             p.transform);
    } catch (const DataError& e) {
      // A named file must be readable; one found in a folder is skipped, as
      // --data skips it (unless --strict-data).
      if (!list.in_folder[n] || c.strict_data) {
        throw;
      }
      log::warn(log::cat("skipping unreadable image: ", e.what()));
      ++unreadable;
      continue;
    }
    auto nhwc = torch::from_blob(
        image.data, {1, image.rows, image.cols, 3}, torch::kUInt8);
    const auto x = normalize_images(nhwc.permute({0, 3, 1, 2}),
                                    p.device,
                                    c.channels_last,
                                    p.model.info().normalization);
    const auto probabilities = torch::softmax(logits_of(p, x, amp), 1)[0];
    const auto k = std::min<int64_t>(c.topk, probabilities.size(0));
    const auto [values, indices] = probabilities.topk(k);
    std::cout << path << "\n";
    nlohmann::json entry = {{"image", path}};
    for (int64_t i = 0; i < k; ++i) {
      const auto index = indices[i].item<int64_t>();
      const double probability = values[i].item<double>();
      const auto& name = p.class_names.at(index);
      std::cout << "  " << std::fixed << std::setprecision(2) << std::setw(6)
                << 100 * probability << "%  " << name << " (" << index << ")\n";
      entry["top"].push_back(
          {{"class", index}, {"name", name}, {"probability", probability}});
      std::ostringstream row;
      row << csv_field(path) << "," << i + 1 << "," << index << ","
          << csv_field(name) << "," << std::setprecision(9) << probability
          << "\n";
      csv += row.str();
    }
    all.push_back(entry);
  }
  if (list.other_files > 0 || unreadable > 0) {
    std::cout << all.size() << " images classified; skipped "
              << list.other_files << " files that are not images and "
              << unreadable << " unreadable images\n";
  }
  if (!c.json.empty()) {
    write_file_atomically(c.json, all.dump(1) + "\n");
  }
  if (!c.csv.empty()) {
    write_file_atomically(c.csv, csv);
  }
  return Outcome::kDone;
}

}  // namespace mnv2
