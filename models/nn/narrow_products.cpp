#include "narrow_products.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

namespace mnv2::narrow_products {

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
