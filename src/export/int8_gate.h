#pragma once

#include <mobilenetv2/classifier/image_classifier.h>
#include <mobilenetv2/quantization/quantized_network.h>
#include "export/export_command.h"

#include <string>
#include <vector>

namespace mnv2 {

/// fp32 against int8 on labelled images: what --validation-data measures.
struct Int8Accuracy {
  int64_t images = 0;
  double fp32_top1 = 0;  ///< percent
  double int8_top1 = 0;  ///< percent
  /// Per convolution, in network order (mnv2::layer_sqnr_db), on the first
  /// batch.
  std::vector<double> sqnr_db;
  double drop() const {
    return fp32_top1 - int8_top1;
  }
};

/// Runs both on --validation-data (an ImageFolder: one folder per class, as
/// many as the model has; the weights' evaluation preprocessing), each
/// batch through the fp32 model and the int8 engine. Throws ConfigError
/// for a folder that is missing or not labelled as the model's classes.
Int8Accuracy measure_int8_accuracy(const ExportCommand& command,
                                   const ImageClassifier& fp32,
                                   const InferenceModel& int8,
                                   const FoldedNetwork& folded,
                                   const QuantizedNetwork& quantized);

/// The report: both top-1 figures and the drop, and the layers that lose
/// the most (lowest SQNR first), each named as features.<block>.conv<n>.
std::string int8_accuracy_report(const Int8Accuracy& accuracy,
                                 const QuantizedNetwork& quantized,
                                 const ExportCommand& command);

/// The same figures as JSON fields for the int8 file's sidecar.
std::string int8_accuracy_json(const Int8Accuracy& accuracy,
                               const QuantizedNetwork& quantized);

}  // namespace mnv2
