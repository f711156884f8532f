#pragma once

namespace mnv2 {

/// How an int8 engine rounds a residual block's add: its projection's
/// output plus the block input's codes times their step, both fp32.
enum class ResidualAdd {
  /// In one fused multiply-add, one rounding: oneDNN's sum post-op on CPUs
  /// with FMA (its AVX2 kernels and above), and simulate_quantized's default.
  kFusedMultiplyAdd,
  /// The product rounded to fp32, then the sum: oneDNN's SSE4.1 kernels,
  /// which CPUs without AVX2 run. Where the two differ by one fp32 step at a
  /// rounding boundary, a code differs by one, and every layer after it.
  kMultiplyThenAdd,
};

}  // namespace mnv2
