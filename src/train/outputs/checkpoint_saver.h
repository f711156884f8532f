#pragma once

#include <mobilenetv2/weights/checkpoint.h>

#include <nlohmann/json.hpp>

#include <string>

namespace mnv2 {

/// Every file of a training run's output folder, named in this one place.
struct RunFolder {
  explicit RunFolder(std::string folder);

  std::string folder;
  std::string checkpoint;     ///< checkpoint.pth: everything to resume
  std::string best_weights;   ///< model_best.pth (+ model_best.json)
  std::string log;            ///< train.log
  std::string metrics_jsonl;  ///< metrics.jsonl
  std::string metrics_csv;    ///< metrics.csv
  std::string curves;         ///< curves.png

  /// Creates the folder and proves it writable, before any training, and
  /// removes the temporary files a killed run left beside the run's files;
  /// returns how many. Throws ConfigError naming the folder (it is --output).
  int prepare() const;

  /// Removes what a previous run left that a new one (not resumed) has not
  /// replaced by its first checkpoint: its TensorBoard event files (all but
  /// `own_events`), curves.png and, unless `keep_best`, its best weights.
  void remove_previous_run(const std::string& own_events, bool keep_best) const;
};

/// The checkpoint policy of a run (as timm's CheckpointSaver): writes the
/// resumable checkpoint and, when a validation top-1 beats the best so far,
/// the best weights with their metadata; every write atomic, so a kill at any
/// moment leaves the previous files intact.
class CheckpointSaver {
 public:
  /// `best_top1`: the best so far (from a resumed checkpoint; -1 for none).
  /// `writes` false: tracks the best but writes nothing (ranks other than 0
  /// of a distributed run).
  CheckpointSaver(RunFolder folder, double best_top1, bool writes = true);

  void save_checkpoint(const Checkpoint& checkpoint) const;

  /// Writes the weights of `model` as model_best.pth (a torchvision
  /// state_dict) and model_best.json (`info` plus `extra` fields) when `top1`
  /// is strictly better than the best so far; returns whether it did.
  bool save_if_best(double top1,
                    const torch::nn::Module& model,
                    const ModelInfo& info,
                    const nlohmann::json& extra);

  double best_top1() const {
    return best_top1_;
  }
  /// Whether this saver has written best weights.
  bool wrote_best() const {
    return wrote_best_;
  }
  const RunFolder& folder() const {
    return folder_;
  }

 private:
  RunFolder folder_;
  double best_top1_;
  bool writes_;
  bool wrote_best_ = false;
};

}  // namespace mnv2
