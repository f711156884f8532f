#include <mobilenetv2/keras/keras_weights.h>

#include "hdf5_file.h"

#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/torch_files/state_dict.h>

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <regex>

namespace mnv2 {

namespace {

constexpr int kBlocks = 17;  // inverted residual blocks of MobileNetV2
constexpr double kKerasBatchNormEps = 1e-3;

/// Keras layer names of one generation of `keras.applications.MobileNetV2`.
struct KerasNaming {
  const char* description;
  /// Layer of block `block`'s `part` ("expand", "depthwise", "project").
  std::string (*conv)(int block, const std::string& part);
  std::string (*batchnorm)(int block, const std::string& part);
};

const KerasNaming kKeras21{"Keras 2.1 names (mobl{i}_conv_{i}_*)",
                           [](int b, const std::string& part) {
                             return "mobl" + std::to_string(b) + "_conv_" +
                                    std::to_string(b) + "_" + part;
                           },
                           [](int b, const std::string& part) {
                             return "bn" + std::to_string(b) + "_conv_" +
                                    std::to_string(b) + "_bn_" + part;
                           }};

const KerasNaming kKerasApplications{
    "keras-applications / tf.keras names (block_{i}_*)",
    [](int b, const std::string& part) {
      return b == 0 ? "expanded_conv_" + part
                    : "block_" + std::to_string(b) + "_" + part;
    },
    [](int b, const std::string& part) {
      return (b == 0 ? "expanded_conv_" + part
                     : "block_" + std::to_string(b) + "_" + part) +
             "_BN";
    }};

// A name from the file as it may appear in a one-line message.
std::string printable(std::string name) {
  constexpr size_t kLongest = 64;
  if (name.size() > kLongest) {
    name = name.substr(0, kLongest) + "...";
  }
  for (auto& c : name) {
    if (!std::isprint(static_cast<unsigned char>(c))) {
      c = '?';
    }
  }
  return name;
}

class KerasReader {
 public:
  explicit KerasReader(const std::string& path) : file_(path) {
    root_ = file_.exists("model_weights") ? "model_weights/" : "";
    layers_ =
        file_.string_attribute(root_.empty() ? "/" : root_, "layer_names");
    if (layers_.empty()) {
      throw WeightsError("'" + path +
                         "' is an HDF5 file but not Keras weights (no "
                         "layer_names attribute)");
    }
  }

  const KerasNaming& naming() const {
    if (has_layer(kKeras21.conv(0, "depthwise"))) {
      return kKeras21;
    }
    if (has_layer(kKerasApplications.conv(0, "depthwise"))) {
      return kKerasApplications;
    }
    std::string listed;
    for (size_t i = 0; i < layers_.size() && i < 6; ++i) {
      listed += (i == 0 ? "" : ", ") + printable(layers_[i]);
    }
    throw WeightsError("'" + file_.path() +
                       "' holds Keras weights but not MobileNetV2's (layers: " +
                       listed + (layers_.size() > 6 ? ", ..." : "") + "; " +
                       std::to_string(layers_.size()) + " in all)");
  }

  bool has_layer(const std::string& layer) const {
    return std::find(layers_.begin(), layers_.end(), layer) != layers_.end();
  }

  /// The layer's weights, by the end of their names ("kernel:0", ...), in
  /// the order asked; exactly these and no others.
  std::vector<torch::Tensor> weights(const std::string& layer,
                                     const std::vector<std::string>& names) {
    if (!has_layer(layer) || !file_.exists(root_ + layer)) {
      throw WeightsError("'" + file_.path() + "': Keras MobileNetV2 layer '" +
                         layer + "' is missing");
    }
    const auto stored = file_.string_attribute(root_ + layer, "weight_names");
    if (stored.size() != names.size()) {
      throw WeightsError("'" + file_.path() + "': layer '" + layer + "' has " +
                         std::to_string(stored.size()) +
                         " weights where MobileNetV2's has " +
                         std::to_string(names.size()));
    }
    std::vector<torch::Tensor> out;
    for (const auto& name : names) {
      const auto found =
          std::find_if(stored.begin(), stored.end(), [&](const auto& s) {
            return s == name || (s.size() > name.size() &&
                                 s.compare(s.size() - name.size() - 1,
                                           std::string::npos,
                                           "/" + name) == 0);
          });
      if (found == stored.end()) {
        throw WeightsError("'" + file_.path() + "': layer '" + layer +
                           "' has no weight '" + name + "'");
      }
      if (!std::all_of(found->begin(), found->end(), [](unsigned char c) {
            return std::isprint(c) != 0;
          })) {
        throw WeightsError("'" + file_.path() + "': layer '" + layer +
                           "' names a weight '" + printable(*found) +
                           "' that is not plain text");
      }
      const auto dataset = root_ + layer + "/" + *found;
      if (!file_.exists(dataset)) {
        throw WeightsError("'" + file_.path() + "': weight '" +
                           printable(*found) + "' of layer '" + layer +
                           "' is missing");
      }
      out.push_back(file_.read_float_dataset(dataset));
    }
    return out;
  }

 private:
  Hdf5File file_;
  std::string root_;
  std::vector<std::string> layers_;
};

void expect_dims(const torch::Tensor& t,
                 int64_t dims,
                 const std::string& layer,
                 const std::string& path) {
  if (t.dim() != dims) {
    throw WeightsError("'" + path + "': a weight of layer '" + layer +
                       "' has " + std::to_string(t.dim()) +
                       " dimensions, expected " + std::to_string(dims));
  }
}

void add_conv(KerasReader& keras,
              const std::string& layer,
              bool depthwise,
              const std::string& key,
              const std::string& path,
              StateDict& state) {
  auto kernel =
      keras.weights(layer, {depthwise ? "depthwise_kernel:0" : "kernel:0"})[0];
  expect_dims(kernel, 4, layer, path);
  // HWIO -> OIHW; depthwise (k, k, C, 1) -> (C, 1, k, k).
  state.insert(
      key + ".weight",
      (depthwise ? kernel.permute({2, 3, 0, 1}) : kernel.permute({3, 2, 0, 1}))
          .contiguous());
}

void add_batchnorm(KerasReader& keras,
                   const std::string& layer,
                   const std::string& key,
                   const std::string& path,
                   StateDict& state) {
  const auto w = keras.weights(
      layer, {"gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"});
  for (const auto& t : w) {
    expect_dims(t, 1, layer, path);
  }
  state.insert(key + ".weight", w[0]);
  state.insert(key + ".bias", w[1]);
  state.insert(key + ".running_mean", w[2]);
  state.insert(key + ".running_var", w[3]);
  state.insert(key + ".num_batches_tracked", torch::zeros({}, torch::kLong));
}

// keras.applications names its files `..._<alpha>_<rows>[_no_top].h5`.
int64_t input_size_from_name(const std::string& path) {
  static const std::regex pattern(
      R"(_\d\.\d+_(96|128|160|192|224)(_no_top)?\.h5$)");
  std::smatch match;
  const auto name = std::filesystem::path(path).filename().string();
  return std::regex_search(name, match, pattern) ? std::stoll(match[1]) : 224;
}

}  // namespace

LoadedWeights read_keras_mobilenet_v2(const std::string& path) {
  KerasReader keras(path);
  const auto& names = keras.naming();
  StateDict state;
  add_conv(keras, "Conv1", false, "features.0.0", path, state);
  add_batchnorm(keras, "bn_Conv1", "features.0.1", path, state);
  int64_t units = 2;
  for (int b = 0; b < kBlocks; ++b) {
    const auto prefix = "features." + std::to_string(b + 1) + ".conv.";
    const int e = b == 0 ? 0 : 1;  // block 0 has no expansion
    if (e == 1) {
      add_conv(
          keras, names.conv(b, "expand"), false, prefix + "0.0", path, state);
      add_batchnorm(
          keras, names.batchnorm(b, "expand"), prefix + "0.1", path, state);
    }
    const auto dw = prefix + std::to_string(e);
    add_conv(keras, names.conv(b, "depthwise"), true, dw + ".0", path, state);
    add_batchnorm(
        keras, names.batchnorm(b, "depthwise"), dw + ".1", path, state);
    add_conv(keras,
             names.conv(b, "project"),
             false,
             prefix + std::to_string(e + 1),
             path,
             state);
    add_batchnorm(keras,
                  names.batchnorm(b, "project"),
                  prefix + std::to_string(e + 2),
                  path,
                  state);
    units += 2 * (e + 2);
  }
  add_conv(keras, "Conv_1", false, "features.18.0", path, state);
  add_batchnorm(keras, "Conv_1_bn", "features.18.1", path, state);
  units += 2;

  LoadedWeights out;
  out.kind = "keras-h5";
  for (const char* head : {"Logits", "predictions"}) {
    if (keras.has_layer(head)) {
      auto w = keras.weights(head, {"kernel:0", "bias:0"});
      expect_dims(w[0], 2, head, path);
      expect_dims(w[1], 1, head, path);
      state.insert("classifier.1.weight", w[0].t().contiguous());
      state.insert("classifier.1.bias", w[1]);
      break;
    }
  }
  out.info.options = infer_options(state, path)
                         .padding(Padding::kTfSame)
                         .bn_eps(kKerasBatchNormEps);
  out.info.normalization = kInceptionNormalization;
  const auto size = input_size_from_name(path);
  out.info.img_size = size;
  out.info.val_crop = size;
  out.info.val_resize = size;
  out.info.resize = ResizePolicy::kSquash;
  for (int64_t i = 0; i < out.info.options.num_classes(); ++i) {
    out.info.class_names.push_back(std::to_string(i));
  }
  out.state = std::move(state);
  out.conversion = std::string("Keras MobileNetV2, ") + names.description +
                   ": " + std::to_string(units / 2) + " convolutions, " +
                   std::to_string(units / 2) + " BatchNorms" +
                   (has_classifier(out.state) ? " and the classifier" : "") +
                   " converted (width " +
                   std::to_string(out.info.options.width_mult()).substr(0, 4) +
                   ", TF SAME padding, BatchNorm eps 1e-3, inputs x/127.5-1)";
  return out;
}

bool is_keras_file(const std::string& path) {
  return is_hdf5_file(path);
}

}  // namespace mnv2
