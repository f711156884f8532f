#include "pickle_compat.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace mnv2 {

namespace {

// Pickle opcodes that this rewriter acts on (see Python's pickletools).
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

// How an opcode changes the unpickler's stack: items popped (kToMark: down to
// and including the topmost MARK) and pushed.
constexpr int kToMark = -1;
struct StackEffect {
  int pops;
  int pushes;
};

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

uint64_t little_endian(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = bytes.size(); i-- > 0;) {
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return value;
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
    case 'g':
      return std::stoull(std::string(arg.substr(0, arg.size() - 1)));
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

}  // namespace

namespace {

// Calls `visit(op, argument)` for each opcode from `start` to STOP; returns
// the offset past STOP, or nullopt for a malformed or unsupported pickle.
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
    if (op == '.') {
      return pos;
    }
  }
  return std::nullopt;
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

}  // namespace

std::optional<size_t> pickle_end(std::string_view bytes, size_t start) {
  return walk(bytes, start, [](unsigned char, std::string_view) {});
}

std::vector<std::string> pickle_strings(std::string_view pickle) {
  std::vector<std::string> out;
  walk(pickle, 0, [&](unsigned char op, std::string_view arg) {
    if (auto text = text_of(op, arg)) {
      out.push_back(*text);
    }
  });
  return out;
}

std::vector<StorageRef> storage_refs(std::string_view pickle) {
  std::vector<StorageRef> out;
  std::set<std::string> seen;
  // Memoised globals and strings: "storage" and the storage classes are
  // written once and fetched from the memo afterwards.
  std::map<uint64_t, std::string> memo_globals;
  std::map<uint64_t, std::string> memo_texts;
  std::string last_global;
  std::optional<std::string> last_text;
  // 0: waiting for "storage"; 1: expecting the storage class; 2: the key.
  int state = 0;
  std::string type;
  walk(pickle, 0, [&](unsigned char op, std::string_view arg) {
    if (is_put(op)) {
      if (auto id = memo_id(op, arg)) {
        if (!last_global.empty()) {
          memo_globals[*id] = last_global;
        } else if (last_text) {
          memo_texts[*id] = *last_text;
        }
      }
      return;
    }
    std::optional<std::string> global;
    std::optional<std::string> text = text_of(op, arg);
    if (op == kGlobal) {
      const auto name = std::string(arg.substr(arg.find('\n') + 1));
      global = name.substr(0, name.size() - 1);
    } else if (is_get(op)) {
      if (const auto id = memo_id(op, arg)) {
        if (const auto g = memo_globals.find(*id); g != memo_globals.end()) {
          global = g->second;
        } else if (const auto t = memo_texts.find(*id); t != memo_texts.end()) {
          text = t->second;
        }
      }
    }
    last_global = op == kGlobal ? *global : std::string();
    last_text = op == kGlobal || is_get(op) ? std::nullopt : text;
    if (state == 1 && global) {
      type = *global;
      state = 2;
    } else if (state == 2 && text) {
      if (seen.insert(*text).second) {
        out.push_back({*text, type});
      }
      state = 0;
    } else {
      state = text && *text == "storage" ? 1 : 0;
    }
  });
  return out;
}

std::string ordered_dicts_as_dicts(std::string_view pickle) {
  const std::string original(pickle);
  if (pickle.find("collections\nOrderedDict\n") == std::string_view::npos) {
    return original;
  }
  std::string out;
  out.reserve(pickle.size());
  std::set<uint64_t> class_memo;  // memo slots that hold the OrderedDict class
  // Where each stack item (and each MARK) begins in `out`, so that the state
  // argument of a BUILD can be cut out again.
  std::vector<size_t> item_start;
  std::vector<size_t> marks;
  // 0: normal; 1: OrderedDict class pushed (dropped), expecting PUT or `)`;
  // 2: `)` seen, expecting REDUCE.
  int pending = 0;
  size_t pos = 0;
  while (pos < pickle.size()) {
    const auto op = static_cast<unsigned char>(pickle[pos]);
    const auto arg = argument_of(op);
    const auto length = argument_length(pickle, pos + 1, arg);
    if (!length || pos + 1 + *length > pickle.size()) {
      return original;
    }
    const auto argument = pickle.substr(pos + 1, *length);
    const auto whole = pickle.substr(pos, 1 + *length);
    pos += 1 + *length;

    if (pending == 1 && is_put(op)) {
      if (auto id = memo_id(op, argument)) {
        class_memo.insert(*id);
      }
      continue;
    }
    if (pending == 1 && op == kEmptyTuple) {
      pending = 2;
      continue;
    }
    if (pending == 2 && op == kReduce) {
      item_start.push_back(out.size());
      out.push_back(kEmptyDict);
      pending = 0;
      continue;
    }
    if (pending != 0) {
      return original;  // an OrderedDict built in a way we do not rewrite
    }
    if (op == kGlobal && argument == "collections\nOrderedDict\n") {
      pending = 1;
      continue;
    }
    if (is_get(op)) {
      auto id = memo_id(op, argument);
      if (id && class_memo.count(*id) != 0) {
        pending = 1;
        continue;
      }
    }
    if (op == kBuild) {
      // Drop the state (the OrderedDict's _metadata) and the BUILD itself.
      if (item_start.empty()) {
        return original;
      }
      out.resize(item_start.back());
      item_start.pop_back();
      continue;
    }
    const size_t start = out.size();
    out.append(whole);
    if (op == kMark) {
      marks.push_back(item_start.size());
      item_start.push_back(start);  // a MARK-built item begins at its MARK
      continue;
    }
    const auto effect = stack_effect(op);
    size_t pushed_start = start;
    if (effect.pops == kToMark) {
      if (marks.empty()) {
        return original;
      }
      pushed_start = item_start[marks.back()];
      item_start.resize(marks.back());
      marks.pop_back();
    } else {
      if (item_start.size() < static_cast<size_t>(effect.pops)) {
        return original;
      }
      if (effect.pops > 0) {
        pushed_start = item_start[item_start.size() - effect.pops];
      }
      item_start.resize(item_start.size() - effect.pops);
    }
    if (effect.pushes == 1) {
      item_start.push_back(pushed_start);
    }
    if (op == kStop) {
      break;
    }
  }
  return out;
}

}  // namespace mnv2
