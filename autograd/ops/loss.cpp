// Differentiable softmax, log-softmax and losses: argument checks, kernel
// forward, and a recorded backward that calls the kernel backward.
#include "autograd/ops/loss.h"

#include "autograd/tape.h"
#include "kernels/loss.h"
#include "kernels/softmax.h"

namespace ssm {

namespace {

using kernels::Reduction;

Reduction parse_reduction(const char* op, const std::string& reduction) {
  if (reduction == "mean") return Reduction::Mean;
  if (reduction == "sum") return Reduction::Sum;
  if (reduction == "none") return Reduction::None;
  fail(op, "reduction must be \"mean\", \"sum\" or \"none\", got \"", reduction, "\"");
}

// Checks the (scores, target) pair of a class-index loss: scores (N, C, d...)
// float, target (N, d...) integer (for 1-D scores (C), target ()).
void check_class_target(const char* op, const Tensor& scores, const Tensor& target) {
  SSM_CHECK(scores.dim() >= 1, op, "expected scores of shape (N, C, ...) or (C), got ",
            scores.desc());
  SSM_CHECK(is_floating(scores.dtype()), op, "expected float32 or float64 scores, got ",
            scores.desc());
  SSM_CHECK(target.dtype() == DType::Int32 || target.dtype() == DType::Int64, op,
            "expected an int32 or int64 target of class indices, got ", target.desc());
  check_same_device(op, scores, target);
  const std::int64_t class_dim = scores.dim() == 1 ? 0 : 1;
  SSM_CHECK(scores.shape()[class_dim] > 0, op, "expected at least one class, got scores ",
            scores.desc());
  Shape expected = scores.shape();
  expected.erase(expected.begin() + class_dim);
  SSM_CHECK(target.shape() == expected, op, "target ", target.desc(), " does not match input ",
            scores.desc(), ": expected target shape ", shape_str(expected));
}

template <bool Log>
Tensor softmax_op(const char* op, const Tensor& x, std::int64_t dim) {
  Tensor y = Log ? kernels::log_softmax_forward(x, dim) : kernels::softmax_forward(x, dim);
  if (needs_grad({&x})) {
    const Tensor sy = y.detach();
    record(op, {x}, {y}, [=](const GradList& g) -> GradList {
      return {Log ? kernels::log_softmax_backward(g[0], sy, dim)
                  : kernels::softmax_backward(g[0], sy, dim)};
    });
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t dim) { return softmax_op<false>("softmax", x, dim); }

Tensor log_softmax(const Tensor& x, std::int64_t dim) {
  return softmax_op<true>("log_softmax", x, dim);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     const CrossEntropyOptions& options) {
  check_class_target("cross_entropy", logits, target);
  const double eps = options.label_smoothing;
  SSM_CHECK(eps >= 0.0 && eps <= 1.0, "cross_entropy", "label_smoothing must be in [0, 1], got ",
            eps);
  const kernels::ClassLossParams params{options.ignore_index, eps,
                                        parse_reduction("cross_entropy", options.reduction)};
  // Contiguous once here, so that backward reuses the same buffer.
  const Tensor x = logits.contiguous();
  kernels::CrossEntropyResult r = kernels::cross_entropy_forward(x, target, params);
  if (needs_grad({&logits})) {
    const Tensor sx = x.detach(), st = target.detach();
    kernels::CrossEntropyResult saved{Tensor(), r.max, r.log_sum, r.count};
    record("cross_entropy", {logits}, {r.loss}, [=](const GradList& g) -> GradList {
      return {kernels::cross_entropy_backward(g[0], sx, st, saved, params)};
    });
  }
  return r.loss;
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, std::int64_t ignore_index,
                const std::string& reduction) {
  check_class_target("nll_loss", log_probs, target);
  const kernels::ClassLossParams params{ignore_index, 0.0, parse_reduction("nll_loss", reduction)};
  auto [loss, count] = kernels::nll_loss_forward(log_probs, target, params);
  if (needs_grad({&log_probs})) {
    const Shape shape = log_probs.shape();
    const Tensor st = target.detach();
    const std::int64_t n = count;
    record("nll_loss", {log_probs}, {loss}, [=](const GradList& g) -> GradList {
      return {kernels::nll_loss_backward(g[0], shape, st, n, params)};
    });
  }
  return loss;
}

Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction) {
  SSM_CHECK(input.shape() == target.shape(), "mse_loss",
            "input and target must have the same shape (no broadcasting): input ", input.desc(),
            ", target ", target.desc());
  check_same_dtype("mse_loss", input, target);
  check_same_device("mse_loss", input, target);
  const Reduction r = parse_reduction("mse_loss", reduction);
  Tensor loss = kernels::mse_loss_forward(input, target, r);
  if (needs_grad({&input, &target})) {
    const bool need_input = input.requires_grad(), need_target = target.requires_grad();
    const Tensor sx = input.detach(), st = target.detach();
    record("mse_loss", {input, target}, {loss}, [=](const GradList& g) -> GradList {
      auto [gx, gt] = kernels::mse_loss_backward(g[0], sx, st, r, need_input, need_target);
      return {gx, gt};
    });
  }
  return loss;
}

}  // namespace ssm
