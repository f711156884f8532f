#include "app_support.h"

#include "errors.h"
#include "log.h"

#include <mobilenetv2/weights_io.h>

#include <c10/util/Exception.h>
#include <cxxopts.hpp>

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
  } catch (const std::invalid_argument& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << program << ": " << first_line(e.msg()) << "\n";
  } catch (const std::exception& e) {
    std::cerr << program << ": " << first_line(e.what()) << "\n";
  }
  log::flush();
  return 1;
}

std::optional<cxxopts::ParseResult> parse_flags(cxxopts::Options& options,
                                                int argc,
                                                char** argv,
                                                bool allow_extra) {
  options.add_options()("h,help", "print this help");
  auto flags = options.parse(argc, argv);
  if (flags.count("help") != 0) {
    std::cout << options.help() << "\n";
    return std::nullopt;
  }
  if (!allow_extra && !flags.unmatched().empty()) {
    throw UsageError("unexpected argument '" + flags.unmatched().front() + "'");
  }
  return flags;
}

}  // namespace mnv2
