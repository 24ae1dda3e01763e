#include "layers/ssm/s4.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "autograd/ops.h"
#include "autograd/ops/s4.h"
#include "kernels/s4.h"
#include "layers/ssm/hippo.h"
#include "layers/ssm/s4d.h"

namespace ssm {

namespace {

using cd = std::complex<double>;
using MatC = Eigen::MatrixXcd;
using VecC = Eigen::VectorXcd;

std::vector<cd> complex_values(const Tensor& t) {
  const auto v = t.to_vector<double>();
  std::vector<cd> out(v.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = {v[2 * i], v[2 * i + 1]};
  return out;
}

Tensor complex_tensor(const std::vector<cd>& v, Shape shape, DType dtype) {
  std::vector<double> flat;
  flat.reserve(2 * v.size());
  for (cd z : v) {
    flat.push_back(z.real());
    flat.push_back(z.imag());
  }
  shape.push_back(2);
  return Tensor::from_vector<double>(flat, shape).to(dtype);
}

// One feature's DPLR system in double, stored half: A = diag(Lambda) - P P^* over
// both conjugate halves, bilinear with step dt.
struct Feature {
  double dt = 0.0;
  std::vector<cd> lam, B;  // (N2)
  std::vector<cd> P;       // (R, N2)
};

// The parameters of feature h as the kernel sees them (dt = exp(log_dt),
// Lambda = -exp(A_real) + i A_imag), read back from the tensors.
struct Params {
  std::vector<double> log_dt, a_real, a_imag;
  std::vector<cd> P, B;
  std::int64_t H, N2, R;
  Feature feature(std::int64_t h) const {
    Feature f;
    f.dt = std::exp(log_dt[h]);
    f.lam.resize(N2);
    f.B.resize(N2);
    f.P.resize(R * N2);
    for (std::int64_t n = 0; n < N2; ++n) {
      f.lam[n] = {-std::exp(a_real[h * N2 + n]), a_imag[h * N2 + n]};
      f.B[n] = B[h * N2 + n];
      for (std::int64_t r = 0; r < R; ++r) f.P[r * N2 + n] = P[(r * H + h) * N2 + n];
    }
    return f;
  }
};

Params read_params(const Tensor& log_dt, const Tensor& A_real, const Tensor& A_imag,
                   const Tensor& P, const Tensor& B) {
  return {log_dt.to_vector<double>(),
          A_real.to_vector<double>(),
          A_imag.to_vector<double>(),
          complex_values(P),
          complex_values(B),
          A_real.size(0),
          A_real.size(1),
          P.size(0)};
}

// c <- c A-bar for a conjugate-symmetric row c_full = [c, conj c], in O(N R):
// A-bar = 2 W - I with W = (I - dt/2 A)^{-1} in Woodbury form,
//   W = D^{-1} - (dt/2) D^{-1} P M^{-1} P^* D^{-1},  D = I - dt/2 diag(Lambda),
//   M = I + (dt/2) P^* D^{-1} P (R x R, real: each sum runs over conjugate pairs).
// For the row: e = c D^{-1}, s = e P (real), t = s M^{-1}, c W = e - (dt/2) t P^* D^{-1}.
class RowStepper {
 public:
  explicit RowStepper(const Feature& f)
      : f_(f), N2_(static_cast<std::int64_t>(f.lam.size())), R_(f.P.size() / f.lam.size()) {
    dinv_.resize(N2_);
    for (std::int64_t n = 0; n < N2_; ++n) dinv_[n] = 1.0 / (1.0 - 0.5 * f.dt * f.lam[n]);
    Eigen::MatrixXd M = Eigen::MatrixXd::Identity(R_, R_);
    for (std::int64_t r = 0; r < R_; ++r) {
      for (std::int64_t q = 0; q < R_; ++q) {
        cd s = 0.0;
        for (std::int64_t n = 0; n < N2_; ++n) {
          s += std::conj(f.P[r * N2_ + n]) * f.P[q * N2_ + n] * dinv_[n];
        }
        M(r, q) += 0.5 * f.dt * 2.0 * s.real();
      }
    }
    Mt_lu_.compute(Eigen::MatrixXd(M.transpose()));
  }

  void apply(std::vector<cd>& c) const {
    std::vector<cd> e(N2_);
    Eigen::VectorXd s = Eigen::VectorXd::Zero(R_);
    for (std::int64_t n = 0; n < N2_; ++n) {
      e[n] = c[n] * dinv_[n];
      for (std::int64_t r = 0; r < R_; ++r) s(r) += 2.0 * (e[n] * f_.P[r * N2_ + n]).real();
    }
    const Eigen::VectorXd t = Mt_lu_.solve(s);  // t = s M^{-1} as a column: M^T t = s
    for (std::int64_t n = 0; n < N2_; ++n) {
      cd corr = 0.0;
      for (std::int64_t r = 0; r < R_; ++r) corr += t(r) * std::conj(f_.P[r * N2_ + n]);
      const cd w = e[n] - 0.5 * f_.dt * corr * dinv_[n];
      c[n] = 2.0 * w - c[n];
    }
  }

 private:
  const Feature& f_;
  std::int64_t N2_, R_;
  std::vector<cd> dinv_;
  Eigen::PartialPivLU<Eigen::MatrixXd> Mt_lu_;
};

// The dense full-state bilinear system of one feature: A-bar (N, N) and
// B-bar (N) over x_full = [x, conj x], with (I - dt/2 A)^{-1} in Woodbury form.
struct DenseSystem {
  MatC Ab;
  VecC Bb;
};

DenseSystem dense_system(const Feature& f) {
  const auto N2 = static_cast<std::int64_t>(f.lam.size()), N = 2 * N2;
  const std::int64_t R = static_cast<std::int64_t>(f.P.size()) / N2;
  VecC dinv(N), Bf(N);
  MatC Pf(N, R);
  for (std::int64_t n = 0; n < N2; ++n) {
    dinv(n) = 1.0 / (1.0 - 0.5 * f.dt * f.lam[n]);
    dinv(N2 + n) = std::conj(dinv(n));
    Bf(n) = f.B[n];
    Bf(N2 + n) = std::conj(f.B[n]);
    for (std::int64_t r = 0; r < R; ++r) {
      Pf(n, r) = f.P[r * N2 + n];
      Pf(N2 + n, r) = std::conj(f.P[r * N2 + n]);
    }
  }
  const MatC DP = dinv.asDiagonal() * Pf;                                    // (N, R)
  const MatC M = MatC::Identity(R, R) + (0.5 * f.dt) * (Pf.adjoint() * DP);  // (R, R)
  const MatC PtD = Pf.adjoint() * dinv.asDiagonal();                         // (R, N)  P^* D^{-1}
  const MatC Winv = MatC(dinv.asDiagonal()) - (0.5 * f.dt) * DP * M.partialPivLu().solve(PtD);
  DenseSystem s;
  s.Ab = 2.0 * Winv - MatC::Identity(N, N);
  s.Bb = f.dt * (Winv * Bf);
  return s;
}

MatC matrix_power(MatC M, std::int64_t e) {
  MatC out = MatC::Identity(M.rows(), M.cols());
  for (; e > 0; e >>= 1) {
    if (e & 1) out = out * M;
    if (e > 1) M = M * M;
  }
  return out;
}

}  // namespace

struct S4Kernel::Init {
  Tensor log_dt, A_real, A_imag, P, B, C;
};

S4Kernel::S4Kernel(std::int64_t H, std::int64_t N, std::int64_t channels, const S4Options& options,
                   Generator& gen, DType dtype)
    : S4Kernel(H, N, channels, options, [&] {
        const char* op = "S4Kernel";
        SSM_CHECK(H >= 1 && channels >= 1, op, "d_model and channels must be positive, got ", H,
                  " and ", channels);
        SSM_CHECK(N >= 2 && N % 2 == 0, op,
                  "d_state N must be even and >= 2 (conjugate pairs), got ", N);
        SSM_CHECK(dtype == DType::Float32 || dtype == DType::Float64, op,
                  "parameters must be float32 or float64, got ", dtype_name(dtype));
        SSM_CHECK(options.rank >= 1 && options.rank <= N, op, "rank must be in [1, N], got ",
                  options.rank);
        SSM_CHECK(options.l_max >= 1, op, "l_max must be positive, got ", options.l_max);
        const std::int64_t N2 = N / 2, R = options.rank;
        const hippo::NPLR nplr = hippo::nplr("legs", N, R);
        std::vector<double> a_real, a_imag;
        std::vector<cd> P(R * H * N2), B;
        for (std::int64_t h = 0; h < H; ++h) {
          for (std::int64_t n = 0; n < N2; ++n) {
            a_real.push_back(std::log(std::max(-nplr.Lambda[n].real(), 1e-4)));
            a_imag.push_back(nplr.Lambda[n].imag());
            B.push_back(nplr.B[n]);
            for (std::int64_t r = 0; r < R; ++r) P[(r * H + h) * N2 + n] = nplr.P[r * N2 + n];
          }
        }
        Init init;
        init.log_dt = init_log_dt(H, options.dt_min, options.dt_max, gen, dtype);
        init.A_real = Tensor::from_vector<double>(a_real, {H, N2}).to(dtype);
        init.A_imag = Tensor::from_vector<double>(a_imag, {H, N2}).to(dtype);
        init.P = complex_tensor(P, {R, H, N2}, dtype);
        init.B = complex_tensor(B, {H, N2}, dtype);
        const Tensor C = init_complex_normal({channels, H, N2, 2}, gen, dtype);
        // C-tilde = C - C A-bar^l_max, each feature with its own dt (as stored).
        const Params p = read_params(init.log_dt, init.A_real, init.A_imag, init.P, init.B);
        std::vector<cd> c = complex_values(C), ct(c.size());
        for (std::int64_t h = 0; h < H; ++h) {
          const Feature f = p.feature(h);
          const RowStepper stepper(f);
          for (std::int64_t ch = 0; ch < channels; ++ch) {
            const auto first = c.begin() + (ch * H + h) * N2;
            std::vector<cd> row(first, first + N2);
            for (std::int64_t l = 0; l < options.l_max; ++l) stepper.apply(row);
            for (std::int64_t n = 0; n < N2; ++n) {
              ct[(ch * H + h) * N2 + n] = c[(ch * H + h) * N2 + n] - row[n];
            }
          }
        }
        init.C = complex_tensor(ct, {channels, H, N2}, dtype);
        return init;
      }()) {}

S4Kernel::S4Kernel(std::int64_t H, std::int64_t N, std::int64_t channels, const S4Options& options,
                   Init init)
    : SSMKernel(H, N, channels),
      opt_(options),
      last_L_(options.l_max),
      log_dt_(register_parameter("log_dt", init.log_dt, {"ssm"})),
      A_real_(register_parameter("A_real", init.A_real, {"ssm"})),
      A_imag_(register_parameter("A_imag", init.A_imag, {"ssm"})),
      P_(register_parameter("P", init.P, {"ssm"})),
      B_(register_parameter("B", init.B, {"ssm"})),
      C_param_(register_parameter("C", init.C)) {}

Tensor S4Kernel::dt() const { return exp(log_dt_); }

Tensor S4Kernel::Lambda() const { return stack({neg(exp(A_real_)), A_imag_}, -1); }

Tensor S4Kernel::forward(std::int64_t L) {
  Tensor K = s4_dplr_kernel(dt(), Lambda(), P_, B_, C_param_, L);
  last_L_ = L;
  return K;
}

void S4Kernel::set_step_length(std::int64_t L) {
  SSM_CHECK(L >= 1, "S4Kernel::set_step_length", "L must be positive, got ", L);
  last_L_ = L;
}

void S4Kernel::setup_step() {
  const std::int64_t N2 = N_ / 2, L = last_L_;
  const Params p = read_params(log_dt_, A_real_, A_imag_, P_, B_);
  const std::vector<cd> ct = complex_values(C_param_);
  std::vector<cd> a11(H_ * N2 * N2), a12(H_ * N2 * N2), bb(H_ * N2), cc(C_ * H_ * N2);
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t h = 0; h < H_; ++h) {
    const Feature f = p.feature(h);
    const DenseSystem s = dense_system(f);
    const std::int64_t N = 2 * N2;
    // C_full = C~_full (I - A-bar^L)^{-1}: solve (I - A-bar^L)^T C_full^T = C~_full^T.
    const Eigen::PartialPivLU<MatC> lu((MatC::Identity(N, N) - matrix_power(s.Ab, L)).transpose());
    for (std::int64_t i = 0; i < N2; ++i) {
      bb[h * N2 + i] = s.Bb(i);
      for (std::int64_t j = 0; j < N2; ++j) {
        a11[(h * N2 + i) * N2 + j] = s.Ab(i, j);
        a12[(h * N2 + i) * N2 + j] = s.Ab(i, N2 + j);
      }
    }
    for (std::int64_t c = 0; c < C_; ++c) {
      VecC row(N);
      for (std::int64_t n = 0; n < N2; ++n) {
        row(n) = ct[(c * H_ + h) * N2 + n];
        row(N2 + n) = std::conj(row(n));
      }
      const VecC cf = lu.solve(row);
      for (std::int64_t n = 0; n < N2; ++n) cc[(c * H_ + h) * N2 + n] = cf(n);
    }
  }
  const DType dtype = C_param_.dtype();
  step_dA_ = complex_tensor(a11, {H_, N2, N2}, dtype);
  step_dA_conj_ = complex_tensor(a12, {H_, N2, N2}, dtype);
  step_dB_ = complex_tensor(bb, {H_, N2}, dtype);
  step_C_ = complex_tensor(cc, {C_, H_, N2}, dtype);
}

Tensor S4Kernel::default_state(std::int64_t batch) const {
  SSM_CHECK(batch >= 1, "S4Kernel::default_state", "batch must be positive, got ", batch);
  return Tensor::zeros({batch, H_, N_ / 2, 2}, C_param_.dtype(), C_param_.device());
}

Tensor S4Kernel::step(const Tensor& u_t, Tensor& state) {
  SSM_CHECK(step_dA_.defined(), "S4Kernel::step", "call setup_step() before step()");
  return kernels::s4_dense_step(u_t, state, step_dA_, step_dA_conj_, step_dB_, step_C_);
}

}  // namespace ssm
