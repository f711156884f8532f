#pragma once

namespace mnv2 {

/// Whether this CPU computes bf16 (fp16) natively: AVX-512 BF16 or AMX
/// (AVX-512 FP16 or AMX-FP16), unless ONEDNN_MAX_CPU_ISA or
/// ATEN_CPU_CAPABILITY caps LibTorch below them. Elsewhere LibTorch emulates
/// the type on CPU, 10-25x slower than fp32.
bool cpu_has_native_bf16();
bool cpu_has_native_fp16();

/// Whether this CPU has AVX512-BF16's dot product of bf16 pairs, under the
/// same caps as cpu_has_native_bf16 (AMX alone does not count).
bool cpu_has_avx512_bf16();

/// Whether oneDNN may use this CPU's AMX-BF16 tiles: present, and not capped
/// below them by ONEDNN_MAX_CPU_ISA. Its bf16 products then run several
/// times faster than fp32 ones, where AVX512-BF16's run about twice as fast.
bool cpu_has_amx_bf16();

/// Whether this CPU has AVX-512 (F, BW, DQ, VL) and no ONEDNN_MAX_CPU_ISA or
/// ATEN_CPU_CAPABILITY caps LibTorch below it, so that tests under those caps
/// take the loops an AVX2-only CPU takes.
bool cpu_has_avx512();

/// Whether this CPU is an Intel one (CPUID's vendor "GenuineIntel"). MKL,
/// LibTorch's fp32 matrix product, takes its fastest kernels on Intel CPUs
/// only: on an AMD EPYC with AVX-512 its sgemm ran 1.1-2.5x slower than
/// oneDNN's convolution on the same 1x1 layers (docs/benchmarks.md).
bool cpu_is_intel();

}  // namespace mnv2
