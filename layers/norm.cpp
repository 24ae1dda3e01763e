#include "layers/norm.h"

#include "autograd/ops.h"

namespace ssm {

namespace {

std::int64_t checked_dim(const char* op, std::int64_t d, double eps) {
  SSM_CHECK(d > 0, op, "normalized size must be positive, got ", d);
  SSM_CHECK(eps > 0.0, op, "eps must be positive, got ", eps);
  return d;
}

}  // namespace

LayerNorm::LayerNorm(std::int64_t d, double eps, DType dtype)
    : d_(checked_dim("LayerNorm", d, eps)),
      eps_(eps),
      weight_(register_parameter("weight", Tensor::ones({d_}, dtype), {"no_decay"})),
      bias_(register_parameter("bias", Tensor::zeros({d_}, dtype), {"no_decay"})) {}

Tensor LayerNorm::forward(const Tensor& x) const {
  return layer_norm(x, {d_}, weight_, bias_, eps_);
}

RMSNorm::RMSNorm(std::int64_t d, double eps, DType dtype)
    : d_(checked_dim("RMSNorm", d, eps)),
      eps_(eps),
      weight_(register_parameter("weight", Tensor::ones({d_}, dtype), {"no_decay"})) {}

Tensor RMSNorm::forward(const Tensor& x) const { return rms_norm(x, {d_}, weight_, eps_); }

std::shared_ptr<Norm> make_norm(const std::string& kind, std::int64_t d, double eps, DType dtype) {
  if (kind == "layer") return std::make_shared<LayerNorm>(d, eps, dtype);
  if (kind == "rms") return std::make_shared<RMSNorm>(d, eps, dtype);
  fail("make_norm", "unknown norm '", kind, "' (expected layer or rms)");
}

}  // namespace ssm
