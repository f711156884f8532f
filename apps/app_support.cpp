#include "app_support.h"

#include "common/log.h"

#include <mobilenetv2/weights_io.h>

#include <c10/util/Exception.h>

#include <iostream>

namespace mnv2 {

namespace {
std::string first_line(const std::string& message) {
  return message.substr(0, message.find('\n'));
}
}  // namespace

int run_program(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
    return 2;
  } catch (const ConfigError& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
    log::flush();
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << program << ": " << first_line(e.msg()) << "\n";
  } catch (const std::exception& e) {
    std::cerr << program << ": " << first_line(e.what()) << "\n";
  }
  log::flush();
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
