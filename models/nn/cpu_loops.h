#pragma once

// What the CPU kernels of nn/ share (private to its .cpp files): vector
// clones of their loops, fp32 and bf16 element access, rows in parallel.

#include <ATen/TensorIterator.h>
#include <torch/types.h>

#include <cstdint>
#include <cstring>

namespace mnv2::cpu_loops {

// The loops over one row's channels, compiled for AVX-512, AVX2 + FMA and
// plain x86-64 and chosen at run time by the CPU (GCC's function
// multiversioning): the build itself targets plain x86-64.
#if defined(MNV2_LOOPS_TARGET)
// The tests' variant (models/CMakeLists.txt): one instruction set for all.
#define MNV2_VECTOR_CLONES __attribute__((target(MNV2_LOOPS_TARGET)))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MNV2_VECTOR_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MNV2_VECTOR_CLONES  // other compilers and CPUs: the build's own target
#endif

// Activations are fp32 or bf16 (its bits as uint16_t, so that the loops
// vectorise as integer shifts); arithmetic is fp32 either way.
inline float load(const float* p, int64_t i) {
  return p[i];
}
inline float load(const uint16_t* p, int64_t i) {
  const uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}
inline void store(float* p, int64_t i, float value) {
  p[i] = value;
}
// Rounded to nearest even, as c10::BFloat16; NaN stays a quiet NaN.
inline uint16_t to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint32_t rounded = bits + 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((value != value ? 0x7fc00000u : rounded) >> 16);
}
inline void store(uint16_t* p, int64_t i, float value) {
  p[i] = to_bf16(value);
}
// `f(elements)` with `t`'s elements as float or, for bf16, as their bits.
template <class F>
auto with_elements(const torch::Tensor& t, const F& f) {
  if (t.scalar_type() == torch::kBFloat16) {
    return f(
        reinterpret_cast<const uint16_t*>(t.const_data_ptr<c10::BFloat16>()));
  }
  return f(t.const_data_ptr<float>());
}
// `t`'s elements as the same type as `like`'s.
template <class T>
const T* elements(const torch::Tensor& t, const T*) {
  return static_cast<const T*>(t.const_data_ptr());
}
template <class T>
T* mutable_elements(torch::Tensor& t, const T*) {
  return static_cast<T*>(t.data_ptr());
}

// `f(begin, end)` over [0, rows) in parallel on LibTorch's intra-op threads.
// at::parallel_for is a header template whose OpenMP form needs this file
// compiled with -fopenmp (and a libgomp to link); TensorIterator::for_each
// is compiled in LibTorch, so it parallelises with whatever backend the
// LibTorch in use was built with. It walks a byte per row, whose offset is
// the row index.
template <class F>
void parallel_rows(int64_t rows, int64_t rows_per_task, const F& f) {
  auto marks = at::empty({rows}, at::kByte);
  auto iter = at::TensorIteratorConfig()
                  .add_output(marks)
                  .resize_outputs(false)  // its shape is the loop's
                  .check_all_same_dtype(false)
                  .build();
  TORCH_INTERNAL_ASSERT(iter.numel() == rows);
  const char* base = static_cast<const char*>(marks.const_data_ptr());
  iter.for_each(
      [&](char** data, const int64_t* strides, int64_t size0, int64_t size1) {
        for (int64_t j = 0; j < size1; ++j) {  // one dimension: size1 is 1
          const auto begin =
              static_cast<int64_t>(data[0] + j * strides[1] - base);
          f(begin, begin + size0);
        }
      },
      rows_per_task);
}

}  // namespace mnv2::cpu_loops
