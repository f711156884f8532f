#include "train/outputs/checkpoint_saver.h"

#include "common/errors.h"

#include <mobilenetv2/util/atomic_file.h>
#include <mobilenetv2/weights/sidecar.h>

#include <filesystem>

namespace fs = std::filesystem;

namespace mnv2 {

RunFolder::RunFolder(std::string path)
    : folder(std::move(path)),
      checkpoint((fs::path(folder) / "checkpoint.pth").string()),
      best_weights((fs::path(folder) / "model_best.pth").string()),
      log((fs::path(folder) / "train.log").string()),
      metrics_jsonl((fs::path(folder) / "metrics.jsonl").string()),
      metrics_csv((fs::path(folder) / "metrics.csv").string()),
      curves((fs::path(folder) / "curves.png").string()) {}

int RunFolder::prepare() const {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) {
    throw ConfigError("--output '" + folder +
                      "' cannot be created: " + ec.message());
  }
  const auto probe = (fs::path(folder) / ".write-test").string();
  try {
    write_file_atomically(probe, "ok");
    fs::remove(probe, ec);
  } catch (const std::runtime_error&) {
    throw ConfigError("--output '" + folder + "' is not writable");
  }
  int removed = 0;
  for (const auto& file : {checkpoint,
                           best_weights,
                           metadata_path_for(best_weights),
                           metrics_jsonl,
                           metrics_csv,
                           curves,
                           probe}) {
    removed += remove_stale_temporaries(file);
  }
  return removed;
}

void RunFolder::remove_previous_run(const std::string& own_events,
                                    bool keep_best) const {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const auto name = entry.path().filename().string();
    if (name.rfind("events.out.tfevents.", 0) == 0 && name.ends_with(".mnv2") &&
        entry.path() != fs::path(own_events)) {
      fs::remove(entry.path(), ec);
    }
  }
  fs::remove(curves, ec);
  if (!keep_best) {
    fs::remove(best_weights, ec);
    fs::remove(metadata_path_for(best_weights), ec);
  }
}

CheckpointSaver::CheckpointSaver(RunFolder folder,
                                 double best_top1,
                                 bool writes)
    : folder_(std::move(folder)), best_top1_(best_top1), writes_(writes) {}

void CheckpointSaver::save_checkpoint(const Checkpoint& checkpoint) const {
  if (writes_) {
    write_checkpoint(checkpoint, folder_.checkpoint);
  }
}

bool CheckpointSaver::save_if_best(double top1,
                                   const torch::nn::Module& model,
                                   const ModelInfo& info,
                                   const nlohmann::json& extra) {
  if (top1 <= best_top1_) {
    return false;
  }
  best_top1_ = top1;
  if (!writes_) {
    return true;
  }
  write_state_dict(state_dict_of(model), folder_.best_weights);
  write_weights_metadata(info, folder_.best_weights, extra.dump());
  wrote_best_ = true;
  return true;
}

}  // namespace mnv2
