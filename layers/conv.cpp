#include "layers/conv.h"

#include "autograd/ops.h"
#include "layers/linear.h"

namespace ssm {

namespace {

Shape checked_weight_shape(std::int64_t channels, std::int64_t k) {
  SSM_CHECK(channels > 0 && k > 0, "CausalConv1d",
            "channels and kernel size must be positive, got ", channels, " and ", k);
  return {channels, 1, k};
}

}  // namespace

CausalConv1d::CausalConv1d(std::int64_t channels, std::int64_t kernel_size, bool bias,
                           Generator& gen, DType dtype)
    : weight_(register_parameter(
          "weight",
          uniform_fan_in(checked_weight_shape(channels, kernel_size), kernel_size, gen, dtype))) {
  if (bias) {
    bias_ = &register_parameter("bias", uniform_fan_in({channels}, kernel_size, gen, dtype),
                                {"no_decay"});
  }
}

Tensor CausalConv1d::forward(const Tensor& x, bool silu) const {
  return causal_conv1d(x, weight_, bias(), silu);
}

}  // namespace ssm
