// S4-family ops: the diagonal discretization against the matrix exponential
// (Van Loan's block form) and the dense bilinear transform, the S4D and S4
// DPLR kernels against the materialised kernel C A-bar^l B-bar of the dense
// N-state system (N up to 64, L up to 4096, float64 and float32), the step
// kernels against the impulse response, gradchecks, and error messages.
#include <Eigen/Dense>
#include <complex>
#include <unsupported/Eigen/MatrixFunctions>

#include "autograd/ops/s4.h"
#include "kernels/common.h"
#include "kernels/s4.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

using cd = std::complex<double>;
using MatC = Eigen::MatrixXcd;
using VecC = Eigen::VectorXcd;

// A complex tensor (..., 2) as a flat vector of complex values.
std::vector<cd> complex_values(const Tensor& t) {
  const auto v = t.to_vector<double>();
  std::vector<cd> out(v.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = {v[2 * i], v[2 * i + 1]};
  return out;
}

Tensor complex_tensor(const std::vector<cd>& v, Shape shape, DType dtype = DType::Float64) {
  std::vector<double> flat;
  for (cd z : v) {
    flat.push_back(z.real());
    flat.push_back(z.imag());
  }
  shape.push_back(2);
  return Tensor::from_vector<double>(flat, shape).to(dtype);
}

// log-uniform step sizes in [lo, hi), as the S4 layers draw them.
Tensor log_uniform(std::int64_t H, double lo, double hi, std::uint64_t seed) {
  Generator gen(seed);
  Tensor u = Tensor::empty({H}, DType::Float64);
  uniform_(u, std::log(lo), std::log(hi), gen);
  std::vector<double> v = u.to_vector<double>();
  for (double& x : v) x = std::exp(x);
  return Tensor::from_vector<double>(v, {H});
}

// Stable diagonals: real parts in [-1, -0.05), imaginary parts in [-N, N).
Tensor random_lambda(std::int64_t H, std::int64_t N2, std::uint64_t seed) {
  Generator gen(seed);
  Tensor re = Tensor::empty({H, N2}, DType::Float64), im = Tensor::empty({H, N2}, DType::Float64);
  uniform_(re, -1.0, -0.05, gen);
  uniform_(im, -2.0 * static_cast<double>(N2), 2.0 * static_cast<double>(N2), gen);
  const auto r = re.to_vector<double>(), i = im.to_vector<double>();
  std::vector<cd> v(r.size());
  for (std::size_t k = 0; k < v.size(); ++k) v[k] = {r[k], i[k]};
  return complex_tensor(v, {H, N2});
}

// max |a - b| <= rel max |b|: the kernels' accuracy relative to their scale.
void require_rel_close(const Tensor& a, const Tensor& b, double rel) {
  double scale = 0.0;
  for (double v : b.to_vector<double>()) scale = std::max(scale, std::abs(v));
  require_close(a.to(DType::Float64), b, rel * scale, 0.0);
}

// ---------------------------------------------------------------- oracles

// The textbook discretization formulas, one (dt, A) at a time.
std::pair<cd, cd> naive_disc(double dt, cd A, const std::string& method) {
  const cd z = dt * A;
  if (method == "zoh") return {std::exp(z), (std::exp(z) - 1.0) / A};
  return {(1.0 + z / 2.0) / (1.0 - z / 2.0), dt / (1.0 - z / 2.0)};
}

// K[c, h, l] = 2 Re sum_n C dB B dA^l with dA^l = std::pow (exp(l log dA)).
Tensor naive_s4d(const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                 std::int64_t L, const std::string& method) {
  const std::int64_t H = A.size(0), N2 = A.size(1), Cn = C.size(0);
  const auto dtv = dt.to_vector<double>();
  const auto Av = complex_values(A), Bv = complex_values(B), Cv = complex_values(C);
  std::vector<double> K(Cn * H * L, 0.0);
  for (std::int64_t h = 0; h < H; ++h) {
    for (std::int64_t n = 0; n < N2; ++n) {
      const auto [dA, dB] = naive_disc(dtv[h], Av[h * N2 + n], method);
      for (std::int64_t c = 0; c < Cn; ++c) {
        const cd w = Cv[(c * H + h) * N2 + n] * dB * Bv[h * N2 + n];
        for (std::int64_t l = 0; l < L; ++l) {
          K[(c * H + h) * L + l] += 2.0 * (w * std::pow(dA, static_cast<double>(l))).real();
        }
      }
    }
  }
  return Tensor::from_vector<double>(K, {Cn, H, L});
}

// The dense N-state bilinear system of one feature: A = diag(Lambda_f) - P_f P_f^*
// over both conjugate halves (x_f = [x, conj x]), A-bar = (I - dt/2 A)^{-1}(I + dt/2 A),
// B-bar = dt (I - dt/2 A)^{-1} B_f.
struct DenseSystem {
  MatC Ab;  // (N, N)
  VecC Bb;  // (N)
};

DenseSystem dense_dplr(double dt, const std::vector<cd>& lam, const std::vector<cd>& P,
                       const std::vector<cd>& B, std::int64_t R) {
  const auto N2 = static_cast<std::int64_t>(lam.size()), N = 2 * N2;
  MatC Pf(N, R);
  VecC Lf(N), Bf(N);
  for (std::int64_t n = 0; n < N2; ++n) {
    Lf(n) = lam[n];
    Lf(N2 + n) = std::conj(lam[n]);
    Bf(n) = B[n];
    Bf(N2 + n) = std::conj(B[n]);
    for (std::int64_t r = 0; r < R; ++r) {
      Pf(n, r) = P[r * N2 + n];
      Pf(N2 + n, r) = std::conj(P[r * N2 + n]);
    }
  }
  const MatC A = MatC(Lf.asDiagonal()) - Pf * Pf.adjoint();
  const MatC I = MatC::Identity(N, N);
  const Eigen::PartialPivLU<MatC> lu(I - (dt / 2.0) * A);
  return {lu.solve(I + (dt / 2.0) * A), dt * lu.solve(Bf)};
}

MatC matrix_power(MatC M, std::int64_t e) {
  MatC out = MatC::Identity(M.rows(), M.cols());
  for (; e > 0; e >>= 1) {
    if (e & 1) out = out * M;
    M = M * M;
  }
  return out;
}

// K[c, h, l] = Re(C_f A-bar^l B-bar) with C_f = C~_f (I - A-bar^L)^{-1}: the
// materialised kernel of the DPLR system whose C-tilde is given.
Tensor naive_dplr(const Tensor& dt, const Tensor& Lambda, const Tensor& P, const Tensor& B,
                  const Tensor& Ct, std::int64_t L) {
  const std::int64_t H = Lambda.size(0), N2 = Lambda.size(1), R = P.size(0), Cn = Ct.size(0);
  const std::int64_t N = 2 * N2;
  const auto dtv = dt.to_vector<double>();
  const auto Lv = complex_values(Lambda), Pv = complex_values(P), Bv = complex_values(B);
  const auto Cv = complex_values(Ct);
  std::vector<double> K(Cn * H * L);
  for (std::int64_t h = 0; h < H; ++h) {
    std::vector<cd> lam(N2), p(R * N2), b(N2);
    for (std::int64_t n = 0; n < N2; ++n) {
      lam[n] = Lv[h * N2 + n];
      b[n] = Bv[h * N2 + n];
      for (std::int64_t r = 0; r < R; ++r) p[r * N2 + n] = Pv[(r * H + h) * N2 + n];
    }
    const DenseSystem sys = dense_dplr(dtv[h], lam, p, b, R);
    const MatC IminusAL = MatC::Identity(N, N) - matrix_power(sys.Ab, L);
    const Eigen::PartialPivLU<MatC> lu(IminusAL.transpose());
    MatC Cf(Cn, N);  // rows: C_f of each channel
    for (std::int64_t c = 0; c < Cn; ++c) {
      VecC ct(N);
      for (std::int64_t n = 0; n < N2; ++n) {
        ct(n) = Cv[(c * H + h) * N2 + n];
        ct(N2 + n) = std::conj(ct(n));
      }
      Cf.row(c) = lu.solve(ct).transpose();
    }
    VecC v = sys.Bb;
    for (std::int64_t l = 0; l < L; ++l) {
      const VecC y = Cf * v;  // no conjugation: y_c = sum_i C_f[c, i] v_i
      for (std::int64_t c = 0; c < Cn; ++c) K[(c * H + h) * L + l] = y(c).real();
      v = sys.Ab * v;
    }
  }
  return Tensor::from_vector<double>(K, {Cn, H, L});
}

struct DplrInputs {
  Tensor dt, Lambda, P, B, C;
};

DplrInputs random_dplr(std::int64_t Cn, std::int64_t R, std::int64_t H, std::int64_t N2,
                       std::uint64_t seed, double dt_lo = 1e-3, double dt_hi = 1e-1) {
  return {log_uniform(H, dt_lo, dt_hi, seed), random_lambda(H, N2, seed + 1),
          random_tensor({R, H, N2, 2}, seed + 2, -1, 1, DType::Float64, false),
          random_tensor({H, N2, 2}, seed + 3, -1, 1, DType::Float64, false),
          random_tensor({Cn, H, N2, 2}, seed + 4, -1, 1, DType::Float64, false)};
}

DplrInputs to_dtype(const DplrInputs& in, DType dtype) {
  return {in.dt.to(dtype), in.Lambda.to(dtype), in.P.to(dtype), in.B.to(dtype), in.C.to(dtype)};
}

}  // namespace

// ---------------------------------------------------------------- diag_discretize

TEST_CASE("diag_discretize zoh equals the matrix exponential of the real 2x2 block",
          "[cpu][s4ops]") {
  // A = a + ib acts on (re, im) as M = [[a, -b], [b, a]]. Van Loan: the
  // exponential of [[dt M, dt I], [0, 0]] holds exp(dt M) and
  // int_0^dt exp(s M) ds = (exp(dt M) - I) M^{-1} in its top blocks, exact
  // at M = 0 too; their first columns are dA and dB.
  const std::int64_t H = 3, N2 = 5;
  Tensor dt = log_uniform(H, 1e-3, 1.0, 1);
  std::vector<cd> a = complex_values(random_lambda(H, N2, 2));
  a[0] = {0.0, 0.0};      // A = 0: dB = dt
  a[1] = {1e-9, -2e-9};   // tiny: the series branch
  a[3] = {-1e-200, 0.0};  // 1 / (dt A) would overflow
  a[2] = {-40.0, 3.0};    // large |dt A|: the closed form
  Tensor A = complex_tensor(a, {H, N2});
  const auto out = diag_discretize(dt, A, "zoh");
  const auto dtv = dt.to_vector<double>();
  std::vector<cd> want_dA, want_dB;
  for (std::int64_t h = 0; h < H; ++h) {
    for (std::int64_t n = 0; n < N2; ++n) {
      const cd z = a[h * N2 + n];
      Eigen::Matrix4d big = Eigen::Matrix4d::Zero();
      big.block<2, 2>(0, 0) << z.real(), -z.imag(), z.imag(), z.real();
      big.block<2, 2>(0, 0) *= dtv[h];
      big.block<2, 2>(0, 2) = dtv[h] * Eigen::Matrix2d::Identity();
      const Eigen::Matrix4d e = big.exp();
      want_dA.push_back({e(0, 0), e(1, 0)});
      want_dB.push_back({e(0, 2), e(1, 2)});
    }
  }
  require_close(out.dA, complex_tensor(want_dA, {H, N2}), 1e-14, 1e-12);
  require_close(out.dB, complex_tensor(want_dB, {H, N2}), 1e-14, 1e-12);
}

TEST_CASE("diag_discretize bilinear equals the dense (I - dt A/2)^{-1}(I + dt A/2)",
          "[cpu][s4ops]") {
  const std::int64_t H = 3, N2 = 4;
  Tensor dt = log_uniform(H, 1e-3, 1.0, 3);
  Tensor A = random_lambda(H, N2, 4);
  const auto out = diag_discretize(dt, A, "bilinear");
  const auto dtv = dt.to_vector<double>();
  const auto a = complex_values(A);
  std::vector<cd> want_dA, want_dB;
  for (std::int64_t h = 0; h < H; ++h) {
    for (std::int64_t n = 0; n < N2; ++n) {
      Eigen::Matrix2d M;
      M << a[h * N2 + n].real(), -a[h * N2 + n].imag(), a[h * N2 + n].imag(), a[h * N2 + n].real();
      const Eigen::Matrix2d I = Eigen::Matrix2d::Identity();
      const Eigen::Matrix2d back = I - dtv[h] / 2.0 * M;
      const Eigen::Matrix2d dA = back.lu().solve(I + dtv[h] / 2.0 * M);
      const Eigen::Vector2d dB = dtv[h] * back.lu().solve(Eigen::Vector2d(1.0, 0.0));
      want_dA.push_back({dA(0, 0), dA(1, 0)});
      want_dB.push_back({dB(0), dB(1)});
    }
  }
  require_close(out.dA, complex_tensor(want_dA, {H, N2}), 1e-14, 1e-12);
  require_close(out.dB, complex_tensor(want_dB, {H, N2}), 1e-14, 1e-12);
  // float32 in, float32 out, from the same formulas.
  const auto out32 = diag_discretize(dt.to(DType::Float32), A.to(DType::Float32), "bilinear");
  CHECK(out32.dA.dtype() == DType::Float32);
  require_close(out32.dA, out.dA.to(DType::Float32), 1e-6, 1e-5);
}

TEST_CASE("diag_discretize gradcheck (zoh and bilinear, small and large dt A)", "[cpu][s4ops]") {
  for (const char* method : {"zoh", "bilinear"}) {
    for (double scale : {0.3, 4.0}) {  // |dt A| below and above the series cut of 1/2
      INFO(method << " scale " << scale);
      Tensor dt = random_tensor({2}, 10, 0.05, 0.4);
      Tensor A = random_tensor({2, 3, 2}, 11, -scale, scale);
      require_gradcheck(
          [&](const std::vector<Tensor>& x) {
            const auto out = diag_discretize(x[0], x[1], method);
            return cat({out.dA, out.dB}, 0);
          },
          {dt, A});
      // Only dB used: dA's gradient arrives as zeros.
      require_gradcheck(
          [&](const std::vector<Tensor>& x) { return diag_discretize(x[0], x[1], method).dB; },
          {dt, A});
    }
  }
}

// ---------------------------------------------------------------- s4d_kernel

TEST_CASE("s4d_kernel equals the materialised Vandermonde kernel up to N = 64, L = 4096",
          "[cpu][s4ops]") {
  struct Case {
    std::int64_t Cn, H, N2, L;
  };
  for (const Case cs : {Case{1, 3, 4, 1}, Case{2, 2, 8, 37}, Case{2, 2, 32, 4096}}) {
    for (const char* method : {"zoh", "bilinear"}) {
      INFO("C " << cs.Cn << " H " << cs.H << " N2 " << cs.N2 << " L " << cs.L << " " << method);
      Tensor dt = log_uniform(cs.H, 1e-3, 1e-1, 20);
      Tensor A = random_lambda(cs.H, cs.N2, 21);
      Tensor B = random_tensor({cs.H, cs.N2, 2}, 22, -1, 1, DType::Float64, false);
      Tensor C = random_tensor({cs.Cn, cs.H, cs.N2, 2}, 23, -1, 1, DType::Float64, false);
      const Tensor K = s4d_kernel(dt, A, B, C, cs.L, method);
      CHECK(K.shape() == Shape{cs.Cn, cs.H, cs.L});
      require_rel_close(K, naive_s4d(dt, A, B, C, cs.L, method), 1e-11);
      // float32: the kernel works in double, so against the oracle of the
      // float32-rounded inputs only the output rounding remains.
      const auto f = [](const Tensor& t) { return t.to(DType::Float32); };
      const Tensor K32 = s4d_kernel(f(dt), f(A), f(B), f(C), cs.L, method);
      CHECK(K32.dtype() == DType::Float32);
      const auto d = [&](const Tensor& t) { return f(t).to(DType::Float64); };
      require_rel_close(K32, naive_s4d(d(dt), d(A), d(B), d(C), cs.L, method), 1e-6);
    }
  }
}

TEST_CASE("s4d_kernel gradcheck for dt, A, B, C (zoh and bilinear)", "[cpu][s4ops]") {
  for (const char* method : {"zoh", "bilinear"}) {
    INFO(method);
    Tensor dt = random_tensor({2}, 30, 0.05, 0.5);
    Tensor A = random_tensor({2, 3, 2}, 31, -1, 1);
    Tensor B = random_tensor({2, 3, 2}, 32);
    Tensor C = random_tensor({2, 2, 3, 2}, 33);
    require_gradcheck(
        [&](const std::vector<Tensor>& x) { return s4d_kernel(x[0], x[1], x[2], x[3], 9, method); },
        {dt, A, B, C});
    // A subset requiring grad: the others get none.
    Tensor A2 = A.detach(), C2 = C.detach();
    require_gradcheck(
        [&](const std::vector<Tensor>& x) { return s4d_kernel(x[0], x[1], x[2], x[3], 5, method); },
        {dt, A2, B, C2});
  }
}

// ---------------------------------------------------------------- s4_dplr_kernel

TEST_CASE("s4_dplr_kernel equals the materialised dense DPLR kernel up to N = 64, L = 4096",
          "[cpu][s4ops]") {
  struct Case {
    std::int64_t Cn, R, H, N2, L;
  };
  for (const Case cs : {Case{1, 1, 2, 1, 1}, Case{2, 1, 2, 4, 16}, Case{1, 2, 2, 8, 999},
                        Case{2, 1, 2, 32, 4096}, Case{1, 2, 1, 32, 4096}}) {
    INFO("C " << cs.Cn << " R " << cs.R << " H " << cs.H << " N2 " << cs.N2 << " L " << cs.L);
    const DplrInputs in = random_dplr(cs.Cn, cs.R, cs.H, cs.N2, 40 + cs.L);
    const Tensor K = s4_dplr_kernel(in.dt, in.Lambda, in.P, in.B, in.C, cs.L);
    CHECK(K.shape() == Shape{cs.Cn, cs.H, cs.L});
    require_rel_close(K, naive_dplr(in.dt, in.Lambda, in.P, in.B, in.C, cs.L), 1e-10);
    const DplrInputs in32 = to_dtype(in, DType::Float32), back = to_dtype(in32, DType::Float64);
    const Tensor K32 = s4_dplr_kernel(in32.dt, in32.Lambda, in32.P, in32.B, in32.C, cs.L);
    CHECK(K32.dtype() == DType::Float32);
    require_rel_close(K32, naive_dplr(back.dt, back.Lambda, back.P, back.B, back.C, cs.L), 1e-6);
  }
}

TEST_CASE("s4_dplr_kernel with P = 0 is the bilinear S4D kernel of C = C~ (1 - dA^L)^{-1}",
          "[cpu][s4ops]") {
  const std::int64_t Cn = 2, H = 3, N2 = 6, L = 64;
  const DplrInputs in = random_dplr(Cn, 1, H, N2, 50);
  const Tensor P0 = Tensor::zeros({1, H, N2, 2}, DType::Float64);
  // C~ = C (1 - dA^L) elementwise for a diagonal A.
  const auto disc = diag_discretize(in.dt, in.Lambda, "bilinear");
  const auto dA = complex_values(disc.dA), C = complex_values(in.C);
  std::vector<cd> Ct(C.size());
  for (std::size_t i = 0; i < C.size(); ++i) {
    Ct[i] = C[i] * (1.0 - std::pow(dA[i % (H * N2)], static_cast<double>(L)));
  }
  const Tensor K = s4_dplr_kernel(in.dt, in.Lambda, P0, in.B, complex_tensor(Ct, {Cn, H, N2}), L);
  require_rel_close(K, s4d_kernel(in.dt, in.Lambda, in.B, in.C, L, "bilinear"), 1e-12);
}

TEST_CASE("s4_dplr_kernel gradcheck for dt, Lambda, P, B, C (rank 1 and 2, even and odd L)",
          "[cpu][s4ops]") {
  for (std::int64_t R : {1, 2}) {
    for (std::int64_t L : {8, 7}) {
      INFO("rank " << R << " L " << L);
      Tensor dt = random_tensor({2}, 60, 0.1, 0.6);
      Tensor lam = random_lambda(2, 3, 61);
      lam.set_requires_grad(true);
      Tensor P = random_tensor({R, 2, 3, 2}, 62, -0.7, 0.7);
      Tensor B = random_tensor({2, 3, 2}, 63);
      Tensor C = random_tensor({2, 2, 3, 2}, 64);
      require_gradcheck(
          [&](const std::vector<Tensor>& x) {
            return s4_dplr_kernel(x[0], x[1], x[2], x[3], x[4], L);
          },
          {dt, lam, P, B, C});
    }
  }
}

// ---------------------------------------------------------------- steps

TEST_CASE("s4d_step: the impulse response of the recurrence is s4d_kernel's K", "[cpu][s4ops]") {
  const std::int64_t Cn = 2, H = 3, N2 = 4, L = 50;
  Tensor dt = log_uniform(H, 1e-2, 1e-1, 70);
  Tensor A = random_lambda(H, N2, 71);
  Tensor B = random_tensor({H, N2, 2}, 72, -1, 1, DType::Float64, false);
  Tensor C = random_tensor({Cn, H, N2, 2}, 73, -1, 1, DType::Float64, false);
  const Tensor K = s4d_kernel(dt, A, B, C, L, "zoh");
  // B-bar = dB * B.
  const auto disc = diag_discretize(dt, A, "zoh");
  const auto dB = complex_values(disc.dB), b = complex_values(B);
  std::vector<cd> Bbar(dB.size());
  for (std::size_t i = 0; i < dB.size(); ++i) Bbar[i] = dB[i] * b[i];
  const Tensor Bb = complex_tensor(Bbar, {H, N2});
  Tensor state = Tensor::zeros({1, H, N2, 2}, DType::Float64);
  std::vector<double> got(Cn * H * L);
  for (std::int64_t t = 0; t < L; ++t) {
    const Tensor u = Tensor::full({1, H}, t == 0 ? 1.0 : 0.0, DType::Float64);
    const auto y = kernels::s4d_step(u, state, disc.dA, Bb, C).to_vector<double>();
    for (std::int64_t i = 0; i < Cn * H; ++i) got[i * L + t] = y[i];
  }
  require_close(Tensor::from_vector<double>(got, {Cn, H, L}), K, 1e-13, 1e-11);
}

TEST_CASE("s4_dense_step: the impulse response of the dense DPLR recurrence is s4_dplr_kernel's K",
          "[cpu][s4ops]") {
  const std::int64_t Cn = 2, R = 2, H = 2, N2 = 5, L = 40;
  const DplrInputs in = random_dplr(Cn, R, H, N2, 80, 1e-2, 3e-1);
  const Tensor K = s4_dplr_kernel(in.dt, in.Lambda, in.P, in.B, in.C, L);
  // The step blocks from the dense oracle: rows 0..N2-1 of A-bar_f split into
  // the columns acting on x and on conj x; C = C~ (I - A-bar^L)^{-1}.
  const std::int64_t N = 2 * N2;
  const auto dtv = in.dt.to_vector<double>();
  const auto Lv = complex_values(in.Lambda), Pv = complex_values(in.P);
  const auto Bv = complex_values(in.B), Cv = complex_values(in.C);
  std::vector<cd> a1(H * N2 * N2), a2(H * N2 * N2), bb(H * N2), cc(Cn * H * N2);
  for (std::int64_t h = 0; h < H; ++h) {
    std::vector<cd> lam(Lv.begin() + h * N2, Lv.begin() + (h + 1) * N2);
    std::vector<cd> b(Bv.begin() + h * N2, Bv.begin() + (h + 1) * N2), p(R * N2);
    for (std::int64_t r = 0; r < R; ++r) {
      for (std::int64_t n = 0; n < N2; ++n) p[r * N2 + n] = Pv[(r * H + h) * N2 + n];
    }
    const DenseSystem sys = dense_dplr(dtv[h], lam, p, b, R);
    const Eigen::PartialPivLU<MatC> lu(
        (MatC::Identity(N, N) - matrix_power(sys.Ab, L)).transpose());
    for (std::int64_t i = 0; i < N2; ++i) {
      bb[h * N2 + i] = sys.Bb(i);
      for (std::int64_t j = 0; j < N2; ++j) {
        a1[(h * N2 + i) * N2 + j] = sys.Ab(i, j);
        a2[(h * N2 + i) * N2 + j] = sys.Ab(i, N2 + j);
      }
    }
    for (std::int64_t c = 0; c < Cn; ++c) {
      VecC ct(N);
      for (std::int64_t n = 0; n < N2; ++n) {
        ct(n) = Cv[(c * H + h) * N2 + n];
        ct(N2 + n) = std::conj(ct(n));
      }
      const VecC cf = lu.solve(ct);
      for (std::int64_t n = 0; n < N2; ++n) cc[(c * H + h) * N2 + n] = cf(n);
    }
  }
  const Tensor dA = complex_tensor(a1, {H, N2, N2}), dA_conj = complex_tensor(a2, {H, N2, N2});
  const Tensor dB = complex_tensor(bb, {H, N2}), C = complex_tensor(cc, {Cn, H, N2});
  Tensor state = Tensor::zeros({2, H, N2, 2}, DType::Float64);
  std::vector<double> got(Cn * H * L);
  for (std::int64_t t = 0; t < L; ++t) {
    // Batch row 0 gets the impulse, row 1 stays zero.
    std::vector<double> u(2 * H, 0.0);
    if (t == 0) std::fill(u.begin(), u.begin() + H, 1.0);
    const Tensor y =
        kernels::s4_dense_step(Tensor::from_vector<double>(u, {2, H}), state, dA, dA_conj, dB, C);
    const auto yv = y.to_vector<double>();
    for (std::int64_t i = 0; i < Cn * H; ++i) {
      got[i * L + t] = yv[i];
      CHECK(yv[Cn * H + i] == 0.0);
    }
  }
  require_rel_close(Tensor::from_vector<double>(got, {Cn, H, L}), K, 1e-11);
}

// ---------------------------------------------------------------- layouts and threads

TEST_CASE("s4 kernels: non-contiguous inputs, and results independent of the thread count",
          "[cpu][s4ops]") {
  const std::int64_t Cn = 2, R = 2, H = 16, N2 = 16, L = 512;
  const DplrInputs in = random_dplr(Cn, R, H, N2, 90);
  // C as a permuted view of a (H, C, N2, 2) tensor.
  const Tensor Cview = in.C.permute({1, 0, 2, 3}).contiguous().permute({1, 0, 2, 3});
  REQUIRE_FALSE(Cview.is_contiguous());
  require_close(s4d_kernel(in.dt, in.Lambda, in.B, Cview, L, "zoh"),
                s4d_kernel(in.dt, in.Lambda, in.B, in.C, L, "zoh"), 0.0, 0.0);
  require_close(s4_dplr_kernel(in.dt, in.Lambda, in.P, in.B, Cview, L),
                s4_dplr_kernel(in.dt, in.Lambda, in.P, in.B, in.C, L), 0.0, 0.0);
  // Forward and backward, bit for bit, on one thread and on all.
  const Tensor G = random_tensor({Cn, H, L}, 91, -1, 1, DType::Float64, false);
  const auto run = [&] {
    std::vector<Tensor> out;
    for (const char* m : {"zoh", "bilinear"}) {
      out.push_back(kernels::s4d_kernel_forward(in.dt, in.Lambda, in.B, in.C, L, m));
      const auto g =
          kernels::s4d_kernel_backward(G, in.dt, in.Lambda, in.B, in.C, m, true, true, true, true);
      out.insert(out.end(), {g.dt, g.A, g.B, g.C});
    }
    out.push_back(kernels::s4_dplr_kernel_forward(in.dt, in.Lambda, in.P, in.B, in.C, L));
    const auto g = kernels::s4_dplr_kernel_backward(G, in.dt, in.Lambda, in.P, in.B, in.C, true,
                                                    true, true, true, true);
    out.insert(out.end(), {g.dt, g.Lambda, g.P, g.B, g.C});
    return out;
  };
  const int threads = kernels::num_threads();
  kernels::set_num_threads(1);
  const auto one = run();
  kernels::set_num_threads(std::max(threads, 2));
  const auto many = run();
  kernels::set_num_threads(threads);
  for (std::size_t i = 0; i < one.size(); ++i) require_close(many[i], one[i], 0.0, 0.0);
}

// ---------------------------------------------------------------- errors

TEST_CASE("s4 op errors name the op and the shapes", "[cpu][s4ops]") {
  const Tensor dt = Tensor::ones({3}), A = Tensor::zeros({3, 4, 2}), B = Tensor::zeros({3, 4, 2});
  const Tensor C = Tensor::zeros({2, 3, 4, 2}), P = Tensor::zeros({1, 3, 4, 2});
  CHECK(error_message([&] { diag_discretize(dt, A, "euler"); }) ==
        "[diag_discretize] method must be \"zoh\" or \"bilinear\", got \"euler\"");
  CHECK(error_message([&] {
          diag_discretize(Tensor::ones({3, 1}), A);
        }) == "[diag_discretize] dt must be (H), got (3, 1) float32 cpu");
  CHECK(error_message([&] {
          diag_discretize(dt, Tensor::zeros({3, 4}));
        }) ==
        "[diag_discretize] A must be (H, N2, 2) (complex as a trailing dim 2), got (3, 4) "
        "float32 cpu");
  CHECK(error_message([&] {
          diag_discretize(dt, Tensor::zeros({2, 4, 2}));
        }) ==
        "[diag_discretize] A must be (3, 4, 2) (complex as a trailing dim 2), got (2, 4, 2) "
        "float32 cpu");
  CHECK(error_message([&] { s4d_kernel(dt, A, B, C, 0); }) ==
        "[s4d_kernel] kernel length L must be positive, got 0");
  CHECK(error_message([&] {
          s4d_kernel(dt, A, B, Tensor::zeros({2, 3, 5, 2}), 8);
        }) ==
        "[s4d_kernel] C must be (C, 3, 4, 2) (complex as a trailing dim 2), got (2, 3, 5, 2) "
        "float32 cpu");
  CHECK(error_message([&] {
          s4d_kernel(dt, A, Tensor::zeros({3, 4, 2}, DType::Float64), C, 8);
        }) == "[s4d_kernel] dtypes differ: (3,) float32 cpu and (3, 4, 2) float64 cpu");
  CHECK(error_message([&] {
          s4d_kernel(Tensor::ones({3}, DType::Int64), A.to(DType::Int64), B, C, 8);
        }) == "[s4d_kernel] expected float32 or float64 tensors, got dt (3,) int64 cpu");
  CHECK(error_message([&] {
          s4_dplr_kernel(dt, A, Tensor::zeros({3, 4, 2}), B, C, 8);
        }) ==
        "[s4_dplr_kernel] P must be (R, 3, 4, 2) (complex as a trailing dim 2), got (3, 4, 2) "
        "float32 cpu");
  CHECK(error_message([&] {
          s4_dplr_kernel(dt, A, P, Tensor::zeros({3, 2, 2}), C, 8);
        }) ==
        "[s4_dplr_kernel] B must be (3, 4, 2) (complex as a trailing dim 2), got (3, 2, 2) "
        "float32 cpu");
  CHECK(error_message([&] { s4_dplr_kernel(dt, A, P, B, C, -1); }) ==
        "[s4_dplr_kernel] kernel length L must be positive, got -1");
  Tensor state = Tensor::zeros({2, 3, 4, 2});
  CHECK(error_message([&] {
          kernels::s4d_step(Tensor::zeros({2, 4}), state, A, B, C);
        }) == "[s4d_step] u_t must be (B, 3), got (2, 4) float32 cpu");
  Tensor bad_state = Tensor::zeros({1, 3, 4, 2});
  CHECK(error_message([&] {
          kernels::s4d_step(Tensor::zeros({2, 3}), bad_state, A, B, C);
        }) ==
        "[s4d_step] state must be (2, 3, 4, 2) (complex as a trailing dim 2), got (1, 3, 4, 2) "
        "float32 cpu");
  CHECK(error_message([&] {
          kernels::s4_dense_step(Tensor::zeros({2, 3}), state, A, A, B, C);
        }) == "[s4_dense_step] dA must be (3, 4, 4, 2), got (3, 4, 2) float32 cpu");
}
