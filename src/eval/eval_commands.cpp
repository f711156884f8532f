#include "eval/eval_commands.h"

#include <mobilenetv2/classifier/inference_model.h>
#include <mobilenetv2/vision/image_decode.h>
#include <mobilenetv2/vision/vision.h>
#include "common/errors.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/runtime.h"
#include "common/thread_governor.h"
#include "data/data_loader.h"
#include "data/dataset.h"
#include "data/transforms.h"
#include "eval/eval_report.h"
#include "eval/eval_setup.h"

#include <mobilenetv2/util/atomic_file.h>
#include <mobilenetv2/weights/sidecar.h>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;

namespace mnv2 {

Outcome run_eval(const EvalCommand& c) {
  apply_max_image_pixels(c.max_image_pixels);
  if (!c.data.empty()) {
    return run_eval_on_data(c);
  }
  if (!c.images.empty()) {
    return run_predict(c);
  }
  return run_benchmark(c);
}

namespace {

// A folder holding train/ and val/ (as --data is given to training) is
// evaluated on its val/ split; anything else as it is.
std::string evaluation_split(const std::string& data) {
  std::error_code ec;
  const auto val = fs::path(data) / "val";
  if (fs::is_directory(val, ec) &&
      fs::is_directory(fs::path(data) / "train", ec)) {
    log::info("evaluating '" + val.string() + "', the val/ split of --data");
    return val.string();
  }
  return data;
}

}  // namespace

Outcome run_eval_on_data(const EvalCommand& c) {
  const auto classifier = open_classifier(c);
  const auto& info = classifier.info();
  const auto& transform = classifier.eval_transform();
  const auto device = classifier.device();
  const auto data = evaluation_split(c.data);
  auto dataset = open_dataset(data);
  const auto classes = info.options.num_classes();
  if (static_cast<int64_t>(dataset.class_names.size()) != classes) {
    throw ConfigError("'" + data + "' has " +
                      std::to_string(dataset.class_names.size()) +
                      " classes but the model has " + std::to_string(classes));
  }
  LoaderOptions lo;
  lo.batch_size = c.batch_size;
  lo.workers = c.workers;
  lo.strict = c.strict_data;
  lo.eval_transform = transform;
  lo.pin_memory = device.is_cuda();
  lo.normalize = !device.is_cuda();
  lo.channels_last = c.channels_last;
  lo.normalization = info.normalization;
  DataLoader loader(dataset, lo);
  Progress bar("eval", loader.batches_per_epoch(), 20);
  EvalOptions options;
  options.device = device;
  options.channels_last = c.channels_last;
  options.normalization = lo.normalization;
  // Threads follow the idle cores during a long pass, unless chosen.
  ThreadGovernor threads(c.threads <= 0);
  options.on_batch = [&](int64_t done, int64_t, int64_t images) {
    bar.update(done, images, "");
    threads.poll();
  };
  // The classifier runs the network (and autocast), as for a library user.
  const auto result =
      evaluate([&](const torch::Tensor& x) { return classifier.logits(x); },
               loader,
               classes,
               options);
  bar.finish();
  if (loader.skipped_in_epoch() > 0) {
    log::warn(
        log::cat(loader.skipped_in_epoch(), " unreadable images were skipped"));
  }
  // Names from the data folder win over numbered defaults.
  auto names = classifier.class_names();
  const auto& kind = classifier.model().kind();
  if (c.labels.empty() && kind == "state_dict" &&
      !fs::exists(metadata_path_for(c.weights))) {
    names = dataset.class_names;
  }
  const auto classes_report = per_class_report(result.confusion, names);
  std::cout << "weights " << c.weights << " (" << kind << "), data " << data
            << ", resize " << transform.resize_size << " crop "
            << transform.crop_size << " ("
            << resize_policy_name(transform.policy) << ")\n"
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
          {"weights_kind", kind},
          {"data", data},
          {"resize_size", transform.resize_size},
          {"crop_size", transform.crop_size},
          {"resize_policy", resize_policy_name(transform.policy)},
          {"device", device.str()},
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
  const auto classifier = open_classifier(c);
  nlohmann::json all = nlohmann::json::array();
  std::string csv = "image,rank,class,name,probability\n";
  int64_t unreadable = 0;
  for (size_t n = 0; n < list.paths.size(); ++n) {
    const auto& path = list.paths[n];
    torch::Tensor image;
    try {
      // Read as the library's mnv2::read_image reads for this classifier.
      image = read_image(path, classifier.eval_transform());
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
    const auto top = classifier.classify(image, c.topk);
    std::cout << path << "\n";
    nlohmann::json entry = {{"image", path}};
    for (size_t i = 0; i < top.size(); ++i) {
      const auto index = top[i].index;
      const double probability = top[i].probability;
      const auto& name = top[i].name;
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
