// mnv2-eval --benchmark: latency at batch 1 and throughput at batch N.
#include <mobilenetv2/util/autocast_guard.h>
#include "common/runtime.h"
#include "eval/eval_commands.h"
#include "eval/eval_setup.h"

#include <mobilenetv2/util/atomic_file.h>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>

namespace mnv2 {

namespace {

constexpr int kWarmup = 5;

struct Case {
  std::string dtype;
  bool channels_last;
  bool emulated = false;         ///< a 16-bit type this CPU lacks natively
  std::string engine = "eager";  ///< or onednn, graph
  std::string library{};         ///< the engine's, where not LibTorch
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double images_per_second = 0;
};

double percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const auto index = static_cast<size_t>(std::min<double>(
      values.size() - 1, q * static_cast<double>(values.size())));
  return values[index];
}

double seconds_of(const Prepared& p,
                  const torch::Tensor& x,
                  const std::optional<c10::ScalarType>& amp) {
  const auto start = std::chrono::steady_clock::now();
  {
    torch::NoGradGuard no_grad;
    AutocastGuard autocast(
        p.device.type(), amp.value_or(torch::kFloat), amp.has_value());
    auto y = p.model.forward(x);
    if (p.device.is_cuda()) {
      y.cpu();  // waits for the device
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

// Whether the device computes in this dtype natively (a CPU without the
// 16-bit instructions emulates them, 10-25x slower).
bool native(const torch::Device& device,
            const std::optional<c10::ScalarType>& amp) {
  if (!amp || !device.is_cpu()) {
    return true;
  }
  return *amp == torch::kBFloat16 ? cpu_has_native_bf16()
                                  : cpu_has_native_fp16();
}

Case measure(Prepared& p,
             const EvalCommand& c,
             const std::string& dtype,
             bool channels_last) {
  Case out{dtype, channels_last};
  // An int8 file computes in int8 whatever the autocast.
  const auto amp =
      dtype == "int8" ? std::nullopt : amp_dtype_of(dtype, p.device);
  if (p.device.is_cpu()) {
    const auto& engine = p.model.engine(amp);
    out.engine = engine.name();
    out.library = engine.library();
  }
  out.emulated = !native(p.device, amp);
  const auto format = channels_last ? torch::MemoryFormat::ChannelsLast
                                    : torch::MemoryFormat::Contiguous;
  const auto one = torch::randn({1, 3, c.img_size, c.img_size})
                       .to(p.device)
                       .contiguous(format);
  const auto batch = torch::randn({c.batch_size, 3, c.img_size, c.img_size})
                         .to(p.device)
                         .contiguous(format);
  for (int i = 0; i < kWarmup; ++i) {
    seconds_of(p, one, amp);
  }
  std::vector<double> latencies;
  for (int64_t i = 0; i < c.iterations; ++i) {
    latencies.push_back(1000 * seconds_of(p, one, amp));
  }
  out.p50_ms = percentile(latencies, 0.50);
  out.p90_ms = percentile(latencies, 0.90);
  out.p99_ms = percentile(latencies, 0.99);
  // As many warm-up passes as at batch 1: the JIT specialises the fused
  // network for a new input shape over its first calls (one warm-up pass
  // left the first case's b32 figure 15% low, measured).
  for (int i = 0; i < kWarmup; ++i) {
    seconds_of(p, batch, amp);
  }
  const int64_t rounds = std::max<int64_t>(3, c.iterations / 5);
  double total = 0;
  for (int64_t i = 0; i < rounds; ++i) {
    total += seconds_of(p, batch, amp);
  }
  out.images_per_second = static_cast<double>(rounds * c.batch_size) / total;
  return out;
}

}  // namespace

Outcome run_benchmark(const EvalCommand& command) {
  // Contiguous weights first; the channels_last cases convert them.
  auto contiguous = command;
  contiguous.channels_last = false;
  auto p = prepare(contiguous);
  // At the size the weights are evaluated at, unless told.
  auto c = command;
  if (c.img_size == 0) {
    c.img_size = p.model.info().val_crop;
  }
  // Unless named, fp32 and the 16-bit types the device runs natively (an
  // emulated bf16 row took minutes on an AVX2 CPU and says nothing useful).
  std::vector<std::string> dtypes = c.dtypes;
  if (!c.amp_dtype.empty()) {
    dtypes = {c.amp_dtype};
  }
  if (p.model.quantized() != nullptr) {
    dtypes = {"int8"};
  } else if (dtypes.empty()) {
    dtypes = {"fp32", "bf16"};
    if (p.device.is_cuda()) {
      dtypes.push_back("fp16");
    } else if (!cpu_has_native_bf16()) {
      dtypes.pop_back();
      std::cout << "skipped bf16: this CPU has no native bf16 instructions "
                   "(emulated, 10-25x slower); --dtypes fp32,bf16 measures "
                   "it\n";
    }
  }
  std::vector<Case> cases;
  for (const auto& dtype : dtypes) {
    for (bool channels_last : {false, true}) {
      if (channels_last) {
        p.model.to_channels_last();
      }
      cases.push_back(measure(p, c, dtype, channels_last));
    }
  }
  std::cout
      << "MobileNetV2 (" << p.model.kind() << ") on " << p.device.str() << ", "
      << at::get_num_threads() << " threads, " << c.img_size << "x"
      << c.img_size << ", " << c.iterations << " iterations\n"
      << std::left << std::setw(7) << "dtype" << std::setw(13) << "engine"
      << std::setw(15) << "memory" << std::right << std::setw(10) << "b1 p50 ms"
      << std::setw(10) << "p90 ms" << std::setw(10) << "p99 ms" << std::setw(16)
      << std::string("b").append(std::to_string(c.batch_size)).append(" img/s")
      << "\n";
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : cases) {
    std::cout << std::left << std::setw(7)
              << (r.dtype + (r.emulated ? "*" : "")) << std::setw(13)
              << r.engine << std::setw(15)
              << (r.channels_last ? "channels_last" : "contiguous")
              << std::right << std::fixed << std::setprecision(2)
              << std::setw(10) << r.p50_ms << std::setw(10) << r.p90_ms
              << std::setw(10) << r.p99_ms << std::setw(16)
              << std::setprecision(1) << r.images_per_second << "\n";
    rows.push_back({{"dtype", r.dtype},
                    {"engine", r.engine},
                    {"emulated", r.emulated},
                    {"channels_last", r.channels_last},
                    {"batch1_p50_ms", r.p50_ms},
                    {"batch1_p90_ms", r.p90_ms},
                    {"batch1_p99_ms", r.p99_ms},
                    {"batch", c.batch_size},
                    {"images_per_second", r.images_per_second}});
  }
  if (std::any_of(cases.begin(), cases.end(), [](const Case& r) {
        return r.emulated;
      })) {
    std::cout << "* emulated: this CPU has no native instructions for it\n";
  }
  // The oneDNN library behind the "onednn" engines, where they ran.
  std::string onednn_library;
  for (const auto& r : cases) {
    if (r.engine.rfind("onednn", 0) == 0) {
      onednn_library = r.library;
    }
  }
  if (!onednn_library.empty()) {
    std::cout << "onednn: " << onednn_library
              << " primitives called directly\n";
  }
  if (!c.json.empty()) {
    const nlohmann::json j = {
        {"weights", c.weights},
        {"kind", p.model.kind()},
        {"device", p.device.str()},
        {"threads", at::get_num_threads()},
        {"img_size", c.img_size},
        {"iterations", c.iterations},
        {"onednn_version",
         onednn_library.empty() ? "" : onednn_library.substr(7)},
        {"cases", rows}};
    write_file_atomically(c.json, j.dump(1) + "\n");
  }
  return Outcome::kDone;
}

}  // namespace mnv2
