#include <mobilenetv2/nn/make_divisible.h>
#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/torch_files/state_dict.h>

#include <torch/nn/module.h>

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace mnv2 {

namespace {

constexpr size_t kNamesShown = 12;

std::string shape_string(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

void append_names(std::ostringstream& out,
                  const char* label,
                  const std::vector<std::string>& names) {
  if (names.empty()) {
    return;
  }
  out << " " << label << " (" << names.size() << "):";
  for (size_t i = 0; i < names.size() && i < kNamesShown; ++i) {
    out << (i == 0 ? " " : ", ") << names[i];
  }
  if (names.size() > kNamesShown) {
    out << ", ... and " << names.size() - kNamesShown << " more";
  }
  out << ";";
}

const torch::Tensor& require(const StateDict& state,
                             const std::string& key,
                             const std::string& origin) {
  const auto* tensor = state.find(key);
  if (tensor == nullptr) {
    throw WeightsError("'" + origin +
                       "' is not a MobileNetV2 state_dict: no '" + key + "'");
  }
  return *tensor;
}

// Widths users train; others are found if their channels match exactly.
std::vector<double> candidate_widths() {
  std::vector<double> widths = {1.0, 0.35, 0.5, 0.75, 1.3, 1.4};
  for (int i = 1; i <= 60; ++i) {
    widths.push_back(i * 0.05);
  }
  return widths;
}

}  // namespace

std::string LoadReport::summary() const {
  std::ostringstream out;
  append_names(out, "missing keys", missing);
  append_names(out, "unexpected keys", unexpected);
  append_names(out, "mis-shaped keys", mismatched);
  auto text = out.str();
  return text.empty() ? "exact match" : text.substr(1);
}

MobileNetV2Options infer_options(const StateDict& state,
                                 const std::string& origin) {
  const auto& stem = require(state, "features.0.0.weight", origin);
  const bool with_head = has_classifier(state);
  if (stem.dim() != 4) {
    throw WeightsError("'" + origin + "' has an unexpected stem shape");
  }
  const int64_t stem_channels = stem.size(0);
  int64_t classes = MobileNetV2Options().num_classes();
  int64_t last_channel = -1;
  if (with_head) {
    const auto& head = state.find("classifier.1.weight");
    if (head->dim() != 2) {
      throw WeightsError("'" + origin + "' has an unexpected classifier shape");
    }
    classes = head->size(0);
    last_channel = head->size(1);
  }
  for (double width : candidate_widths()) {
    if (make_divisible(32 * width, 8) != stem_channels ||
        (with_head &&
         make_divisible(1280 * std::max(1.0, width), 8) != last_channel)) {
      continue;
    }
    auto options = MobileNetV2Options().num_classes(classes).width_mult(width);
    MobileNetV2 candidate(options);
    bool all_match = true;
    for (const auto& item : state_dict_of(*candidate)) {
      if (!with_head && item.key().rfind("classifier.", 0) == 0) {
        continue;
      }
      const auto* found = state.find(item.key());
      if (found == nullptr || found->sizes() != item.value().sizes()) {
        all_match = false;
        break;
      }
    }
    if (all_match) {
      return options;
    }
  }
  throw WeightsError("'" + origin +
                     "': no MobileNetV2 width reproduces its shapes (stem " +
                     std::to_string(stem_channels) + " channels)");
}

LoadReport load_weights(torch::nn::Module& module,
                        const StateDict& state,
                        LoadMode mode,
                        const std::string& origin) {
  LoadReport report;
  const auto own = state_dict_of(module);
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  for (const auto& item : own) {
    const auto* source = state.find(item.key());
    if (source == nullptr) {
      report.missing.push_back(item.key());
    } else if (source->sizes() != item.value().sizes()) {
      report.mismatched.push_back(item.key() + ": model " +
                                  shape_string(item.value()) + " vs file " +
                                  shape_string(*source));
    } else {
      copies.emplace_back(item.value(), *source);
    }
  }
  for (const auto& item : state) {
    if (!own.contains(item.key())) {
      report.unexpected.push_back(item.key());
    }
  }
  if (mode == LoadMode::kStrict && !report.exact()) {
    throw WeightsError("'" + origin +
                       "' does not fit the model: " + report.summary());
  }
  torch::NoGradGuard no_grad;
  for (auto& [target, source] : copies) {
    target.copy_(source);
  }
  return report;
}

bool has_classifier(const StateDict& state) {
  return state.contains("classifier.1.weight");
}

}  // namespace mnv2
