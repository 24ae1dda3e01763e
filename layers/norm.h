#pragma once
// Normalization layers over the last dim, PyTorch's names and layouts:
//   LayerNorm(d): weight (d) = 1, bias (d) = 0, both tagged "no_decay"
//   RMSNorm(d):   weight (d) = 1, tagged "no_decay"
// make_norm picks one by the config's name ("layer" | "rms").
#include <cstdint>
#include <memory>
#include <string>

#include "layers/module.h"

namespace ssm {

// A module that normalizes x (..., d) over its last dim.
class Norm : public Module {
 public:
  virtual Tensor forward(const Tensor& x) const = 0;  // (..., d) -> (..., d)
};

// y = (x - mean) / sqrt(var + eps) * weight + bias (biased variance).
class LayerNorm : public Norm {
 public:
  explicit LayerNorm(std::int64_t d, double eps = 1e-5, DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) const override;
  const Tensor& weight() const { return weight_; }  // (d)
  const Tensor& bias() const { return bias_; }      // (d)

 private:
  std::int64_t d_;
  double eps_;
  Tensor& weight_;  // (d)
  Tensor& bias_;    // (d)
};

// y = x / sqrt(mean(x^2) + eps) * weight.
class RMSNorm : public Norm {
 public:
  explicit RMSNorm(std::int64_t d, double eps = 1e-5, DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) const override;
  const Tensor& weight() const { return weight_; }  // (d)

 private:
  std::int64_t d_;
  double eps_;
  Tensor& weight_;  // (d)
};

// kind "layer" -> LayerNorm, "rms" -> RMSNorm; anything else throws.
std::shared_ptr<Norm> make_norm(const std::string& kind, std::int64_t d, double eps = 1e-5,
                                DType dtype = DType::Float32);

}  // namespace ssm
