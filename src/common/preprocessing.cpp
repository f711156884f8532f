#include "common/preprocessing.h"

#include <stdexcept>

namespace mnv2 {

std::string resize_policy_name(ResizePolicy policy) {
  return policy == ResizePolicy::kSquash ? "squash"
                                         : "shorter_side_center_crop";
}

ResizePolicy resize_policy_from_name(const std::string& name) {
  if (name == "shorter_side_center_crop") {
    return ResizePolicy::kShorterSideCenterCrop;
  }
  if (name == "squash") {
    return ResizePolicy::kSquash;
  }
  throw std::invalid_argument(
      "resize policy must be shorter_side_center_crop "
      "or squash, got '" +
      name + "'");
}

}  // namespace mnv2
