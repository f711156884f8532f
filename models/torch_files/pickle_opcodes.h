#pragma once

// Python pickle opcodes (protocols 0-3, as torch.save writes them): argument
// sizes, stack effects and a walker, for the rewriters in pickle_compat.cpp.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mnv2::pickle {

constexpr char kGlobal = 'c';
constexpr char kEmptyTuple = ')';
constexpr char kReduce = 'R';
constexpr char kBuild = 'b';
constexpr char kEmptyDict = '}';
constexpr char kMark = '(';
constexpr unsigned char kStop = '.';

enum class ArgKind {
  kNone,
  kFixed,        // `size` bytes
  kLine,         // up to and including '\n'
  kTwoLines,     // GLOBAL / INST
  kCounted1,     // 1-byte length, then data
  kCounted4,     // 4-byte little-endian length, then data
  kCounted8,     // 8-byte little-endian length, then data
  kUnsupported,  // opcodes whose rewriting we do not attempt
};

struct OpcodeArg {
  ArgKind kind;
  size_t size = 0;
};

OpcodeArg argument_of(unsigned char op);

/// Length of the argument that starts at `pos`, or nullopt past the end.
std::optional<size_t> argument_length(std::string_view p,
                                      size_t pos,
                                      OpcodeArg arg);

// How an opcode changes the unpickler's stack: items popped (kToMark: down to
// and including the topmost MARK) and pushed.
constexpr int kToMark = -1;
struct StackEffect {
  int pops;
  int pushes;
};
StackEffect stack_effect(unsigned char op);

/// The memo slot a PUT or GET names.
std::optional<uint64_t> memo_id(unsigned char op, std::string_view arg);
bool is_put(unsigned char op);
bool is_get(unsigned char op);

/// The text of a string opcode's argument, or nullopt for other opcodes.
std::optional<std::string> text_of(unsigned char op, std::string_view arg);

/// Calls `visit(op, argument)` for each opcode from `start` to STOP; returns
/// the offset past STOP, or nullopt for a malformed or unsupported pickle.
template <typename Visit>
std::optional<size_t> walk(std::string_view p, size_t start, Visit&& visit) {
  size_t pos = start;
  while (pos < p.size()) {
    const auto op = static_cast<unsigned char>(p[pos]);
    const auto length = argument_length(p, pos + 1, argument_of(op));
    if (!length || pos + 1 + *length > p.size()) {
      return std::nullopt;
    }
    visit(op, p.substr(pos + 1, *length));
    pos += 1 + *length;
    if (op == kStop) {
      return pos;
    }
  }
  return std::nullopt;
}

}  // namespace mnv2::pickle
