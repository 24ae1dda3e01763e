#pragma once
// gradcheck: compares the analytic gradient of f at `inputs` with central
// finite differences, in float64 on the CPU.
//
// f maps the inputs to one output tensor y. With a fixed random projection R
// (drawn once from a seeded generator), the scalar s = sum(y * R) is
// differentiated two ways: backward() gives ds/dx for every input that
// requires grad; (s(x + eps e_i) - s(x - eps e_i)) / (2 eps) gives each
// component numerically. A component passes when
//   |analytic - numeric| <= atol + rtol * |numeric|.
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ssm {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-4;
  std::uint64_t seed = 1234;
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0.0;
  std::string message;  // the first failing component: input, index, both values
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs must be float64 CPU tensors; those that should be checked must
// require grad. The inputs are not modified.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace ssm
