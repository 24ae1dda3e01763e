#pragma once
// Optimizer kernels for CUDA parameters (train/optim.cpp calls them): one
// launch updates every float32 parameter of an Adam / AdamW step, and the
// gradient-norm helpers of clip_grad_norm.
#include <cstdint>
#include <vector>

namespace ssm::kernels::cuda {

// Makes device `index` current; the functions below run on the current device.
void use_device(int index);

// One parameter's update: torch.optim's single-tensor Adam(W) formula with
// the same fused multiply-adds as the CPU kernel (train/optim.cpp):
//   g = l2 != 0 ? fma(l2, p, g) : g;  pd = p * decay
//   m = fma(1-b1, g, m b1);  v = fma((1-b2) g, g, v b2)
//   p = pd + (neg_step_size m) / (sqrt(v) / bc2_sqrt + eps)
struct AdamTensor {
  float* param;
  const float* grad;
  float* exp_avg;
  float* exp_avg_sq;
  std::int64_t n;
  float l2, decay, neg_step_size, bc2_sqrt;
};

// All tensors (on the current device) in one launch: the tensors are cut into
// chunks of 2^16 elements and each block updates one chunk. The betas (and
// 1 - beta, rounded from double as the CPU does) and eps are shared.
void adam_multi_tensor(const std::vector<AdamTensor>& tensors, float beta1, float one_minus_beta1,
                       float beta2, float one_minus_beta2, float eps);

// sum of x[i]^2 in float64 for n float32 values, in a fixed order (the same
// result on every run).
double sum_squares(const float* x, std::int64_t n);
// x[i] *= f
void scale(float* x, std::int64_t n, float f);

}  // namespace ssm::kernels::cuda
