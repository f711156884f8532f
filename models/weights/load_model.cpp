#include <mobilenetv2/weights/load_model.h>

#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/weights/sidecar.h>

namespace mnv2 {

MobileNetV2 load_mobilenet_v2(const std::string& path) {
  const auto state = read_state_dict(path);
  auto options = infer_options(state, path);
  // What the shapes cannot tell (padding, BatchNorm epsilon) comes from the
  // metadata beside the weights, where there is some.
  if (const auto sidecar = read_sidecar(path)) {
    options.padding(sidecar->info.options.padding())
        .bn_eps(sidecar->info.options.bn_eps());
  }
  MobileNetV2 model(options);
  load_weights(*model, state, LoadMode::kStrict, path);
  model->eval();
  return model;
}

}  // namespace mnv2
