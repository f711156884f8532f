#include <mobilenetv2/torch_files/community_layout.h>
#include <mobilenetv2/torch_files/state_dict.h>

#include <algorithm>
#include <map>
#include <regex>

namespace mnv2 {

namespace {

// `features.<block>.conv.<index>.<name>`: the older community layout keeps a
// block's layers in one flat Sequential (conv, bn, relu, conv, bn, ...).
const std::regex& flat_block_key() {
  static const std::regex pattern(R"(^features\.(\d+)\.conv\.(\d+)\.(\w+)$)");
  return pattern;
}

struct FlatLayer {
  std::map<std::string, torch::Tensor> tensors;  // by parameter name
  bool is_conv() const {
    const auto it = tensors.find("weight");
    return it != tensors.end() && it->second.dim() == 4;
  }
  bool is_batchnorm() const {
    return tensors.count("running_mean") == 1;
  }
};

}  // namespace

bool is_community_layout(const StateDict& state) {
  // torchvision nests the first layer of every block: `conv.0.0.weight`.
  const std::regex first_flat(R"(^features\.\d+\.conv\.0\.weight$)");
  return std::any_of(state.begin(), state.end(), [&](const auto& item) {
    return std::regex_match(item.key(), first_flat);
  });
}

StateDict from_community_layout(const StateDict& state,
                                const std::string& origin,
                                CommunityLayoutReport* report) {
  // block -> index -> layer, ordered numerically.
  std::map<int64_t, std::map<int64_t, FlatLayer>> blocks;
  StateDict out;
  std::smatch match;
  for (const auto& item : state) {
    if (std::regex_match(item.key(), match, flat_block_key())) {
      auto& layer = blocks[std::stoll(match[1])][std::stoll(match[2])];
      layer.tensors[match[3]] = item.value();
    } else {
      out.insert(item.key(), item.value());
    }
  }
  CommunityLayoutReport local;
  for (const auto& [block, layers] : blocks) {
    // Pairs of (convolution, BatchNorm) in order; ReLU6 layers hold nothing.
    std::vector<std::pair<const FlatLayer*, const FlatLayer*>> pairs;
    for (auto it = layers.begin(); it != layers.end(); ++it) {
      auto next = std::next(it);
      if (!it->second.is_conv() || next == layers.end() ||
          !next->second.is_batchnorm()) {
        throw WeightsError("'" + origin + "': block features." +
                           std::to_string(block) +
                           " is not a sequence of convolution + BatchNorm "
                           "pairs, so it cannot be mapped onto torchvision's "
                           "layout");
      }
      pairs.emplace_back(&it->second, &next->second);
      it = next;
    }
    const std::string prefix = "features." + std::to_string(block) + ".conv.";
    for (size_t p = 0; p < pairs.size(); ++p) {
      // All but the last pair are Conv2dNormActivation units (`p.0`, `p.1`);
      // the last is the linear projection: `P-1` conv, `P` BatchNorm.
      const bool last = p + 1 == pairs.size();
      const std::string conv = prefix + std::to_string(p) + (last ? "" : ".0");
      const std::string bn = last ? prefix + std::to_string(p + 1)
                                  : prefix + std::to_string(p) + ".1";
      for (const auto& [name, tensor] : pairs[p].first->tensors) {
        out.insert(conv + "." + name, tensor);
      }
      for (const auto& [name, tensor] : pairs[p].second->tensors) {
        out.insert(bn + "." + name, tensor);
      }
      local.mapped_layers += 2;
    }
    ++local.mapped_blocks;
  }
  if (report != nullptr) {
    *report = local;
  }
  return out;
}

}  // namespace mnv2
