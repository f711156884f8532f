// The documentation against the code: every flag of the three programs'
// flag tables is described in docs/, and every relative link in README.md
// and docs/ leads to a file that exists.
#include "eval/eval_commands.h"
#include "export/export_command.h"
#include "train/config/train_config.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace fs = std::filesystem;

namespace {

const fs::path kSource = MNV2_SOURCE_DIR;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<fs::path> doc_files() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kSource / "docs")) {
    if (entry.path().extension() == ".md") {
      files.push_back(entry.path());
    }
  }
  return files;
}

// "--name" as a whole flag: not followed by more of a flag's characters.
bool mentions(const std::string& text, const std::string& flag) {
  for (auto at = text.find(flag); at != std::string::npos;
       at = text.find(flag, at + 1)) {
    const auto next = at + flag.size();
    if (next == text.size() ||
        !(std::isalnum(static_cast<unsigned char>(text[next])) ||
          text[next] == '-')) {
      return true;
    }
  }
  return false;
}

template <class Table>
std::vector<std::string> undocumented(const Table& table,
                                      const std::string& docs) {
  std::vector<std::string> missing;
  for (const auto& flag : table) {
    if (!mentions(docs, "--" + flag.name)) {
      missing.push_back("--" + flag.name);
    }
  }
  return missing;
}

}  // namespace

TEST_CASE("every flag of mnv2-train, mnv2-eval and mnv2-export is in docs/",
          "[docs]") {
  std::string docs;
  for (const auto& file : doc_files()) {
    docs += read_text(file);
  }
  REQUIRE(docs.size() > 10000);
  CHECK(undocumented(mnv2::train_flags(), docs) == std::vector<std::string>{});
  CHECK(undocumented(mnv2::eval_flags(), docs) == std::vector<std::string>{});
  CHECK(undocumented(mnv2::export_flags(), docs) == std::vector<std::string>{});
  // The check can fail: a flag that is nowhere.
  struct Fake {
    std::string name;
  };
  CHECK(undocumented(std::vector<Fake>{{"no-such-flag"}, {"data"}}, docs) ==
        std::vector<std::string>{"--no-such-flag"});
  CHECK_FALSE(mentions("--data-dir", "--data"));
}

TEST_CASE("README and docs link to files that exist; README stays short",
          "[docs]") {
  auto files = doc_files();
  files.push_back(kSource / "README.md");
  const std::regex link(R"(\]\(([^)#:]+)(#[^)]*)?\))");
  int links = 0;
  for (const auto& file : files) {
    const auto text = read_text(file);
    for (std::sregex_iterator it(text.begin(), text.end(), link), end;
         it != end;
         ++it) {
      const auto target = file.parent_path() / (*it)[1].str();
      INFO(file.filename().string() << " links to " << (*it)[1].str());
      CHECK(fs::exists(target));
      ++links;
    }
  }
  CHECK(links >= 10);
  CHECK(fs::file_size(kSource / "README.md") <= 10 * 1024);
}
