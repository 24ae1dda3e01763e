#pragma once
// Softmax and log-softmax along one dim: forward and backward kernels. The
// second half of this header holds the building blocks that the CPU kernels
// of the softmax family (kernels/cpu/softmax.cpp, kernels/cpu/loss.cpp)
// share: the class layout, how a kernel walks it in parallel tasks, and a
// vectorizable exp.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/tensor.h"
#include "kernels/cpu/simd_math.h"

namespace ssm::kernels {

// y = softmax(x) along dim: exp(x - m) / sum_dim exp(x - m), m = max over dim.
// The output is contiguous, with x's shape.
Tensor softmax_forward(const Tensor& x, std::int64_t dim);
// gx = y * (g - sum_dim(g * y)), from the forward output y.
Tensor softmax_backward(const Tensor& grad, const Tensor& y, std::int64_t dim);

// y = log_softmax(x) along dim: x - m - log sum_dim exp(x - m).
Tensor log_softmax_forward(const Tensor& x, std::int64_t dim);
// gx = g - exp(y) * sum_dim(g), from the forward output y.
Tensor log_softmax_backward(const Tensor& grad, const Tensor& y, std::int64_t dim);

// ---------------------------------------------------------------- CPU building blocks

namespace detail {

// A tensor seen as (outer, classes, inner) around one dim: element
// (o, c, i) of a contiguous tensor lies at (o * classes + c) * inner + i.
struct ClassLayout {
  std::int64_t outer = 1, classes = 1, inner = 1;
};
// The layout around dim (already wrapped) of a tensor of this shape; a 0-d
// tensor is one class.
ClassLayout class_layout(const Shape& shape, std::int64_t dim);

// How a kernel walks (outer, C, inner) in independent tasks. The inner loops
// always run over contiguous memory:
//   Rows   (inner == 1, C > kSmallClasses): a task is one row of C classes;
//          the loops run over classes.
//   Tiles  (inner == 1, C <= kSmallClasses): a task is up to kBlock rows,
//          transposed into a (C, kBlock) tile on the stack; the loops run
//          over rows, as for slabs (short rows leave a class loop nothing to
//          vectorize).
//   Slabs  (inner > 1): a task is up to kBlock positions i of one outer
//          index, a (C, w) slab with stride inner between classes; the loops
//          run over positions.
constexpr std::int64_t kBlock = 64;
constexpr std::int64_t kSmallClasses = 32;
// Below this many elements a kernel runs on one thread.
constexpr std::int64_t kParallelMin = 32768;

enum class Walk { Rows, Tiles, Slabs };

struct Task {
  std::int64_t outer = 0;  // Rows: the row; Tiles: the first row; Slabs: the outer index
  std::int64_t i0 = 0;     // Slabs: the first position
  std::int64_t width = 1;  // Tiles: rows in the tile; Slabs: positions in the slab
};

inline Walk walk_of(const ClassLayout& l) {
  if (l.inner > 1) return Walk::Slabs;
  return l.classes > kSmallClasses ? Walk::Rows : Walk::Tiles;
}

// Runs f(task) for every task of the walk, over OpenMP threads when the
// tensor is large.
template <class F>
void parallel_tasks(const ClassLayout& l, Walk walk, F&& f) {
  if (l.outer == 0 || l.inner == 0) return;  // no positions (e.g. (N, C, 0)): nothing to walk
  const std::int64_t blocks = (l.inner + kBlock - 1) / kBlock;  // slabs per outer index
  const std::int64_t tasks = walk == Walk::Rows    ? l.outer
                             : walk == Walk::Tiles ? (l.outer + kBlock - 1) / kBlock
                                                   : l.outer * blocks;
  const std::int64_t numel = l.outer * l.classes * l.inner;
#pragma omp parallel for schedule(static) if (numel > kParallelMin && tasks > 1)
  for (std::int64_t k = 0; k < tasks; ++k) {
    Task t;
    if (walk == Walk::Rows) {
      t.outer = k;
    } else if (walk == Walk::Tiles) {
      t.outer = k * kBlock;
      t.width = std::min(kBlock, l.outer - t.outer);
    } else {
      t.outer = k / blocks;
      t.i0 = (k % blocks) * kBlock;
      t.width = std::min(kBlock, l.inner - t.i0);
    }
    f(t);
  }
}

// Per-thread scratch of the Tiles walk: tile k (0, 1 or 2) holds (C, kBlock)
// values, C <= kSmallClasses.
template <class T>
T* scratch_tile(int k) {
  thread_local T tiles[3][kSmallClasses * kBlock];
  return tiles[k];
}

// tile (C, kBlock) <- rows (w, C), and back.
template <class T>
void load_tile(const T* rows, std::int64_t classes, std::int64_t w, T* tile) {
  for (std::int64_t r = 0; r < w; ++r) {
    for (std::int64_t c = 0; c < classes; ++c) tile[c * kBlock + r] = rows[r * classes + c];
  }
}
template <class T>
void store_tile(const T* tile, std::int64_t classes, std::int64_t w, T* rows) {
  for (std::int64_t r = 0; r < w; ++r) {
    for (std::int64_t c = 0; c < classes; ++c) rows[r * classes + c] = tile[c * kBlock + r];
  }
}

// The row and slab functions are compiled for AVX2 and for the baseline
// (SSM_SIMD_CLONES, kernels/cpu/simd_math.h).

// exp(x) for the max-subtracted arguments of a softmax (x <= 0 up to
// rounding): simd::exp, which vectorizes where std::exp does not; exp(-inf)
// = 0 for a masked logit.
template <class T>
inline T exp_nonpositive(T x) {
  return simd::exp(x);
}

// max_j x[j], -inf for n = 0. NaN entries are skipped here; they reach a
// softmax through the sum of exps, which they turn into NaN. Kept in 8
// running maxima (a vector's worth) so that the loop vectorizes as plain
// elementwise code (a max reduction of floats does not, under every compiler).
template <class T>
inline T row_max(const T* x, std::int64_t n) {
  constexpr std::int64_t kLanes = 8;
  T lane[kLanes];
  for (std::int64_t l = 0; l < kLanes; ++l) lane[l] = -std::numeric_limits<T>::infinity();
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (std::int64_t l = 0; l < kLanes; ++l) lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
  }
  for (; j < n; ++j) lane[0] = x[j] > lane[0] ? x[j] : lane[0];
  T m = lane[0];
  for (std::int64_t l = 1; l < kLanes; ++l) m = lane[l] > m ? lane[l] : m;
  return m;
}

// sum_j x[j]
template <class T>
inline T row_sum(const T* x, std::int64_t n) {
  T s = T(0);
#pragma omp simd reduction(+ : s)
  for (std::int64_t j = 0; j < n; ++j) s += x[j];
  return s;
}

// sum_j exp(x[j] - m), with m >= every x[j] (the row max).
template <class T>
inline T row_sum_exp(const T* x, std::int64_t n, T m) {
  T s = T(0);
#pragma omp simd reduction(+ : s)
  for (std::int64_t j = 0; j < n; ++j) s += exp_nonpositive(x[j] - m);
  return s;
}

}  // namespace detail

}  // namespace ssm::kernels
