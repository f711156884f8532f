#include "eval/eval_report.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace mnv2 {

namespace {
constexpr size_t kClassesOnScreen = 20;
constexpr int kCell = 28;
constexpr int kLabelSpace = 110;

double percent(int64_t part, int64_t whole) {
  return whole > 0
             ? 100.0 * static_cast<double>(part) / static_cast<double>(whole)
             : 0.0;
}
}  // namespace

std::vector<ClassReport> per_class_report(
    const torch::Tensor& confusion, const std::vector<std::string>& names) {
  const auto c = confusion.to(torch::kLong).contiguous();
  const auto rows = c.sum(1);
  const auto cols = c.sum(0);
  std::vector<ClassReport> out;
  for (int64_t k = 0; k < c.size(0); ++k) {
    const auto correct = c[k][k].item<int64_t>();
    ClassReport r;
    r.name =
        static_cast<size_t>(k) < names.size() ? names[k] : std::to_string(k);
    r.support = rows[k].item<int64_t>();
    r.recall = percent(correct, r.support);
    r.accuracy = r.recall;
    r.precision = percent(correct, cols[k].item<int64_t>());
    out.push_back(r);
  }
  return out;
}

std::string text_report(const EvalResult& result,
                        const std::vector<ClassReport>& classes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2);
  out << "samples " << result.samples << "  top-1 " << result.top1
      << "%  top-5 " << result.top5 << "%  loss " << std::setprecision(4)
      << result.loss << "\n"
      << std::setprecision(2);
  auto shown = classes;
  std::string heading = "per class";
  if (shown.size() > kClassesOnScreen) {
    std::stable_sort(
        shown.begin(), shown.end(), [](const auto& a, const auto& b) {
          return a.recall < b.recall;
        });
    shown.resize(kClassesOnScreen);
    heading = "the " + std::to_string(kClassesOnScreen) +
              " classes with the lowest recall";
  }
  out << heading << ":\n"
      << std::left << std::setw(24) << "  class" << std::right << std::setw(9)
      << "support" << std::setw(12) << "precision" << std::setw(9) << "recall"
      << "\n";
  for (const auto& r : shown) {
    out << "  " << std::left << std::setw(22) << r.name.substr(0, 22)
        << std::right << std::setw(9) << r.support << std::setw(11)
        << r.precision << "%" << std::setw(8) << r.recall << "%\n";
  }
  return out.str();
}

std::string json_report(const EvalResult& result,
                        const std::vector<ClassReport>& classes,
                        const std::string& context_json) {
  nlohmann::json j;
  j["context"] = nlohmann::json::parse(context_json);
  j["samples"] = result.samples;
  j["top1"] = result.top1;
  j["top5"] = result.top5;
  j["loss"] = result.loss;
  for (const auto& r : classes) {
    j["per_class"].push_back({{"name", r.name},
                              {"support", r.support},
                              {"accuracy", r.accuracy},
                              {"precision", r.precision},
                              {"recall", r.recall}});
  }
  const auto c = result.confusion.to(torch::kLong).contiguous();
  for (int64_t row = 0; row < c.size(0); ++row) {
    std::vector<int64_t> values(c[row].data_ptr<int64_t>(),
                                c[row].data_ptr<int64_t>() + c.size(1));
    j["confusion"].push_back(values);
  }
  return j.dump(1) + "\n";
}

std::string confusion_csv(const torch::Tensor& confusion,
                          const std::vector<std::string>& names) {
  auto quote = [](const std::string& s) {
    std::string q = "\"";
    for (char ch : s) {
      q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    }
    return q + "\"";
  };
  const auto c = confusion.to(torch::kLong).contiguous();
  std::ostringstream out;
  out << "true\\predicted";
  for (int64_t k = 0; k < c.size(1); ++k) {
    out << "," << quote(names.at(static_cast<size_t>(k)));
  }
  out << "\n";
  for (int64_t row = 0; row < c.size(0); ++row) {
    out << quote(names.at(static_cast<size_t>(row)));
    for (int64_t k = 0; k < c.size(1); ++k) {
      out << "," << c[row][k].item<int64_t>();
    }
    out << "\n";
  }
  return out.str();
}

void write_confusion_png(const torch::Tensor& confusion,
                         const std::vector<std::string>& names,
                         const std::string& path) {
  const auto c = confusion.to(torch::kDouble);
  const auto n = static_cast<int>(c.size(0));
  const int cell = n > 40 ? std::max(2, 1200 / n) : kCell;
  const int size = kLabelSpace + n * cell + 10;
  cv::Mat canvas(size, size, CV_8UC3, cv::Scalar(255, 255, 255));
  const auto rows = c.sum(1, true).clamp_min(1);
  const auto normalised = (c / rows).contiguous();
  const auto* values = normalised.data_ptr<double>();
  for (int r = 0; r < n; ++r) {
    for (int k = 0; k < n; ++k) {
      const double v = values[r * n + k];
      cv::Mat pixel(1, 1, CV_8UC1, cv::Scalar(static_cast<int>(255 * v)));
      cv::Mat colour;
      cv::applyColorMap(pixel, colour, cv::COLORMAP_VIRIDIS);
      const cv::Rect box(
          kLabelSpace + k * cell, kLabelSpace + r * cell, cell, cell);
      cv::rectangle(
          canvas, box, cv::Scalar(colour.at<cv::Vec3b>(0, 0)), cv::FILLED);
    }
    if (cell >= 12) {
      const auto& name = names.at(static_cast<size_t>(r));
      cv::putText(canvas,
                  name.substr(0, 12),
                  {4, kLabelSpace + r * cell + cell * 2 / 3},
                  cv::FONT_HERSHEY_SIMPLEX,
                  0.4,
                  cv::Scalar(0, 0, 0),
                  1,
                  cv::LINE_AA);
      cv::putText(canvas,
                  name.substr(0, 3),
                  {kLabelSpace + r * cell + 2, kLabelSpace - 8},
                  cv::FONT_HERSHEY_SIMPLEX,
                  0.35,
                  cv::Scalar(0, 0, 0),
                  1,
                  cv::LINE_AA);
    }
  }
  cv::putText(canvas,
              "true (rows) vs predicted (columns)",
              {4, 20},
              cv::FONT_HERSHEY_SIMPLEX,
              0.45,
              cv::Scalar(0, 0, 0),
              1,
              cv::LINE_AA);
  if (!cv::imwrite(path, canvas)) {
    throw std::runtime_error("cannot write the confusion heat-map to '" + path +
                             "'");
  }
}

}  // namespace mnv2
