#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"
#include "autograd/tape.h"
#include "core/rng.h"

namespace ssm {

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& opt) {
  for (const Tensor& t : inputs) {
    if (!t.defined() || !is_floating(t.dtype())) continue;
    SSM_CHECK(t.dtype() == DType::Float64 && t.device().is_cpu(), "gradcheck",
              "inputs must be float64 CPU tensors, got ", t.desc());
  }
  // Work on private copies so that perturbations never touch the caller's data.
  std::vector<Tensor> xs;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      xs.push_back(t);
      continue;
    }
    Tensor c = t.clone();
    if (t.requires_grad()) c.set_requires_grad(true);
    xs.push_back(c);
  }
  clear_tape();
  Tensor y = f(xs);
  SSM_CHECK(y.defined() && y.dtype() == DType::Float64, "gradcheck",
            "f must return a float64 tensor, got ", y.desc());
  Generator gen(opt.seed);
  const Tensor r = rand(y.shape(), DType::Float64, Device::cpu(), gen);
  // s = sum(y * R), with R in [0.5, 1.5) so that no component is ignored.
  auto project = [&](const Tensor& out) {
    double s = 0.0;
    const auto yv = out.to_vector<double>();
    const auto rv = r.to_vector<double>();
    for (std::size_t i = 0; i < yv.size(); ++i) s += yv[i] * (rv[i] + 0.5);
    return s;
  };
  GradcheckResult result;
  if (!y.requires_grad()) {
    bool any = false;
    for (const Tensor& x : xs) any = any || x.requires_grad();
    SSM_CHECK(!any, "gradcheck", "f's output does not require grad: no op recorded a backward");
    return result;
  }
  backward(y, add(r, 0.5).detach());
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    const Tensor analytic = x.grad();
    SSM_CHECK(analytic.defined(), "gradcheck", "input ", k, " requires grad but got none");
    const auto av = analytic.to_vector<double>();
    double* p = x.data<double>();  // x is a contiguous private clone
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const double orig = p[i];
      double plus, minus;
      {
        NoGradGuard no_grad;
        p[i] = orig + opt.eps;
        plus = project(f(xs));
        p[i] = orig - opt.eps;
        minus = project(f(xs));
        p[i] = orig;
      }
      const double numeric = (plus - minus) / (2.0 * opt.eps);
      const double err = std::abs(av[static_cast<std::size_t>(i)] - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (result.ok && !(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        std::ostringstream os;
        os << "input " << k << " " << x.desc() << ", element " << i << ": analytic "
           << av[static_cast<std::size_t>(i)] << ", numeric " << numeric << ", error " << err;
        result.ok = false;
        result.message = os.str();
      }
    }
  }
  return result;
}

}  // namespace ssm
