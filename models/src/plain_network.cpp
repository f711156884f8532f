#include <mobilenetv2/plain_network.h>

#include <mobilenetv2/folded_network.h>

namespace mnv2 {

namespace {

std::vector<float> values_of(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

}  // namespace

plain::Network to_plain_network(const FoldedNetwork& folded) {
  plain::Network net;
  for (const auto& block : folded.blocks) {
    plain::Block b;
    b.residual = block.residual;
    for (const auto& conv : block.convs) {
      b.convs.push_back({values_of(conv.weight),
                         conv.weight.sizes().vec(),
                         values_of(conv.bias),
                         conv.stride,
                         conv.padding,
                         conv.same_padding,
                         conv.groups,
                         conv.relu6});
    }
    net.blocks.push_back(std::move(b));
  }
  net.fc_weight = values_of(folded.fc_weight);
  net.fc_bias = values_of(folded.fc_bias);
  net.classes = folded.fc_weight.size(0);
  net.features = folded.fc_weight.size(1);
  return net;
}

}  // namespace mnv2
