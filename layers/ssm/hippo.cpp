// HiPPO transition matrices (Gu et al. 2020, "HiPPO: Recurrent memory with
// optimal polynomial projections") in the conventions of the S4 code, and
// their normal-plus-low-rank decomposition (Gu et al. 2022, "Efficiently
// modeling long sequences with structured state spaces", Theorem 1).
#include "layers/ssm/hippo.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace ssm::hippo {

namespace {

void check_n(const char* op, std::int64_t N) {
  SSM_CHECK(N >= 1 && N <= 4096, op, "state size N must be in [1, 4096], got ", N);
}

// P of the low-rank correction (rank, N), row-major, so that A + P P^T is
// a multiple of the identity plus a skew-symmetric matrix. Rows beyond the
// measure's own rank are zero.
std::vector<double> rank_correction(const std::string& measure, std::int64_t N, std::int64_t rank) {
  std::vector<double> P(static_cast<std::size_t>(rank * N), 0.0);
  auto at = [&](std::int64_t r, std::int64_t n) -> double& { return P[r * N + n]; };
  if (measure == "legs") {
    SSM_CHECK(rank >= 1, "hippo::nplr", "legs needs rank >= 1, got ", rank);
    for (std::int64_t n = 0; n < N; ++n) at(0, n) = std::sqrt(0.5 + static_cast<double>(n));
  } else if (measure == "legt") {
    SSM_CHECK(rank >= 2, "hippo::nplr", "legt needs rank >= 2, got ", rank);
    // sqrt(2n+1) split into even and odd entries, halved like the matrix.
    for (std::int64_t n = 0; n < N; ++n) {
      at(n % 2 == 0 ? 1 : 0, n) = std::sqrt(2.0 * static_cast<double>(n) + 1.0) * std::sqrt(0.5);
    }
  } else if (measure == "lagt") {
    SSM_CHECK(rank >= 1, "hippo::nplr", "lagt needs rank >= 1, got ", rank);
    for (std::int64_t n = 0; n < N; ++n) at(0, n) = std::sqrt(0.5);
  } else if (measure == "fout") {
    SSM_CHECK(rank >= 1, "hippo::nplr", "fout needs rank >= 1, got ", rank);
    const auto t = transition("fout", N);
    for (std::int64_t n = 0; n < N; ++n) at(0, n) = t.B[n];
  } else {
    fail("hippo::nplr", "unknown measure '", measure, "'; known: legs, legt, lagt, fout");
  }
  return P;
}

}  // namespace

// A, B of each measure (A negative: x' = A x + B u is stable).
//   legs: A_nk = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n = k), 0 (n < k); B_n = sqrt(2n+1)
//   legt: A_nk = -0.5 sqrt(2n+1) sqrt(2k+1) (1 if n >= k else (-1)^(n-k)); B_n = 0.5 sqrt(2n+1)
//   lagt: A = I/2 - tril(ones); B = ones
//   fout: states (cos 0, sin 0, cos 1, sin 1, ...); A = pi (-diag(d, 1) + diag(d, -1)) - B B^T
//         with d = (0, 0, 1, 0, 2, 0, 3, ...), B = (1, 0, sqrt 2, 0, sqrt 2, 0, ...)
Transition transition(const std::string& measure, std::int64_t N) {
  check_n("hippo::transition", N);
  Transition t;
  t.N = N;
  t.A.assign(static_cast<std::size_t>(N * N), 0.0);
  t.B.assign(static_cast<std::size_t>(N), 0.0);
  auto A = [&](std::int64_t n, std::int64_t k) -> double& { return t.A[n * N + k]; };
  auto r = [](std::int64_t n) { return std::sqrt(2.0 * static_cast<double>(n) + 1.0); };
  if (measure == "legs") {
    for (std::int64_t n = 0; n < N; ++n) {
      for (std::int64_t k = 0; k < n; ++k) A(n, k) = -r(n) * r(k);
      A(n, n) = -static_cast<double>(n + 1);
      t.B[n] = r(n);
    }
  } else if (measure == "legt") {
    for (std::int64_t n = 0; n < N; ++n) {
      for (std::int64_t k = 0; k < N; ++k) {
        const double sign = n >= k ? 1.0 : ((k - n) % 2 == 0 ? 1.0 : -1.0);
        A(n, k) = -0.5 * r(n) * r(k) * sign;
      }
      t.B[n] = 0.5 * r(n);
    }
  } else if (measure == "lagt") {
    for (std::int64_t n = 0; n < N; ++n) {
      for (std::int64_t k = 0; k <= n; ++k) A(n, k) = -1.0;
      A(n, n) += 0.5;
      t.B[n] = 1.0;
    }
  } else if (measure == "fout") {
    for (std::int64_t n = 0; n < N; n += 2) t.B[n] = n == 0 ? 1.0 : std::sqrt(2.0);
    // d[i] couples states i and i+1: the frequency j on the pair (2j, 2j+1).
    for (std::int64_t i = 0; i + 1 < N; ++i) {
      const double d = i % 2 == 0 ? static_cast<double>(i / 2) : 0.0;
      A(i, i + 1) = -std::numbers::pi * d;
      A(i + 1, i) = std::numbers::pi * d;
    }
    for (std::int64_t n = 0; n < N; ++n) {
      for (std::int64_t k = 0; k < N; ++k) A(n, k) -= t.B[n] * t.B[k];
    }
  } else {
    fail("hippo::transition", "unknown measure '", measure, "'; known: legs, legt, lagt, fout");
  }
  return t;
}

// A + P P^T = w I + S with S skew-symmetric, so A = V (w + i diag(eig(-i S))) V^* - P P^T,
// V the unitary eigenvectors of the Hermitian -i S. Eigenvalues of a real skew
// matrix come in conjugate pairs (v, conj v); we keep the half with Im <= 0.
// A zero eigenvalue (FouT's dead sin 0 state) has a real null space; its
// real basis vectors are paired as (u1 +- i u2)/sqrt 2, as the S4 code does.
NPLR nplr(const std::string& measure, std::int64_t N, std::int64_t rank) {
  check_n("hippo::nplr", N);
  SSM_CHECK(N % 2 == 0, "hippo::nplr", "state size N must be even (conjugate pairs), got ", N);
  SSM_CHECK(rank >= 1 && rank <= N, "hippo::nplr", "rank must be in [1, N], got ", rank);
  const auto t = transition(measure, N);
  const auto P = rank_correction(measure, N, rank);
  using Mat = Eigen::MatrixXd;
  using CMat = Eigen::MatrixXcd;
  Mat AP(N, N);
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t k = 0; k < N; ++k) {
      double v = t.A[n * N + k];
      for (std::int64_t q = 0; q < rank; ++q) v += P[q * N + n] * P[q * N + k];
      AP(n, k) = v;
    }
  }
  const double w_re = AP.diagonal().mean();
  const Mat sym = 0.5 * (AP + AP.transpose()) - w_re * Mat::Identity(N, N);
  SSM_CHECK(sym.norm() <= 1e-6 * (1.0 + AP.norm()), "hippo::nplr", "measure '", measure,
            "': A + P P^T is not identity plus skew-symmetric (residual ", sym.norm(), ")");
  const Mat S = 0.5 * (AP - AP.transpose());
  const CMat Hm = std::complex<double>(0.0, -1.0) * S.cast<std::complex<double>>();
  Eigen::SelfAdjointEigenSolver<CMat> eig(Hm);
  SSM_CHECK(eig.info() == Eigen::Success, "hippo::nplr", "eigendecomposition failed");
  const Eigen::VectorXd w_im = eig.eigenvalues();  // ascending
  CMat V = eig.eigenvectors();

  // The null space of S (|w_im| tiny): replace its eigenvectors by a real
  // orthonormal basis, paired into (u1 + i u2)/sqrt 2 and its conjugate.
  const double tol = 1e-9 * (1.0 + S.norm());
  std::vector<std::int64_t> zero;
  for (std::int64_t j = 0; j < N; ++j) {
    if (std::abs(w_im(j)) <= tol) zero.push_back(j);
  }
  std::vector<cdouble> lam_sorted(static_cast<std::size_t>(N));
  for (std::int64_t j = 0; j < N; ++j) lam_sorted[j] = cdouble(w_re, w_im(j));
  if (!zero.empty()) {
    SSM_CHECK(zero.size() % 2 == 0, "hippo::nplr", "odd null space of size ", zero.size());
    std::vector<Eigen::VectorXd> basis;
    for (auto j : zero) {
      for (const Eigen::VectorXd& cand :
           {Eigen::VectorXd(V.col(j).real()), Eigen::VectorXd(V.col(j).imag())}) {
        Eigen::VectorXd v = cand;
        for (const auto& b : basis) v -= b.dot(v) * b;
        if (v.norm() > 1e-6 && basis.size() < zero.size()) basis.push_back(v / v.norm());
      }
    }
    SSM_CHECK(basis.size() == zero.size(), "hippo::nplr", "null space basis incomplete");
    // The eigenvalues are ascending, so the zero block sits in the middle:
    // its first half joins the kept half, the second half the conjugates.
    const std::size_t m = zero.size() / 2;
    for (std::size_t p = 0; p < m; ++p) {
      const Eigen::VectorXcd plus =
          (basis[2 * p].cast<cdouble>() + cdouble(0, 1) * basis[2 * p + 1].cast<cdouble>()) /
          std::sqrt(2.0);
      V.col(zero[p]) = plus;
      V.col(zero[m + p]) = plus.conjugate();
      lam_sorted[zero[p]] = lam_sorted[zero[m + p]] = cdouble(w_re, 0.0);
    }
  }

  NPLR out;
  out.N = N;
  out.rank = rank;
  const std::int64_t half = N / 2;
  // Kept half: the N/2 smallest imaginary parts (<= 0). The full basis is
  // (kept, conjugates of kept), which is what the S4 kernels sum over.
  CMat Vfull(N, N);
  out.Lambda.resize(static_cast<std::size_t>(half));
  out.Lambda_full.resize(static_cast<std::size_t>(N));
  for (std::int64_t j = 0; j < half; ++j) {
    Vfull.col(j) = V.col(j);
    Vfull.col(half + j) = V.col(j).conjugate();
    out.Lambda[j] = lam_sorted[j];
    out.Lambda_full[j] = lam_sorted[j];
    out.Lambda_full[half + j] = std::conj(lam_sorted[j]);
  }
  out.V.resize(static_cast<std::size_t>(N * N));
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t j = 0; j < N; ++j) out.V[n * N + j] = Vfull(n, j);
  }
  Eigen::VectorXcd Bv(N);
  for (std::int64_t n = 0; n < N; ++n) Bv(n) = t.B[n];
  const Eigen::VectorXcd VB = Vfull.adjoint() * Bv;
  out.B.assign(VB.data(), VB.data() + half);
  out.P.resize(static_cast<std::size_t>(rank * half));
  out.P_full.resize(static_cast<std::size_t>(rank * N));
  for (std::int64_t q = 0; q < rank; ++q) {
    Eigen::VectorXcd Pv(N);
    for (std::int64_t n = 0; n < N; ++n) {
      Pv(n) = P[q * N + n];
      out.P_full[q * N + n] = P[q * N + n];
    }
    const Eigen::VectorXcd VP = Vfull.adjoint() * Pv;
    for (std::int64_t j = 0; j < half; ++j) out.P[q * half + j] = VP(j);
  }
  return out;
}

std::vector<cdouble> s4d_lambda(const std::string& init, std::int64_t N) {
  check_n("hippo::s4d_lambda", N);
  SSM_CHECK(N % 2 == 0, "hippo::s4d_lambda", "state size N must be even, got ", N);
  const std::int64_t half = N / 2;
  std::vector<cdouble> lam(static_cast<std::size_t>(half));
  const double pi = std::numbers::pi, Nd = static_cast<double>(N);
  if (init == "legs") return nplr("legs", N, 1).Lambda;
  for (std::int64_t n = 0; n < half; ++n) {
    const double nd = static_cast<double>(n);
    if (init == "lin") {
      lam[n] = cdouble(-0.5, pi * nd);
    } else if (init == "inv") {
      lam[n] = cdouble(-0.5, (Nd / pi) * (Nd / (2.0 * nd + 1.0) - 1.0));
    } else if (init == "real") {
      lam[n] = cdouble(-(nd + 1.0), 0.0);
    } else {
      fail("hippo::s4d_lambda", "unknown init '", init, "'; known: legs, lin, inv, real");
    }
  }
  return lam;
}

}  // namespace ssm::hippo

namespace ssm::hippo {

namespace {

// x <- (I - c A)^{-1} ((I + c A) x + d B u) for LegS's lower-triangular A (N, N).
void legs_bilinear_step(const Transition& t, std::vector<double>& x, double c, double d, double u) {
  const std::int64_t N = t.N;
  std::vector<double> rhs(static_cast<std::size_t>(N));
  for (std::int64_t n = 0; n < N; ++n) {
    double ax = 0.0;
    for (std::int64_t k = 0; k <= n; ++k) ax += t.A[n * N + k] * x[k];
    rhs[n] = x[n] + c * ax + d * t.B[n] * u;
  }
  // Forward substitution: (I - c A) is lower triangular.
  for (std::int64_t n = 0; n < N; ++n) {
    double s = rhs[n];
    for (std::int64_t k = 0; k < n; ++k) s += c * t.A[n * N + k] * x[k];
    x[n] = s / (1.0 - c * t.A[n * N + n]);
  }
}

// sum_n x_n sqrt(2n+1) P_n(z), Legendre P_n by the three-term recurrence.
double legendre_series(const std::vector<double>& x, double z) {
  double p_prev = 1.0, p = z, acc = x.empty() ? 0.0 : x[0];
  for (std::size_t n = 1; n < x.size(); ++n) {
    acc += x[n] * std::sqrt(2.0 * static_cast<double>(n) + 1.0) * p;
    const double nd = static_cast<double>(n);
    const double next = ((2.0 * nd + 1.0) * z * p - nd * p_prev) / (nd + 1.0);
    p_prev = p;
    p = next;
  }
  return acc;
}

void check_signal(const char* op, const std::vector<double>& u, std::int64_t N) {
  check_n(op, N);
  SSM_CHECK(!u.empty(), op, "the signal is empty");
}

}  // namespace

std::vector<double> legs_project(const std::vector<double>& u, std::int64_t N) {
  check_signal("hippo::legs_project", u, N);
  const auto t = transition("legs", N);
  std::vector<double> x(static_cast<std::size_t>(N), 0.0);
  for (std::size_t k = 1; k <= u.size(); ++k) {
    const double kd = static_cast<double>(k);
    legs_bilinear_step(t, x, 0.5 / kd, 1.0 / kd, u[k - 1]);
  }
  return x;
}

std::vector<double> legs_reconstruct(const std::vector<double>& x, std::int64_t L) {
  SSM_CHECK(L >= 1, "hippo::legs_reconstruct", "L must be >= 1, got ", L);
  std::vector<double> out(static_cast<std::size_t>(L));
  for (std::int64_t k = 1; k <= L; ++k) {
    out[k - 1] = legendre_series(x, 2.0 * static_cast<double>(k) / static_cast<double>(L) - 1.0);
  }
  return out;
}

std::vector<double> legs_project_lti(const std::vector<double>& u, std::int64_t N, double dt) {
  check_signal("hippo::legs_project_lti", u, N);
  SSM_CHECK(dt > 0.0, "hippo::legs_project_lti", "dt must be > 0, got ", dt);
  const auto t = transition("legs", N);
  std::vector<double> x(static_cast<std::size_t>(N), 0.0);
  for (double v : u) legs_bilinear_step(t, x, 0.5 * dt, dt, v);
  return x;
}

std::vector<double> legs_reconstruct_lti(const std::vector<double>& x, std::int64_t L, double dt) {
  SSM_CHECK(L >= 1, "hippo::legs_reconstruct_lti", "L must be >= 1, got ", L);
  std::vector<double> out(static_cast<std::size_t>(L));
  for (std::int64_t k = 1; k <= L; ++k) {
    const double lag = static_cast<double>(L - k) * dt;
    out[k - 1] = legendre_series(x, 2.0 * std::exp(-lag) - 1.0);
  }
  return out;
}

}  // namespace ssm::hippo
