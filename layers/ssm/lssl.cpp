#include "layers/ssm/lssl.h"

#include <cmath>

#include "autograd/ops.h"
#include "layers/ssm/hippo.h"

namespace ssm {

namespace {

const char* kOp = "LSSLKernel";

LSSLOptions checked_options(std::int64_t H, std::int64_t N, std::int64_t channels,
                            const LSSLOptions& o, DType dtype) {
  SSM_CHECK(H >= 1 && N >= 1 && channels >= 1, kOp,
            "H, N and channels must be positive, got H = ", H, ", N = ", N,
            ", channels = ", channels);
  SSM_CHECK(
      o.measure == "legs" || o.measure == "legt" || o.measure == "lagt" || o.measure == "fout", kOp,
      "unknown measure '", o.measure, "'; known: legs, legt, lagt, fout");
  SSM_CHECK(o.disc == "gbt" || o.disc == "zoh", kOp, "unknown disc '", o.disc,
            "'; known: gbt, zoh");
  SSM_CHECK(o.alpha >= 0.0 && o.alpha <= 1.0, kOp, "alpha must be in [0, 1], got ", o.alpha);
  SSM_CHECK(o.dt_min > 0.0 && o.dt_min <= o.dt_max, kOp,
            "need 0 < dt_min <= dt_max, got dt_min = ", o.dt_min, ", dt_max = ", o.dt_max);
  SSM_CHECK(dtype == DType::Float32 || dtype == DType::Float64, kOp,
            "parameters must be float32 or float64, got ", dtype_name(dtype));
  return o;
}

// hippo::transition(measure, N): A (N, N) and B (N) as tensors of dtype.
Tensor hippo_A(const LSSLOptions& o, std::int64_t N, DType dtype) {
  return Tensor::from_vector<double>(hippo::transition(o.measure, N).A, {N, N}, dtype);
}
Tensor hippo_B(const LSSLOptions& o, std::int64_t N, DType dtype) {
  return Tensor::from_vector<double>(hippo::transition(o.measure, N).B, {N}, dtype);
}

}  // namespace

LSSLKernel::LSSLKernel(std::int64_t H, std::int64_t N, std::int64_t channels,
                       const LSSLOptions& options, Generator& gen, DType dtype)
    : SSMKernel(H, N, channels),
      options_(checked_options(H, N, channels, options, dtype)),
      A_(options_.learn_A ? register_parameter("A", hippo_A(options_, N, dtype), {"ssm"})
                          : register_buffer("A", hippo_A(options_, N, dtype))),
      B_(options_.learn_A ? register_parameter("B", hippo_B(options_, N, dtype), {"ssm"})
                          : register_buffer("B", hippo_B(options_, N, dtype))),
      log_dt_(register_parameter("log_dt",
                                 [&] {
                                   Tensor t = Tensor::empty({H}, dtype);
                                   uniform_(t, std::log(options_.dt_min), std::log(options_.dt_max),
                                            gen);
                                   return t;
                                 }(),
                                 {"ssm"})),
      C_(register_parameter("C", [&] {
        Tensor t = Tensor::empty({channels, H, N}, dtype);
        normal_(t, 0.0, 1.0, gen);
        return t;
      }())) {}

DiscreteSSM LSSLKernel::discretize() const {
  const Tensor dt = exp(log_dt_);
  return options_.disc == "zoh" ? zoh_discretize_dense(A_, B_, dt)
                                : gbt_discretize(A_, B_, dt, options_.alpha);
}

Tensor LSSLKernel::forward(std::int64_t L) {
  SSM_CHECK(L >= 1, kOp, "L must be positive, got ", L);
  const DiscreteSSM d = discretize();
  return krylov_kernel(d.dA, d.dB, C_, L);
}

void LSSLKernel::setup_step() {
  NoGradGuard no_grad;
  const DiscreteSSM d = discretize();
  step_dA_ = d.dA;
  step_dB_ = d.dB;
  step_C_ = C_.detach();
}

Tensor LSSLKernel::default_state(std::int64_t batch) const {
  SSM_CHECK(batch >= 0, kOp, "batch must be non-negative, got ", batch);
  return Tensor::zeros({batch, H_, N_}, C_.dtype(), C_.device());
}

Tensor LSSLKernel::step(const Tensor& u_t, Tensor& state) {
  SSM_CHECK(step_dA_.defined(), kOp, "step needs setup_step() first");
  return dense_ssm_step(step_dA_, step_dB_, step_C_, u_t, state);
}

}  // namespace ssm
