#pragma once

#include <stdexcept>

namespace mnv2 {

/// Any problem with a weights file. `what()` is one line naming the file.
class WeightsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace mnv2
