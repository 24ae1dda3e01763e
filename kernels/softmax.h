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

// The row and slab functions are compiled twice on x86-64 with GCC, for
// AVX2 (x86-64-v3) and for the baseline (SSE2), and the loader picks the
// clone for the running CPU: the same source, 2-3x faster where AVX2 exists.
// -DSSM_NO_SIMD_CLONES builds the baseline only (to test it on an AVX2 machine).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(SSM_NO_SIMD_CLONES)
#define SSM_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SSM_SIMD_CLONES
#endif

// exp(x) for x <= 0, the argument of every exp in a max-subtracted softmax
// (accurate up to x = 80 too, which covers rounding above 0). Branch-free, so
// that a loop over it vectorizes under `#pragma omp simd`; std::exp does not.
//   exp(x) = 2^k exp(r),  k = round(x / ln 2),  r = x - k ln 2 in [-ln2/2, ln2/2]
// ln 2 is split in two (Cody-Waite) so that k ln 2 is exact, exp(r) is its
// Taylor polynomial (degree 7 for float, 13 for double: within 2 ulp of
// std::exp), and 2^k is written into the exponent bits. x is clamped at a
// point where k = -bias, so the exponent bits, and the result, are exactly 0
// (e.g. exp(-inf) = 0, a masked logit); results below about 1e-38 (float) or
// 1e-308 (double) are flushed to 0. NaN stays NaN.
template <class T>
inline T exp_nonpositive(T x) {
  static_assert(std::is_floating_point_v<T>);
  constexpr bool f32 = std::is_same_v<T, float>;
  using Bits = std::conditional_t<f32, std::int32_t, std::int64_t>;
  constexpr T lo = f32 ? T(-88.0) : T(-709.0);  // round(lo / ln 2) = -bias
  constexpr T log2e = T(1.44269504088896340736);
  constexpr T ln2_hi = f32 ? T(0.693359375) : T(6.93147180369123816490e-01);
  constexpr T ln2_lo = f32 ? T(-2.12194440e-4) : T(1.90821492927058770002e-10);
  // Adding 1.5 * 2^(mantissa bits) rounds to an integer held in the low bits.
  constexpr T round_magic = f32 ? T(12582912.0) : T(6755399441055744.0);
  constexpr int mantissa_bits = f32 ? 23 : 52;
  constexpr Bits exponent_bias = f32 ? 127 : 1023;

  // copysign(lo, x) is lo here; written so, the clamped branch is not folded
  // into a constant path, which would keep the loop from vectorizing.
  const T xc = x < lo ? std::copysign(lo, x) : x;  // keeps NaN
  const T t = xc * log2e + round_magic;
  const T k = t - round_magic;
  const Bits ki = std::bit_cast<Bits>(t) - std::bit_cast<Bits>(round_magic);
  const T r = (xc - k * ln2_hi) - k * ln2_lo;
  T p;
  if constexpr (f32) {
    p = T(1.0 / 5040);
    p = p * r + T(1.0 / 720);
    p = p * r + T(1.0 / 120);
    p = p * r + T(1.0 / 24);
    p = p * r + T(1.0 / 6);
    p = p * r + T(0.5);
  } else {
    p = T(1.0 / 6227020800.0);
    p = p * r + T(1.0 / 479001600.0);
    p = p * r + T(1.0 / 39916800.0);
    p = p * r + T(1.0 / 3628800.0);
    p = p * r + T(1.0 / 362880.0);
    p = p * r + T(1.0 / 40320.0);
    p = p * r + T(1.0 / 5040.0);
    p = p * r + T(1.0 / 720.0);
    p = p * r + T(1.0 / 120.0);
    p = p * r + T(1.0 / 24.0);
    p = p * r + T(1.0 / 6.0);
    p = p * r + T(0.5);
  }
  p = p * r + T(1.0);
  p = p * r + T(1.0);
  // 2^k; 0 at the clamp, where k = -bias.
  const Bits scale = static_cast<Bits>((ki + exponent_bias) << mantissa_bits);
  return p * std::bit_cast<T>(scale);
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
