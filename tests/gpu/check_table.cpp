#include "check_table.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace mnv2::gpu_check {

namespace {

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string padded(const std::string& text, size_t width) {
  return text + std::string(width > text.size() ? width - text.size() : 0, ' ');
}

constexpr size_t kNameWidth = 34;
constexpr size_t kStatusWidth = 8;

std::string row_line(const Row& row) {
  return padded(row.name, kNameWidth) + " " + padded(row.status, kStatusWidth) +
         " " + row.figures;
}

}  // namespace

std::string sig(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*g", digits, value);
  return text;
}

void Table::record(Row row) {
  std::cout << row_line(row) << std::endl;
  rows_.push_back(std::move(row));
}

void Table::add(const std::string& name,
                bool passed,
                const std::string& figures) {
  record({name, passed ? "pass" : "FAIL", figures});
}

void Table::skip(const std::string& name, const std::string& why) {
  record({name, "skipped", why});
}

void Table::error(const std::string& name, const std::string& what) {
  record({name, "FAIL", "error: " + what.substr(0, what.find('\n'))});
}

bool Table::failed() const {
  return std::any_of(rows_.begin(), rows_.end(), [](const Row& row) {
    return row.status == "FAIL";
  });
}

std::string Table::text() const {
  std::ostringstream out;
  out << padded("check", kNameWidth) << " " << padded("status", kStatusWidth)
      << " figures\n";
  for (const auto& row : rows_) {
    out << row_line(row) << "\n";
  }
  return out.str();
}

std::string Table::json() const {
  std::ostringstream out;
  out << "[\n";
  for (size_t i = 0; i < rows_.size(); ++i) {
    const auto& row = rows_[i];
    out << "  {\"check\": " << json_string(row.name)
        << ", \"status\": " << json_string(row.status)
        << ", \"figures\": " << json_string(row.figures) << "}"
        << (i + 1 < rows_.size() ? ",\n" : "\n");
  }
  out << "]\n";
  return out.str();
}

}  // namespace mnv2::gpu_check
