#include <mobilenetv2/torch_files/torch_file.h>
#include <mobilenetv2/util/atomic_file.h>
#include "legacy_torch_save.h"
#include "pickle_compat.h"
#include "zip_integrity.h"

#include <c10/core/CPUAllocator.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/istream_adapter.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/csrc/jit/serialization/unpickler.h>
#include <torch/serialize.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

namespace mnv2 {

namespace {

// The first line of a LibTorch error, without its C++ stack trace.
std::string first_line(const std::string& message) {
  return message.substr(0, message.find('\n'));
}

WeightsError file_error(const std::string& path, const std::string& what) {
  return WeightsError("weights file '" + path + "': " + what);
}

std::string read_all(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw file_error(path, "does not exist");
  }
  if (std::filesystem::is_directory(path, ec)) {
    throw file_error(path, "is a directory, not a file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw file_error(path, "cannot be opened for reading");
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// Why a file that is not a zip cannot be read: the exports users most often
// pass back by mistake are named, with what runs them.
std::string foreign_format_hint(const std::string& bytes,
                                const std::string& path) {
  const auto ext = std::filesystem::path(path).extension().string();
  if (ext == ".onnx") {
    return "is an ONNX model, not weights: run it with "
           "onnxruntime or OpenVINO, or pass the weights it was exported from";
  }
  if (bytes.size() >= 8 && bytes.compare(4, 4, "TFL3") == 0) {
    return "is a TensorFlow Lite model: run it with LiteRT, or pass the "
           "weights it was exported from";
  }
  return "is not a torch.save file (not a zip archive)";
}

bool is_zip(const std::string& bytes) {
  return bytes.size() >= 4 && bytes.compare(0, 4, "PK\x03\x04") == 0;
}

// Unpickles `pickle` (OrderedDicts read as dicts) with storages from
// `read_record`, onto the CPU.
c10::IValue unpickle(std::string_view pickle_bytes,
                     std::function<at::DataPtr(const std::string&)> read_record,
                     std::optional<uint64_t> version) {
  if (const auto problem = pickle_size_problem(pickle_bytes);
      !problem.empty()) {
    throw std::runtime_error(problem);
  }
  const std::string pickle = ordered_dicts_as_dicts(pickle_bytes);
  size_t offset = 0;
  auto read_pickle = [&](char* buffer, size_t n) -> size_t {
    const size_t count = std::min(n, pickle.size() - offset);
    std::memcpy(buffer, pickle.data() + offset, count);
    offset += count;
    return count;
  };
  torch::jit::Unpickler unpickler(read_pickle,
                                  /*type_resolver=*/nullptr,
                                  /*obj_loader=*/nullptr,
                                  std::move(read_record),
                                  c10::Device(c10::kCPU));
  if (version) {
    unpickler.set_version(*version);
  }
  return unpickler.parse_ivalue();
}

c10::IValue read_zip_archive(const std::string& bytes) {
  std::istringstream stream(bytes);
  caffe2::serialize::PyTorchStreamReader reader(&stream);
  TORCH_CHECK(reader.hasRecord("data.pkl"), "the archive has no data.pkl");
  auto [data, size] = reader.getRecord("data.pkl");
  return unpickle(
      std::string_view(static_cast<const char*>(data.get()), size),
      [&](const std::string& name) {
        return std::get<0>(reader.getRecord("data/" + name));
      },
      reader.version());
}

c10::IValue read_legacy_archive(const std::string& bytes,
                                const std::string& path) {
  std::string problem;
  const auto archive = parse_legacy_torch_save(bytes, problem);
  if (!archive) {
    throw file_error(path, "is corrupt or truncated (" + problem + ")");
  }
  return unpickle(
      archive->object_pickle,
      [&](const std::string& key) {
        const auto it = archive->storages.find(key);
        TORCH_CHECK(it != archive->storages.end(), "no storage '", key, "'");
        auto data = c10::GetCPUAllocator()->allocate(it->second.second);
        std::memcpy(
            data.get(), bytes.data() + it->second.first, it->second.second);
        return data;
      },
      std::nullopt);
}

}  // namespace

c10::IValue read_torch_file(const std::string& path) {
  const std::string bytes = read_all(path);
  if (bytes.empty()) {
    throw file_error(path, "is empty");
  }
  try {
    if (looks_like_legacy_torch_save(bytes)) {
      return read_legacy_archive(bytes, path);
    }
    if (!is_zip(bytes)) {
      throw file_error(path, foreign_format_hint(bytes, path));
    }
    if (const auto problem = zip_integrity_problem(bytes); !problem.empty()) {
      throw file_error(path, "is corrupt or truncated (" + problem + ")");
    }
    return read_zip_archive(bytes);
  } catch (const WeightsError&) {
    throw;
  } catch (const c10::Error& e) {
    throw file_error(path,
                     "is corrupt or truncated (" + first_line(e.msg()) + ")");
  } catch (const std::exception& e) {
    throw file_error(path,
                     "is corrupt or truncated (" + first_line(e.what()) + ")");
  }
}

void write_torch_file(const c10::IValue& value, const std::string& path) {
  std::string bytes;
  try {
    // Like torch::pickle_save, but without the TorchScript type tags on dicts
    // and lists: Python's torch.load(weights_only=True) rejects those.
    std::vector<char> pickle;
    torch::jit::Pickler pickler(
        [&](const char* data, size_t size) {
          pickle.insert(pickle.end(), data, data + size);
        },
        /*tensor_table=*/nullptr,
        /*type_renamer=*/nullptr,
        /*memoized_class_types=*/nullptr,
        /*get_tensor_id=*/nullptr,
        /*tag_aggregates=*/false);
    pickler.protocol();
    pickler.pushIValue(value);
    pickler.stop();
    caffe2::serialize::PyTorchStreamWriter writer(
        [&](const void* data, size_t size) {
          bytes.append(static_cast<const char*>(data), size);
          return size;
        });
    torch::jit::writeArchiveAndTensors(
        "data", pickle.data(), pickle.size(), pickler.tensorData(), writer);
    writer.writeEndOfFile();
  } catch (const c10::Error& e) {
    throw WeightsError("cannot serialise for '" + path +
                       "': " + first_line(e.msg()));
  }
  try {
    write_file_atomically(path, bytes);
  } catch (const std::runtime_error& e) {
    throw WeightsError(e.what());
  }
}

}  // namespace mnv2
