// mnv2-bench-openvino: our int8 engine and OpenVINO on our QDQ ONNX of the
// same int8 file, in one process, in interleaved pairs. A shared VM's speed
// swings between runs seconds apart (OpenVINO alone ran 436-843 img/s within
// minutes), so ratios of separate runs mostly measure the swings; here each
// pair's two blocks run back to back, their order alternating, and the
// ratio is taken per pair. Fair: the same threads, both on the caller's
// images as they lie (ours NHWC, OpenVINO NCHW as it declares), OpenVINO
// with its latency hint and f32 for its float parts (as our fp32
// classifier), our start-up allocator settings for both. A pause between
// blocks lets each side's idle threads stop spinning. Prints one JSON
// object.
//   mnv2-bench-openvino --int8 FILE --onnx QDQ_FILE [--threads 2]
//                       [--batch 32] [--pairs 20] [--block 5]
#include "bench_flags.h"
#include "common/runtime.h"

#include <mobilenetv2/engines/onednn/onednn_mobilenet_v2.h>
#include <mobilenetv2/quantization/quantized_network.h>
#include <mobilenetv2/torch_files/state_dict.h>

#include <torch/torch.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>
#include <openvino/openvino.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <thread>

namespace {

// The median time of `block` calls.
double median_seconds(const std::function<void()>& call, int block) {
  std::vector<double> times;
  for (int i = 0; i < block; ++i) {
    const auto start = std::chrono::steady_clock::now();
    call();
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

nlohmann::json side_by_side(const mnv2::OneDnnMobileNetV2& ours,
                            ov::Core& core,
                            const std::string& onnx,
                            int64_t batch,
                            int threads,
                            int pairs,
                            int block) {
  auto model = core.read_model(onnx);
  model->reshape(ov::PartialShape{batch, 3, 224, 224});
  auto compiled = core.compile_model(
      model,
      "CPU",
      ov::inference_num_threads(threads),
      ov::hint::inference_precision(ov::element::f32),
      ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY));
  auto request = compiled.create_infer_request();
  const auto images = torch::randn({batch, 3, 224, 224});
  const auto nhwc = images.contiguous(torch::MemoryFormat::ChannelsLast);
  request.set_input_tensor(ov::Tensor(ov::element::f32,
                                      {static_cast<size_t>(batch), 3, 224, 224},
                                      images.data_ptr<float>()));
  const std::function<void()> run_ours = [&] { ours.forward(nhwc); };
  const std::function<void()> run_openvino = [&] { request.infer(); };
  for (int i = 0; i < 3; ++i) {
    run_ours();
    run_openvino();
  }
  const auto pause = [] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  };
  std::vector<double> ours_s, openvino_s, ratios;
  for (int p = 0; p < pairs; ++p) {
    double mine = 0, theirs = 0;
    if (p % 2 == 0) {
      mine = median_seconds(run_ours, block);
      pause();
      theirs = median_seconds(run_openvino, block);
    } else {
      theirs = median_seconds(run_openvino, block);
      pause();
      mine = median_seconds(run_ours, block);
    }
    pause();
    ours_s.push_back(mine);
    openvino_s.push_back(theirs);
    ratios.push_back(theirs / mine);
  }
  std::sort(ratios.begin(), ratios.end());
  return {{"batch", batch},
          {"ours_median_ms", 1000 * median(ours_s)},
          {"openvino_median_ms", 1000 * median(openvino_s)},
          {"speed_ratio_median", median(ratios)},
          {"speed_ratio_min", ratios.front()},
          {"speed_ratio_max", ratios.back()}};
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options(
      "mnv2-bench-openvino",
      "our int8 engine and OpenVINO on our QDQ ONNX, in interleaved pairs");
  options.add_options()("int8", "our int8 file", cxxopts::value<std::string>())(
      "onnx", "its QDQ ONNX export", cxxopts::value<std::string>())(
      "threads", "threads", cxxopts::value<int>()->default_value("2"))(
      "batch",
      "the larger batch",
      cxxopts::value<int64_t>()->default_value("32"))(
      "pairs",
      "pairs per batch size",
      cxxopts::value<int>()->default_value("20"))(
      "block",
      "calls per side and pair",
      cxxopts::value<int>()->default_value("5"));
  const auto f =
      mnv2::bench::parse_flags_or_exit(options, argc, argv, {"int8", "onnx"});
  try {
    const int threads = f["threads"].as<int>();
    mnv2::configure_runtime(threads);
    const auto path = f["int8"].as<std::string>();
    const mnv2::OneDnnMobileNetV2 ours(
        mnv2::quantized_from_state_dict(mnv2::read_state_dict(path), path));
    ov::Core core;
    torch::NoGradGuard no_grad;
    nlohmann::json out = {{"threads", threads},
                          {"openvino", ov::get_openvino_version().buildNumber},
                          {"block", f["block"].as<int>()},
                          {"pairs", f["pairs"].as<int>()}};
    for (const int64_t batch : {f["batch"].as<int64_t>(), int64_t{1}}) {
      out["batches"].push_back(side_by_side(ours,
                                            core,
                                            f["onnx"].as<std::string>(),
                                            batch,
                                            threads,
                                            f["pairs"].as<int>(),
                                            f["block"].as<int>()));
    }
    std::cout << out.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "mnv2-bench-openvino: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
