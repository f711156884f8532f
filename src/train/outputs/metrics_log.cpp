#include "train/outputs/metrics_log.h"

#include <mobilenetv2/util/atomic_file.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace mnv2 {

namespace {

nlohmann::json to_json(const EpochMetrics& m) {
  nlohmann::json j = {{"epoch", m.epoch},
                      {"train_loss", m.train_loss},
                      {"val_loss", m.val_loss},
                      {"val_top1", m.val_top1},
                      {"val_top5", m.val_top5},
                      {"lr", m.lr},
                      {"epoch_seconds", m.epoch_seconds},
                      {"train_images_per_second", m.train_images_per_second},
                      {"skipped_images", m.skipped_images}};
  j["ema_val_top1"] = m.ema_val_top1 ? nlohmann::json(*m.ema_val_top1)
                                     : nlohmann::json(nullptr);
  j["ema_val_top5"] = m.ema_val_top5 ? nlohmann::json(*m.ema_val_top5)
                                     : nlohmann::json(nullptr);
  return j;
}

EpochMetrics from_json(const nlohmann::json& j) {
  EpochMetrics m;
  m.epoch = j.at("epoch");
  m.train_loss = j.at("train_loss");
  m.val_loss = j.at("val_loss");
  m.val_top1 = j.at("val_top1");
  m.val_top5 = j.at("val_top5");
  m.lr = j.at("lr");
  m.epoch_seconds = j.at("epoch_seconds");
  m.train_images_per_second = j.at("train_images_per_second");
  m.skipped_images = j.at("skipped_images");
  if (!j.at("ema_val_top1").is_null()) {
    m.ema_val_top1 = j.at("ema_val_top1").get<double>();
    m.ema_val_top5 = j.at("ema_val_top5").get<double>();
  }
  return m;
}

const char* kCsvHeader =
    "epoch,train_loss,val_loss,val_top1,val_top5,ema_val_top1,ema_val_top5,"
    "lr,epoch_seconds,train_images_per_second,skipped_images\n";

std::string csv_row(const EpochMetrics& m) {
  std::ostringstream row;
  row.precision(8);
  row << m.epoch << ',' << m.train_loss << ',' << m.val_loss << ','
      << m.val_top1 << ',' << m.val_top5 << ',';
  if (m.ema_val_top1) {
    row << *m.ema_val_top1 << ',' << *m.ema_val_top5;
  } else {
    row << ',';
  }
  row << ',' << m.lr << ',' << m.epoch_seconds << ','
      << m.train_images_per_second << ',' << m.skipped_images << '\n';
  return row.str();
}

}  // namespace

MetricsLog::MetricsLog(std::string jsonl_path,
                       std::string csv_path,
                       int64_t first_epoch)
    : jsonl_path_(std::move(jsonl_path)), csv_path_(std::move(csv_path)) {
  std::ifstream in(jsonl_path_);
  std::string line;
  while (std::getline(in, line)) {
    try {
      auto m = from_json(nlohmann::json::parse(line));
      if (m.epoch < first_epoch) {
        history_.push_back(m);
      }
    } catch (const nlohmann::json::exception&) {
      // A line cut short by a kill: dropped with the rest of that epoch.
    }
  }
}

void MetricsLog::start() {
  started_ = true;
  std::string jsonl;
  std::string csv = kCsvHeader;
  for (const auto& m : history_) {
    jsonl += to_json(m).dump() + "\n";
    csv += csv_row(m);
  }
  write_file_atomically(jsonl_path_, jsonl);
  write_file_atomically(csv_path_, csv);
}

void MetricsLog::write(const EpochMetrics& metrics) {
  if (!started_) {
    start();
  }
  history_.push_back(metrics);
  std::ofstream(jsonl_path_, std::ios::app) << to_json(metrics).dump() << "\n";
  std::ofstream(csv_path_, std::ios::app) << csv_row(metrics);
}

}  // namespace mnv2
