// Differentiable normalization ops and dropout: shape checks, the kernel
// forward, and a recorded backward that calls the kernel backward.
#include "autograd/ops/norm.h"

#include <algorithm>
#include <string>

#include "autograd/tape.h"
#include "kernels/dropout.h"
#include "kernels/norm.h"

namespace ssm {

namespace {

void check_float(const char* op, const Tensor& x) {
  SSM_CHECK(x.defined(), op, "x is undefined");
  SSM_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op,
            "expected a float32 or float64 x, got ", x.desc());
}

// An optional parameter (weight, bias, running stat): when defined, it must
// have `shape` (`what` says where that shape comes from) and x's dtype and device.
void check_param(const char* op, const char* name, const Tensor& p, const Shape& shape,
                 const std::string& what, const Tensor& x) {
  if (!p.defined()) return;
  SSM_CHECK(p.shape() == shape, op, name, " ", p.desc(), " does not match ", what);
  SSM_CHECK(p.dtype() == x.dtype() && p.device() == x.device(), op, name, " ", p.desc(),
            " must have the dtype and device of x ", x.desc());
}

// The dims of x that normalized_shape names: its trailing dims. Returns their count.
std::int64_t check_normalized_shape(const char* op, const Tensor& x,
                                    const Shape& normalized_shape) {
  const std::int64_t k = static_cast<std::int64_t>(normalized_shape.size());
  SSM_CHECK(k > 0, op, "normalized_shape must have at least one dim, got ()");
  const bool match = x.dim() >= k && std::equal(normalized_shape.begin(), normalized_shape.end(),
                                                x.shape().end() - k);
  SSM_CHECK(match, op, "normalized_shape ", shape_str(normalized_shape),
            " does not match the trailing dims of x ", x.desc());
  return k;
}

Tensor detach_or_undefined(const Tensor& t) { return t.defined() ? t.detach() : Tensor(); }

}  // namespace

// ---------------------------------------------------------------- layer_norm

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  check_float("layer_norm", x);
  const std::int64_t k = check_normalized_shape("layer_norm", x, normalized_shape);
  const std::string what = "normalized_shape " + shape_str(normalized_shape);
  check_param("layer_norm", "weight", weight, normalized_shape, what, x);
  check_param("layer_norm", "bias", bias, normalized_shape, what, x);
  kernels::NormForward f = kernels::layer_norm_forward(x, k, weight, bias, eps);
  if (needs_grad({&x, &weight, &bias})) {
    const bool need_x = x.requires_grad(), need_w = weight.requires_grad(),
               need_b = bias.requires_grad();
    const Tensor sx = x.detach(), sw = detach_or_undefined(weight);
    const Tensor mean = f.mean, rstd = f.rstd;
    record("layer_norm", {x, weight, bias}, {f.y}, [=](const GradList& g) -> GradList {
      kernels::NormGrads r =
          kernels::layer_norm_backward(g[0], sx, mean, rstd, sw, need_x, need_w, need_b);
      return {r.gx, r.gweight, r.gbias};
    });
  }
  return f.y;
}

// ---------------------------------------------------------------- rms_norm

Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, double eps) {
  check_float("rms_norm", x);
  const std::int64_t k = check_normalized_shape("rms_norm", x, normalized_shape);
  check_param("rms_norm", "weight", weight, normalized_shape,
              "normalized_shape " + shape_str(normalized_shape), x);
  kernels::NormForward f = kernels::rms_norm_forward(x, k, weight, eps);
  if (needs_grad({&x, &weight})) {
    const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
    const Tensor sx = x.detach(), sw = detach_or_undefined(weight);
    const Tensor rstd = f.rstd;
    record("rms_norm", {x, weight}, {f.y}, [=](const GradList& g) -> GradList {
      kernels::NormGrads r = kernels::rms_norm_backward(g[0], sx, rstd, sw, need_x, need_w);
      return {r.gx, r.gweight};
    });
  }
  return f.y;
}

// ---------------------------------------------------------------- batch_norm

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  check_float("batch_norm", x);
  SSM_CHECK(x.dim() >= 2, "batch_norm", "expected x of shape (N, C) or (N, C, L...), got ",
            x.desc());
  SSM_CHECK(running_mean.defined() == running_var.defined(), "batch_norm", "running_mean (",
            running_mean.desc(), ") and running_var (", running_var.desc(),
            ") must both be given or both be undefined");
  SSM_CHECK(training || running_mean.defined(), "batch_norm",
            "eval mode (training = false) needs running_mean and running_var");
  const std::int64_t C = x.shape()[1];
  const std::string what = "the " + std::to_string(C) + " channels of x " + x.desc();
  check_param("batch_norm", "running_mean", running_mean, {C}, what, x);
  check_param("batch_norm", "running_var", running_var, {C}, what, x);
  check_param("batch_norm", "weight", weight, {C}, what, x);
  check_param("batch_norm", "bias", bias, {C}, what, x);
  SSM_CHECK(!training || x.numel() / std::max<std::int64_t>(C, 1) > 1 || x.numel() == 0,
            "batch_norm", "expected more than 1 value per channel when training, got x ", x.desc());
  kernels::NormForward f = kernels::batch_norm_forward(x, running_mean, running_var, weight, bias,
                                                       training, momentum, eps);
  if (needs_grad({&x, &weight, &bias})) {
    const bool need_x = x.requires_grad(), need_w = weight.requires_grad(),
               need_b = bias.requires_grad();
    const Tensor sx = x.detach(), sw = detach_or_undefined(weight);
    const Tensor mean = f.mean, rstd = f.rstd;
    record("batch_norm", {x, weight, bias}, {f.y}, [=](const GradList& g) -> GradList {
      kernels::NormGrads r =
          kernels::batch_norm_backward(g[0], sx, mean, rstd, sw, training, need_x, need_w, need_b);
      return {r.gx, r.gweight, r.gbias};
    });
  }
  return f.y;
}

// ---------------------------------------------------------------- dropout

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  check_float("dropout", x);
  SSM_CHECK(p >= 0.0 && p <= 1.0, "dropout", "probability p = ", p, " outside [0, 1]");
  if (!training || p == 0.0) return x;
  auto [y, mask] = kernels::dropout_forward(x, p, gen);
  if (needs_grad({&x})) {
    record("dropout", {x}, {y}, [mask](const GradList& g) -> GradList {
      return {kernels::dropout_backward(g[0], mask)};
    });
  }
  return y;
}

}  // namespace ssm
