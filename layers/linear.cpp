#include "layers/linear.h"

#include <cmath>

#include "autograd/ops.h"

namespace ssm {

Tensor uniform_fan_in(const Shape& shape, std::int64_t fan_in, Generator& gen, DType dtype) {
  SSM_CHECK(fan_in > 0, "init", "fan_in must be positive, got ", fan_in);
  SSM_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "init",
            "parameters must be float32 or float64, got ", dtype_name(dtype));
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  Tensor t = Tensor::empty(shape, dtype);
  uniform_(t, -bound, bound, gen);
  return t;
}

namespace {

std::int64_t checked_features(std::int64_t in, std::int64_t out) {
  SSM_CHECK(in > 0 && out > 0, "Linear", "in and out features must be positive, got ", in, " and ",
            out);
  return in;
}

}  // namespace

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias, Generator& gen,
               DType dtype)
    : in_(checked_features(in_features, out_features)),
      out_(out_features),
      weight_(register_parameter("weight", uniform_fan_in({out_, in_}, in_, gen, dtype))) {
  if (bias) {
    bias_ = &register_parameter("bias", uniform_fan_in({out_}, in_, gen, dtype), {"no_decay"});
  }
}

Tensor Linear::forward(const Tensor& x) const { return linear(x, weight_, bias()); }

}  // namespace ssm
