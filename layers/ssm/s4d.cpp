#include "layers/ssm/s4d.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "autograd/ops.h"
#include "autograd/ops/s4.h"
#include "kernels/s4.h"
#include "layers/ssm/hippo.h"

namespace ssm {

namespace {

using cd = std::complex<double>;

void check_dims(const char* op, std::int64_t H, std::int64_t N, std::int64_t channels,
                DType dtype) {
  SSM_CHECK(H >= 1 && channels >= 1, op, "d_model and channels must be positive, got ", H, " and ",
            channels);
  SSM_CHECK(N >= 2 && N % 2 == 0, op, "d_state N must be even and >= 2 (conjugate pairs), got ", N);
  SSM_CHECK(dtype == DType::Float32 || dtype == DType::Float64, op,
            "parameters must be float32 or float64, got ", dtype_name(dtype));
}

// (H, N2) rows of the same N2 values.
Tensor rows_of(const std::vector<double>& v, std::int64_t H, DType dtype) {
  std::vector<double> out;
  for (std::int64_t h = 0; h < H; ++h) out.insert(out.end(), v.begin(), v.end());
  return Tensor::from_vector<double>(out, {H, static_cast<std::int64_t>(v.size())}).to(dtype);
}

// (H, N2, 2) rows of the same N2 complex values.
Tensor complex_rows_of(const std::vector<cd>& v, std::int64_t H, DType dtype) {
  std::vector<double> out;
  for (std::int64_t h = 0; h < H; ++h) {
    for (cd z : v) {
      out.push_back(z.real());
      out.push_back(z.imag());
    }
  }
  return Tensor::from_vector<double>(out, {H, static_cast<std::int64_t>(v.size()), 2}).to(dtype);
}

// The parameter p holding -Re A = v > 0 under the transform (clamped to >= 1e-4).
double inverse_real_transform(double v, const std::string& transform) {
  v = std::max(v, 1e-4);
  return transform == "exp" ? std::log(v) : v;
}

}  // namespace

Tensor init_log_dt(std::int64_t H, double dt_min, double dt_max, Generator& gen, DType dtype) {
  SSM_CHECK(dt_min > 0.0 && dt_min <= dt_max, "init_log_dt",
            "need 0 < dt_min <= dt_max, got dt_min ", dt_min, ", dt_max ", dt_max);
  Tensor t = Tensor::empty({H}, dtype);
  uniform_(t, std::log(dt_min), std::log(dt_max), gen);
  return t;
}

Tensor init_complex_normal(const Shape& shape, Generator& gen, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  normal_(t, 0.0, std::sqrt(0.5), gen);
  return t;
}

struct S4DKernel::Init {
  Tensor log_dt, A_real, A_imag, B, C;
};

namespace {

S4DOptions checked_options(const S4DOptions& o) {
  const char* op = "S4DKernel";
  SSM_CHECK(o.init == "legs" || o.init == "lin" || o.init == "inv" || o.init == "real", op,
            "init must be legs, lin, inv or real, got '", o.init, "'");
  SSM_CHECK(o.disc == "zoh" || o.disc == "bilinear", op, "disc must be zoh or bilinear, got '",
            o.disc, "'");
  SSM_CHECK(o.real_transform == "exp" || o.real_transform == "relu" || o.real_transform == "none",
            op, "real_transform must be exp, relu or none, got '", o.real_transform, "'");
  return o;
}

}  // namespace

S4DKernel::S4DKernel(std::int64_t H, std::int64_t N, std::int64_t channels,
                     const S4DOptions& options, Generator& gen, DType dtype)
    : S4DKernel(H, N, channels, options, [&] {
        check_dims("S4DKernel", H, N, channels, dtype);
        const S4DOptions o = checked_options(options);
        const std::int64_t N2 = N / 2;
        const std::vector<cd> lam = hippo::s4d_lambda(o.init, N);
        std::vector<double> a_real(N2), a_imag(N2);
        for (std::int64_t n = 0; n < N2; ++n) {
          a_real[n] = inverse_real_transform(-lam[n].real(), o.real_transform);
          a_imag[n] = lam[n].imag();
        }
        const std::vector<cd> b =
            o.init == "legs" ? hippo::nplr("legs", N, 1).B : std::vector<cd>(N2, cd(1.0));
        Init init;
        init.log_dt = init_log_dt(H, o.dt_min, o.dt_max, gen, dtype);
        init.A_real = rows_of(a_real, H, dtype);
        init.A_imag = rows_of(a_imag, H, dtype);
        init.B = complex_rows_of(b, H, dtype);
        init.C = init_complex_normal({channels, H, N2, 2}, gen, dtype);
        return init;
      }()) {}

S4DKernel::S4DKernel(std::int64_t H, std::int64_t N, std::int64_t channels,
                     const S4DOptions& options, Init init)
    : SSMKernel(H, N, channels),
      opt_(options),
      log_dt_(register_parameter("log_dt", init.log_dt, {"ssm"})),
      A_real_(register_parameter("A_real", init.A_real, {"ssm"})),
      A_imag_(register_parameter("A_imag", init.A_imag, {"ssm"})),
      B_(register_parameter("B", init.B, {"ssm"})),
      C_param_(register_parameter("C", init.C)) {}

Tensor S4DKernel::dt() const { return exp(log_dt_); }

Tensor S4DKernel::A() const {
  Tensor p = A_real_;
  if (opt_.real_transform == "exp") p = exp(p);
  if (opt_.real_transform == "relu") p = relu(p);
  return stack({neg(p), A_imag_}, -1);
}

Tensor S4DKernel::forward(std::int64_t L) {
  return s4d_kernel(dt(), A(), B_, C_param_, L, opt_.disc);
}

void S4DKernel::setup_step() {
  NoGradGuard no_grad;
  const DiagDiscretization d = diag_discretize(dt(), A(), opt_.disc);
  // B-bar = dB * B, elementwise complex.
  const auto dB = d.dB.to_vector<double>(), B = B_.to_vector<double>();
  std::vector<double> bbar(dB.size());
  for (std::size_t i = 0; i < dB.size(); i += 2) {
    const cd v = cd(dB[i], dB[i + 1]) * cd(B[i], B[i + 1]);
    bbar[i] = v.real();
    bbar[i + 1] = v.imag();
  }
  step_dA_ = d.dA;
  step_dB_ = Tensor::from_vector<double>(bbar, B_.shape()).to(B_.dtype());
  step_C_ = C_param_.detach().clone();
}

Tensor S4DKernel::default_state(std::int64_t batch) const {
  SSM_CHECK(batch >= 1, "S4DKernel::default_state", "batch must be positive, got ", batch);
  return Tensor::zeros({batch, H_, N_ / 2, 2}, C_param_.dtype(), C_param_.device());
}

Tensor S4DKernel::step(const Tensor& u_t, Tensor& state) {
  SSM_CHECK(step_dA_.defined(), "S4DKernel::step", "call setup_step() before step()");
  return kernels::s4d_step(u_t, state, step_dA_, step_dB_, step_C_);
}

}  // namespace ssm
