#pragma once

// Sees no LibTorch header: compiled against the oneDNN 3.x that set-up
// installs, apart from LibTorch's include folder, which bundles oneDNN headers
// of another version.

#include <mobilenetv2/engines/plain_network.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mnv2 {

/// MobileNetV2 for CPU inference in fp32 as a chain of oneDNN primitives:
/// each convolution with its bias, ReLU6 and residual add fused (the add in
/// place into the block's input), activations in three reused buffers,
/// weights reordered once, global average pooling and the classifier last.
/// Compared with oneDNN Graph under TorchScript, it drops LibTorch's
/// per-partition work; computing the classifier here rather than in LibTorch
/// saves a dispatched gemm per call.
/// Uses the calling thread's OpenMP thread count. An int8 batch of at least
/// two images per thread is split among the threads, each running its share
/// alone through its own plan and buffers; one int8 image is split by rows,
/// each thread computing its rows of every layer. Calls are serialised; any
/// thread may call. The engine of mnv2::OneDnnMobileNetV2.
class OneDnnNetwork {
 public:
  /// The activations' memory layout between layers. Both compute the same
  /// (tested); blocked ran faster on AVX-512 and on AVX2, fused or not
  /// (mnv2-bench-onednn, README).
  enum class Layout {
    kBlocked,  ///< oneDNN's nChw16c (AVX-512) or nChw8c (otherwise)
    kNhwc,     ///< channels last
  };

  /// `fuse_depthwise`: each 1x1 expansion computes the depthwise
  /// convolution after it in the same primitive (oneDNN's fused-depthwise
  /// post-op, where a kernel for it exists), which keeps the expanded
  /// tensor in cache.
  explicit OneDnnNetwork(plain::Network network,
                         bool fuse_depthwise = true,
                         Layout layout = Layout::kBlocked);
  ~OneDnnNetwork();
  OneDnnNetwork(const OneDnnNetwork&) = delete;
  OneDnnNetwork& operator=(const OneDnnNetwork&) = delete;

  /// `images`: [batch, channels, height, width] fp32, densely packed as NCHW
  /// or (channels_last) NHWC. Writes [batch, outputs()]. Plans for
  /// the last few input shapes are kept. Throws std::runtime_error (oneDNN's
  /// message) for a shape it cannot run.
  void forward(const float* images,
               const std::array<int64_t, 4>& sizes,
               bool channels_last,
               float* output) const;

  /// Values per image: the logits where the network has a classifier
  /// (classes > 0), else the pooled features.
  int64_t outputs() const;

  /// What runs one step of a plan (for tests and diagnostics).
  struct StepInfo {
    std::string kind;            ///< oneDNN's primitive kind: "convolution"...
    std::string implementation;  ///< its kernel, "brgconv_1x1:avx512_core_amx"
    int64_t input_channels = 0;  ///< channels of the source
    bool unsigned_source = false;  ///< the source is u8
  };

  /// The steps of a call with these sizes, unsplit (one plan on the
  /// calling thread's OpenMP threads), planned where not yet planned.
  std::vector<StepInfo> steps(const std::array<int64_t, 4>& sizes,
                              bool channels_last) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The loaded oneDNN library's version, "major.minor.patch".
std::string onednn_library_version();

/// Whether the int8 kernels oneDNN runs here compute the sum post-op (the
/// residual add) in one fused multiply-add: its AVX2 and AVX-512 kernels do;
/// its SSE4.1 ones, for CPUs without AVX2, multiply and then add
/// (jit_generator's uni_vfmadd231ps).
bool onednn_int8_sum_fused();

}  // namespace mnv2
