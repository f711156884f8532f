#include "data/batch_writer.h"

#include <torch/torch.h>

#include <algorithm>
#include <type_traits>

namespace mnv2 {

BatchWriter::BatchWriter(const Normalization& normalization,
                         bool normalize,
                         bool channels_last,
                         bool pin_memory)
    : normalization_(normalization),
      normalize_(normalize),
      channels_last_(channels_last),
      pin_memory_(pin_memory) {
  for (size_t c = 0; c < 3; ++c) {
    const auto mean = static_cast<float>(normalization.mean[c]);
    const auto stddev = static_cast<float>(normalization.stddev[c]);
    for (size_t v = 0; v < 256; ++v) {
      float_tables_[c][v] = (static_cast<float>(v) / 255.0f - mean) / stddev;
      byte_tables_[c][v] = static_cast<uint8_t>(v);
    }
  }
}

// One BGR image as RGB through the tables, planar (NCHW) or interleaved
// (channels_last), the erased box filled.
template <typename T>
void BatchWriter::write_image(const PreparedImage& image,
                              T* out,
                              const ChannelTables<T>& tables) const {
  const cv::Mat& bgr = image.bgr;
  const int64_t pixels = static_cast<int64_t>(bgr.rows) * bgr.cols;
  const uint8_t* src = bgr.data;
  // The 8-bit level nearest to the mean (what normalises to about 0).
  const auto level = [&](size_t c) {
    return static_cast<size_t>(
        std::clamp(normalization_.mean[c] * 255 + 0.5, 0.0, 255.0));
  };
  const T erased[3] = {
      tables[0][level(0)], tables[1][level(1)], tables[2][level(2)]};
  const auto& erase = image.erase;
  auto inside = [&](int64_t p) {
    const auto y = static_cast<int>(p / bgr.cols);
    const auto x = static_cast<int>(p % bgr.cols);
    return erase && erase->contains({x, y});
  };
  for (int64_t p = 0; p < pixels; ++p) {
    const bool blank = erase && inside(p);
    for (int64_t c = 0; c < 3; ++c) {
      T value = tables[static_cast<size_t>(c)][src[p * 3 + 2 - c]];
      if (blank) {
        value = std::is_floating_point_v<T> ? T{0} : erased[c];
      }
      out[channels_last_ ? p * 3 + c : c * pixels + p] = value;
    }
  }
}

torch::Tensor BatchWriter::write(const std::vector<PreparedImage>& images,
                                 int64_t size) const {
  const auto count = static_cast<int64_t>(images.size());
  auto tensor_options =
      torch::TensorOptions().dtype(normalize_ ? torch::kFloat : torch::kUInt8);
  if (pin_memory_) {
    tensor_options = tensor_options.pinned_memory(true);
  }
  auto storage = channels_last_
                     ? torch::empty({count, size, size, 3}, tensor_options)
                     : torch::empty({count, 3, size, size}, tensor_options);
  const int64_t per_image = 3 * size * size;
  for (int64_t i = 0; i < count; ++i) {
    const auto& image = images[static_cast<size_t>(i)];
    TORCH_CHECK(image.bgr.isContinuous() && image.bgr.rows == size &&
                    image.bgr.cols == size && image.bgr.type() == CV_8UC3,
                "internal: transform produced a ",
                image.bgr.rows,
                "x",
                image.bgr.cols,
                " image");
    if (normalize_) {
      write_image(
          image, storage.data_ptr<float>() + i * per_image, float_tables_);
    } else {
      write_image(
          image, storage.data_ptr<uint8_t>() + i * per_image, byte_tables_);
    }
  }
  return channels_last_ ? storage.permute({0, 3, 1, 2}) : storage;
}

}  // namespace mnv2
