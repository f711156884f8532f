#pragma once

#include <stdexcept>

namespace mnv2 {

/// A problem with the user's data (an image, a folder, a list file, an
/// input tensor); what() is one line naming the file or the argument.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace mnv2
