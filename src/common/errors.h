#pragma once

// The engine's error taxonomy. The engine throws these and returns an
// Outcome; only the programs in apps/ turn them into exit statuses (and
// only apps/ throws usage errors, where the command line is interpreted).

#include <mobilenetv2/util/data_error.h>

#include <stdexcept>

namespace mnv2 {

// DataError (a problem with the user's data) comes from the model library.

/// A setting the engine cannot honour: a device that is not there, an output
/// folder that cannot be written, data that does not match the weights.
/// what() is one line naming the flag; the programs exit with status 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Training cannot go on (e.g. the loss became NaN); the last good checkpoint
/// is kept.
class TrainingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How a run that raised no error ended.
enum class Outcome {
  kDone,
  kCheckFailed,  ///< e.g. an export differs from the eager model
  kInterrupted,  ///< SIGINT: state saved
  kTerminated,   ///< SIGTERM: state saved
};

}  // namespace mnv2
