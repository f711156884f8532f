#pragma once

#include <string>
#include <string_view>

namespace mnv2 {

/// LibTorch's unpickler turns `collections.OrderedDict` -- what Python's
/// `torch.save(model.state_dict())` writes, and what torchvision's published
/// weights are -- into None (pytorch issue 100741). This rewrites such a
/// pickle (protocol 2 or 3, as torch.save writes) so that every OrderedDict
/// becomes a plain dict and the dicts' attribute state (the `_metadata`
/// versions) is dropped. A pickle without OrderedDicts, or with opcodes this
/// rewriter does not know, is returned unchanged.
std::string ordered_dicts_as_dicts(std::string_view pickle);

}  // namespace mnv2
