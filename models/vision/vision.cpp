#include <mobilenetv2/util/data_error.h>
#include <mobilenetv2/vision/image_decode.h>
#include <mobilenetv2/vision/vision.h>

#include <torch/torch.h>

namespace mnv2 {

namespace {

// An 8-bit 3-channel matrix as a packed tensor, copied: the classifier's own
// ImageView copy, with the matrix's row stride.
torch::Tensor packed_copy(const cv::Mat& image) {
  return image_view_to_tensor({image.data,
                               image.rows,
                               image.cols,
                               3,
                               static_cast<int64_t>(image.step[0])});
}

}  // namespace

torch::Tensor read_image(const std::string& path,
                         const EvalTransformOptions& transform) {
  auto image = packed_copy(decode_rgb(path, [&](int64_t width, int64_t height) {
    return eval_jpeg_reduction(width, height, transform);
  }));
  check_resize_budget(
      image.size(0), image.size(1), transform, "image '" + path + "'");
  return image;
}

torch::Tensor mat_to_tensor(const cv::Mat& image) {
  if (image.empty()) {
    throw DataError("the image matrix is empty");
  }
  if (image.depth() != CV_8U) {
    throw DataError(
        "the image matrix must hold 8-bit pixels (CV_8UC3), got depth " +
        std::to_string(image.depth()) + " (" +
        std::to_string(image.elemSize1() * 8) + "-bit)");
  }
  if (image.channels() != 3) {
    throw DataError("the image matrix must have 3 channels (BGR), got " +
                    std::to_string(image.channels()) +
                    " (cv::cvtColor it to BGR first)");
  }
  return packed_copy(image);
}

std::vector<Prediction> classify(const ImageClassifier& classifier,
                                 const cv::Mat& bgr,
                                 int64_t k) {
  return classifier.classify(mat_to_tensor(bgr), k, ColorOrder::kBgr);
}

std::vector<std::vector<Prediction>> classify_files(
    const ImageClassifier& classifier,
    const std::vector<std::string>& paths,
    int64_t k) {
  std::vector<torch::Tensor> images;
  images.reserve(paths.size());
  for (const auto& path : paths) {
    images.push_back(read_image(path, classifier.eval_transform()));
  }
  return classifier.classify(images, k, ColorOrder::kRgb);
}

}  // namespace mnv2
