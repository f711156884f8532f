#pragma once

// The GPU check's summary: one row per check, with pass/FAIL/skipped and the
// figures behind the verdict; printed as a table and written to the output
// folder (gpu-check.txt, gpu-check.json).

#include <string>
#include <vector>

namespace mnv2::gpu_check {

struct Row {
  std::string name;
  std::string status;   ///< pass | FAIL | skipped
  std::string figures;  ///< what was measured, against what tolerance
};

class Table {
 public:
  /// Records a row and prints it at once (long checks show progress).
  void add(const std::string& name, bool passed, const std::string& figures);
  void skip(const std::string& name, const std::string& why);
  /// A check that threw: FAIL with the exception's first line.
  void error(const std::string& name, const std::string& what);

  bool failed() const;
  std::string text() const;
  std::string json() const;

 private:
  void record(Row row);
  std::vector<Row> rows_;
};

/// `value` with `digits` significant digits ("%.*g").
std::string sig(double value, int digits = 3);

}  // namespace mnv2::gpu_check
