#include "narrow_products.h"

#include <mobilenetv2/util/cpu_features.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MNV2_HAS_WIDE_LANES 1
// The wide loop only: the build itself targets plain x86-64, and
// wide_lanes() keeps other CPUs out.
#define MNV2_WIDE_TARGET \
  __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq")))
#else
#define MNV2_HAS_WIDE_LANES 0
#endif

namespace mnv2::narrow_products {

namespace {

std::atomic<bool> wide_lanes_on{true};

}  // namespace

bool wide_lanes() {
  static const bool available =
      MNV2_HAS_WIDE_LANES && cpu_is_intel() && cpu_has_avx512();
  return available && wide_lanes_on.load(std::memory_order_relaxed);
}

void set_wide_lanes_enabled(bool on) {
  wide_lanes_on = on;
}

namespace detail {

#if MNV2_HAS_WIDE_LANES

namespace {

// Sixteen floats; loads and stores are unaligned.
typedef float Floats16 __attribute__((vector_size(64), aligned(4), may_alias));

// Rows t to t + kRows - 1 of c.
template <int kRows>
MNV2_WIDE_TARGET inline void wide_tile(const BlockProduct& p, int64_t t) {
  const float* f = p.f + t * p.f_row;
  float* c = p.c + t * p.ldc;
  Floats16 sums[kRows][2] = {};
  if (p.accumulate) {
    for (int i = 0; i < kRows; ++i) {
      for (int j = 0; j < 2; ++j) {
        sums[i][j] = *reinterpret_cast<const Floats16*>(c + i * p.ldc + j * 16);
      }
    }
  }
  for (int64_t q = 0; q < p.count; ++q) {
    const float* row_of_b = p.b + q * p.ldb;
    const Floats16 left = *reinterpret_cast<const Floats16*>(row_of_b);
    const Floats16 right = *reinterpret_cast<const Floats16*>(row_of_b + 16);
    for (int i = 0; i < kRows; ++i) {
      const float factor = f[i * p.f_row + q * p.f_step];
      sums[i][0] += factor * left;
      sums[i][1] += factor * right;
    }
  }
  for (int i = 0; i < kRows; ++i) {
    for (int j = 0; j < 2; ++j) {
      *reinterpret_cast<Floats16*>(c + i * p.ldc + j * 16) = sums[i][j];
    }
  }
}

}  // namespace

MNV2_WIDE_TARGET void wide_product_rows(const BlockProduct& p) {
  // Twelve rows of two vectors: 24 of AVX-512's 32 registers hold the sums.
  constexpr int kRows = 12;
  int64_t t = 0;
  for (; t + kRows <= p.rows; t += kRows) {
    wide_tile<kRows>(p, t);
  }
  for (; t < p.rows; ++t) {
    wide_tile<1>(p, t);
  }
}

#else

void wide_product_rows(const BlockProduct&) {
  TORCH_CHECK(false, "narrow products: no wide lanes on this CPU");
}

#endif

}  // namespace detail

namespace {

// Rows per task of our products, and per partial sum of the weight's
// gradient: 1024 rows of up to 144 input channels stay in a core's L2.
// Fewer where that would leave a thread idle (a 3x3 map at batch 64 is
// 576 rows).
constexpr int64_t kRowsPerTask = 1024;
int64_t task_rows(int64_t rows) {
  const int64_t threads = std::max(1, at::get_num_threads());
  return std::clamp<int64_t>((rows + threads - 1) / threads, 1, kRowsPerTask);
}

// c = a m, or c += a m with `accumulate`, in parallel over the rows.
void multiply_into(torch::Tensor& c,
                   const torch::Tensor& a_view,
                   const torch::Tensor& m_view,
                   bool accumulate) {
  TORCH_INTERNAL_ASSERT(c.is_contiguous());
  const auto a = a_view.contiguous();
  const auto m = m_view.contiguous();
  const int64_t rows = a.size(0), inner = a.size(1), columns = m.size(1);
  const float* pa = a.const_data_ptr<float>();
  const float* pm = m.const_data_ptr<float>();
  float* pc = c.data_ptr<float>();
  cpu_loops::parallel_rows(
      rows, task_rows(rows), [&](int64_t begin, int64_t end) {
        rows_times_matrix(pa + begin * inner,
                          pm,
                          pc + begin * columns,
                          end - begin,
                          inner,
                          columns,
                          accumulate);
      });
}

}  // namespace

torch::Tensor product(const torch::Tensor& a, const torch::Tensor& m) {
  auto c = torch::empty({a.size(0), m.size(1)}, a.options());
  multiply_into(c, a, m, false);
  return c;
}

void add_product(torch::Tensor& c,
                 const torch::Tensor& a,
                 const torch::Tensor& m) {
  multiply_into(c, a, m, true);
}

torch::Tensor transposed_product(const torch::Tensor& a_view,
                                 const torch::Tensor& b_view) {
  const auto a = a_view.contiguous();
  const auto b = b_view.contiguous();
  const int64_t rows = a.size(0), m = a.size(1), n = b.size(1);
  const auto width = static_cast<size_t>(m * n);
  std::vector<double> partial(static_cast<size_t>(at::get_num_threads()) *
                              width);
  const float* pa = a.const_data_ptr<float>();
  const float* pb = b.const_data_ptr<float>();
  cpu_loops::parallel_rows(
      rows, task_rows(rows), [&](int64_t begin, int64_t end) {
        double* own =
            partial.data() + static_cast<size_t>(at::get_thread_num()) * width;
        std::vector<float> block(width);
        for (int64_t r = begin; r < end; r += kRowsPerTask) {
          std::fill(block.begin(), block.end(), 0.f);
          add_transposed_product(pa + r * m,
                                 pb + r * n,
                                 block.data(),
                                 std::min(kRowsPerTask, end - r),
                                 m,
                                 n);
          for (size_t i = 0; i < width; ++i) {
            own[i] += block[i];
          }
        }
      });
  auto sums = torch::empty({m, n}, a.options());
  float* out = sums.data_ptr<float>();
  for (size_t i = 0; i < width; ++i) {
    double total = 0;
    for (size_t t = i; t < partial.size(); t += width) {
      total += partial[t];
    }
    out[i] = static_cast<float>(total);
  }
  return sums;
}

}  // namespace mnv2::narrow_products
