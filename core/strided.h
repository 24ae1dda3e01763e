#pragma once
// Iteration over N strided operands that share one shape. Dimensions of size
// 1 are dropped and neighbouring dimensions merged where every operand allows
// it, so that the innermost loop is as long as possible; the callback gets one
// row at a time:
//   f(offsets /* element offset of the row start, per operand */,
//     n /* row length */, inner /* per-operand stride along the row */)
// With `parallel`, rows (or chunks of one long row) run on OpenMP threads;
// only use it when rows write to disjoint memory.
#include <algorithm>
#include <array>
#include <cstdint>

#include "core/shape.h"

namespace ssm {

template <std::size_t N>
struct StridedRows {
  Shape shape;  // coalesced; last dim is the row
  std::array<Shape, N> strides;
};

template <std::size_t N>
StridedRows<N> coalesce_dims(const Shape& shape, const std::array<Shape, N>& strides) {
  StridedRows<N> c;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !c.shape.empty();
    for (std::size_t k = 0; k < N && merge; ++k) {
      merge = c.strides[k].back() == strides[k][d] * shape[d];
    }
    if (merge) {
      c.shape.back() *= shape[d];
      for (std::size_t k = 0; k < N; ++k) c.strides[k].back() = strides[k][d];
    } else {
      c.shape.push_back(shape[d]);
      for (std::size_t k = 0; k < N; ++k) c.strides[k].push_back(strides[k][d]);
    }
  }
  return c;
}

template <std::size_t N, class F>
void for_each_row(const Shape& shape, const std::array<Shape, N>& strides, bool parallel, F&& f) {
  const std::int64_t numel = shape_numel(shape);
  if (numel == 0) return;
  const StridedRows<N> c = coalesce_dims(shape, strides);
  std::array<std::int64_t, N> inner{};
  if (c.shape.empty()) {  // a single element
    std::array<std::int64_t, N> off{};
    f(off, std::int64_t{1}, inner);
    return;
  }
  const std::int64_t nd = static_cast<std::int64_t>(c.shape.size());
  const std::int64_t row = c.shape.back();
  for (std::size_t k = 0; k < N; ++k) inner[k] = c.strides[k].back();
  const std::int64_t rows = numel / row;
  // Split long rows into chunks so that one huge row still uses all threads.
  constexpr std::int64_t kChunk = 16384;
  const std::int64_t chunks = parallel ? std::max<std::int64_t>(1, row / kChunk) : 1;
  const std::int64_t chunk_len = (row + chunks - 1) / chunks;
  const std::int64_t tasks = rows * chunks;
  auto body = [&](std::int64_t task) {
    std::int64_t r = task / chunks;
    const std::int64_t ch = task % chunks;
    std::array<std::int64_t, N> off{};
    for (std::int64_t d = nd - 2; d >= 0; --d) {
      const std::int64_t i = r % c.shape[d];
      r /= c.shape[d];
      for (std::size_t k = 0; k < N; ++k) off[k] += i * c.strides[k][d];
    }
    const std::int64_t start = ch * chunk_len;
    const std::int64_t len = std::min(row, start + chunk_len) - start;
    for (std::size_t k = 0; k < N; ++k) off[k] += start * inner[k];
    f(off, len, inner);
  };
  if (parallel && numel >= 32768 && tasks > 1) {
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < tasks; ++t) body(t);
  } else {
    for (std::int64_t t = 0; t < tasks; ++t) body(t);
  }
}

}  // namespace ssm
