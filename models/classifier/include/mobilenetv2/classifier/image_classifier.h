#pragma once

#include <mobilenetv2/classifier/inference_model.h>
#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/preprocessing/preprocessing.h>
#include <mobilenetv2/weights/model_info.h>

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mnv2 {

/// An 8-bit image in memory as its owner holds it: `height` rows of
/// `width` interleaved pixels of `channels` bytes, rows `row_stride` bytes
/// apart (0: packed). Only 3 channels are accepted; the view does not own
/// the pixels.
struct ImageView {
  const uint8_t* data = nullptr;
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 3;
  int64_t row_stride = 0;
  ColorOrder order = ColorOrder::kRgb;
};

/// One class of a top-k answer.
struct Prediction {
  int64_t index = 0;
  std::string name;
  double probability = 0;
};

/// Which network runs CPU batches (CUDA always runs the eager model), as
/// mnv2-eval's --engine names them.
enum class Engine {
  /// mnv2::OneDnnMobileNetV2 where the oneDNN add-on is built, else the
  /// graph engine; autocast to bf16 runs the graph engine.
  kFused,
  kGraph,  ///< mnv2::FusedMobileNetV2 (frozen TorchScript, oneDNN Graph)
  kEager,  ///< the eager module
};

struct ClassifierOptions {
  torch::Device device = torch::kCPU;
  Engine engine = Engine::kFused;
  /// A training checkpoint's EMA weights when it has them.
  bool prefer_ema = true;
  /// NHWC activations on CPU (1.6-2x faster here).
  bool channels_last = true;
  /// Autocast dtype for the network (kHalf / kBFloat16), none for fp32.
  std::optional<c10::ScalarType> autocast;
  /// Images per network call when classifying many.
  int64_t max_batch = 32;
  /// Evaluation sizes other than the weights' (0: the weights').
  int resize_size = 0;
  int crop_size = 0;
  /// Class names other than the weights' (empty: the weights').
  std::vector<std::string> class_names;
};

/// Weights file plus photo in, labelled top-k out, exactly as mnv2-eval
/// computes it: opens any weights file mnv2-eval accepts (training
/// checkpoints, torchvision-style state_dicts with their `.json`, Keras
/// `.h5`, TorchScript exports) with its model information, applies those
/// weights' evaluation preprocessing (mnv2::eval_resize_crop, then the
/// weights' mean and std) and runs the best engine for the device.
///
/// Thread safety: every const member may be called from several threads at
/// once. Preprocessing runs on the calling threads; network runs are
/// serialised by an internal mutex (each already uses LibTorch's intra-op
/// threads, and the fused engines keep per-network scratch memory).
/// Copies share the network.
class ImageClassifier {
 public:
  /// Throws WeightsError naming the file, std::invalid_argument for bad
  /// options.
  static ImageClassifier open(const std::string& weights_path,
                              const ClassifierOptions& options = {});
  /// From a model already loaded.
  ImageClassifier(InferenceModel model, const ClassifierOptions& options);

  const ModelInfo& info() const;
  const std::vector<std::string>& class_names() const;
  /// The evaluation geometry in use (the weights' unless overridden).
  const EvalTransformOptions& eval_transform() const;
  /// "onednn", "graph", "eager" (CPU) or "cuda".
  std::string engine() const;
  const torch::Device& device() const;
  /// The underlying model (e.g. its kind(), or eager() for other heads).
  const InferenceModel& model() const;

  /// An image as the network's input: float [3, crop, crop], normalised.
  /// `image` is uint8 height x width x 3 in `order`. Throws DataError for
  /// anything else (wrong dtype, channels, an empty image).
  torch::Tensor preprocess(const torch::Tensor& image,
                           ColorOrder order = ColorOrder::kRgb) const;
  torch::Tensor preprocess(const ImageView& image) const;

  /// Class probabilities [N, classes] (float, CPU) of N images.
  torch::Tensor probabilities(const std::vector<torch::Tensor>& images,
                              ColorOrder order = ColorOrder::kRgb) const;
  /// The `k` most probable classes of each image, most probable first.
  std::vector<std::vector<Prediction>> classify(
      const std::vector<torch::Tensor>& images,
      int64_t k = 5,
      ColorOrder order = ColorOrder::kRgb) const;
  std::vector<Prediction> classify(const torch::Tensor& image,
                                   int64_t k = 5,
                                   ColorOrder order = ColorOrder::kRgb) const;
  std::vector<Prediction> classify(const ImageView& image, int64_t k = 5) const;
  /// Top-k of probabilities already computed ([classes] or [N, classes]).
  std::vector<std::vector<Prediction>> top_k(const torch::Tensor& probabilities,
                                             int64_t k) const;

  /// Logits [N, classes] (float, CPU) of a batch already preprocessed
  /// ([N, 3, H, W] float, any device): what mnv2-eval --data runs.
  torch::Tensor logits(const torch::Tensor& batch) const;

  /// The pooled embedding [N, last_channel] (float, CPU) and the backbone's
  /// feature maps at strides 4, 8, 16, 32 (float, on the device), with the
  /// same preprocessing; for users who put their own head on the backbone.
  /// Not available for TorchScript files (WeightsError).
  torch::Tensor embed(const std::vector<torch::Tensor>& images,
                      ColorOrder order = ColorOrder::kRgb) const;
  std::vector<FeatureMap> feature_maps(
      const torch::Tensor& image, ColorOrder order = ColorOrder::kRgb) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  torch::Tensor stack(const std::vector<torch::Tensor>& images,
                      ColorOrder order) const;
  MobileNetV2 eager_for(const char* what) const;
};

/// An ImageView as a uint8 height x width x 3 tensor (copied, packed, in
/// the view's channel order). Throws DataError for a null, empty or non
/// 3-channel view.
torch::Tensor image_view_to_tensor(const ImageView& image);

/// "fused", "graph", "eager"; std::invalid_argument otherwise.
Engine engine_from_name(const std::string& name);

}  // namespace mnv2
