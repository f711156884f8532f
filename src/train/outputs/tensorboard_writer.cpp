#include "train/outputs/tensorboard_writer.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace mnv2 {

namespace {

// CRC-32C (Castagnoli), as TFRecord uses, with its masking.
uint32_t crc32c(const std::string& data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) {
        c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
      }
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : data) {
    crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8);
  }
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc(const std::string& data) {
  const uint32_t crc = crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

std::string little_endian(uint64_t value, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  }
  return out;
}

// Protocol buffer wire format: varints and tagged fields.
std::string varint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}
std::string key(int field, int wire_type) {
  return varint(static_cast<uint64_t>(field << 3 | wire_type));
}
std::string bytes_field(int field, const std::string& bytes) {
  return key(field, 2) + varint(bytes.size()) + bytes;
}
std::string double_field(int field, double value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return key(field, 1) + little_endian(bits, 8);
}
std::string float_field(int field, float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return key(field, 5) + little_endian(bits, 4);
}
std::string int64_field(int field, int64_t value) {
  return key(field, 0) + varint(static_cast<uint64_t>(value));
}

double wall_time() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& folder) {
  std::array<char, 256> host{};
  ::gethostname(host.data(), host.size() - 1);
  path_ = (std::filesystem::path(folder) /
           ("events.out.tfevents." +
            std::to_string(static_cast<int64_t>(wall_time())) + "." +
            host.data() + "." + std::to_string(::getpid()) + ".mnv2"))
              .string();
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) {
    throw std::runtime_error("cannot write TensorBoard events to '" + path_ +
                             "'");
  }
  // Event{wall_time = 1, file_version = 3}
  write_record(double_field(1, wall_time()) + bytes_field(3, "brain.Event:2"));
}

void TensorBoardWriter::add_scalar(const std::string& tag,
                                   double value,
                                   int64_t step) {
  // Summary.Value{tag = 1, simple_value = 2}; Summary{value = 1};
  // Event{wall_time = 1, step = 2, summary = 5}
  const std::string summary_value =
      bytes_field(1, tag) + float_field(2, static_cast<float>(value));
  const std::string summary = bytes_field(1, summary_value);
  write_record(double_field(1, wall_time()) + int64_field(2, step) +
               bytes_field(5, summary));
}

void TensorBoardWriter::write_record(const std::string& event) {
  const std::string length = little_endian(event.size(), 8);
  out_ << length << little_endian(masked_crc(length), 4) << event
       << little_endian(masked_crc(event), 4);
}

void TensorBoardWriter::flush() {
  out_.flush();
}

}  // namespace mnv2
