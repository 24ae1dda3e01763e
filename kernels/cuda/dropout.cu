// CUDA dropout (inverted dropout), float32.
//
// The mask is drawn on the device with the very formula the CPU fill uses
// (core/rng_draw.h, __host__ __device__): the generator reserves the same
// Philox blocks as bernoulli_ does on the CPU (rng_blocks(Bernoulli, n) from
// its offset), and element i of the contiguous x takes lane i % 4 of block
// first + i / 4. So the same generator state gives the same mask, bit for
// bit, on either device, and leaves the generator in the same state.
#include <cstdint>

#include "core/rng_draw.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dropout.h"

namespace ssm::kernels::cuda {

namespace {

// keep_i = rng_draw(d, i) (1 with probability 1 - p, else 0; d is the
// Bernoulli draw of the CPU's bernoulli_), mask_i = keep_i * scale with
// scale = float(1 / (1 - p)), y_i = x_i mask_i: the CPU's float operations.
__global__ void dropout_forward_kernel(const float* __restrict__ x, RngDraw d, float scale,
                                       std::int64_t n, float* __restrict__ mask,
                                       float* __restrict__ y) {
  for (std::int64_t i = thread_index(); i < n; i += thread_count()) {
    const float m = static_cast<float>(rng_draw(d, static_cast<std::uint64_t>(i))) * scale;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

// gx = grad * mask.
__global__ void dropout_backward_kernel(const float* __restrict__ g, const float* __restrict__ m,
                                        std::int64_t n, float* __restrict__ gx) {
  for (std::int64_t i = thread_index(); i < n; i += thread_count()) gx[i] = g[i] * m[i];
}

}  // namespace

std::pair<Tensor, Tensor> dropout_forward(const Tensor& x_in, double p, Generator& gen) {
  const char* op = "dropout";
  require_cuda_float32(op, {&x_in});
  SSM_CHECK(p >= 0.0 && p <= 1.0, op, "probability p = ", p, " outside [0, 1]");
  const Tensor x = x_in.contiguous();
  if (p == 1.0) {  // everything dropped; nothing to draw
    return {Tensor::zeros(x.shape(), DType::Float32, x.device()),
            Tensor::zeros(x.shape(), DType::Float32, x.device())};
  }
  const std::int64_t n = x.numel();
  // Reserve the blocks exactly as bernoulli_(mask, 1 - p, gen) does (none for n = 0).
  const std::uint64_t first =
      gen.advance(rng_blocks(RngDist::Bernoulli, static_cast<std::uint64_t>(n)));
  const GeneratorState s = gen.state();
  const RngDraw d{RngDist::Bernoulli, s.seed, s.stream, first, 1.0 - p, 0.0};
  Tensor mask = Tensor::empty(x.shape(), DType::Float32, x.device());
  Tensor y = Tensor::empty(x.shape(), DType::Float32, x.device());
  if (n == 0) return {y, mask};
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  dropout_forward_kernel<<<blocks_for(n), kThreads>>>(x.data<float>(), d, scale, n,
                                                      mask.data<float>(), y.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  return {y, mask};
}

Tensor dropout_backward(const Tensor& grad, const Tensor& mask) {
  const char* op = "dropout_backward";
  require_cuda_float32(op, {&grad, &mask});
  SSM_CHECK(grad.shape() == mask.shape(), op, "gradient ", grad.desc(), " does not match the mask ",
            mask.desc());
  const Tensor g = grad.contiguous(), m = mask.contiguous();
  Tensor gx = Tensor::empty(g.shape(), DType::Float32, g.device());
  const std::int64_t n = g.numel();
  if (n == 0) return gx;
  dropout_backward_kernel<<<blocks_for(n), kThreads>>>(g.data<float>(), m.data<float>(), n,
                                                       gx.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  return gx;
}

}  // namespace ssm::kernels::cuda
