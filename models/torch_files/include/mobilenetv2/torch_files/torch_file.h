#pragma once

#include <mobilenetv2/util/weights_error.h>

#include <ATen/core/ivalue.h>

#include <string>

namespace mnv2 {

/// Reads a file written by Python's `torch.save` (zip format) or by
/// `write_torch_file`, with OrderedDicts read as dicts. Throws WeightsError.
c10::IValue read_torch_file(const std::string& path);

/// Writes `value` in the zip format Python's `torch.load` reads, atomically.
/// Throws WeightsError.
void write_torch_file(const c10::IValue& value, const std::string& path);

}  // namespace mnv2
