#include "app_support.h"

#include "common/log.h"

#include <mobilenetv2/util/weights_error.h>

#include <c10/util/Exception.h>

#include <iostream>

namespace mnv2 {

namespace {
std::string first_line(const std::string& message) {
  return message.substr(0, message.find('\n'));
}
}  // namespace

int run_program(const char* program, const std::function<int()>& body) {
  // One line on stderr, and in the log file when a run has opened one.
  const auto report = [&](const std::string& message) {
    std::cerr << program << ": " << log::rank_prefix() << message << "\n";
    log::error_to_file(message);
    log::flush();
  };
  try {
    return body();
  } catch (const cxxopts::exceptions::exception& e) {
    report(std::string(e.what()) + " (see --help)");
    return 2;
  } catch (const ConfigError& e) {  // UsageError included
    report(std::string(e.what()) + " (see --help)");
    return 2;
  } catch (const c10::Error& e) {
    report(first_line(e.msg()));
  } catch (const std::exception& e) {
    report(first_line(e.what()));
  }
  return 1;
}

int exit_status(Outcome outcome) {
  switch (outcome) {
    case Outcome::kDone:
      return 0;
    case Outcome::kCheckFailed:
      return 1;
    case Outcome::kInterrupted:
      return 130;
    case Outcome::kTerminated:
      return 143;
  }
  return 1;
}

void refuse_problems(const std::vector<std::string>& problems) {
  if (!problems.empty()) {
    throw UsageError(problems.front());
  }
}

}  // namespace mnv2
