#pragma once

#include <mobilenetv2/torch_files/state_dict.h>

#include <cstdint>
#include <string>

namespace mnv2 {

/// Whether `state` is in the older community MobileNetV2 layout (before
/// torchvision's, e.g. tonylins/pytorch-mobilenet-v2): each block's layers in
/// one flat Sequential, `features.1.conv.0.weight`, `features.1.conv.1.*`, ...
/// where torchvision nests them (`features.1.conv.0.0.weight`).
bool is_community_layout(const StateDict& state);

/// What `from_community_layout` did.
struct CommunityLayoutReport {
  int64_t mapped_blocks = 0;  ///< inverted residual blocks renamed
  int64_t mapped_layers = 0;  ///< convolutions and BatchNorms among them
};

/// Renames a community-layout state_dict onto torchvision's keys by structure:
/// in each block the (convolution, BatchNorm) pairs in order become
/// torchvision's units, the last pair its linear projection. Other keys are
/// kept. Throws WeightsError when a block is not such a sequence.
StateDict from_community_layout(const StateDict& state,
                                const std::string& origin,
                                CommunityLayoutReport* report = nullptr);

}  // namespace mnv2
