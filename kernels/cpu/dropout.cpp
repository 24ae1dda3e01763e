// CPU dropout: the mask is drawn by core/rng.h's bernoulli_ (Philox), so the
// same generator state gives the same mask on every device and thread count.
#include "kernels/dropout.h"

#include <cstdint>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cuda/dropout.h"

namespace ssm::kernels {

namespace {

constexpr std::int64_t kParallelMin = 32768;

}  // namespace

// keep ~ Bernoulli(1 - p), mask = keep / (1 - p), y = x * mask.
std::pair<Tensor, Tensor> dropout_forward(const Tensor& x_in, double p, Generator& gen) {
  SSM_CUDA_DISPATCH(x_in, cuda::dropout_forward(x_in, p, gen));
  require_cpu("dropout", {&x_in});
  SSM_CHECK(p >= 0.0 && p <= 1.0, "dropout", "probability p = ", p, " outside [0, 1]");
  const Tensor x = x_in.contiguous();
  if (p == 1.0) {  // everything dropped; nothing to draw
    return {Tensor::zeros(x.shape(), x.dtype()), Tensor::zeros(x.shape(), x.dtype())};
  }
  Tensor mask = Tensor::empty(x.shape(), x.dtype());
  bernoulli_(mask, 1.0 - p, gen);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), "dropout", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    const T* px = x.data<T>();
    T* pm = mask.data<T>();
    T* py = y.data<T>();
    const std::int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (std::int64_t i = 0; i < n; ++i) {
      pm[i] *= scale;
      py[i] = px[i] * pm[i];
    }
  });
  return {y, mask};
}

// gx = grad * mask.
Tensor dropout_backward(const Tensor& grad, const Tensor& mask) {
  SSM_CUDA_DISPATCH(grad, cuda::dropout_backward(grad, mask));
  require_cpu("dropout_backward", {&grad, &mask});
  const Tensor g = grad.contiguous(), m = mask.contiguous();
  Tensor gx = Tensor::empty(g.shape(), g.dtype());
  dispatch_float(g.dtype(), "dropout_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pg = g.data<T>();
    const T* pm = m.data<T>();
    T* po = gx.data<T>();
    const std::int64_t n = g.numel();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (std::int64_t i = 0; i < n; ++i) po[i] = pg[i] * pm[i];
  });
  return gx;
}

}  // namespace ssm::kernels
