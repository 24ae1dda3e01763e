// Differentiable reductions: sum, mean, max, logsumexp.
#include "autograd/ops/reduce.h"

#include "autograd/ops/elementwise.h"
#include "autograd/tape.h"
#include "kernels/reduce.h"

namespace ssm {

Tensor sum(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim) {
  Tensor out = kernels::sum_forward(x, dims, keepdim);
  if (needs_grad({&x})) {
    const Shape shape = x.shape();
    record("sum", {x}, {out}, [=](const GradList& g) -> GradList {
      return {kernels::sum_backward(g[0], shape, dims, keepdim)};
    });
  }
  return out;
}

Tensor mean(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim) {
  const auto d = kernels::normalize_dims(dims, x.dim(), "mean");
  std::int64_t count = 1;
  for (auto k : d) count *= x.shape()[k];
  SSM_CHECK(count > 0, "mean", "mean over an empty set of elements of ", x.desc());
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(count));
}

Tensor max(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim) {
  auto [values, index] = kernels::max_forward(x, dims, keepdim);
  if (needs_grad({&x})) {
    const Shape shape = x.shape();
    const Tensor ix = index;
    record("max", {x}, {values}, [=](const GradList& g) -> GradList {
      return {kernels::max_backward(g[0], ix, shape, dims, keepdim)};
    });
  }
  return values;
}

std::pair<Tensor, Tensor> max_with_index(const Tensor& x, std::int64_t dim, bool keepdim) {
  auto [values, index] = kernels::max_forward(x, {dim}, keepdim);
  if (needs_grad({&x})) {
    const Shape shape = x.shape();
    const Tensor ix = index;
    record("max", {x}, {values}, [=](const GradList& g) -> GradList {
      return {kernels::max_backward(g[0], ix, shape, {dim}, keepdim)};
    });
  }
  return {values, index};
}

Tensor logsumexp(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim) {
  Tensor out = kernels::logsumexp_forward(x, dims, keepdim);
  if (needs_grad({&x})) {
    const Tensor sx = x.detach(), so = out.detach();
    record("logsumexp", {x}, {out}, [=](const GradList& g) -> GradList {
      return {kernels::logsumexp_backward(g[0], sx, so, dims, keepdim)};
    });
  }
  return out;
}

}  // namespace ssm
