#pragma once

#include "eval/evaluate.h"

#include <string>
#include <vector>

namespace mnv2 {

/// Per-class figures derived from a confusion matrix (percentages).
struct ClassReport {
  std::string name;
  int64_t support = 0;  ///< samples of this class
  double accuracy = 0;  ///< recall: correct / support
  double precision = 0;
  double recall = 0;
};

std::vector<ClassReport> per_class_report(
    const torch::Tensor& confusion, const std::vector<std::string>& names);

/// One screen of text: totals, then the per-class table (worst classes first
/// when there are many).
std::string text_report(const EvalResult& result,
                        const std::vector<ClassReport>& classes);

/// Everything as JSON: totals, per-class figures, confusion matrix, and the
/// `context` object (weights, data, settings).
std::string json_report(const EvalResult& result,
                        const std::vector<ClassReport>& classes,
                        const std::string& context_json);

/// The confusion matrix as CSV with class names on both axes.
std::string confusion_csv(const torch::Tensor& confusion,
                          const std::vector<std::string>& names);

/// A heat-map PNG of the row-normalised confusion matrix with class names.
void write_confusion_png(const torch::Tensor& confusion,
                         const std::vector<std::string>& names,
                         const std::string& path);

}  // namespace mnv2
