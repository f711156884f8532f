#pragma once

namespace mnv2 {

/// Whether this CPU computes bf16 (fp16) natively: AVX-512 BF16 or AMX
/// (AVX-512 FP16 or AMX-FP16), unless ONEDNN_MAX_CPU_ISA or
/// ATEN_CPU_CAPABILITY caps LibTorch below them. Elsewhere LibTorch emulates
/// the type on CPU, 10-25x slower than fp32.
bool cpu_has_native_bf16();
bool cpu_has_native_fp16();

}  // namespace mnv2
