// CPU loss kernels, with PyTorch's semantics (torch.nn.functional.cross_entropy,
// nll_loss, mse_loss).
//
// Class-index losses see the scores as (N, C, inner), inner = d1 * ... * dk,
// and the target as N * inner positions. Cross-entropy walks them as
// kernels/cpu/softmax.cpp does (detail::Walk): contiguous rows of C classes,
// tiles of short rows transposed on the stack, or slabs of positions when
// there are spatial dims, always with the vectorized loop over contiguous
// memory.
//
// Cross-entropy is fused: forward computes log-softmax and the loss in one
// sweep per row and keeps only two numbers per position, the row max m and
// log_sum = log sum_c exp(x_c - m); backward rebuilds p_c = exp((x_c - m) -
// log_sum) and writes (p - smoothed one-hot) scaled by the output gradient,
// in one pass. Neither materializes a (N, C) log-softmax.
// Gradient rule: activation gradients are written (=), never accumulated.
#include "kernels/loss.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <tuple>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cuda/loss.h"
#include "kernels/softmax.h"

namespace ssm::kernels {

namespace {

using namespace detail;

// (N, C, inner) of class scores: the class dim is 1, or 0 for a 1-D input.
ClassLayout scores_layout(const Shape& shape) {
  return class_layout(shape, shape.size() == 1 ? 0 : 1);
}

// Checks every target: in [0, C) or equal to ignore_index. Returns how many
// are not ignored.
template <class I>
std::int64_t count_targets(const char* op, const I* t, std::int64_t n, std::int64_t classes,
                           std::int64_t ignore_index) {
  std::int64_t count = 0;
  for (std::int64_t p = 0; p < n; ++p) {
    const std::int64_t v = t[p];
    if (v == ignore_index) continue;
    SSM_CHECK(v >= 0 && v < classes, op, "target ", v, " at position ", p, " is out of range for ",
              classes, " classes (expected 0..", classes - 1, " or ignore_index ", ignore_index,
              ")");
    ++count;
  }
  return count;
}

// True when every target is in [0, C) or ignore_index (the check of one task;
// count_targets then finds the culprit for the message).
template <class I>
bool targets_valid(const I* t, std::int64_t n, std::int64_t classes, std::int64_t ignore_index) {
  bool ok = true;
  for (std::int64_t p = 0; p < n; ++p) {
    const std::int64_t v = t[p];
    ok = ok && (v == ignore_index || (v >= 0 && v < classes));
  }
  return ok;
}

// The per-position losses (N * inner values) as the op's output: kept with
// the target's shape, or summed in double (and divided, for mean, by the
// number of non-ignored targets, which is also returned).
template <class T, class I>
std::pair<Tensor, std::int64_t> reduce_losses(const Tensor& losses, const Tensor& target,
                                              std::int64_t ignore_index, Reduction reduction) {
  const T* pl = losses.data<T>();
  const I* pt = target.data<I>();
  const std::int64_t n = losses.numel();
  double total = 0.0;
  std::int64_t count = 0;
#pragma omp parallel for schedule(static) reduction(+ : total, count) if (n > kParallelMin)
  for (std::int64_t p = 0; p < n; ++p) {
    total += static_cast<double>(pl[p]);
    count += pt[p] != ignore_index;
  }
  if (reduction == Reduction::None) return {losses.reshape(target.shape()), count};
  // Mean with every target ignored is 0 / 0 = NaN, as in PyTorch.
  if (reduction == Reduction::Mean) total /= static_cast<double>(count);
  return {Tensor::scalar(total, losses.dtype(), losses.device()), count};
}

// The weight of each position's loss in the output: grad (sum), grad / count
// (mean), or the position's own gradient (none: g has the target's shape).
template <class T>
struct LossWeight {
  const T* per_position = nullptr;  // set for none
  T scalar = T(0);
  T at(std::int64_t p) const { return per_position ? per_position[p] : scalar; }
};

template <class T>
LossWeight<T> loss_weight(const Tensor& grad, Reduction reduction, std::int64_t count) {
  LossWeight<T> w;
  if (reduction == Reduction::None) {
    w.per_position = grad.data<T>();
  } else {
    const double g = grad.item<double>();
    w.scalar = static_cast<T>(reduction == Reduction::Mean ? g / static_cast<double>(count) : g);
  }
  return w;
}

// The positions (flat indices into the target) that a task covers.
struct Positions {
  std::int64_t first = 0, count = 0;
};
Positions positions_of(const Task& t, Walk walk, const ClassLayout& l) {
  if (walk == Walk::Rows) return {t.outer, 1};
  if (walk == Walk::Tiles) return {t.outer, t.width};
  return {t.outer * l.inner + t.i0, t.width};
}

// ---------------------------------------------------------------- cross-entropy forward

// The loss of one position from its row statistics m = max_c x_c and
// log_sum = log sum_c exp(x_c - m), so that log p_c = (x_c - m) - log_sum:
//   nll = (m - x_t) + log_sum,  smooth = (m - mean_c x_c) + log_sum  (= mean_c -log p_c)
//   loss = (1 - eps) nll + eps smooth
template <class T>
T smoothed_loss(T m, T log_sum, T x_t, T sum_x, std::int64_t classes, T eps) {
  const T nll = (m - x_t) + log_sum;
  if (eps == T(0)) return nll;  // sum_x is not computed (and may be inf)
  return (T(1) - eps) * nll + eps * ((m - sum_x / static_cast<T>(classes)) + log_sum);
}

// One row of C contiguous classes: returns the loss, writes m and log_sum.
template <class T>
SSM_SIMD_CLONES T cross_entropy_row(const T* x, std::int64_t t, std::int64_t classes, T eps, T& m,
                                    T& log_sum) {
  m = row_max(x, classes);
  const T sum_x = eps == T(0) ? T(0) : row_sum(x, classes);
  log_sum = std::log(row_sum_exp(x, classes, m));
  return smoothed_loss(m, log_sum, x[t], sum_x, classes, eps);
}

// w positions at once, class c of position i at c * stride + i. m and log_sum
// are written for ignored positions too (backward scales them by 0).
template <class T, class I>
SSM_SIMD_CLONES void cross_entropy_slab(const T* x, const I* t, std::int64_t classes,
                                        std::int64_t stride, std::int64_t w,
                                        std::int64_t ignore_index, T eps, T* loss, T* m,
                                        T* log_sum) {
  T sum_x[kBlock];
  for (std::int64_t i = 0; i < w; ++i) {
    m[i] = -std::numeric_limits<T>::infinity();
    log_sum[i] = sum_x[i] = T(0);
  }
  for (std::int64_t c = 0; c < classes; ++c) {
    const T* xc = x + c * stride;
#pragma omp simd
    for (std::int64_t i = 0; i < w; ++i) {
      m[i] = xc[i] > m[i] ? xc[i] : m[i];
      sum_x[i] += xc[i];
    }
  }
  for (std::int64_t c = 0; c < classes; ++c) {
    const T* xc = x + c * stride;
#pragma omp simd
    for (std::int64_t i = 0; i < w; ++i) log_sum[i] += exp_nonpositive(xc[i] - m[i]);
  }
  for (std::int64_t i = 0; i < w; ++i) {
    log_sum[i] = std::log(log_sum[i]);
    const std::int64_t ti = t[i];
    loss[i] = ti == ignore_index
                  ? T(0)
                  : smoothed_loss(m[i], log_sum[i], x[ti * stride + i], sum_x[i], classes, eps);
  }
}

}  // namespace

CrossEntropyResult cross_entropy_forward(const Tensor& logits_in, const Tensor& target_in,
                                         const ClassLossParams& params) {
  SSM_CUDA_DISPATCH(logits_in, cuda::cross_entropy_forward(logits_in, target_in, params));
  require_cpu("cross_entropy", {&logits_in, &target_in});
  const Tensor logits = logits_in.contiguous(), target = target_in.contiguous();
  const ClassLayout l = scores_layout(logits.shape());
  const Walk walk = walk_of(l);
  const std::int64_t positions = l.outer * l.inner;
  CrossEntropyResult r;
  Tensor losses = Tensor::empty({positions}, logits.dtype(), logits.device());
  r.max = Tensor::empty({positions}, logits.dtype(), logits.device());
  r.log_sum = Tensor::empty({positions}, logits.dtype(), logits.device());
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    dispatch_index(target.dtype(), "cross_entropy", [&](auto itag) {
      using I = typename decltype(itag)::type;
      const T* px = logits.data<T>();  // (N, C, inner)
      const I* pt = target.data<I>();  // (N, inner)
      T* ploss = losses.data<T>();     // (N, inner)
      T* pm = r.max.data<T>();         // (N, inner)
      T* pls = r.log_sum.data<T>();    // (N, inner)
      const std::int64_t C = l.classes, ignore = params.ignore_index;
      const T eps = static_cast<T>(params.label_smoothing);
      std::atomic<bool> bad_target{false};  // set by a task that meets one
      parallel_tasks(l, walk, [&](const Task& t) {
        const Positions ps = positions_of(t, walk, l);
        if (!targets_valid(pt + ps.first, ps.count, C, ignore)) {
          bad_target.store(true, std::memory_order_relaxed);
          return;
        }
        if (walk == Walk::Rows) {
          const std::int64_t n = t.outer;
          if (pt[n] == ignore) {
            ploss[n] = pm[n] = pls[n] = T(0);
          } else {
            ploss[n] = cross_entropy_row(px + n * C, static_cast<std::int64_t>(pt[n]), C, eps,
                                         pm[n], pls[n]);
          }
        } else if (walk == Walk::Tiles) {
          T* xt = scratch_tile<T>(0);  // (C, kBlock)
          load_tile(px + t.outer * C, C, t.width, xt);
          cross_entropy_slab(xt, pt + ps.first, C, kBlock, t.width, ignore, eps, ploss + ps.first,
                             pm + ps.first, pls + ps.first);
        } else {
          cross_entropy_slab(px + t.outer * C * l.inner + t.i0, pt + ps.first, C, l.inner, t.width,
                             ignore, eps, ploss + ps.first, pm + ps.first, pls + ps.first);
        }
      });
      if (bad_target) count_targets("cross_entropy", pt, positions, C, ignore);  // throws
      std::tie(r.loss, r.count) = reduce_losses<T, I>(losses, target, ignore, params.reduction);
    });
  });
  return r;
}

// ---------------------------------------------------------------- cross-entropy backward

namespace {

// gx_c = w p_c - w eps / C - w (1 - eps) [c == t], p_c = exp((x_c - m) - log_sum),
// for one row of C contiguous classes (t not ignored).
template <class T>
SSM_SIMD_CLONES void cross_entropy_backward_row(const T* x, std::int64_t t, std::int64_t classes,
                                                T m, T log_sum, T w, T eps, T* g) {
  const T a = w * eps / static_cast<T>(classes);
#pragma omp simd
  for (std::int64_t c = 0; c < classes; ++c) g[c] = w * exp_nonpositive((x[c] - m) - log_sum) - a;
  g[t] -= w * (T(1) - eps);
}

// The same for w positions, class c of position i at c * stride + i; the
// positions are first, first + 1, ... of the target (for their weights).
template <class T, class I>
SSM_SIMD_CLONES void cross_entropy_backward_slab(const T* x, const I* t, const T* m,
                                                 const T* log_sum, const LossWeight<T>& weight,
                                                 std::int64_t first, std::int64_t classes,
                                                 std::int64_t stride, std::int64_t w,
                                                 std::int64_t ignore_index, T eps, T* g) {
  T wv[kBlock], a[kBlock];  // each position's weight (0 where ignored), and wv eps / C
  for (std::int64_t i = 0; i < w; ++i) {
    wv[i] = t[i] == ignore_index ? T(0) : weight.at(first + i);
    a[i] = wv[i] * eps / static_cast<T>(classes);
  }
  for (std::int64_t c = 0; c < classes; ++c) {
    const T* xc = x + c * stride;
    T* gc = g + c * stride;
#pragma omp simd
    for (std::int64_t i = 0; i < w; ++i) {
      gc[i] = wv[i] * exp_nonpositive((xc[i] - m[i]) - log_sum[i]) - a[i];
    }
  }
  for (std::int64_t i = 0; i < w; ++i) {
    const std::int64_t ti = t[i];
    if (ti != ignore_index) g[ti * stride + i] -= wv[i] * (T(1) - eps);
  }
}

}  // namespace

// gx_c = w (p_c - (1 - eps) [c == t] - eps / C); 0 where t is ignored.
Tensor cross_entropy_backward(const Tensor& grad_in, const Tensor& logits_in,
                              const Tensor& target_in, const CrossEntropyResult& saved,
                              const ClassLossParams& params) {
  SSM_CUDA_DISPATCH(logits_in,
                    cuda::cross_entropy_backward(grad_in, logits_in, target_in, saved, params));
  require_cpu("cross_entropy", {&grad_in, &logits_in, &target_in});
  const Tensor logits = logits_in.contiguous(), target = target_in.contiguous();
  const Tensor grad = grad_in.contiguous();
  const Tensor max = saved.max.contiguous(), log_sum = saved.log_sum.contiguous();
  const ClassLayout l = scores_layout(logits.shape());
  const Walk walk = walk_of(l);
  Tensor gx = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    dispatch_index(target.dtype(), "cross_entropy", [&](auto itag) {
      using I = typename decltype(itag)::type;
      const T* px = logits.data<T>();    // (N, C, inner)
      const I* pt = target.data<I>();    // (N, inner)
      const T* pm = max.data<T>();       // (N, inner)
      const T* pls = log_sum.data<T>();  // (N, inner)
      T* pgx = gx.data<T>();             // (N, C, inner)
      const LossWeight<T> weight = loss_weight<T>(grad, params.reduction, saved.count);
      const std::int64_t C = l.classes, ignore = params.ignore_index;
      const T eps = static_cast<T>(params.label_smoothing);
      parallel_tasks(l, walk, [&](const Task& t) {
        const Positions ps = positions_of(t, walk, l);
        if (walk == Walk::Rows) {
          const std::int64_t n = t.outer;
          T* g = pgx + n * C;
          if (pt[n] == ignore) {
            std::fill(g, g + C, T(0));
          } else {
            cross_entropy_backward_row(px + n * C, static_cast<std::int64_t>(pt[n]), C, pm[n],
                                       pls[n], weight.at(n), eps, g);
          }
        } else if (walk == Walk::Tiles) {
          T* xt = scratch_tile<T>(0);  // (C, kBlock), overwritten by the gradient
          load_tile(px + t.outer * C, C, t.width, xt);
          cross_entropy_backward_slab(xt, pt + ps.first, pm + ps.first, pls + ps.first, weight,
                                      ps.first, C, kBlock, t.width, ignore, eps, xt);
          store_tile(xt, C, t.width, pgx + t.outer * C);
        } else {
          const std::int64_t at = t.outer * C * l.inner + t.i0;
          cross_entropy_backward_slab(px + at, pt + ps.first, pm + ps.first, pls + ps.first, weight,
                                      ps.first, C, l.inner, t.width, ignore, eps, pgx + at);
        }
      });
    });
  });
  return gx;
}

// ---------------------------------------------------------------- nll_loss

// loss = -log_probs[n, t, i] per position (n, i) whose target t is not ignored.
std::pair<Tensor, std::int64_t> nll_loss_forward(const Tensor& log_probs_in,
                                                 const Tensor& target_in,
                                                 const ClassLossParams& params) {
  SSM_CUDA_DISPATCH(log_probs_in, cuda::nll_loss_forward(log_probs_in, target_in, params));
  require_cpu("nll_loss", {&log_probs_in, &target_in});
  const Tensor lp = log_probs_in.contiguous(), target = target_in.contiguous();
  const ClassLayout l = scores_layout(lp.shape());
  const std::int64_t positions = l.outer * l.inner;
  Tensor losses = Tensor::empty({positions}, lp.dtype(), lp.device());
  std::pair<Tensor, std::int64_t> out;
  dispatch_float(lp.dtype(), "nll_loss", [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    dispatch_index(target.dtype(), "nll_loss", [&](auto itag) {
      using I = typename decltype(itag)::type;
      const T* px = lp.data<T>();                                                // (N, C, inner)
      const I* pt = target.data<I>();                                            // (N, inner)
      T* ploss = losses.data<T>();                                               // (N, inner)
      count_targets("nll_loss", pt, positions, l.classes, params.ignore_index);  // validates
      for (std::int64_t p = 0; p < positions; ++p) {
        const std::int64_t n = p / l.inner, i = p % l.inner, t = pt[p];
        ploss[p] = t == params.ignore_index ? T(0) : -px[(n * l.classes + t) * l.inner + i];
      }
      out = reduce_losses<T, I>(losses, target, params.ignore_index, params.reduction);
    });
  });
  return out;
}

// gx[n, t, i] = -w at each non-ignored position, 0 elsewhere.
Tensor nll_loss_backward(const Tensor& grad_in, const Shape& log_probs_shape,
                         const Tensor& target_in, std::int64_t count,
                         const ClassLossParams& params) {
  SSM_CUDA_DISPATCH(grad_in,
                    cuda::nll_loss_backward(grad_in, log_probs_shape, target_in, count, params));
  require_cpu("nll_loss", {&grad_in, &target_in});
  const Tensor grad = grad_in.contiguous(), target = target_in.contiguous();
  const ClassLayout l = scores_layout(log_probs_shape);
  Tensor gx = Tensor::zeros(log_probs_shape, grad.dtype(), grad.device());
  dispatch_float(grad.dtype(), "nll_loss", [&](auto ttag) {
    using T = typename decltype(ttag)::type;
    dispatch_index(target.dtype(), "nll_loss", [&](auto itag) {
      using I = typename decltype(itag)::type;
      const I* pt = target.data<I>();  // (N, inner)
      T* pgx = gx.data<T>();           // (N, C, inner)
      const LossWeight<T> weight = loss_weight<T>(grad, params.reduction, count);
      for (std::int64_t p = 0; p < l.outer * l.inner; ++p) {
        const std::int64_t n = p / l.inner, i = p % l.inner, t = pt[p];
        if (t != params.ignore_index) pgx[(n * l.classes + t) * l.inner + i] = -weight.at(p);
      }
    });
  });
  return gx;
}

// ---------------------------------------------------------------- mse_loss

// (x - t)^2 per element; sum and mean accumulate in double.
Tensor mse_loss_forward(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
  SSM_CUDA_DISPATCH(input_in, cuda::mse_loss_forward(input_in, target_in, reduction));
  require_cpu("mse_loss", {&input_in, &target_in});
  const Tensor x = input_in.contiguous(), t = target_in.contiguous();
  const std::int64_t n = x.numel();
  Tensor out;
  dispatch_float(x.dtype(), "mse_loss", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    const T* pt = t.data<T>();
    if (reduction == Reduction::None) {
      out = Tensor::empty(x.shape(), x.dtype(), x.device());
      T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (std::int64_t i = 0; i < n; ++i) po[i] = (px[i] - pt[i]) * (px[i] - pt[i]);
      return;
    }
    // Chunks summed in vectorized loops, then over threads.
    constexpr std::int64_t kChunk = 4096;
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (n > kParallelMin)
    for (std::int64_t k = 0; k < (n + kChunk - 1) / kChunk; ++k) {
      const std::int64_t end = std::min(n, (k + 1) * kChunk);
      double acc = 0.0;
#pragma omp simd reduction(+ : acc)
      for (std::int64_t i = k * kChunk; i < end; ++i) {
        const double d = static_cast<double>(px[i]) - static_cast<double>(pt[i]);
        acc += d * d;
      }
      total += acc;
    }
    // Mean of no elements is 0 / 0 = NaN, as in PyTorch.
    if (reduction == Reduction::Mean) total /= static_cast<double>(n);
    out = Tensor::scalar(total, x.dtype(), x.device());
  });
  return out;
}

// ginput = 2 w (x - t), gtarget = -ginput.
std::pair<Tensor, Tensor> mse_loss_backward(const Tensor& grad_in, const Tensor& input_in,
                                            const Tensor& target_in, Reduction reduction,
                                            bool need_input, bool need_target) {
  SSM_CUDA_DISPATCH(input_in, cuda::mse_loss_backward(grad_in, input_in, target_in, reduction,
                                                      need_input, need_target));
  require_cpu("mse_loss", {&grad_in, &input_in, &target_in});
  const Tensor grad = grad_in.contiguous();
  const Tensor x = input_in.contiguous(), t = target_in.contiguous();
  const std::int64_t n = x.numel();
  Tensor gx = need_input ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
  Tensor gt = need_target ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
  dispatch_float(x.dtype(), "mse_loss", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    const T* pt = t.data<T>();
    T* pgx = need_input ? gx.data<T>() : nullptr;
    T* pgt = need_target ? gt.data<T>() : nullptr;
    const LossWeight<T> weight = loss_weight<T>(grad, reduction, n);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (std::int64_t i = 0; i < n; ++i) {
      const T g = T(2) * weight.at(i) * (px[i] - pt[i]);
      if (pgx) pgx[i] = g;
      if (pgt) pgt[i] = -g;
    }
  });
  return {gx, gt};
}

}  // namespace ssm::kernels
