#include <mobilenetv2/engines/scripted_network.h>

#include <ATen/Config.h>
#include <torch/csrc/jit/codegen/onednn/interface.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/script.h>

#include <algorithm>
#include <sstream>

namespace mnv2 {

namespace {
std::string name_of(size_t block, size_t conv, const char* what) {
  return "b" + std::to_string(block) + "_c" + std::to_string(conv) + "_" + what;
}
}  // namespace

std::string torchscript_source(const FoldedNetwork& network) {
  std::ostringstream code;
  code << "def forward(self, x):\n";
  for (size_t b = 0; b < network.blocks.size(); ++b) {
    const auto& block = network.blocks[b];
    const char* current = "x";  // the block's input, then its running value
    for (size_t c = 0; c < block.convs.size(); ++c) {
      const auto& conv = block.convs[c];
      if (conv.same_padding) {
        // TensorFlow's SAME from the input's size (see tf_same_padding).
        const auto k = conv.weight.size(2);
        code << "    y = self.same_pad(" << current << ", " << k << ", "
             << conv.stride << ")\n";
        current = "y";
      }
      std::ostringstream call;
      call << "torch.conv2d(" << current << ", self." << name_of(b, c, "w")
           << ", self." << name_of(b, c, "b") << ", [" << conv.stride << ", "
           << conv.stride << "], [" << conv.padding << ", " << conv.padding
           << "], [1, 1], " << conv.groups << ")";
      const std::string value =
          conv.relu6 ? "torch.clamp(" + call.str() + ", 0.0, 6.0)" : call.str();
      code << "    y = " << value << "\n";
      current = "y";
    }
    code << (block.residual ? "    x = x + y\n" : "    x = y\n");
  }
  // A 16-bit network pools and classifies in fp32 (as its fp32 head).
  const bool low_precision =
      network.fc_weight.scalar_type() !=
      network.blocks.front().convs.front().weight.scalar_type();
  code << (low_precision ? "    x = torch.mean(x.float(), [2, 3])\n"
                         : "    x = torch.mean(x, [2, 3])\n")
       << "    return torch.linear(x, self.fc_w, self.fc_b)\n";
  const bool same = std::any_of(
      network.blocks.begin(), network.blocks.end(), [](const auto& block) {
        return std::any_of(block.convs.begin(),
                           block.convs.end(),
                           [](const auto& conv) { return conv.same_padding; });
      });
  if (same) {
    std::ostringstream helper;
    helper << "def same_pad(self, x, k: int, s: int):\n"
           << "    h = x.size(2)\n"
           << "    w = x.size(3)\n"
           << "    ph = max((h + s - 1) // s * s - s + k - h, 0)\n"
           << "    pw = max((w + s - 1) // s * s - s + k - w, 0)\n"
           << "    return torch.constant_pad_nd(x, [pw // 2, pw - pw // 2, "
              "ph // 2, ph - ph // 2])\n";
    return helper.str() + code.str();
  }
  return code.str();
}

torch::jit::Module scripted_network(const FoldedNetwork& network) {
  torch::jit::Module module("__torch__.mnv2.MobileNetV2Folded");
  for (size_t b = 0; b < network.blocks.size(); ++b) {
    for (size_t c = 0; c < network.blocks[b].convs.size(); ++c) {
      const auto& conv = network.blocks[b].convs[c];
      module.register_parameter(name_of(b, c, "w"), conv.weight, false);
      module.register_parameter(name_of(b, c, "b"), conv.bias, false);
    }
  }
  module.register_parameter("fc_w", network.fc_weight, false);
  module.register_parameter("fc_b", network.fc_bias, false);
  // A module built in C++ has no `training` attribute; eval(), freezing and
  // Python's tooling expect one.
  module.register_attribute("training", c10::BoolType::get(), false);
  module.define(torchscript_source(network));
  module.eval();
  return module;
}

std::optional<FoldedNetwork> folded_from_scripted(
    const torch::jit::Module& module, FoldedNetwork layout) {
  const auto take = [&](const std::string& name, torch::Tensor& into) {
    if (!module.hasattr(name) || !module.attr(name).isTensor()) {
      return false;
    }
    const auto value = module.attr(name).toTensor();
    if (value.sizes() != into.sizes()) {
      return false;
    }
    into = value.detach().to(torch::kCPU, torch::kFloat).clone();
    return true;
  };
  for (size_t b = 0; b < layout.blocks.size(); ++b) {
    for (size_t c = 0; c < layout.blocks[b].convs.size(); ++c) {
      auto& conv = layout.blocks[b].convs[c];
      if (!take(name_of(b, c, "w"), conv.weight) ||
          !take(name_of(b, c, "b"), conv.bias)) {
        return std::nullopt;
      }
    }
  }
  if (!take("fc_w", layout.fc_weight) || !take("fc_b", layout.fc_bias)) {
    return std::nullopt;
  }
  return layout;
}

torch::jit::Module fused_network(const FoldedNetwork& network) {
#if AT_MKLDNN_ENABLED()
  // oneDNN Graph fuses each convolution with its bias, clamp and residual
  // add on frozen graphs; it is a process-wide switch of the JIT. (A
  // LibTorch built without oneDNN gets the frozen graph alone.)
  torch::jit::RegisterLlgaFuseGraph::setEnabled(true);
#endif
  return torch::jit::freeze(scripted_network(network));
}

}  // namespace mnv2
