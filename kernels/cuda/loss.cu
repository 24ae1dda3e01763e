// CUDA loss kernels with PyTorch's semantics (torch.nn.functional
// cross_entropy, nll_loss, mse_loss), float32 scores.
//
// Class-index losses see the scores as (N, C, inner), inner = d1 * ... * dk,
// and the target as N * inner positions, as the CPU kernels do
// (kernels/cpu/loss.cpp). Targets are checked on the host: the target is
// copied to the host once per forward (N * inner integers, far fewer than the
// N * C scores), counted and validated with the CPU's message; the count is
// needed on the host anyway (CrossEntropyResult::count, the mean's divisor).
//
// Cross-entropy is fused: forward keeps m = max_c x_c and log_sum = log sum_c
// exp(x_c - m) per position (one warp / block per row when the classes are
// the last dim, one thread per position otherwise); backward rebuilds
// p_c = exp((x_c - m) - log_sum) in one elementwise pass.
//
// Reductions to a scalar (mean / sum) accumulate in double in a fixed order:
// a fixed grid (it depends on the number of elements only) writes one partial
// sum per block (block_sum), and a single block adds the partials. No
// atomics: the same bits on every run.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/dispatch.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/loss.h"

namespace ssm::kernels::cuda {

namespace {

constexpr std::int64_t kWarpMaxClasses = 1024;  // rows up to this long: one warp per row
constexpr int kWarpsPerBlock = kThreads / 32;
constexpr std::int64_t kMaxPartials = 512;  // blocks of the first pass of a scalar reduction

// (N, C, inner) of class scores: the class dim is 1, or 0 for a 1-D input.
struct Layout {
  std::int64_t outer = 1, classes = 1, inner = 1;
};
Layout scores_layout(const Shape& shape) {
  Layout l;
  if (shape.empty()) return l;
  const std::size_t dim = shape.size() == 1 ? 0 : 1;
  for (std::size_t d = 0; d < dim; ++d) l.outer *= shape[d];
  l.classes = shape[dim];
  for (std::size_t d = dim + 1; d < shape.size(); ++d) l.inner *= shape[d];
  return l;
}

// The target on the device, contiguous; int32 or int64 (else the CPU's message).
Tensor device_target(const char* op, const Tensor& target, const Tensor& like) {
  SSM_CHECK(target.defined() && target.device() == like.device(), op,
            "expected the target on the device of ", like.desc(), ", got ",
            target.defined() ? target.desc() : std::string("undefined"));
  return dispatch_index(target.dtype(), op, [&](auto tag) {
    using I = typename decltype(tag)::type;
    return target.contiguous();
  });
}

// Checks every target on the host: in [0, C) or equal to ignore_index (the
// CPU's message for the first that is not). Returns how many are not ignored.
std::int64_t count_targets(const char* op, const Tensor& target, std::int64_t classes,
                           std::int64_t ignore_index) {
  const Tensor host = target.to(Device::cpu()).contiguous();
  return dispatch_index(host.dtype(), op, [&](auto tag) {
    using I = typename decltype(tag)::type;
    const I* t = host.data<I>();
    std::int64_t count = 0;
    for (std::int64_t p = 0; p < host.numel(); ++p) {
      const std::int64_t v = t[p];
      if (v == ignore_index) continue;
      SSM_CHECK(v >= 0 && v < classes, op, "target ", v, " at position ", p,
                " is out of range for ", classes, " classes (expected 0..", classes - 1,
                " or ignore_index ", ignore_index, ")");
      ++count;
    }
    return count;
  });
}

// ---------------------------------------------------------------- scalar reductions

struct ValueAt {  // the per-position losses
  const float* v;
  __device__ double operator()(std::int64_t i) const { return static_cast<double>(v[i]); }
};
struct SquaredDiffAt {  // (x - t)^2 in double
  const float* x;
  const float* t;
  __device__ double operator()(std::int64_t i) const {
    const double d = static_cast<double>(x[i]) - static_cast<double>(t[i]);
    return d * d;
  }
};

// partial[b] = sum of f(i) over the elements i of block b's grid-stride walk
// (each thread in index order, then block_sum): a fixed order.
template <class F>
__global__ void partial_sums_kernel(F f, std::int64_t n, double* __restrict__ partial) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (std::int64_t i = thread_index(); i < n; i += thread_count()) acc += f(i);
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// out = float(sum_b partial[b]), divided by `divisor` for a mean (0 / 0 =
// NaN, as on the CPU). One block.
__global__ void finish_sum_kernel(const double* __restrict__ partial, int blocks, bool mean,
                                  double divisor, float* __restrict__ out) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int b = static_cast<int>(threadIdx.x); b < blocks; b += static_cast<int>(blockDim.x)) {
    acc += partial[b];
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) out[0] = static_cast<float>(mean ? acc / divisor : acc);
}

// The () tensor sum_i f(i) over n elements, or that sum / divisor for a mean.
template <class F>
Tensor reduce_to_scalar(F f, std::int64_t n, bool mean, std::int64_t divisor, Device device) {
  if (n == 0) {
    double total = 0.0;
    if (mean) total /= static_cast<double>(divisor);  // 0 / 0 = NaN: nothing to average
    return Tensor::scalar(total, DType::Float32, device);
  }
  const std::int64_t blocks = std::min<std::int64_t>(kMaxPartials, blocks_for(n));
  Tensor partial = Tensor::empty({blocks}, DType::Float64, device);
  Tensor out = Tensor::empty({}, DType::Float32, device);
  partial_sums_kernel<F><<<static_cast<unsigned>(blocks), kThreads>>>(f, n, partial.data<double>());
  SSM_CUDA_CHECK_LAUNCH();
  finish_sum_kernel<<<1, kThreads>>>(partial.data<double>(), static_cast<int>(blocks), mean,
                                     static_cast<double>(divisor), out.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

// The per-position losses (positions values) as the op's output: kept with
// the target's shape, or summed (mean: divided by count).
Tensor reduce_losses(const Tensor& losses, const Tensor& target, std::int64_t count,
                     Reduction reduction) {
  if (reduction == Reduction::None) return losses.reshape(target.shape());
  return reduce_to_scalar(ValueAt{losses.data<float>()}, losses.numel(),
                          reduction == Reduction::Mean, count, losses.device());
}

// The weight of position p's loss in the output: the position's own
// gradient (none), grad / count (mean, divided in double as on the CPU) or
// grad (sum). grad is on the device: read there, no host sync.
struct LossWeight {
  const float* grad;
  int mode;  // 0 none, 1 mean, 2 sum
  double count;
  __device__ float at(std::int64_t p) const {
    if (mode == 0) return grad[p];
    if (mode == 1) return static_cast<float>(static_cast<double>(grad[0]) / count);
    return grad[0];
  }
};

LossWeight loss_weight(const char* op, const Tensor& grad, Reduction reduction, std::int64_t count,
                       std::int64_t positions) {
  if (reduction == Reduction::None) {
    SSM_CHECK(grad.numel() == positions, op, "expected a gradient of ", positions,
              " elements (reduction none), got ", grad.desc());
  } else {
    SSM_CHECK(grad.numel() == 1, op, "expected a one-element gradient, got ", grad.desc());
  }
  const int mode = reduction == Reduction::None ? 0 : reduction == Reduction::Mean ? 1 : 2;
  return {grad.data<float>(), mode, static_cast<double>(count)};
}

// ---------------------------------------------------------------- cross-entropy forward

// The loss of one position from m = max_c x_c and log_sum = log sum_c exp(x_c - m):
//   nll = (m - x_t) + log_sum,  smooth = (m - mean_c x_c) + log_sum
//   loss = (1 - eps) nll + eps smooth
__device__ inline float smoothed_loss(float m, float log_sum, float x_t, float sum_x,
                                      std::int64_t classes, float eps) {
  const float nll = (m - x_t) + log_sum;
  if (eps == 0.0f) return nll;
  return (1.0f - eps) * nll + eps * ((m - sum_x / static_cast<float>(classes)) + log_sum);
}

// Rows of `classes` floats from t's data can be read four floats at a time:
// every row starts 16-byte aligned.
bool rows_vec4(const Tensor& t, std::int64_t classes) {
  return classes % 4 == 0 && reinterpret_cast<std::uintptr_t>(t.data<float>()) % 16 == 0;
}

// Online softmax: adds v to a running (max m, sum s of exp(x - m)); a -inf
// value adds nothing (exp(-inf) = 0), so an all -inf row keeps s = 0.
__device__ inline void online_add(float& m, float& s, float v) {
  if (v > m) {
    s = s * expf(m - v) + 1.0f;  // m = -inf: s = 0 * 0 + 1
    m = v;
  } else if (v != -INFINITY) {
    s += expf(v - m);
  }
}
// Combines two running pairs (a pair with m = -inf holds s = 0).
__device__ inline void online_merge(float& m, float& s, float m2, float s2) {
  if (m2 > m) {
    s = s * expf(m - m2) + s2;
    m = m2;
  } else if (m2 != -INFINITY) {
    s += s2 * expf(m2 - m);
  }
}
// The pair over a warp, in a fixed order; every lane gets the result.
__device__ inline void warp_online(float& m, float& s) {
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    online_merge(m, s, m2, s2);
  }
}

// One warp (PerBlock false) or one block per row of C contiguous classes
// (inner == 1). An ignored row writes loss = m = log_sum = 0 (as the CPU's
// row walk); the branch is uniform over the group.
template <class I, bool PerBlock>
__global__ void cross_entropy_rows(const float* __restrict__ x, const I* __restrict__ t,
                                   std::int64_t rows, std::int64_t classes,
                                   std::int64_t ignore_index, float eps, bool vec,
                                   float* __restrict__ loss, float* __restrict__ m_out,
                                   float* __restrict__ ls_out) {
  __shared__ float shared[32];
  int lane, width;
  std::int64_t first, step;
  if constexpr (PerBlock) {
    lane = static_cast<int>(threadIdx.x);
    width = static_cast<int>(blockDim.x);
    first = blockIdx.x;
    step = gridDim.x;
  } else {
    const int warps = static_cast<int>(blockDim.x) / 32;
    lane = static_cast<int>(threadIdx.x & 31);
    width = 32;
    first = static_cast<std::int64_t>(blockIdx.x) * warps + threadIdx.x / 32;
    step = static_cast<std::int64_t>(gridDim.x) * warps;
  }
  for (std::int64_t r = first; r < rows; r += step) {
    const std::int64_t tr = static_cast<std::int64_t>(t[r]);
    if (tr == ignore_index) {
      if (lane == 0) loss[r] = m_out[r] = ls_out[r] = 0.0f;
      continue;
    }
    // One pass over the row (online softmax): each thread keeps its running
    // max m and sum s of exp(x - m), rescaled when m grows; the pairs are
    // then combined in a fixed order.
    const float* xr = x + r * classes;
    float m = -INFINITY, s = 0.0f, sum_x = 0.0f;
    if (vec) {
      const float4* x4 = reinterpret_cast<const float4*>(xr);
      for (std::int64_t q = lane; q < classes / 4; q += width) {
        const float4 v = x4[q];
        online_add(m, s, v.x);
        online_add(m, s, v.y);
        online_add(m, s, v.z);
        online_add(m, s, v.w);
        sum_x += (v.x + v.y) + (v.z + v.w);
      }
    } else {
      for (std::int64_t c = lane; c < classes; c += width) {
        online_add(m, s, xr[c]);
        sum_x += xr[c];
      }
    }
    warp_online(m, s);
    if constexpr (PerBlock) {
      __shared__ float shared_m[32], shared_s[32];
      const int wl = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
      __syncthreads();  // the previous row's reads of shared_m / shared_s are done
      if (wl == 0) {
        shared_m[warp] = m;
        shared_s[warp] = s;
      }
      __syncthreads();
      const int nwarps = static_cast<int>((blockDim.x + 31) >> 5);
      m = wl < nwarps ? shared_m[wl] : -INFINITY;
      s = wl < nwarps ? shared_s[wl] : 0.0f;
      warp_online(m, s);
      if (eps != 0.0f) sum_x = block_sum(sum_x, shared);
    } else {
      if (eps != 0.0f) sum_x = warp_sum(sum_x);
    }
    if (lane == 0) {
      const float log_sum = logf(s);
      m_out[r] = m;
      ls_out[r] = log_sum;
      loss[r] = smoothed_loss(m, log_sum, xr[tr], sum_x, classes, eps);
    }
  }
}

// One thread per position (n, i) (inner > 1): class c at (n C + c) inner + i.
// m and log_sum are written for ignored positions too (backward scales them by 0).
template <class I>
__global__ void cross_entropy_slab(const float* __restrict__ x, const I* __restrict__ t,
                                   std::int64_t outer, std::int64_t classes, std::int64_t inner,
                                   std::int64_t ignore_index, float eps, float* __restrict__ loss,
                                   float* __restrict__ m_out, float* __restrict__ ls_out) {
  const std::int64_t n = outer * inner;
  for (std::int64_t p = thread_index(); p < n; p += thread_count()) {
    const std::int64_t o = p / inner, i = p - o * inner;
    const float* xp = x + o * classes * inner + i;
    float m = -INFINITY, sum_x = 0.0f;
    for (std::int64_t c = 0; c < classes; ++c) {
      m = fmaxf(m, xp[c * inner]);
      sum_x += xp[c * inner];
    }
    float s = 0.0f;
    for (std::int64_t c = 0; c < classes; ++c) s += expf(xp[c * inner] - m);
    const float log_sum = logf(s);
    m_out[p] = m;
    ls_out[p] = log_sum;
    const std::int64_t tp = static_cast<std::int64_t>(t[p]);
    loss[p] =
        tp == ignore_index ? 0.0f : smoothed_loss(m, log_sum, xp[tp * inner], sum_x, classes, eps);
  }
}

}  // namespace

CrossEntropyResult cross_entropy_forward(const Tensor& logits_in, const Tensor& target_in,
                                         const ClassLossParams& params) {
  const char* op = "cross_entropy";
  require_cuda_float32(op, {&logits_in});
  const Tensor target = device_target(op, target_in, logits_in);
  const Tensor logits = logits_in.contiguous();
  const Layout l = scores_layout(logits.shape());
  const std::int64_t positions = l.outer * l.inner, ignore = params.ignore_index;
  CrossEntropyResult r;
  r.count = count_targets(op, target, l.classes, ignore);  // validates (throws)
  const Device device = logits.device();
  Tensor losses = Tensor::empty({positions}, DType::Float32, device);
  r.max = Tensor::empty({positions}, DType::Float32, device);
  r.log_sum = Tensor::empty({positions}, DType::Float32, device);
  if (positions > 0) {
    dispatch_index(target.dtype(), op, [&](auto tag) {
      using I = typename decltype(tag)::type;
      const float* px = logits.data<float>();  // (N, C, inner)
      const I* pt = target.data<I>();          // (N, inner)
      float* ploss = losses.data<float>();     // (N, inner)
      float* pm = r.max.data<float>();         // (N, inner)
      float* pls = r.log_sum.data<float>();    // (N, inner)
      const float eps = static_cast<float>(params.label_smoothing);
      const bool vec = rows_vec4(logits, l.classes);
      if (l.inner > 1) {
        cross_entropy_slab<I><<<blocks_for(positions), kThreads>>>(
            px, pt, l.outer, l.classes, l.inner, ignore, eps, ploss, pm, pls);
      } else if (l.classes <= kWarpMaxClasses) {
        cross_entropy_rows<I, false><<<blocks_for(positions, kWarpsPerBlock), kThreads>>>(
            px, pt, positions, l.classes, ignore, eps, vec, ploss, pm, pls);
      } else {
        cross_entropy_rows<I, true><<<blocks_for(positions, 1), kThreads>>>(
            px, pt, positions, l.classes, ignore, eps, vec, ploss, pm, pls);
      }
      SSM_CUDA_CHECK_LAUNCH();
    });
  }
  r.loss = reduce_losses(losses, target, r.count, params.reduction);
  return r;
}

// ---------------------------------------------------------------- cross-entropy backward

namespace {

// One thread per element (n, c, i), position p = n inner + i:
//   gx = w p_c - w eps / C - [c == t] w (1 - eps),  p_c = exp((x_c - m) - log_sum)
// (the CPU's operation order); 0 where t is ignored.
template <class I>
__global__ void cross_entropy_backward_kernel(const float* __restrict__ x, const I* __restrict__ t,
                                              const float* __restrict__ m,
                                              const float* __restrict__ log_sum, LossWeight weight,
                                              std::int64_t numel, std::int64_t classes,
                                              std::int64_t inner, std::int64_t ignore_index,
                                              float eps, float* __restrict__ gx) {
  for (std::int64_t e = thread_index(); e < numel; e += thread_count()) {
    const std::int64_t i = e % inner, oc = e / inner;
    const std::int64_t c = oc % classes, o = oc / classes;
    const std::int64_t p = o * inner + i;
    const std::int64_t tp = static_cast<std::int64_t>(t[p]);
    if (tp == ignore_index) {
      gx[e] = 0.0f;
      continue;
    }
    const float w = weight.at(p);
    const float a = w * eps / static_cast<float>(classes);
    float v = w * expf((x[e] - m[p]) - log_sum[p]) - a;
    if (c == tp) v -= w * (1.0f - eps);
    gx[e] = v;
  }
}

// One block per row of C contiguous classes (inner == 1, long rows): the
// same arithmetic as cross_entropy_backward_kernel without its per-element
// index divisions; four classes per load when C % 4 == 0 (rows stay 16-byte
// aligned: vec).
template <class I>
__global__ void cross_entropy_backward_rows(const float* __restrict__ x, const I* __restrict__ t,
                                            const float* __restrict__ m,
                                            const float* __restrict__ log_sum, LossWeight weight,
                                            std::int64_t rows, std::int64_t classes,
                                            std::int64_t ignore_index, float eps, bool vec,
                                            float* __restrict__ gx) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * classes;
    float* gr = gx + r * classes;
    const std::int64_t tr = static_cast<std::int64_t>(t[r]);
    if (tr == ignore_index) {
      for (std::int64_t c = threadIdx.x; c < classes; c += blockDim.x) gr[c] = 0.0f;
      continue;
    }
    const float w = weight.at(r);
    const float a = w * eps / static_cast<float>(classes);
    const float mr = m[r], lr = log_sum[r];
    const float hit = w * (1.0f - eps);
    if (vec) {
      const float4* x4 = reinterpret_cast<const float4*>(xr);
      float4* g4 = reinterpret_cast<float4*>(gr);
      for (std::int64_t q = threadIdx.x; q < classes / 4; q += blockDim.x) {
        const float4 v = x4[q];
        float4 o;
        o.x = w * expf((v.x - mr) - lr) - a;
        o.y = w * expf((v.y - mr) - lr) - a;
        o.z = w * expf((v.z - mr) - lr) - a;
        o.w = w * expf((v.w - mr) - lr) - a;
        const std::int64_t c = 4 * q;
        if (tr >= c && tr < c + 4) {
          const std::int64_t k = tr - c;
          if (k == 0) o.x -= hit;
          if (k == 1) o.y -= hit;
          if (k == 2) o.z -= hit;
          if (k == 3) o.w -= hit;
        }
        g4[q] = o;
      }
    } else {
      for (std::int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
        float v = w * expf((xr[c] - mr) - lr) - a;
        if (c == tr) v -= hit;
        gr[c] = v;
      }
    }
  }
}

}  // namespace

Tensor cross_entropy_backward(const Tensor& grad_in, const Tensor& logits_in,
                              const Tensor& target_in, const CrossEntropyResult& saved,
                              const ClassLossParams& params) {
  const char* op = "cross_entropy";
  require_cuda_float32(op, {&grad_in, &logits_in, &saved.max, &saved.log_sum});
  const Tensor target = device_target(op, target_in, logits_in);
  const Tensor logits = logits_in.contiguous(), grad = grad_in.contiguous();
  const Tensor max = saved.max.contiguous(), log_sum = saved.log_sum.contiguous();
  const Layout l = scores_layout(logits.shape());
  Tensor gx = Tensor::empty(logits.shape(), DType::Float32, logits.device());
  const std::int64_t numel = logits.numel();
  if (numel == 0) return gx;
  const LossWeight weight = loss_weight(op, grad, params.reduction, saved.count, l.outer * l.inner);
  dispatch_index(target.dtype(), op, [&](auto tag) {
    using I = typename decltype(tag)::type;
    const float eps = static_cast<float>(params.label_smoothing);
    if (l.inner == 1 && l.classes >= kThreads) {
      cross_entropy_backward_rows<I><<<blocks_for(l.outer, 1), kThreads>>>(
          logits.data<float>(), target.data<I>(), max.data<float>(), log_sum.data<float>(), weight,
          l.outer, l.classes, params.ignore_index, eps, rows_vec4(logits, l.classes),
          gx.data<float>());
    } else {
      cross_entropy_backward_kernel<I><<<blocks_for(numel), kThreads>>>(
          logits.data<float>(), target.data<I>(), max.data<float>(), log_sum.data<float>(), weight,
          numel, l.classes, l.inner, params.ignore_index, eps, gx.data<float>());
    }
    SSM_CUDA_CHECK_LAUNCH();
  });
  return gx;
}

// ---------------------------------------------------------------- nll_loss

namespace {

// loss_p = -x[n, t, i] per position p = n inner + i whose target t is not
// ignored (0 otherwise); x read through its view's indexer (no copy).
template <class I>
__global__ void nll_forward_kernel(const float* __restrict__ x, Indexer ix, const I* __restrict__ t,
                                   std::int64_t positions, std::int64_t classes, std::int64_t inner,
                                   std::int64_t ignore_index, float* __restrict__ loss) {
  for (std::int64_t p = thread_index(); p < positions; p += thread_count()) {
    const std::int64_t tp = static_cast<std::int64_t>(t[p]);
    const std::int64_t o = p / inner, i = p - o * inner;
    loss[p] = tp == ignore_index ? 0.0f : -x[ix((o * classes + tp) * inner + i)];
  }
}

// gx[n, c, i] = -w at c == t (t not ignored), 0 elsewhere; one thread per
// element, so every element is written once (no zero fill, no scatter).
template <class I>
__global__ void nll_backward_kernel(const I* __restrict__ t, LossWeight weight, std::int64_t numel,
                                    std::int64_t classes, std::int64_t inner,
                                    std::int64_t ignore_index, float* __restrict__ gx) {
  for (std::int64_t e = thread_index(); e < numel; e += thread_count()) {
    const std::int64_t i = e % inner, oc = e / inner;
    const std::int64_t c = oc % classes, o = oc / classes;
    const std::int64_t p = o * inner + i;
    const std::int64_t tp = static_cast<std::int64_t>(t[p]);
    gx[e] = (tp != ignore_index && c == tp) ? -weight.at(p) : 0.0f;
  }
}

}  // namespace

std::pair<Tensor, std::int64_t> nll_loss_forward(const Tensor& log_probs, const Tensor& target_in,
                                                 const ClassLossParams& params) {
  const char* op = "nll_loss";
  require_cuda_float32(op, {&log_probs});
  const Tensor target = device_target(op, target_in, log_probs);
  const Layout l = scores_layout(log_probs.shape());
  const std::int64_t positions = l.outer * l.inner;
  const std::int64_t count = count_targets(op, target, l.classes, params.ignore_index);
  Tensor losses = Tensor::empty({positions}, DType::Float32, log_probs.device());
  if (positions > 0) {
    const Indexer ix = make_indexer(log_probs, op);
    dispatch_index(target.dtype(), op, [&](auto tag) {
      using I = typename decltype(tag)::type;
      nll_forward_kernel<I><<<blocks_for(positions), kThreads>>>(
          log_probs.data<float>(), ix, target.data<I>(), positions, l.classes, l.inner,
          params.ignore_index, losses.data<float>());
      SSM_CUDA_CHECK_LAUNCH();
    });
  }
  return {reduce_losses(losses, target, count, params.reduction), count};
}

Tensor nll_loss_backward(const Tensor& grad_in, const Shape& log_probs_shape,
                         const Tensor& target_in, std::int64_t count,
                         const ClassLossParams& params) {
  const char* op = "nll_loss";
  require_cuda_float32(op, {&grad_in});
  const Tensor target = device_target(op, target_in, grad_in);
  const Tensor grad = grad_in.contiguous();
  const Layout l = scores_layout(log_probs_shape);
  Tensor gx = Tensor::empty(log_probs_shape, DType::Float32, grad.device());
  const std::int64_t numel = gx.numel();
  if (numel == 0) return gx;
  const LossWeight weight = loss_weight(op, grad, params.reduction, count, l.outer * l.inner);
  dispatch_index(target.dtype(), op, [&](auto tag) {
    using I = typename decltype(tag)::type;
    nll_backward_kernel<I><<<blocks_for(numel), kThreads>>>(
        target.data<I>(), weight, numel, l.classes, l.inner, params.ignore_index, gx.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  });
  return gx;
}

// ---------------------------------------------------------------- mse_loss

namespace {

// out = (x - t)^2 per element.
__global__ void squared_diff_kernel(const float* __restrict__ x, const float* __restrict__ t,
                                    std::int64_t n, float* __restrict__ out) {
  for (std::int64_t i = thread_index(); i < n; i += thread_count()) {
    out[i] = (x[i] - t[i]) * (x[i] - t[i]);
  }
}

// g = 2 w (x - t), ginput = g, gtarget = -g (either may be null).
__global__ void mse_backward_kernel(const float* __restrict__ x, const float* __restrict__ t,
                                    LossWeight weight, std::int64_t n, float* __restrict__ gx,
                                    float* __restrict__ gt) {
  for (std::int64_t i = thread_index(); i < n; i += thread_count()) {
    const float g = 2.0f * weight.at(i) * (x[i] - t[i]);
    if (gx) gx[i] = g;
    if (gt) gt[i] = -g;
  }
}

}  // namespace

// (x - t)^2 per element; sum and mean accumulate in double.
Tensor mse_loss_forward(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
  const char* op = "mse_loss";
  require_cuda_float32(op, {&input_in, &target_in});
  SSM_CHECK(input_in.shape() == target_in.shape(), op, "input ", input_in.desc(), " and target ",
            target_in.desc(), " must have the same shape");
  const Tensor x = input_in.contiguous(), t = target_in.contiguous();
  const std::int64_t n = x.numel();
  if (reduction == Reduction::None) {
    Tensor out = Tensor::empty(x.shape(), DType::Float32, x.device());
    if (n == 0) return out;
    squared_diff_kernel<<<blocks_for(n), kThreads>>>(x.data<float>(), t.data<float>(), n,
                                                     out.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
    return out;
  }
  // Mean of no elements is 0 / 0 = NaN, as in PyTorch.
  return reduce_to_scalar(
      SquaredDiffAt{n > 0 ? x.data<float>() : nullptr, n > 0 ? t.data<float>() : nullptr}, n,
      reduction == Reduction::Mean, n, x.device());
}

// ginput = 2 w (x - t), gtarget = -ginput.
std::pair<Tensor, Tensor> mse_loss_backward(const Tensor& grad_in, const Tensor& input_in,
                                            const Tensor& target_in, Reduction reduction,
                                            bool need_input, bool need_target) {
  const char* op = "mse_loss";
  require_cuda_float32(op, {&grad_in, &input_in, &target_in});
  SSM_CHECK(input_in.shape() == target_in.shape(), op, "input ", input_in.desc(), " and target ",
            target_in.desc(), " must have the same shape");
  const Tensor x = input_in.contiguous(), t = target_in.contiguous();
  const Tensor grad = grad_in.contiguous();
  const std::int64_t n = x.numel();
  Tensor gx = need_input ? Tensor::empty(x.shape(), DType::Float32, x.device()) : Tensor();
  Tensor gt = need_target ? Tensor::empty(x.shape(), DType::Float32, x.device()) : Tensor();
  if (n == 0 || (!need_input && !need_target)) return {gx, gt};
  const LossWeight weight = loss_weight(op, grad, reduction, n, n);
  mse_backward_kernel<<<blocks_for(n), kThreads>>>(x.data<float>(), t.data<float>(), weight, n,
                                                   need_input ? gx.data<float>() : nullptr,
                                                   need_target ? gt.data<float>() : nullptr);
  SSM_CUDA_CHECK_LAUNCH();
  return {gx, gt};
}

}  // namespace ssm::kernels::cuda
