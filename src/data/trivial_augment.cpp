#include "data/trivial_augment.h"

#include <opencv2/imgproc.hpp>

#include <array>
#include <cmath>
#include <numbers>

namespace mnv2 {

namespace {

constexpr int kBins = 31;

enum class Op {
  kIdentity,
  kShearX,
  kShearY,
  kTranslateX,
  kTranslateY,
  kRotate,
  kBrightness,
  kColor,
  kContrast,
  kSharpness,
  kPosterize,
  kSolarize,
  kAutoContrast,
  kEqualize,
  kCount
};

// torchvision's _augmentation_space for TrivialAugmentWide.
double magnitude_of(Op op, int bin) {
  const double t = static_cast<double>(bin) / (kBins - 1);
  switch (op) {
    case Op::kShearX:
    case Op::kShearY:
    case Op::kBrightness:
    case Op::kColor:
    case Op::kContrast:
    case Op::kSharpness:
      return 0.99 * t;
    case Op::kTranslateX:
    case Op::kTranslateY:
      return 32.0 * t;
    case Op::kRotate:
      return 135.0 * t;
    case Op::kPosterize:  // 8 - round(bin / 5)
      return 8.0 - std::nearbyint(bin / ((kBins - 1) / 6.0));
    case Op::kSolarize:
      return 255.0 * (1.0 - t);
    default:
      return 0.0;
  }
}

bool is_signed(Op op) {
  return op == Op::kShearX || op == Op::kShearY || op == Op::kTranslateX ||
         op == Op::kTranslateY || op == Op::kRotate || op == Op::kBrightness ||
         op == Op::kColor || op == Op::kContrast || op == Op::kSharpness;
}

void warp(cv::Mat& image, const cv::Mat& matrix) {
  cv::Mat out;
  cv::warpAffine(image,
                 out,
                 matrix,
                 image.size(),
                 cv::INTER_NEAREST,
                 cv::BORDER_CONSTANT,
                 cv::Scalar::all(0));
  image = out;
}

cv::Mat grey_of(const cv::Mat& image, bool bgr) {
  cv::Mat grey;
  cv::cvtColor(image, grey, bgr ? cv::COLOR_BGR2GRAY : cv::COLOR_RGB2GRAY);
  return grey;
}

// image * factor + other * (1 - factor), saturated to 8 bits.
void blend(cv::Mat& image, const cv::Mat& other, double factor) {
  cv::Mat out;
  cv::addWeighted(image, factor, other, 1.0 - factor, 0.0, out);
  image = out;
}

}  // namespace

void trivial_augment_wide(cv::Mat& image, bool bgr, std::mt19937_64& rng) {
  const auto op = static_cast<Op>(std::uniform_int_distribution<int>(
      0, static_cast<int>(Op::kCount) - 1)(rng));
  double m =
      magnitude_of(op, std::uniform_int_distribution<int>(0, kBins - 1)(rng));
  if (is_signed(op) && std::uniform_int_distribution<int>(0, 1)(rng) == 1) {
    m = -m;
  }
  switch (op) {
    case Op::kIdentity:
    case Op::kCount:
      return;
    case Op::kShearX:
      warp(image, (cv::Mat_<double>(2, 3) << 1, m, 0, 0, 1, 0));
      return;
    case Op::kShearY:
      warp(image, (cv::Mat_<double>(2, 3) << 1, 0, 0, m, 1, 0));
      return;
    case Op::kTranslateX:
      warp(image, (cv::Mat_<double>(2, 3) << 1, 0, std::trunc(m), 0, 1, 0));
      return;
    case Op::kTranslateY:
      warp(image, (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, std::trunc(m)));
      return;
    case Op::kRotate: {
      const cv::Point2f centre((image.cols - 1) / 2.0f,
                               (image.rows - 1) / 2.0f);
      warp(image, cv::getRotationMatrix2D(centre, m, 1.0));
      return;
    }
    case Op::kBrightness:
      blend(image, cv::Mat::zeros(image.size(), image.type()), 1.0 + m);
      return;
    case Op::kColor: {
      cv::Mat grey;
      cv::cvtColor(grey_of(image, bgr), grey, cv::COLOR_GRAY2BGR);
      blend(image, grey, 1.0 + m);
      return;
    }
    case Op::kContrast: {
      const double mean = cv::mean(grey_of(image, bgr))[0];
      blend(image,
            cv::Mat(image.size(), image.type(), cv::Scalar::all(mean)),
            1.0 + m);
      return;
    }
    case Op::kSharpness: {
      // PIL's SMOOTH kernel; border pixels keep their values.
      const cv::Mat kernel =
          (cv::Mat_<float>(3, 3) << 1, 1, 1, 1, 5, 1, 1, 1, 1) / 13.0f;
      cv::Mat smooth;
      cv::filter2D(image, smooth, -1, kernel);
      image.row(0).copyTo(smooth.row(0));
      image.row(image.rows - 1).copyTo(smooth.row(smooth.rows - 1));
      image.col(0).copyTo(smooth.col(0));
      image.col(image.cols - 1).copyTo(smooth.col(smooth.cols - 1));
      blend(image, smooth, 1.0 + m);
      return;
    }
    case Op::kPosterize: {
      const auto bits = static_cast<int>(m);
      const auto mask = static_cast<uchar>(0xFF << (8 - bits));
      cv::bitwise_and(image, cv::Scalar::all(mask), image);
      return;
    }
    case Op::kSolarize: {
      cv::Mat inverted = cv::Scalar::all(255) - image;
      cv::Mat at_or_above;
      cv::compare(image, cv::Scalar::all(m), at_or_above, cv::CMP_GE);
      inverted.copyTo(image, at_or_above);
      return;
    }
    case Op::kAutoContrast: {
      std::vector<cv::Mat> channels;
      cv::split(image, channels);
      for (auto& c : channels) {
        double low = 0;
        double high = 0;
        cv::minMaxLoc(c, &low, &high);
        if (high > low) {
          c.convertTo(
              c, CV_8U, 255.0 / (high - low), -low * 255.0 / (high - low));
        }
      }
      cv::merge(channels, image);
      return;
    }
    case Op::kEqualize: {
      std::vector<cv::Mat> channels;
      cv::split(image, channels);
      for (auto& c : channels) {
        cv::equalizeHist(c, c);
      }
      cv::merge(channels, image);
      return;
    }
  }
}

}  // namespace mnv2
