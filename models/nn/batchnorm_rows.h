#pragma once

// How the fused BatchNorm's passes walk a channels_last tensor as rows of
// channels: in parallel tasks, with per-channel sums in double, and rows of
// few channels grouped into wide rows so that the loops stay vectorised.

#include "cpu_loops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace mnv2::batchnorm_rows {

// Values per task: enough to amortise a task, few enough to split the 2x2
// maps of a 48x48 input (256 rows at batch 64) between two threads. A fixed
// 256 rows per task ran those layers, up to 1280 channels wide, on one
// thread while the other waited.
constexpr int64_t kFusedValuesPerTask = int64_t{1} << 14;
// Rows summed in fp32 before their sums go into the double totals.
constexpr int64_t kFusedRowsPerFloatSum = 64;

using cpu_loops::parallel_rows;

// Rows of `width` values per task.
inline int64_t rows_per_task(int64_t width) {
  return std::max<int64_t>(1,
                           kFusedValuesPerTask / std::max<int64_t>(1, width));
}

// Two per-channel sums over `rows` rows, in double: `add(begin, end, a, b)`
// adds rows [begin, end) into fp32 sums a and b (a few rows at a time, so
// that fp32 keeps the 1e-5 the tests ask), which each thread adds into its
// own double partials, added at the end. The tasks take whole blocks of
// kFusedRowsPerFloatSum rows, so that the fp32 sums do not depend on how
// the rows are split between threads.
template <class AddRows>
std::vector<double> channel_sums(int64_t rows,
                                 int64_t channels,
                                 const AddRows& add) {
  const auto width = static_cast<size_t>(2 * channels);
  std::vector<double> partial(static_cast<size_t>(at::get_num_threads()) *
                              width);
  const int64_t blocks =
      (rows + kFusedRowsPerFloatSum - 1) / kFusedRowsPerFloatSum;
  const int64_t blocks_per_task =
      std::max<int64_t>(1, rows_per_task(channels) / kFusedRowsPerFloatSum);
  parallel_rows(blocks, blocks_per_task, [&](int64_t begin, int64_t end) {
    double* sums =
        partial.data() + static_cast<size_t>(at::get_thread_num()) * width;
    std::vector<float> part(width);
    for (int64_t block = begin; block < end; ++block) {
      const int64_t first = block * kFusedRowsPerFloatSum;
      std::fill(part.begin(), part.end(), 0.f);
      add(first,
          std::min(rows, first + kFusedRowsPerFloatSum),
          part.data(),
          part.data() + channels);
      for (size_t i = 0; i < width; ++i) {
        sums[i] += part[i];
      }
    }
  });
  std::vector<double> total(width, 0.0);
  for (size_t t = 0; t < partial.size(); t += width) {
    for (size_t i = 0; i < width; ++i) {
      total[i] += partial[t + i];
    }
  }
  return total;
}

// Rows taken k at a time as one row of k x channels, each per-channel
// constant repeated k times. GCC vectorises the channel loops 32 bf16 (16
// fp32) lanes at a time, does a row's last channels one by one and pays a
// loop set-up per row: a row of 24 bf16 channels ran mostly scalar, at 2.4x
// fp32's time. So k is the fewest rows that fill whole vectors and make at
// least kGroupWidth channels. Rows past the last whole group run as they
// are.
struct RowGroups {
  int64_t rows_per_group = 1;
  int64_t groups = 0;    // whole groups
  int64_t channels = 0;  // of one row
  int64_t rows = 0;      // all of them
  int64_t width() const {
    return rows_per_group * channels;
  }
  int64_t rest() const {
    return rows - groups * rows_per_group;
  }
};

constexpr int64_t kLanesToFill = 32;
constexpr int64_t kGroupWidth = 512;
constexpr int64_t kMostRowsPerGroup = 64;

inline RowGroups row_groups(int64_t rows, int64_t channels) {
  int64_t filling = 0;  // the fewest rows that fill whole vectors
  for (int64_t k = 1; k <= std::min(kMostRowsPerGroup, rows); ++k) {
    if (k * channels % kLanesToFill != 0) {
      continue;
    }
    filling = filling > 0 ? filling : k;
    if (k * channels >= kGroupWidth) {
      return {k, rows / k, channels, rows};
    }
  }
  return filling > 0 ? RowGroups{filling, rows / filling, channels, rows}
                     : RowGroups{1, rows, channels, rows};
}

// One value per channel, repeated for each row of a group.
inline std::vector<float> repeated(const float* values, const RowGroups& g) {
  std::vector<float> out(static_cast<size_t>(g.width()));
  for (int64_t r = 0; r < g.rows_per_group; ++r) {
    std::copy(values, values + g.channels, out.begin() + r * g.channels);
  }
  return out;
}

// `f(offset, rows, width)` over the groups in parallel (rows of the groups'
// width, from element `offset`), then over the rows past them.
template <class Rows>
void for_row_groups(const RowGroups& g, const Rows& f) {
  const int64_t width = g.width();
  parallel_rows(
      g.groups, rows_per_task(width), [&](int64_t begin, int64_t end) {
        f(begin * width, end - begin, width);
      });
  if (g.rest() > 0) {
    f(g.groups * width, g.rest(), g.channels);
  }
}

// channel_sums over grouped rows: `add(offset, rows, width, a, b)` adds
// rows of `width` from element `offset`; the groups' sums per position are
// added into their channel's.
template <class AddRows>
std::vector<double> grouped_channel_sums(const RowGroups& g,
                                         const AddRows& add) {
  const int64_t width = g.width();
  const auto grouped = channel_sums(
      g.groups, width, [&](int64_t begin, int64_t end, float* a, float* b) {
        add(begin * width, end - begin, width, a, b);
      });
  const int64_t c = g.channels;
  std::vector<double> total(static_cast<size_t>(2 * c), 0.0);
  for (int64_t half = 0; half < 2; ++half) {
    for (int64_t r = 0; r < g.rows_per_group; ++r) {
      const double* sums = grouped.data() + half * width + r * c;
      double* into = total.data() + half * c;
      for (int64_t i = 0; i < c; ++i) {
        into[i] += sums[i];
      }
    }
  }
  if (g.rest() > 0) {
    std::vector<float> a(static_cast<size_t>(c)), b(a.size());
    add(g.groups * width, g.rest(), c, a.data(), b.data());
    for (int64_t i = 0; i < c; ++i) {
      total[static_cast<size_t>(i)] += a[static_cast<size_t>(i)];
      total[static_cast<size_t>(c + i)] += b[static_cast<size_t>(i)];
    }
  }
  return total;
}

}  // namespace mnv2::batchnorm_rows
