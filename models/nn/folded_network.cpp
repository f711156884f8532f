#include <mobilenetv2/nn/folded_network.h>

#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/padding.h>

#include <torch/torch.h>

namespace mnv2 {

namespace {

FoldedConv fold(const torch::nn::Conv2dImpl& conv,
                const torch::nn::BatchNorm2dImpl& bn,
                bool relu6) {
  const auto scale = bn.weight / torch::sqrt(bn.running_var + bn.options.eps());
  FoldedConv out;
  out.weight = (conv.weight * scale.view({-1, 1, 1, 1})).detach().clone();
  out.bias = (bn.bias - bn.running_mean * scale).detach().clone();
  out.stride = (*conv.options.stride())[0];
  out.padding =
      (*std::get<torch::ExpandingArray<2>>(conv.options.padding()))[0];
  out.groups = conv.options.groups();
  out.relu6 = relu6;
  return out;
}

FoldedConv fold_unit(const ConvBNActivationImpl& unit) {
  auto out = fold(*unit.ptr(0)->as<torch::nn::Conv2dImpl>(),
                  *unit.ptr(1)->as<torch::nn::BatchNorm2dImpl>(),
                  unit.options.activation());
  out.same_padding = unit.pads_input();
  return out;
}

}  // namespace

FoldedNetwork fold_batchnorm(const MobileNetV2& model) {
  torch::NoGradGuard no_grad;
  FoldedNetwork net;
  for (const auto& layer : model->features->children()) {
    FoldedBlock block;
    if (const auto* unit = layer->as<ConvBNActivationImpl>()) {
      block.convs.push_back(fold_unit(*unit));
    } else if (const auto* ir = layer->as<InvertedResidualImpl>()) {
      block.residual = ir->uses_residual();
      const auto& parts = ir->conv;
      for (size_t i = 0; i + 2 < parts->size(); ++i) {
        block.convs.push_back(
            fold_unit(*parts->ptr(i)->as<ConvBNActivationImpl>()));
      }
      block.convs.push_back(
          fold(*parts->ptr(parts->size() - 2)->as<torch::nn::Conv2dImpl>(),
               *parts->ptr(parts->size() - 1)->as<torch::nn::BatchNorm2dImpl>(),
               /*relu6=*/false));
    } else {
      TORCH_CHECK(false, "fold_batchnorm: unexpected layer in features");
    }
    net.blocks.push_back(std::move(block));
  }
  const auto* linear = model->classifier->ptr(1)->as<torch::nn::LinearImpl>();
  net.fc_weight = linear->weight.detach().clone();
  net.fc_bias = linear->bias.detach().clone();
  return net;
}

torch::Tensor apply_conv(const FoldedConv& conv, const torch::Tensor& x) {
  const auto input =
      conv.same_padding ? pad_tf_same(x, conv.weight.size(2), conv.stride) : x;
  return torch::conv2d(input,
                       conv.weight,
                       conv.bias,
                       conv.stride,
                       conv.padding,
                       /*dilation=*/1,
                       conv.groups);
}

}  // namespace mnv2
