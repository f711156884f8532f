#include "pickle_opcodes.h"

#include <charconv>

namespace mnv2::pickle {

namespace {
uint64_t little_endian(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = bytes.size(); i-- > 0;) {
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return value;
}
}  // namespace

OpcodeArg argument_of(unsigned char op) {
  switch (op) {
    case '(':
    case '.':
    case '0':
    case '1':
    case '2':
    case 'N':
    case 'Q':
    case 'R':
    case 'a':
    case 'b':
    case 'd':
    case '}':
    case 'e':
    case 'l':
    case ']':
    case 'o':
    case 's':
    case 't':
    case ')':
    case 'u':
    case 0x85:
    case 0x86:
    case 0x87:
    case 0x88:
    case 0x89:
    case 0x81:
    case 0x8f:
    case 0x90:
    case 0x91:
    case 0x92:
      return {ArgKind::kNone};
    case 0x80:
    case 'K':
    case 'q':
    case 'h':
    case 0x82:
      return {ArgKind::kFixed, 1};
    case 'M':
    case 0x83:
      return {ArgKind::kFixed, 2};
    case 'J':
    case 'r':
    case 'j':
    case 0x84:
      return {ArgKind::kFixed, 4};
    case 'G':
      return {ArgKind::kFixed, 8};
    case 'I':
    case 'L':
    case 'F':
    case 'S':
    case 'V':
    case 'P':
    case 'g':
    case 'p':
      return {ArgKind::kLine};
    case 'c':
    case 'i':
      return {ArgKind::kTwoLines};
    case 'U':
    case 'C':
    case 0x8a:
    case 0x8c:
      return {ArgKind::kCounted1};
    case 'T':
    case 'X':
    case 'B':
    case 0x8b:
      return {ArgKind::kCounted4};
    case 0x8d:
    case 0x8e:
    case 0x96:
      return {ArgKind::kCounted8};
    default:
      // STACK_GLOBAL, MEMOIZE, FRAME (protocol 4+) and unknown opcodes.
      return {ArgKind::kUnsupported};
  }
}

StackEffect stack_effect(unsigned char op) {
  switch (op) {
    case '(':  // MARK is handled by the caller
    case '.':
    case 'q':
    case 'r':
    case 'p':
    case 0x80:
      return {0, 0};
    case '0':
      return {1, 0};
    case '1':
      return {kToMark, 0};
    case 'Q':
    case 0x85:
      return {1, 1};
    case 'R':
    case 0x86:
    case 0x81:
      return {2, 1};
    case 0x87:
    case 0x92:
      return {3, 1};
    case 'b':
    case 'a':
      return {1, 0};
    case 's':
      return {2, 0};
    case 'e':
    case 'u':
    case 0x90:
      return {kToMark, 0};
    case 't':
    case 'l':
    case 'd':
    case 0x91:
    case 'o':
    case 'i':
      return {kToMark, 1};
    default:
      return {0, 1};  // constants, strings, GLOBAL, GET, empty containers
  }
}

// Length of the argument that starts at `pos`, or nullopt past the end.
std::optional<size_t> argument_length(std::string_view p,
                                      size_t pos,
                                      OpcodeArg arg) {
  auto line_end = [&](size_t from) -> std::optional<size_t> {
    const auto nl = p.find('\n', from);
    if (nl == std::string_view::npos) {
      return std::nullopt;
    }
    return nl + 1 - from;
  };
  auto counted = [&](size_t width) -> std::optional<size_t> {
    if (pos + width > p.size()) {
      return std::nullopt;
    }
    return width + little_endian(p.substr(pos, width));
  };
  switch (arg.kind) {
    case ArgKind::kNone:
      return 0;
    case ArgKind::kFixed:
      return arg.size;
    case ArgKind::kLine:
      return line_end(pos);
    case ArgKind::kTwoLines: {
      const auto first = line_end(pos);
      if (!first) {
        return std::nullopt;
      }
      const auto second = line_end(pos + *first);
      if (!second) {
        return std::nullopt;
      }
      return *first + *second;
    }
    case ArgKind::kCounted1:
      return counted(1);
    case ArgKind::kCounted4:
      return counted(4);
    case ArgKind::kCounted8:
      return counted(8);
    case ArgKind::kUnsupported:
      break;
  }
  return std::nullopt;
}

std::optional<uint64_t> memo_id(unsigned char op, std::string_view arg) {
  switch (op) {
    case 'q':
    case 'h':
    case 'r':
    case 'j':
      return little_endian(arg);
    case 'p':
    case 'g': {
      // Text protocol: decimal digits and a newline.
      uint64_t id = 0;
      const auto digits = arg.substr(0, arg.size() - 1);
      const auto [end, error] =
          std::from_chars(digits.data(), digits.data() + digits.size(), id);
      if (error != std::errc() || end != digits.data() + digits.size()) {
        return std::nullopt;
      }
      return id;
    }
    default:
      return std::nullopt;
  }
}

bool is_put(unsigned char op) {
  return op == 'q' || op == 'r' || op == 'p';
}
bool is_get(unsigned char op) {
  return op == 'h' || op == 'j' || op == 'g';
}

// The text of a string opcode's argument, or nullopt for other opcodes.
std::optional<std::string> text_of(unsigned char op, std::string_view arg) {
  switch (op) {
    case 'X':  // BINUNICODE
    case 'T':  // BINSTRING
      return std::string(arg.substr(4));
    case 0x8c:  // SHORT_BINUNICODE
    case 'U':   // SHORT_BINSTRING
      return std::string(arg.substr(1));
    default:
      return std::nullopt;
  }
}

}  // namespace mnv2::pickle
