#pragma once

#include <stdexcept>

namespace mnv2 {

/// A problem with the user's data (a folder, list file or image); what() is
/// one line naming the path.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A bad flag or flag value: the programs exit with status 2.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Training cannot go on (e.g. the loss became NaN); the last good checkpoint
/// is kept.
class TrainingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace mnv2
