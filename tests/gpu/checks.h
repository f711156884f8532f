#pragma once

// The checks the GPU check runs, each adding its rows to the table. Every
// check compares the device under test with an independent reference: the
// CPU (in fp64 where exactness is asked), PyTorch's own GradScaler rules, or
// the machine's own PyTorch for throughput.

#include "check_table.h"

#include <torch/types.h>

#include <string>

namespace mnv2::gpu_check {

struct CheckOptions {
  torch::Device device = torch::kCUDA;
  bool short_mode = false;         ///< fewer steps: CI's CPU run
  std::string out_dir;             ///< logs and the table
  std::string python = "python3";  ///< the peer's PyTorch (throughput)
  std::string peer_script;         ///< peer_throughput.py
  std::string self;                ///< this program, for NCCL workers
};

/// 1. Forward and backward on the device against the CPU in fp64, in fp32
///    and fp64, contiguous and channels_last.
void check_forward_backward(const CheckOptions& options, Table& table);
/// 2. AMP: fp16 loss scaling (inf/NaN skip the step and halve the scale), a
///    separable task learnt under fp16 (with EMA) and bf16 autocast.
void check_amp(const CheckOptions& options, Table& table);
/// 3. Inference on the device (eager, folded TorchScript, fp16 autocast)
///    against the eager model on the CPU.
void check_inference(const CheckOptions& options, Table& table);
/// 4. NCCL over every visible GPU: collectives and DDP's equivalence.
void check_nccl(const CheckOptions& options, Table& table);
/// 5. Training and inference images/s against the machine's own PyTorch.
void check_throughput(const CheckOptions& options, Table& table);

/// The entry point of an NCCL worker process (spawned by check_nccl);
/// returns its exit status.
int run_nccl_worker();

/// max |got - want| / max |want|, in fp64 on the CPU.
double relative_error(const torch::Tensor& got, const torch::Tensor& want);

/// TF32 off for cuDNN and cuBLAS while it lives (exact fp32 comparisons),
/// then the previous settings.
class NoTf32 {
 public:
  NoTf32();
  ~NoTf32();
  NoTf32(const NoTf32&) = delete;
  NoTf32& operator=(const NoTf32&) = delete;

 private:
  bool cudnn_;
  bool cublas_;
};

}  // namespace mnv2::gpu_check
