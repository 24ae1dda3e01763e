#pragma once
// Linear: y = x W^T + b, PyTorch's nn.Linear (same parameter names and layout).
//
//   weight (out, in)   U(-1/sqrt(in), 1/sqrt(in))   (kaiming_uniform with a = sqrt(5))
//   bias   (out)       U(-1/sqrt(in), 1/sqrt(in))   tag "no_decay"
#include <cstdint>

#include "core/rng.h"
#include "layers/module.h"

namespace ssm {

class Linear : public Module {
 public:
  // Draws weight, then bias, from gen. dtype: float32 or float64.
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias, Generator& gen,
         DType dtype = DType::Float32);

  Tensor forward(const Tensor& x) const;  // (..., in) -> (..., out)

  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  const Tensor& weight() const { return weight_; }           // (out, in)
  Tensor bias() const { return bias_ ? *bias_ : Tensor(); }  // (out), or undefined

 private:
  std::int64_t in_, out_;
  Tensor& weight_;          // (out, in)
  Tensor* bias_ = nullptr;  // (out), null without bias
};

// A tensor of `shape` drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's
// default for nn.Linear and nn.Conv1d weights and biases.
Tensor uniform_fan_in(const Shape& shape, std::int64_t fan_in, Generator& gen, DType dtype);

}  // namespace ssm
