#include "train/optim.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <set>
#include <sstream>

#include "autograd/tape.h"
#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cuda/optim.h"

// The update rules must round exactly as PyTorch's kernels do: every fused
// multiply-add below is explicit (fused()), and the compiler must not fuse
// any other a * b + c on its own (GCC does so by default wherever the target
// has FMA, for C++ too).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

// On x86-64 each update kernel is compiled twice, for the baseline ISA and for
// Haswell (AVX2 + FMA), and the loader picks one. Both give the same bits:
// fma, sqrt and the basic operations are correctly rounded on either.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SSM_OPTIM_KERNEL [[gnu::target_clones("default", "arch=haswell")]]
#else
#define SSM_OPTIM_KERNEL
#endif

namespace ssm {

namespace {

// ------------------------------------------------------------ update kernels
// Each kernel updates elements [begin, end) of contiguous arrays; elements
// are independent, so splitting the range over threads never changes a
// result. Scalars arrive already converted to the parameter's type, as
// PyTorch converts a Python float when it calls a kernel on a tensor.

// fma and sqrt as always-inline builtins: std::fma(float, ...) and
// std::sqrt(float) are ordinary inline functions, which GCC does not inline
// into a function compiled for another -march (the Haswell clones), where
// they would become calls to libm.
#if defined(__GNUC__)
[[gnu::always_inline]] inline float fused(float a, float b, float c) {
  return __builtin_fmaf(a, b, c);
}
[[gnu::always_inline]] inline double fused(double a, double b, double c) {
  return __builtin_fma(a, b, c);
}
[[gnu::always_inline]] inline float root(float x) { return __builtin_sqrtf(x); }
[[gnu::always_inline]] inline double root(double x) { return __builtin_sqrt(x); }
#else
inline float fused(float a, float b, float c) { return std::fma(a, b, c); }
inline double fused(double a, double b, double c) { return std::fma(a, b, c); }
inline float root(float x) { return std::sqrt(x); }
inline double root(double x) { return std::sqrt(x); }
#endif

// Calls body(begin, end) over [0, n) in fixed chunks, in parallel when there
// is more than one.
template <class F>
void for_chunks(std::int64_t n, const F& body) {
  constexpr std::int64_t kChunk = std::int64_t{1} << 15;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) body(c * kChunk, std::min(n, (c + 1) * kChunk));
}

template <class T>
struct AdamArgs {
  T* param;
  const T* grad;
  T* exp_avg;
  T* exp_avg_sq;
  T l2;     // Adam's coupled weight decay (0: none)
  T decay;  // AdamW's 1 - lr wd (1 for Adam)
  T beta1, one_minus_beta1, beta2, one_minus_beta2;
  T bias_correction2_sqrt;
  T eps;
  T neg_step_size;  // -lr / bias_correction1
};

// torch.optim._single_tensor_adam(w), one element at a time:
//   grad = grad.add(param, alpha=wd)                  (Adam, wd != 0)  fma(wd, p, g)
//   param.mul_(1 - lr wd)                             (AdamW)
//   exp_avg.mul_(b1).add_(grad, alpha=1-b1)                            fma(1-b1, g, m b1)
//   exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1-b2)               fma((1-b2) g, g, v b2)
//   denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
//   param.addcdiv_(exp_avg, denom, value=-step_size)                   p + (-step_size m) / denom
template <bool kL2, class T>
[[gnu::always_inline]] inline void adam_loop(const AdamArgs<T>& a, std::int64_t begin,
                                             std::int64_t end) {
  // Scalars in locals: stores through the pointers cannot alias them.
  T* __restrict p = a.param;
  const T* __restrict gr = a.grad;
  T* __restrict m = a.exp_avg;
  T* __restrict v = a.exp_avg_sq;
  const T l2 = a.l2, decay = a.decay, beta1 = a.beta1, omb1 = a.one_minus_beta1;
  const T beta2 = a.beta2, omb2 = a.one_minus_beta2, bc2_sqrt = a.bias_correction2_sqrt;
  const T eps = a.eps, neg_step_size = a.neg_step_size;
  for (std::int64_t i = begin; i < end; ++i) {
    const T g = kL2 ? fused(l2, p[i], gr[i]) : gr[i];
    const T pd = p[i] * decay;
    const T mi = fused(omb1, g, m[i] * beta1);
    const T vi = fused(omb2 * g, g, v[i] * beta2);
    const T denom = root(vi) / bc2_sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pd + (neg_step_size * mi) / denom;
  }
}

// (Helpers of the kernels are always_inline: GCC does not inline a function
// compiled for the baseline ISA into a Haswell clone.)
template <class T>
[[gnu::always_inline]] inline void adam_range(const AdamArgs<T>& a, std::int64_t begin,
                                              std::int64_t end) {
  if (a.l2 != T(0)) {
    adam_loop<true>(a, begin, end);
  } else {
    adam_loop<false>(a, begin, end);
  }
}

SSM_OPTIM_KERNEL void adam_kernel(const AdamArgs<float>& a, std::int64_t begin, std::int64_t end) {
  adam_range(a, begin, end);
}
SSM_OPTIM_KERNEL void adam_kernel(const AdamArgs<double>& a, std::int64_t begin, std::int64_t end) {
  adam_range(a, begin, end);
}

template <class T>
struct SgdArgs {
  T* param;
  const T* grad;
  T* momentum_buffer;  // null without momentum
  bool first;          // the buffer is unset: it becomes the gradient
  bool nesterov;
  T weight_decay;
  T momentum;
  T one_minus_dampening;
  T neg_lr;
};

// torch.optim._single_tensor_sgd, one element at a time:
//   d_p = d_p.add(param, alpha=wd)                      (wd != 0)       fma(wd, p, d)
//   buf = clone(d_p) at the first step, else
//   buf.mul_(mu).add_(d_p, alpha=1-dampening)                           fma(d, 1-damp, buf mu)
//   d_p = nesterov ? d_p.add(buf, alpha=mu) : buf                       fma(mu, buf, d)
//   param.add_(d_p, alpha=-lr)                                          fma(-lr, d, p)
template <bool kWd, bool kMomentum, bool kFirst, bool kNesterov, class T>
[[gnu::always_inline]] inline void sgd_loop(const SgdArgs<T>& a, std::int64_t begin,
                                            std::int64_t end) {
  T* __restrict p = a.param;
  const T* __restrict gr = a.grad;
  T* __restrict buf = a.momentum_buffer;
  const T wd = a.weight_decay, mu = a.momentum, omd = a.one_minus_dampening, neg_lr = a.neg_lr;
  for (std::int64_t i = begin; i < end; ++i) {
    T d = kWd ? fused(wd, p[i], gr[i]) : gr[i];
    if constexpr (kMomentum) {
      const T b = kFirst ? d : fused(d, omd, buf[i] * mu);
      buf[i] = b;
      d = kNesterov ? fused(mu, b, d) : b;
    }
    p[i] = fused(neg_lr, d, p[i]);
  }
}

template <bool kWd, class T>
[[gnu::always_inline]] inline void sgd_momentum(const SgdArgs<T>& a, std::int64_t begin,
                                                std::int64_t end) {
  if (!a.momentum_buffer) {
    sgd_loop<kWd, false, false, false>(a, begin, end);
  } else if (a.first) {
    a.nesterov ? sgd_loop<kWd, true, true, true>(a, begin, end)
               : sgd_loop<kWd, true, true, false>(a, begin, end);
  } else {
    a.nesterov ? sgd_loop<kWd, true, false, true>(a, begin, end)
               : sgd_loop<kWd, true, false, false>(a, begin, end);
  }
}

template <class T>
[[gnu::always_inline]] inline void sgd_range(const SgdArgs<T>& a, std::int64_t begin,
                                             std::int64_t end) {
  if (a.weight_decay != T(0)) {
    sgd_momentum<true>(a, begin, end);
  } else {
    sgd_momentum<false>(a, begin, end);
  }
}

SSM_OPTIM_KERNEL void sgd_kernel(const SgdArgs<float>& a, std::int64_t begin, std::int64_t end) {
  sgd_range(a, begin, end);
}
SSM_OPTIM_KERNEL void sgd_kernel(const SgdArgs<double>& a, std::int64_t begin, std::int64_t end) {
  sgd_range(a, begin, end);
}

// ------------------------------------------------------------ helpers

std::string sig(const Tensor& t) {
  std::ostringstream os;
  os << shape_str(t.shape()) << ' ' << dtype_name(t.dtype());
  return os.str();
}

// Runs f(param, grad) on contiguous tensors: the parameter itself when it is
// contiguous, else a contiguous copy that is written back afterwards.
template <class F>
void with_contiguous(const Tensor& param, const Tensor& grad, const F& f) {
  const Tensor g = grad.contiguous();
  if (param.is_contiguous()) {
    f(param, g);
    return;
  }
  const Tensor work = param.contiguous();
  f(work, g);
  NoGradGuard no_grad;
  param.detach().copy_(work);
}

// The per-parameter state every optimizer here keeps: a few tensors of the
// parameter's shape, dtype and device (zeros at first), and a step count.
struct ParamState {
  std::vector<Tensor> tensors;  // in the order of the optimizer's tensor keys
  std::int64_t step = 0;
};

class StatefulOptimizer : public Optimizer {
 public:
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;

 protected:
  StatefulOptimizer(const char* op, std::vector<ParamGroup> groups,
                    std::vector<std::string> tensor_keys);

  // The state of p, created (zeros, step 0) on first use.
  ParamState& state_of(const NamedParameter& p);
  // The gradient of p, checked against p; undefined when p has none.
  Tensor checked_grad(const NamedParameter& p) const;

  const char* op_;

 private:
  ParamState fresh_state(const NamedParameter& p) const;

  std::vector<std::string> tensor_keys_;
  std::map<std::string, ParamState> states_;  // by parameter name
};

// The optimizers with a CUDA kernel (Adam and AdamW) in a CUDA build; any
// other combination throws naming the optimizer.
bool cuda_compiled_optimizer(const char* op) {
#if defined(SSM_WITH_CUDA)
  SSM_CHECK(std::string(op) != "sgd", op,
            "has no CUDA kernel yet; use optimizer.name adam or adamw on the GPU");
  return true;
#else
  fail(op, "CUDA parameters need a CUDA build of ssmkit");
#endif
}

StatefulOptimizer::StatefulOptimizer(const char* op, std::vector<ParamGroup> groups,
                                     std::vector<std::string> tensor_keys)
    : Optimizer(std::move(groups)), op_(op), tensor_keys_(std::move(tensor_keys)) {
  std::set<std::string> names;
  std::set<const TensorImpl*> tensors;
  for (const ParamGroup& g : groups_) {
    SSM_CHECK(g.lr >= 0 && g.base_lr >= 0 && g.weight_decay >= 0, op_, "group '", g.name,
              "' needs lr, base_lr and weight_decay >= 0, got ", g.lr, ", ", g.base_lr, ", ",
              g.weight_decay);
    for (const NamedParameter& p : g.params) {
      SSM_CHECK(p.tensor.defined(), op_, "parameter '", p.name, "' is undefined");
      SSM_CHECK(p.tensor.dtype() == DType::Float32 || p.tensor.dtype() == DType::Float64, op_,
                "parameter '", p.name, "' must be float32 or float64, got ", p.tensor.desc());
      SSM_CHECK(names.insert(p.name).second, op_, "parameter name '", p.name,
                "' appears more than once");
      SSM_CHECK(tensors.insert(p.tensor.impl()).second, op_, "parameter '", p.name,
                "' is the same tensor as another parameter");
      states_.emplace(p.name, fresh_state(p));
    }
  }
}

ParamState StatefulOptimizer::fresh_state(const NamedParameter& p) const {
  ParamState s;
  for (std::size_t k = 0; k < tensor_keys_.size(); ++k) {
    s.tensors.push_back(Tensor::zeros(p.tensor.shape(), p.tensor.dtype(), p.tensor.device()));
  }
  return s;
}

ParamState& StatefulOptimizer::state_of(const NamedParameter& p) {
  auto it = states_.find(p.name);
  if (it == states_.end()) it = states_.emplace(p.name, fresh_state(p)).first;
  return it->second;
}

Tensor StatefulOptimizer::checked_grad(const NamedParameter& p) const {
  const Tensor grad = p.tensor.grad();
  if (!grad.defined()) return grad;
  if (p.tensor.device().is_cuda()) {
    SSM_CHECK(cuda_compiled_optimizer(op_) && grad.device() == p.tensor.device() &&
                  p.tensor.dtype() == DType::Float32 && p.tensor.is_contiguous(),
              op_, "on the GPU, parameter '", p.name,
              "' must be a contiguous float32 tensor with its gradient on the same device; got ",
              p.tensor.desc(), " and gradient ", grad.desc());
  } else {
    kernels::require_cpu(op_, {&p.tensor, &grad});
  }
  SSM_CHECK(grad.shape() == p.tensor.shape() && grad.dtype() == p.tensor.dtype(), op_,
            "the gradient of '", p.name, "' is ", grad.desc(), ", the parameter ", p.tensor.desc());
  return grad;
}

OptimizerState StatefulOptimizer::state() const {
  OptimizerState out;
  for (const ParamGroup& g : groups_) {
    for (const NamedParameter& p : g.params) {
      const auto it = states_.find(p.name);
      const ParamState s = it != states_.end() ? it->second : fresh_state(p);
      for (std::size_t k = 0; k < tensor_keys_.size(); ++k) {
        const Tensor& t = s.tensors[k];
        out.tensors.emplace_back(p.name + "/" + tensor_keys_[k],
                                 t.device().is_cpu() ? t.clone() : t.to(Device::cpu()));
      }
      out.counters.emplace_back(p.name + "/step", s.step);
    }
  }
  return out;
}

void StatefulOptimizer::load_state(const OptimizerState& state) {
  std::map<std::string, const Tensor*> tensors;
  std::map<std::string, std::int64_t> counters;
  std::vector<std::string> problems;
  for (const auto& [key, t] : state.tensors) {
    if (!tensors.emplace(key, &t).second) problems.push_back("duplicate key " + key);
  }
  for (const auto& [key, n] : state.counters) {
    if (!counters.emplace(key, n).second) problems.push_back("duplicate key " + key);
  }
  // (destination, source) pairs, and the step counts to set, applied only
  // when everything matches.
  std::vector<std::pair<Tensor, const Tensor*>> copies;
  std::vector<std::pair<ParamState*, std::int64_t>> steps;
  for (const ParamGroup& g : groups_) {
    for (const NamedParameter& p : g.params) {
      ParamState& s = state_of(p);
      for (std::size_t k = 0; k < tensor_keys_.size(); ++k) {
        const std::string key = p.name + "/" + tensor_keys_[k];
        const auto it = tensors.find(key);
        if (it == tensors.end()) {
          problems.push_back("missing key " + key);
          continue;
        }
        const Tensor& src = *it->second;
        tensors.erase(it);
        const Tensor& dst = s.tensors[k];
        if (!src.defined() || src.shape() != dst.shape() || src.dtype() != dst.dtype()) {
          problems.push_back("mismatch " + key + ": expected " + sig(dst) + ", got " +
                             (src.defined() ? sig(src) : std::string("undefined")));
          continue;
        }
        copies.emplace_back(dst, &src);
      }
      const std::string key = p.name + "/step";
      const auto it = counters.find(key);
      if (it == counters.end()) {
        problems.push_back("missing key " + key);
        continue;
      }
      if (it->second < 0) {
        problems.push_back("mismatch " + key + ": expected a count >= 0, got " +
                           std::to_string(it->second));
      } else {
        steps.emplace_back(&s, it->second);
      }
      counters.erase(it);
    }
  }
  for (const auto& [key, t] : tensors) problems.push_back("unexpected key " + key);
  for (const auto& [key, n] : counters) problems.push_back("unexpected key " + key);
  if (!problems.empty()) {
    std::string msg;
    for (const std::string& line : problems) msg += "\n" + line;
    fail(op_, "optimizer state does not match the parameters:", msg);
  }
  for (auto& [dst, src] : copies) dst.copy_(*src);
  for (auto& [s, n] : steps) s->step = n;
}

// ------------------------------------------------------------ SGD

class Sgd final : public StatefulOptimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, double momentum, bool nesterov)
      : StatefulOptimizer("sgd", std::move(groups),
                          momentum != 0.0 ? std::vector<std::string>{"momentum_buffer"}
                                          : std::vector<std::string>{}),
        momentum_(momentum),
        nesterov_(nesterov) {}

  void step() override {
    NoGradGuard no_grad;
    for (const ParamGroup& group : groups_) {
      for (const NamedParameter& p : group.params) {
        const Tensor grad = checked_grad(p);
        if (!grad.defined()) continue;
        ParamState& s = state_of(p);
        with_contiguous(p.tensor, grad, [&](const Tensor& param, const Tensor& g) {
          dispatch_float(param.dtype(), op_, [&](auto tag) {
            using T = typename decltype(tag)::type;
            SgdArgs<T> a{};
            a.param = param.data<T>();
            a.grad = g.data<T>();
            a.momentum_buffer = momentum_ != 0.0 ? s.tensors[0].data<T>() : nullptr;
            a.first = s.step == 0;
            a.nesterov = nesterov_;
            a.weight_decay = static_cast<T>(group.weight_decay);
            a.momentum = static_cast<T>(momentum_);
            a.one_minus_dampening = static_cast<T>(1.0 - dampening_);
            a.neg_lr = static_cast<T>(-group.lr);
            for_chunks(param.numel(), [&](std::int64_t b, std::int64_t e) { sgd_kernel(a, b, e); });
          });
        });
        ++s.step;
      }
    }
  }

 private:
  double momentum_;
  bool nesterov_;
  double dampening_ = 0.0;  // PyTorch's default; not configurable here
};

// ------------------------------------------------------------ Adam, AdamW

class Adam final : public StatefulOptimizer {
 public:
  Adam(const char* op, std::vector<ParamGroup> groups, const OptimizerConfig& c, bool decoupled)
      : StatefulOptimizer(op, std::move(groups), {"exp_avg", "exp_avg_sq"}),
        beta1_(c.beta1),
        beta2_(c.beta2),
        eps_(c.eps),
        decoupled_(decoupled) {}

  void step() override {
    NoGradGuard no_grad;
#if defined(SSM_WITH_CUDA)
    // CUDA parameters are collected and updated by one launch at the end.
    std::vector<kernels::cuda::AdamTensor> on_gpu;
    std::vector<Tensor> keep;  // contiguous gradients the launch reads
    int gpu_device = -1;
#endif
    for (const ParamGroup& group : groups_) {
      for (const NamedParameter& p : group.params) {
        const Tensor grad = checked_grad(p);
        if (!grad.defined()) continue;
        ParamState& s = state_of(p);
        ++s.step;
        // PyTorch computes these in Python floats (double).
        const double step = static_cast<double>(s.step);
        const double bias_correction1 = 1.0 - std::pow(beta1_, step);
        const double bias_correction2 = 1.0 - std::pow(beta2_, step);
        const double step_size = group.lr / bias_correction1;
        const double bias_correction2_sqrt = std::sqrt(bias_correction2);
#if defined(SSM_WITH_CUDA)
        if (p.tensor.device().is_cuda()) {
          SSM_CHECK(gpu_device < 0 || gpu_device == p.tensor.device().index, op_,
                    "parameters on more than one GPU: '", p.name, "' is ", p.tensor.desc());
          gpu_device = p.tensor.device().index;
          keep.push_back(grad.contiguous());
          kernels::cuda::AdamTensor t{};
          t.param = p.tensor.data<float>();
          t.grad = keep.back().data<float>();
          t.exp_avg = s.tensors[0].data<float>();
          t.exp_avg_sq = s.tensors[1].data<float>();
          t.n = p.tensor.numel();
          t.l2 = decoupled_ ? 0.0f : static_cast<float>(group.weight_decay);
          t.decay = decoupled_ ? static_cast<float>(1.0 - group.lr * group.weight_decay) : 1.0f;
          t.neg_step_size = static_cast<float>(-step_size);
          t.bc2_sqrt = static_cast<float>(bias_correction2_sqrt);
          on_gpu.push_back(t);
          continue;
        }
#endif
        with_contiguous(p.tensor, grad, [&](const Tensor& param, const Tensor& g) {
          dispatch_float(param.dtype(), op_, [&](auto tag) {
            using T = typename decltype(tag)::type;
            AdamArgs<T> a{};
            a.param = param.data<T>();
            a.grad = g.data<T>();
            a.exp_avg = s.tensors[0].data<T>();
            a.exp_avg_sq = s.tensors[1].data<T>();
            a.l2 = decoupled_ ? T(0) : static_cast<T>(group.weight_decay);
            a.decay = decoupled_ ? static_cast<T>(1.0 - group.lr * group.weight_decay) : T(1);
            a.beta1 = static_cast<T>(beta1_);
            a.one_minus_beta1 = static_cast<T>(1.0 - beta1_);
            a.beta2 = static_cast<T>(beta2_);
            a.one_minus_beta2 = static_cast<T>(1.0 - beta2_);
            a.bias_correction2_sqrt = static_cast<T>(bias_correction2_sqrt);
            a.eps = static_cast<T>(eps_);
            a.neg_step_size = static_cast<T>(-step_size);
            for_chunks(param.numel(),
                       [&](std::int64_t b, std::int64_t e) { adam_kernel(a, b, e); });
          });
        });
      }
    }
#if defined(SSM_WITH_CUDA)
    if (!on_gpu.empty()) {
      kernels::cuda::use_device(gpu_device);
      kernels::cuda::adam_multi_tensor(on_gpu, static_cast<float>(beta1_),
                                       static_cast<float>(1.0 - beta1_), static_cast<float>(beta2_),
                                       static_cast<float>(1.0 - beta2_), static_cast<float>(eps_));
    }
#endif
  }

 private:
  double beta1_, beta2_, eps_;
  bool decoupled_;
};

// Sum of squares of a CPU tensor in float64, over fixed chunks whose partial
// sums are added in order: the same result for any number of threads.
double sum_squares(const Tensor& t) {
  const Tensor c = t.contiguous();
  const std::int64_t n = c.numel();
  constexpr std::int64_t kChunk = std::int64_t{1} << 15;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
  dispatch_float(c.dtype(), "clip_grad_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = c.data<T>();
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (std::int64_t k = 0; k < chunks; ++k) {
      double s = 0.0;
      const std::int64_t end = std::min(n, (k + 1) * kChunk);
      for (std::int64_t i = k * kChunk; i < end; ++i) {
        const double v = static_cast<double>(x[i]);
        s += v * v;
      }
      partial[static_cast<std::size_t>(k)] = s;
    }
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

// The GPU versions of sum_squares and of the in-place scaling (float32).
double sum_squares_cuda(const Tensor& t) {
#if defined(SSM_WITH_CUDA)
  const Tensor c = t.contiguous();
  kernels::cuda::use_device(c.device().index);
  return kernels::cuda::sum_squares(c.data<float>(), c.numel());
#else
  fail("clip_grad_norm", "CUDA gradients need a CUDA build, got ", t.desc());
#endif
}

void scale_cuda(const Tensor& contiguous, double coef) {
#if defined(SSM_WITH_CUDA)
  kernels::cuda::use_device(contiguous.device().index);
  kernels::cuda::scale(contiguous.data<float>(), contiguous.numel(), static_cast<float>(coef));
#else
  (void)coef;
  fail("clip_grad_norm", "CUDA gradients need a CUDA build, got ", contiguous.desc());
#endif
}

}  // namespace

// ------------------------------------------------------------ groups

std::vector<ParamGroup> build_param_groups(const std::vector<NamedParameter>& params,
                                           const OptimizerConfig& config) {
  ParamGroup def{"default", {}, config.lr, config.lr, config.weight_decay};
  ParamGroup no_decay{"no_decay", {}, config.lr, config.lr, 0.0};
  const double ssm_lr = config.ssm_lr.value_or(config.lr);
  ParamGroup ssm{"ssm", {}, ssm_lr, ssm_lr, config.ssm_weight_decay};
  for (const NamedParameter& p : params) {
    SSM_CHECK(p.tensor.defined(), "build_param_groups", "parameter '", p.name, "' is undefined");
    if (p.has_tag("ssm")) {
      ssm.params.push_back(p);
    } else if (p.has_tag("no_decay") || p.tensor.dim() <= 1) {
      no_decay.params.push_back(p);
    } else {
      def.params.push_back(p);
    }
  }
  std::vector<ParamGroup> groups;
  for (ParamGroup* g : {&def, &no_decay, &ssm}) {
    if (!g->params.empty()) groups.push_back(std::move(*g));
  }
  return groups;
}

// ------------------------------------------------------------ Optimizer

void Optimizer::zero_grad() {
  for (const ParamGroup& g : groups_) {
    for (const NamedParameter& p : g.params) p.tensor.zero_grad();
  }
}

void Optimizer::set_lr_factor(double factor) {
  SSM_CHECK(std::isfinite(factor) && factor >= 0, "set_lr_factor",
            "factor must be finite and >= 0, got ", factor);
  for (ParamGroup& g : groups_) g.lr = g.base_lr * factor;
}

std::unique_ptr<Optimizer> make_optimizer(const std::vector<NamedParameter>& params,
                                          const OptimizerConfig& config) {
  const OptimizerConfig& c = config;
  const char* op = "make_optimizer";
  const bool known = c.name == "adamw" || c.name == "adam" || c.name == "sgd";
  SSM_CHECK(known, op, "unknown optimizer '", c.name, "'; known: adam, adamw, sgd");
  SSM_CHECK(c.lr >= 0, op, "lr must be >= 0, got ", c.lr);
  SSM_CHECK(c.weight_decay >= 0, op, "weight_decay must be >= 0, got ", c.weight_decay);
  SSM_CHECK(!c.ssm_lr || *c.ssm_lr >= 0, op, "ssm_lr must be >= 0, got ", c.ssm_lr.value_or(0));
  SSM_CHECK(c.ssm_weight_decay >= 0, op, "ssm_weight_decay must be >= 0, got ", c.ssm_weight_decay);
  std::vector<ParamGroup> groups = build_param_groups(params, c);
  if (c.name == "sgd") {
    SSM_CHECK(c.momentum >= 0, op, "momentum must be >= 0, got ", c.momentum);
    SSM_CHECK(!c.nesterov || c.momentum > 0, op, "nesterov needs momentum > 0");
    return std::make_unique<Sgd>(std::move(groups), c.momentum, c.nesterov);
  }
  SSM_CHECK(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1, op,
            "betas must be in [0, 1), got ", c.beta1, ", ", c.beta2);
  SSM_CHECK(c.eps >= 0, op, "eps must be >= 0, got ", c.eps);
  const bool decoupled = c.name == "adamw";
  return std::make_unique<Adam>(decoupled ? "adamw" : "adam", std::move(groups), c, decoupled);
}

// ------------------------------------------------------------ clipping

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    if (!p.defined()) continue;
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!g.device().is_cuda()) kernels::require_cpu("clip_grad_norm", {&g});
    SSM_CHECK(g.device().is_cpu() || g.dtype() == DType::Float32, "clip_grad_norm",
              "CUDA gradients must be float32, got ", g.desc());
    grads.push_back(g);
  }
  double sum = 0.0;
  for (const Tensor& g : grads) sum += g.device().is_cuda() ? sum_squares_cuda(g) : sum_squares(g);
  const double norm = std::sqrt(sum);
  // PyTorch multiplies by min(1, max_norm / (norm + 1e-6)); a factor of 1
  // leaves the gradients as they are. A non-finite norm scales nothing.
  const double coef = max_norm / (norm + 1e-6);
  if (!(max_norm > 0) || !std::isfinite(norm) || !(coef < 1.0)) return norm;
  NoGradGuard no_grad;
  for (const Tensor& g : grads) {
    const Tensor work = g.contiguous();
    if (work.device().is_cuda()) {
      scale_cuda(work, coef);
      if (work.impl() != g.impl()) g.copy_(work);
      continue;
    }
    dispatch_float(work.dtype(), "clip_grad_norm", [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* x = work.data<T>();
      const T f = static_cast<T>(coef);
      const std::int64_t n = work.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
      for (std::int64_t i = 0; i < n; ++i) x[i] *= f;
    });
    if (work.impl() != g.impl()) g.copy_(work);
  }
  return norm;
}

// ------------------------------------------------------------ schedules

// With W = warmup_steps, r = min_lr_ratio and, after the warmup,
// s = step - W:
//   warmup (step < W):  f = (step + 1) / W
//   constant:           f = 1
//   cosine:             f = r + (1 - r) (1 + cos(pi min(s, S) / S)) / 2, S = total_steps - W
//                       (f = r when S <= 0: the schedule is over)
//   step:               f = gamma ^ floor(s / step_size)
double lr_factor(const SchedulerConfig& scheduler, std::int64_t step, std::int64_t total_steps) {
  const SchedulerConfig& c = scheduler;
  const char* op = "lr_factor";
  SSM_CHECK(c.name == "constant" || c.name == "cosine" || c.name == "step", op,
            "unknown scheduler '", c.name, "'; known: constant, cosine, step");
  SSM_CHECK(step >= 0, op, "step must be >= 0, got ", step);
  SSM_CHECK(c.warmup_steps >= 0, op, "warmup_steps must be >= 0, got ", c.warmup_steps);
  if (step < c.warmup_steps) {
    return static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  }
  const std::int64_t s = step - c.warmup_steps;
  if (c.name == "constant") return 1.0;
  if (c.name == "cosine") {
    const std::int64_t span = total_steps - c.warmup_steps;
    if (span <= 0) return c.min_lr_ratio;
    const double progress = static_cast<double>(std::min(s, span)) / static_cast<double>(span);
    return c.min_lr_ratio +
           (1.0 - c.min_lr_ratio) * (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
  }
  SSM_CHECK(c.step_size > 0, op, "step_size must be > 0, got ", c.step_size);
  return std::pow(c.gamma, static_cast<double>(s / c.step_size));
}

}  // namespace ssm
