#include "pickle_compat.h"

#include "pickle_opcodes.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace mnv2 {

using namespace pickle;  // opcode helpers of this file

std::optional<size_t> pickle_end(std::string_view bytes, size_t start) {
  return walk(bytes, start, [](unsigned char, std::string_view) {});
}

std::string pickle_size_problem(std::string_view pickle) {
  uint64_t operations = 0;
  size_t pos = 0;
  while (pos < pickle.size()) {
    const auto op = static_cast<unsigned char>(pickle[pos]);
    const auto arg = argument_of(op);
    if (arg.kind == ArgKind::kUnsupported) {
      return "";  // LibTorch's unpickler decides
    }
    const auto length = argument_length(pickle, pos + 1, arg);
    if (!length) {
      return "";  // an unterminated line or length: LibTorch reports it
    }
    if (*length > pickle.size() - pos - 1) {
      // A string or bytes length beyond the file: LibTorch would allocate it.
      return "pickle operation at byte " + std::to_string(pos) + " declares " +
             std::to_string(*length) + " bytes but " +
             std::to_string(pickle.size() - pos - 1) + " remain";
    }
    if (is_put(op) || is_get(op)) {
      const auto id = memo_id(op, pickle.substr(pos + 1, *length));
      if (id && *id > operations) {
        return "pickle memo index " + std::to_string(*id) + " is beyond its " +
               std::to_string(operations) + " operations";
      }
    }
    ++operations;
    pos += 1 + *length;
    if (op == kStop) {
      break;
    }
  }
  return "";
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
