#pragma once
// Differentiable reductions over dims (empty list = every dim), with keepdim.
#include <vector>

#include "core/tensor.h"

namespace ssm {

Tensor sum(const Tensor& x, const std::vector<std::int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<std::int64_t>& dims = {}, bool keepdim = false);
// The maximum; its gradient goes to the first maximum of each reduced block.
Tensor max(const Tensor& x, const std::vector<std::int64_t>& dims = {}, bool keepdim = false);
// max over one dim, with the index of the maximum (int64, no gradient).
std::pair<Tensor, Tensor> max_with_index(const Tensor& x, std::int64_t dim, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const std::vector<std::int64_t>& dims = {}, bool keepdim = false);

}  // namespace ssm
