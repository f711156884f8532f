#include "train/outputs/curves_plot.h"

#include "common/log.h"

#include <mobilenetv2/util/atomic_file.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace mnv2 {

namespace {

constexpr int kPanelWidth = 520;
constexpr int kPanelHeight = 360;
constexpr int kMargin = 50;

struct Series {
  std::string name;
  cv::Scalar colour;
  std::vector<double> values;
};

void draw_panel(cv::Mat& canvas,
                int x0,
                const std::string& title,
                const std::vector<Series>& series) {
  double low = 1e300;
  double high = -1e300;
  size_t count = 0;
  for (const auto& s : series) {
    for (double v : s.values) {
      low = std::min(low, v);
      high = std::max(high, v);
    }
    count = std::max(count, s.values.size());
  }
  if (count == 0) {
    return;
  }
  if (high - low < 1e-9) {
    high = low + 1;
  }
  const cv::Rect area(x0 + kMargin,
                      kMargin,
                      kPanelWidth - 2 * kMargin,
                      kPanelHeight - 2 * kMargin);
  cv::rectangle(canvas, area, cv::Scalar(0, 0, 0), 1);
  cv::putText(canvas,
              title,
              {x0 + kMargin, 30},
              cv::FONT_HERSHEY_SIMPLEX,
              0.6,
              cv::Scalar(0, 0, 0),
              1,
              cv::LINE_AA);
  char label[32];
  std::snprintf(label, sizeof label, "%.3g", high);
  cv::putText(canvas,
              label,
              {x0 + 4, area.y + 5},
              cv::FONT_HERSHEY_SIMPLEX,
              0.4,
              cv::Scalar(0, 0, 0),
              1,
              cv::LINE_AA);
  std::snprintf(label, sizeof label, "%.3g", low);
  cv::putText(canvas,
              label,
              {x0 + 4, area.y + area.height},
              cv::FONT_HERSHEY_SIMPLEX,
              0.4,
              cv::Scalar(0, 0, 0),
              1,
              cv::LINE_AA);
  cv::putText(canvas,
              "epoch 1.." + std::to_string(count),
              {area.x + area.width / 2 - 40, area.y + area.height + 30},
              cv::FONT_HERSHEY_SIMPLEX,
              0.45,
              cv::Scalar(0, 0, 0),
              1,
              cv::LINE_AA);
  auto point = [&](size_t i, double v) {
    const double fx = count > 1 ? static_cast<double>(i) / (count - 1) : 0.5;
    return cv::Point(
        area.x + static_cast<int>(fx * area.width),
        area.y + static_cast<int>((high - v) / (high - low) * area.height));
  };
  int legend_y = area.y + 18;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.values.size(); ++i) {
      const auto p = point(i, s.values[i]);
      cv::circle(canvas, p, 2, s.colour, cv::FILLED, cv::LINE_AA);
      if (i > 0) {
        cv::line(
            canvas, point(i - 1, s.values[i - 1]), p, s.colour, 2, cv::LINE_AA);
      }
    }
    if (!s.values.empty()) {
      cv::putText(canvas,
                  s.name,
                  {area.x + area.width - 140, legend_y},
                  cv::FONT_HERSHEY_SIMPLEX,
                  0.45,
                  s.colour,
                  1,
                  cv::LINE_AA);
      legend_y += 18;
    }
  }
}

std::vector<double> column(
    const std::vector<EpochMetrics>& history,
    const std::function<double(const EpochMetrics&)>& get) {
  std::vector<double> out;
  for (const auto& m : history) {
    out.push_back(get(m));
  }
  return out;
}

}  // namespace

void write_curves_plot(const std::vector<EpochMetrics>& history,
                       const std::string& path) {
  if (history.empty()) {
    return;
  }
  cv::Mat canvas(
      kPanelHeight, 2 * kPanelWidth, CV_8UC3, cv::Scalar(255, 255, 255));
  draw_panel(canvas,
             0,
             "loss",
             {{"train",
               {200, 90, 30},
               column(history, [](auto& m) { return m.train_loss; })},
              {"val", {30, 120, 220}, column(history, [](auto& m) {
                 return m.val_loss;
               })}});
  std::vector<Series> accuracy = {
      {"val top-1 %", {30, 120, 220}, column(history, [](auto& m) {
         return m.val_top1;
       })}};
  if (history.back().ema_val_top1) {
    accuracy.push_back(
        {"EMA top-1 %", {40, 160, 40}, column(history, [](auto& m) {
           return m.ema_val_top1.value_or(0.0);
         })});
  }
  draw_panel(canvas, kPanelWidth, "validation accuracy", accuracy);
  // Encoded in memory and written atomically, so that a kill mid-write never
  // leaves a truncated plot in place of the last good one.
  std::vector<uchar> png;
  try {
    if (!cv::imencode(".png", canvas, png)) {
      throw std::runtime_error("PNG encoding failed");
    }
    write_file_atomically(
        path,
        std::string_view(reinterpret_cast<const char*>(png.data()),
                         png.size()));
  } catch (const std::exception& e) {
    log::warn("could not write the curves plot to '" + path + "': " + e.what());
  }
}

}  // namespace mnv2
