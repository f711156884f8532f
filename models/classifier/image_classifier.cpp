#include <mobilenetv2/classifier/image_classifier.h>
#include <mobilenetv2/util/autocast_guard.h>
#include <mobilenetv2/util/data_error.h>
#include <mobilenetv2/util/weights_error.h>

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace mnv2 {

struct ImageClassifier::State {
  InferenceModel model;
  ClassifierOptions options;
  EvalTransformOptions transform;
  std::vector<std::string> class_names;
  // Serialises network runs: the fused engines keep scratch memory per
  // network, and autocast state is per thread but the cast cache is not.
  mutable std::mutex network;
};

namespace {

// Runs `network` on the device under the options' autocast, one call at a
// time, without gradients.
template <typename Network>
auto run_serialised(const ClassifierOptions& options,
                    std::mutex& mutex,
                    const Network& network) {
  torch::NoGradGuard no_grad;
  std::lock_guard<std::mutex> lock(mutex);
  AutocastGuard autocast(options.device.type(),
                         options.autocast.value_or(torch::kFloat),
                         options.autocast.has_value());
  return network();
}

}  // namespace

Engine engine_from_name(const std::string& name) {
  if (name == "fused") {
    return Engine::kFused;
  }
  if (name == "graph") {
    return Engine::kGraph;
  }
  if (name == "eager") {
    return Engine::kEager;
  }
  throw std::invalid_argument("engine must be fused, graph or eager, got '" +
                              name + "'");
}

ImageClassifier ImageClassifier::open(const std::string& weights_path,
                                      const ClassifierOptions& options) {
  return ImageClassifier(
      InferenceModel::load(weights_path, options.prefer_ema, options.device),
      options);
}

ImageClassifier::ImageClassifier(InferenceModel model,
                                 const ClassifierOptions& options)
    : state_(std::make_shared<State>()) {
  auto& s = *state_;
  s.model = std::move(model);
  s.options = options;
  if (options.max_batch < 1) {
    throw std::invalid_argument("max_batch must be at least 1, got " +
                                std::to_string(options.max_batch));
  }
  const auto& info = s.model.info();
  s.transform.policy = info.resize;
  s.transform.crop_size = static_cast<int>(
      options.crop_size > 0 ? options.crop_size : info.val_crop);
  s.transform.resize_size =
      info.resize == ResizePolicy::kSquash
          ? s.transform.crop_size
          : static_cast<int>(options.resize_size > 0 ? options.resize_size
                                                     : info.val_resize);
  if (s.transform.resize_size < s.transform.crop_size) {
    throw std::invalid_argument("the resize size (" +
                                std::to_string(s.transform.resize_size) +
                                ") must not be smaller than the crop size (" +
                                std::to_string(s.transform.crop_size) + ")");
  }
  s.class_names = info.class_names;
  if (!options.class_names.empty()) {
    if (static_cast<int64_t>(options.class_names.size()) !=
        info.options.num_classes()) {
      throw std::invalid_argument(std::to_string(options.class_names.size()) +
                                  " class names given but the model has " +
                                  std::to_string(info.options.num_classes()) +
                                  " classes");
    }
    s.class_names = options.class_names;
  }
  if (options.channels_last) {
    s.model.to_channels_last();
  }
  if (options.engine != Engine::kEager && options.device.is_cpu()) {
    s.model.use_fused_engine(/*graph_only=*/options.engine == Engine::kGraph);
  }
}

const ModelInfo& ImageClassifier::info() const {
  return state_->model.info();
}

const std::vector<std::string>& ImageClassifier::class_names() const {
  return state_->class_names;
}

const EvalTransformOptions& ImageClassifier::eval_transform() const {
  return state_->transform;
}

std::string ImageClassifier::engine() const {
  const auto& s = *state_;
  if (!s.options.device.is_cpu()) {
    return s.options.device.str();
  }
  return s.model.engine_for(s.options.autocast);
}

const torch::Device& ImageClassifier::device() const {
  return state_->options.device;
}

const InferenceModel& ImageClassifier::model() const {
  return state_->model;
}

torch::Tensor image_view_to_tensor(const ImageView& image) {
  if (image.data == nullptr) {
    throw DataError("the image view has no pixels (null data)");
  }
  if (image.channels != 3) {
    throw DataError("the image view must have 3 channels (RGB or BGR), got " +
                    std::to_string(image.channels));
  }
  if (image.height <= 0 || image.width <= 0) {
    throw DataError("the image view is empty (" + std::to_string(image.height) +
                    "x" + std::to_string(image.width) + ")");
  }
  const int64_t packed = image.width * image.channels;
  const int64_t stride = image.row_stride == 0 ? packed : image.row_stride;
  if (stride < packed) {
    throw DataError("the image view's row stride (" + std::to_string(stride) +
                    " bytes) is shorter than a row (" + std::to_string(packed) +
                    " bytes)");
  }
  auto out = torch::empty({image.height, image.width, 3}, torch::kUInt8);
  for (int64_t row = 0; row < image.height; ++row) {
    std::memcpy(out.data_ptr<uint8_t>() + row * packed,
                image.data + row * stride,
                static_cast<size_t>(packed));
  }
  return out;
}

torch::Tensor ImageClassifier::preprocess(const torch::Tensor& image,
                                          ColorOrder order) const {
  const auto& s = *state_;
  return normalize_image(eval_resize_crop(image, s.transform),
                         order,
                         s.model.info().normalization);
}

torch::Tensor ImageClassifier::preprocess(const ImageView& image) const {
  return preprocess(image_view_to_tensor(image), image.order);
}

torch::Tensor ImageClassifier::stack(const std::vector<torch::Tensor>& images,
                                     ColorOrder order) const {
  if (images.empty()) {
    throw DataError("no images given");
  }
  std::vector<torch::Tensor> inputs;
  inputs.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    try {
      inputs.push_back(preprocess(images[i], order));
    } catch (const DataError& e) {
      throw DataError("image " + std::to_string(i) + ": " + e.what());
    }
  }
  return torch::stack(inputs);
}

torch::Tensor ImageClassifier::logits(const torch::Tensor& batch) const {
  const auto& s = *state_;
  const auto format = s.options.channels_last
                          ? torch::MemoryFormat::ChannelsLast
                          : torch::MemoryFormat::Contiguous;
  const auto x = batch.to(s.options.device).contiguous(format);
  return run_serialised(s.options, s.network, [&] {
    return s.model.forward(x).to(torch::kCPU, torch::kFloat);
  });
}

torch::Tensor ImageClassifier::probabilities(
    const std::vector<torch::Tensor>& images, ColorOrder order) const {
  if (images.empty()) {
    throw DataError("no images given");
  }
  const auto max_batch = static_cast<size_t>(state_->options.max_batch);
  std::vector<torch::Tensor> parts;
  for (size_t start = 0; start < images.size(); start += max_batch) {
    const auto end = std::min(images.size(), start + max_batch);
    const std::vector<torch::Tensor> chunk(
        images.begin() + static_cast<std::ptrdiff_t>(start),
        images.begin() + static_cast<std::ptrdiff_t>(end));
    parts.push_back(torch::softmax(logits(stack(chunk, order)), 1));
  }
  return torch::cat(parts);
}

std::vector<std::vector<Prediction>> ImageClassifier::top_k(
    const torch::Tensor& probabilities, int64_t k) const {
  if (k < 1) {
    throw std::invalid_argument("k must be at least 1, got " +
                                std::to_string(k));
  }
  const auto p =
      probabilities.dim() == 1 ? probabilities.unsqueeze(0) : probabilities;
  const auto [values, indices] =
      p.to(torch::kCPU, torch::kDouble).topk(std::min(k, p.size(1)), 1);
  std::vector<std::vector<Prediction>> out(static_cast<size_t>(p.size(0)));
  for (int64_t n = 0; n < p.size(0); ++n) {
    for (int64_t i = 0; i < values.size(1); ++i) {
      const auto index = indices[n][i].item<int64_t>();
      out[static_cast<size_t>(n)].push_back(
          {index,
           state_->class_names.at(static_cast<size_t>(index)),
           values[n][i].item<double>()});
    }
  }
  return out;
}

std::vector<std::vector<Prediction>> ImageClassifier::classify(
    const std::vector<torch::Tensor>& images,
    int64_t k,
    ColorOrder order) const {
  return top_k(probabilities(images, order), k);
}

std::vector<Prediction> ImageClassifier::classify(const torch::Tensor& image,
                                                  int64_t k,
                                                  ColorOrder order) const {
  return classify(std::vector<torch::Tensor>{image}, k, order).front();
}

std::vector<Prediction> ImageClassifier::classify(const ImageView& image,
                                                  int64_t k) const {
  return classify(image_view_to_tensor(image), k, image.order);
}

MobileNetV2 ImageClassifier::eager_for(const char* what) const {
  MobileNetV2 eager = state_->model.eager();
  if (!eager) {
    throw WeightsError(std::string(what) +
                       " needs a weights file (a checkpoint, state_dict or "
                       "Keras .h5), not a TorchScript or int8 export");
  }
  return eager;
}

torch::Tensor ImageClassifier::embed(const std::vector<torch::Tensor>& images,
                                     ColorOrder order) const {
  const auto& s = *state_;
  auto eager = eager_for("embed()");
  const auto batch = stack(images, order).to(s.options.device);
  return run_serialised(s.options, s.network, [&] {
    return eager->forward_embedding(batch).to(torch::kCPU, torch::kFloat);
  });
}

std::vector<FeatureMap> ImageClassifier::feature_maps(
    const torch::Tensor& image, ColorOrder order) const {
  const auto& s = *state_;
  auto eager = eager_for("feature_maps()");
  const auto batch = preprocess(image, order).unsqueeze(0).to(s.options.device);
  return run_serialised(s.options, s.network, [&] {
    auto maps = eager->forward_feature_maps(batch);
    for (auto& map : maps) {
      map.tensor = map.tensor.to(torch::kFloat);
    }
    return maps;
  });
}

}  // namespace mnv2
