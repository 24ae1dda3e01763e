#pragma once
// CausalConv1d: a depthwise causal convolution along the sequence, stored as
// PyTorch's nn.Conv1d(channels, channels, kernel_size, groups=channels,
// padding=kernel_size - 1) and cut to the input length, the way Mamba uses it:
//   weight (channels, 1, kernel_size)  U(-1/sqrt(k), 1/sqrt(k))
//   bias   (channels)                  U(-1/sqrt(k), 1/sqrt(k)), tag "no_decay"
#include <cstdint>

#include "core/rng.h"
#include "layers/module.h"

namespace ssm {

class CausalConv1d : public Module {
 public:
  CausalConv1d(std::int64_t channels, std::int64_t kernel_size, bool bias, Generator& gen,
               DType dtype = DType::Float32);
  // x (B, channels, L) -> (B, channels, L); output t sees inputs t-k+1..t only.
  // silu applies SiLU to the result (fused).
  Tensor forward(const Tensor& x, bool silu = false) const;

  const Tensor& weight() const { return weight_; }           // (channels, 1, k)
  Tensor bias() const { return bias_ ? *bias_ : Tensor(); }  // (channels), or undefined

 private:
  Tensor& weight_;          // (channels, 1, kernel_size)
  Tensor* bias_ = nullptr;  // (channels)
};

}  // namespace ssm
