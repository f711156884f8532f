#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mnv2 {

/// LibTorch's unpickler turns `collections.OrderedDict` -- what Python's
/// `torch.save(model.state_dict())` writes, and what torchvision's published
/// weights are -- into None (pytorch issue 100741). This rewrites such a
/// pickle (protocol 2 or 3, as torch.save writes) so that every OrderedDict
/// becomes a plain dict and the dicts' attribute state (the `_metadata`
/// versions) is dropped. A pickle without OrderedDicts, or with opcodes this
/// rewriter does not know, is returned unchanged.
std::string ordered_dicts_as_dicts(std::string_view pickle);

/// The offset just past the STOP opcode of the pickle that starts at
/// `start`, or nullopt if it does not end (or uses opcodes of protocol 4+).
std::optional<size_t> pickle_end(std::string_view bytes, size_t start);

/// A storage a legacy torch.save pickle refers to by persistent id.
struct StorageRef {
  std::string key;
  std::string type;  ///< e.g. "FloatStorage"
};
/// The storages of a legacy pickle, in order of first reference, read from
/// its persistent ids ('storage', torch.<Type>Storage, key, location, ...).
std::vector<StorageRef> storage_refs(std::string_view pickle);

/// Why LibTorch's unpickler must not see this pickle, or "": a memo index
/// beyond the number of operations before it (a legitimate pickler numbers
/// its memo from 0), or a string length beyond the bytes present. LibTorch
/// sizes its memo table and its strings by these numbers, so a mutated one
/// could make it allocate gigabytes before it fails.
std::string pickle_size_problem(std::string_view pickle);

/// Every text string of a pickle, in order (the legacy key list).
std::vector<std::string> pickle_strings(std::string_view pickle);

}  // namespace mnv2
