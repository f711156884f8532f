#pragma once

#include <mobilenetv2/preprocessing/preprocessing.h>

#include <torch/types.h>
#include <opencv2/core/mat.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace mnv2 {

/// A transformed image as the loader hands it to the batch: BGR, 8-bit, and
/// the box random erasing blanks (if any).
struct PreparedImage {
  cv::Mat bgr;
  std::optional<cv::Rect> erase;
};

/// Writes prepared images into one RGB batch [N, 3, H, W]: normalised float
/// (through per-level tables) or 8-bit, in NCHW or channels_last storage,
/// page-locked on request. An erased box gets what 0 is after normalisation,
/// as torchvision erases after Normalize.
class BatchWriter {
 public:
  BatchWriter(const Normalization& normalization,
              bool normalize,
              bool channels_last,
              bool pin_memory);

  /// Every image must be `size` x `size`, continuous, CV_8UC3.
  torch::Tensor write(const std::vector<PreparedImage>& images,
                      int64_t size) const;

 private:
  // Per output channel (RGB), the value written for each 8-bit input level.
  template <typename T>
  using ChannelTables = std::array<std::array<T, 256>, 3>;

  template <typename T>
  void write_image(const PreparedImage& image,
                   T* out,
                   const ChannelTables<T>& tables) const;

  Normalization normalization_;
  bool normalize_;
  bool channels_last_;
  bool pin_memory_;
  ChannelTables<float> float_tables_{};
  ChannelTables<uint8_t> byte_tables_{};
};

}  // namespace mnv2
