#pragma once

#include <cxxopts.hpp>

#include <functional>
#include <optional>
#include <string>

namespace mnv2 {

/// Runs a program's body and turns every error into one line on stderr and
/// an exit status: 2 for usage errors (bad flags or values), 1 otherwise.
int run_program(const char* program, const std::function<int()>& body);

/// Parses the flags; prints the help and returns nullopt for --help, and
/// throws UsageError for stray arguments unless `allow_extra` (the caller
/// then reads them from `unmatched()`).
std::optional<cxxopts::ParseResult> parse_flags(cxxopts::Options& options,
                                                int argc,
                                                char** argv,
                                                bool allow_extra = false);

}  // namespace mnv2
