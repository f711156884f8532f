#pragma once

#include <functional>
#include <string>

namespace mnv2 {

/// Runs a program's body and turns every error into one line on stderr and
/// an exit status: 2 for usage errors (bad flags or values), 1 otherwise.
int run_program(const char* program, const std::function<int()>& body);

}  // namespace mnv2
