#include <mobilenetv2/classifier/weights_file.h>

#include <mobilenetv2/keras/keras_weights.h>

namespace mnv2 {

LoadedWeights load_any_weights_file(const std::string& path,
                                    bool prefer_ema,
                                    bool allow_non_finite) {
  if (is_keras_file(path)) {
    auto weights = read_keras_mobilenet_v2(path);
    if (!allow_non_finite) {
      refuse_non_finite(weights.state, path);
    }
    return weights;
  }
  return load_weights_file(path, prefer_ema, allow_non_finite);
}

}  // namespace mnv2
