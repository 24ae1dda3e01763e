#include "layers/ssm/rtf.h"

#include <cmath>

#include "autograd/ops.h"
#include "autograd/ops/rtf.h"

namespace ssm {

namespace {

const char* kOp = "RTFKernel";

RTFOptions checked_options(std::int64_t H, std::int64_t n, std::int64_t channels,
                           const RTFOptions& o, DType dtype) {
  SSM_CHECK(H >= 1 && n >= 1 && channels >= 1, kOp,
            "H, n and channels must be positive, got H = ", H, ", n = ", n,
            ", channels = ", channels);
  SSM_CHECK(o.init == "zeros" || o.init == "xavier" || o.init == "montel", kOp, "unknown init '",
            o.init, "'; known: zeros, xavier, montel");
  SSM_CHECK(o.l_max > n, kOp, "l_max must exceed the state size n = ", n, ", got ", o.l_max);
  SSM_CHECK(dtype == DType::Float32 || dtype == DType::Float64, kOp,
            "parameters must be float32 or float64, got ", dtype_name(dtype));
  return o;
}

// a or b per the init option: zeros, U(+-1/sqrt(n)) (xavier) or U(+-1/n) (montel).
Tensor coefficients(const Shape& shape, std::int64_t n, const RTFOptions& o, Generator& gen,
                    DType dtype) {
  Tensor t = Tensor::zeros(shape, dtype);
  if (o.init != "zeros") {
    const double bound = o.init == "xavier" ? 1.0 / std::sqrt(static_cast<double>(n)) : 1.0 / n;
    uniform_(t, -bound, bound, gen);
  }
  return t;
}

}  // namespace

RTFKernel::RTFKernel(std::int64_t H, std::int64_t n, std::int64_t channels,
                     const RTFOptions& options, Generator& gen, DType dtype)
    : SSMKernel(H, n, channels),
      options_(checked_options(H, n, channels, options, dtype)),
      a_(register_parameter("a", coefficients({H, n}, n, options_, gen, dtype), {"ssm"})),
      b_(register_parameter("b", coefficients({channels, H, n}, n, options_, gen, dtype))),
      h0_(register_parameter("h0",
                             [&] {
                               Tensor t = Tensor::empty({channels, H}, dtype);
                               normal_(t, 0.0, 1.0, gen);
                               return t;
                             }())),
      L_(options_.l_max) {}

Tensor RTFKernel::forward(std::int64_t L) {
  SSM_CHECK(L > N_, kOp, "L must exceed the state size n = ", N_, ", got ", L);
  L_ = L;
  return rtf_kernel(a_, b_, h0_, L);
}

void RTFKernel::setup_step() {
  NoGradGuard no_grad;
  step_a_ = a_.detach();
  step_h0_ = h0_.detach();
  step_C_ = rtf_state_space_C(step_a_, b_.detach(), L_);
}

Tensor RTFKernel::default_state(std::int64_t batch) const {
  SSM_CHECK(batch >= 0, kOp, "batch must be non-negative, got ", batch);
  return Tensor::zeros({batch, H_, N_}, a_.dtype(), a_.device());
}

Tensor RTFKernel::step(const Tensor& u_t, Tensor& state) {
  SSM_CHECK(step_C_.defined(), kOp, "step needs setup_step() first");
  return rtf_step(step_a_, step_C_, step_h0_, u_t, state);
}

void RTFKernel::set_step_length(std::int64_t L) {
  SSM_CHECK(L > N_, "RTFKernel::set_step_length", "L must exceed the order n = ", N_, ", got ", L);
  L_ = L;
}

}  // namespace ssm
