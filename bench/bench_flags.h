#pragma once

// Flag parsing shared by bench/'s programs, with the programs' conventions
// (apps/): --help prints the flags and exits 0; a flag that does not parse
// is a usage error, one line on stderr and exit status 2.

#include <cxxopts.hpp>

#include <cstdlib>
#include <initializer_list>
#include <iostream>
#include <string>

namespace mnv2::bench {

inline constexpr int kUsageError = 2;

// The parsed flags; exits for --help, a bad flag or a missing required one.
inline cxxopts::ParseResult parse_flags_or_exit(
    cxxopts::Options& options,
    int argc,
    char** argv,
    std::initializer_list<const char*> required = {}) {
  options.add_options()("h,help", "print the flags and exit");
  const auto usage_error = [&](const std::string& message) {
    std::cerr << options.program() << ": " << message << " (see --help)\n";
    std::exit(kUsageError);
  };
  try {
    auto flags = options.parse(argc, argv);
    if (flags.count("help")) {
      std::cout << options.help() << "\n";
      std::exit(0);
    }
    for (const char* flag : required) {
      if (!flags.count(flag)) {
        usage_error(std::string("--") + flag + " is required");
      }
    }
    return flags;
  } catch (const cxxopts::exceptions::exception& e) {
    usage_error(e.what());
  }
  std::abort();  // not reached: usage_error exits
}

}  // namespace mnv2::bench
