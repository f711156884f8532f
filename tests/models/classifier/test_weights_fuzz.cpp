// Hostile weights files, as mnv2-eval and mnv2-export load them: a few hundred
// seeded mutants of a small training checkpoint (byte flips, truncations,
// insertions; pickle mutants and model_info mutants repacked with valid zip
// checksums). Each either loads or fails with one line naming the file; none
// crashes, and the process's peak memory stays within twice what a
// legitimate load needed.
#include "test_support.h"

#include <mobilenetv2/classifier/inference_model.h>
#include <mobilenetv2/weights/checkpoint.h>

#include <mobilenetv2/torch_files/state_dict.h>
#include <mobilenetv2/torch_files/torch_file.h>

#include <caffe2/serialize/inline_container.h>
#include <sys/resource.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <random>
#include <sstream>

namespace {

long peak_rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

/// Loads `path` as mnv2-eval does: true when it loads; false when it is
/// refused, which must be one line naming the file.
bool load_or_refuse(const std::string& path, const std::string& label) {
  try {
    mnv2::InferenceModel::load(path, true, torch::kCPU);
    return true;
  } catch (const std::exception& e) {
    const std::string message = e.what();
    INFO(label << ": " << message);
    CHECK(message.find('\n') == std::string::npos);
    CHECK(message.find(path) != std::string::npos);
    return false;
  }
}

/// The archive's records, with `data.pkl` replaced by `pickle`, written
/// again: the zip's checksums are valid, only the content is hostile.
std::string repack(const std::string& archive, const std::string& pickle) {
  std::istringstream stream(archive);
  caffe2::serialize::PyTorchStreamReader reader(&stream);
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer(
      [&](const void* data, size_t size) {
        out.append(static_cast<const char*>(data), size);
        return size;
      });
  for (const auto& name : reader.getAllRecords()) {
    if (name == "version" || name == ".data/version" ||
        name == ".data/serialization_id") {
      continue;  // the writer adds its own
    }
    if (name == "data.pkl") {
      writer.writeRecord(name, pickle.data(), pickle.size());
    } else {
      auto [data, size] = reader.getRecord(name);
      writer.writeRecord(name, data.get(), size);
    }
  }
  writer.writeEndOfFile();
  return out;
}

std::string data_pkl(const std::string& archive) {
  std::istringstream stream(archive);
  caffe2::serialize::PyTorchStreamReader reader(&stream);
  auto [data, size] = reader.getRecord("data.pkl");
  return {static_cast<const char*>(data.get()), size};
}

/// A small checkpoint as mnv2-train writes it, with EMA and optimiser state.
void write_small_checkpoint(const std::string& path) {
  torch::manual_seed(9);
  mnv2::ModelInfo info;
  info.options = mnv2::MobileNetV2Options().num_classes(3).width_mult(0.35);
  info.class_names = {"a", "b", "c"};
  info.img_size = info.val_crop = 32;
  info.val_resize = 36;
  mnv2::MobileNetV2 model(info.options);
  mnv2::Checkpoint cp;
  cp.model = mnv2::state_dict_of(*model);
  cp.model_ema = cp.model;
  cp.optimizer.insert("momentum.classifier.1.weight", torch::zeros({3, 1280}));
  cp.scaler_scale = torch::full({1}, 65536.0);
  cp.scaler_growth_tracker = torch::zeros({1}, torch::kInt);
  cp.rng_state = torch::zeros({16}, torch::kUInt8);
  cp.info = info;
  cp.config_json = "{}";
  mnv2::write_checkpoint(cp, path);
}

}  // namespace

TEST_CASE("hostile weights files fail cleanly within bounded memory",
          "[fuzz]") {
  const auto dir = mnv2::test::fresh_temp_dir("weights-fuzz");
  const auto original_path = dir / "checkpoint.pth";
  write_small_checkpoint(original_path.string());
  REQUIRE_NOTHROW(
      mnv2::InferenceModel::load(original_path.string(), true, torch::kCPU));
  const long legitimate_kb = peak_rss_kb();
  const auto original = read_bytes(original_path);
  const auto pickle = data_pkl(original);

  std::mt19937_64 rng(20261125);
  const auto pick = [&](size_t n) {
    return static_cast<size_t>(rng() % std::max<size_t>(n, 1));
  };
  // Values a mutated field or memo index may take.
  const std::vector<int64_t> hostile = {
      0x450003b2, 1000000, int64_t{1} << 40, -1, 0, 100000, 4097};
  int loaded = 0;
  int refused = 0;
  std::map<std::string, int> kinds;
  constexpr int kMutants = 320;
  for (int i = 0; i < kMutants; ++i) {
    std::string bytes = original;
    std::string kind;
    switch (i % 8) {
      case 0:
      case 1:  // flipped bytes (the zip's CRCs catch most)
        kind = "flip";
        for (int k = 0; k <= i % 3; ++k) {
          bytes[pick(bytes.size())] ^= static_cast<char>(1 + pick(255));
        }
        break;
      case 2:  // truncated
        kind = "truncate";
        bytes.resize(pick(bytes.size()));
        break;
      case 3:  // bytes inserted
        kind = "insert";
        bytes.insert(pick(bytes.size()), std::string(1 + pick(64), '\x5a'));
        break;
      case 4:
      case 5: {  // pickle byte changed, valid checksums
        kind = "pickle";
        auto mutated = pickle;
        mutated[pick(mutated.size())] = static_cast<char>(pick(256));
        bytes = repack(original, mutated);
        break;
      }
      case 6: {  // a memo index (BINPUT/LONG_BINPUT argument) made huge
        kind = "memo";
        auto mutated = pickle;
        std::vector<size_t> puts;
        for (size_t p = 0; p + 5 < mutated.size(); ++p) {
          if (mutated[p] == 'r') {  // LONG_BINPUT + 4-byte index
            puts.push_back(p);
          }
        }
        if (!puts.empty()) {
          const auto at = puts[pick(puts.size())];
          const auto value = static_cast<uint32_t>(hostile[pick(3)]);
          std::memcpy(&mutated[at + 1], &value, 4);
        } else {
          mutated[pick(mutated.size())] = 'r';
        }
        bytes = repack(original, mutated);
        break;
      }
      default: {  // model_info field set to a hostile value
        kind = "model_info";
        auto dict = mnv2::read_torch_file(original_path.string())
                        .toGenericDict()
                        .copy();
        auto info = dict.at("model_info").toGenericDict().copy();
        const std::vector<std::string> fields = {
            "num_classes", "img_size", "val_resize", "val_crop", "width_mult"};
        const auto& field = fields[pick(fields.size())];
        const auto value = hostile[pick(hostile.size())];
        if (field == "width_mult") {
          info.insert_or_assign(field, static_cast<double>(value));
        } else {
          info.insert_or_assign(field, value);
        }
        dict.insert_or_assign("model_info", info);
        const auto path = (dir / "info.pth").string();
        mnv2::write_torch_file(dict, path);
        bytes = read_bytes(path);
        break;
      }
    }
    ++kinds[kind];
    const auto path = (dir / ("mutant_" + std::to_string(i) + ".pth")).string();
    write_bytes(path, bytes);
    (load_or_refuse(path, kind + " mutant " + std::to_string(i)) ? loaded
                                                                 : refused)++;
    std::filesystem::remove(path);
    if (peak_rss_kb() > 2 * legitimate_kb) {
      WARN("over the bound after " << kind << " mutant " << i);
      write_bytes(dir / ("big_" + std::to_string(i) + ".pth"), bytes);
      break;
    }
  }
  const long peak_kb = peak_rss_kb();
  WARN("fuzz: " << kMutants << " mutants (" << kinds["flip"] << " flips, "
                << kinds["truncate"] << " truncations, " << kinds["insert"]
                << " insertions, " << kinds["pickle"] << " pickle, "
                << kinds["memo"] << " memo-index, " << kinds["model_info"]
                << " model_info): " << refused << " refused, " << loaded
                << " loaded, 0 crashes; peak RSS " << peak_kb / 1024
                << " MiB (a legitimate load: " << legitimate_kb / 1024
                << " MiB)");
  CHECK(refused + loaded == kMutants);
  CHECK(refused > kMutants / 2);
  CHECK(peak_kb <= 2 * legitimate_kb);
}

TEST_CASE("hostile Keras HDF5 files fail cleanly within bounded memory",
          "[fuzz]") {
  // Mutants of Keras' real ImageNet file (scripts/get-pretrained.sh): libhdf5
  // reads the structure, our reader the names, shapes and values.
  const auto source =
      mnv2::test::folder_from_env("MNV2_PRETRAINED_DIR") /
      "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5";
  const auto dir = mnv2::test::fresh_temp_dir("keras-fuzz");
  REQUIRE_NOTHROW(
      mnv2::InferenceModel::load(source.string(), true, torch::kCPU));
  const long legitimate_kb = peak_rss_kb();
  const auto original = read_bytes(source);
  // The superblock, object headers, attributes and B-trees come first.
  constexpr size_t kMetadataBytes = 200000;
  std::mt19937_64 rng(20261126);
  const auto pick = [&](size_t n) {
    return static_cast<size_t>(rng() % std::max<size_t>(n, 1));
  };
  int loaded = 0;
  int refused = 0;
  constexpr int kMutants = 120;
  for (int i = 0; i < kMutants; ++i) {
    std::string bytes = original;
    switch (i % 3) {
      case 0:  // structure bytes changed
        for (int k = 0; k <= i % 4; ++k) {
          bytes[pick(kMetadataBytes)] = static_cast<char>(pick(256));
        }
        break;
      case 1:  // any bytes changed
        for (int k = 0; k <= i % 4; ++k) {
          bytes[pick(bytes.size())] = static_cast<char>(pick(256));
        }
        break;
      default:  // truncated
        bytes.resize(pick(bytes.size()));
        break;
    }
    const auto path = (dir / ("mutant_" + std::to_string(i) + ".h5")).string();
    write_bytes(path, bytes);
    (load_or_refuse(path, "mutant " + std::to_string(i)) ? loaded : refused)++;
    std::filesystem::remove(path);
  }
  std::cout << "Keras fuzz: " << kMutants << " mutants, " << refused
            << " refused, " << loaded << " loaded; peak "
            << peak_rss_kb() / 1024 << " MiB vs " << legitimate_kb / 1024
            << " MiB for the legitimate load\n";
  CHECK(loaded + refused == kMutants);
  CHECK(refused > 0);
  CHECK(peak_rss_kb() < 2 * legitimate_kb);
}
