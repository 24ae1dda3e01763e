// CPU LSSL kernels (Gu et al. 2021, "Combining Recurrent, Convolutional, and
// Continuous-time Models with Linear State-Space Layers"): GBT and dense ZOH
// discretization with their backward, the Krylov kernel K = C [B̄, ĀB̄, ...]
// with its backward, and the dense recurrent step; plus the dense float64
// helpers (blocked LU with partial pivoting, Padé matrix exponential).
//
// Gradient rule: backward kernels return fresh gradient tensors (=); the
// tape does the accumulation. Sums over features (a shared A or B) and over
// channels run in a fixed order, so results do not depend on the thread count.
//
// Threading: features h run in parallel (OpenMP); the GEMMs inside a
// parallel region run single-threaded (OpenBLAS's OpenMP build), so one
// feature's result never depends on how many threads there are.
#include "kernels/lssl.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/fft.h"

#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/lssl.h"
#endif

namespace ssm::kernels {

// ---------------------------------------------------------------- dense float64 helpers

namespace dense {

void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double* c,
          std::int64_t ldc, bool accumulate) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) {
      for (std::int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0);
    }
    return;
  }
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              accumulate ? 1.0 : 0.0, c, static_cast<int>(ldc));
}

// Right-looking blocked LU (LAPACK getrf): factor a panel of kPanel columns
// with row swaps applied to whole rows, then U12 = L11^{-1} A12 (trsm) and
// A22 -= L21 U12 (gemm).
bool lu_factor(double* a, std::int64_t n, std::int64_t* piv) {
  constexpr std::int64_t kPanel = 64;
  bool ok = true;
  for (std::int64_t j0 = 0; j0 < n; j0 += kPanel) {
    const std::int64_t j1 = std::min(n, j0 + kPanel);
    for (std::int64_t k = j0; k < j1; ++k) {
      std::int64_t p = k;
      for (std::int64_t i = k + 1; i < n; ++i) {
        if (std::abs(a[i * n + k]) > std::abs(a[p * n + k])) p = i;
      }
      piv[k] = p;
      if (p != k) std::swap_ranges(a + k * n, a + (k + 1) * n, a + p * n);
      const double pivot = a[k * n + k];
      if (pivot == 0.0) {
        ok = false;
        continue;
      }
      const double inv = 1.0 / pivot;
      const double* rk = a + k * n;
      for (std::int64_t i = k + 1; i < n; ++i) {
        double* ri = a + i * n;
        ri[k] *= inv;
        const double l = ri[k];
        for (std::int64_t j = k + 1; j < j1; ++j) ri[j] -= l * rk[j];
      }
    }
    if (j1 < n) {
      const std::int64_t jb = j1 - j0, rest = n - j1;
      cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit,
                  static_cast<int>(jb), static_cast<int>(rest), 1.0, a + j0 * n + j0,
                  static_cast<int>(n), a + j0 * n + j1, static_cast<int>(n));
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rest),
                  static_cast<int>(rest), static_cast<int>(jb), -1.0, a + j1 * n + j0,
                  static_cast<int>(n), a + j0 * n + j1, static_cast<int>(n), 1.0, a + j1 * n + j1,
                  static_cast<int>(n));
    }
  }
  return ok;
}

// P a = L U:  a x = b  <=>  L U x = P b;   a^T x = b  <=>  U^T L^T (P x) = b.
void lu_solve(const double* lu, const std::int64_t* piv, std::int64_t n, bool transpose, double* b,
              std::int64_t nrhs) {
  if (n == 0 || nrhs == 0) return;
  const int in = static_cast<int>(n), ir = static_cast<int>(nrhs);
  const auto swap_rows = [&](std::int64_t i, std::int64_t j) {
    if (i != j) std::swap_ranges(b + i * nrhs, b + (i + 1) * nrhs, b + j * nrhs);
  };
  if (!transpose) {
    for (std::int64_t k = 0; k < n; ++k) swap_rows(k, piv[k]);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, in, ir, 1.0, lu, in,
                b, ir);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, in, ir, 1.0, lu,
                in, b, ir);
  } else {
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasTrans, CblasNonUnit, in, ir, 1.0, lu, in,
                b, ir);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasUnit, in, ir, 1.0, lu, in, b,
                ir);
    for (std::int64_t k = n - 1; k >= 0; --k) swap_rows(k, piv[k]);
  }
}

namespace {

double norm1(const double* a, std::int64_t n) {
  double best = 0.0;
  for (std::int64_t j = 0; j < n; ++j) {
    double s = 0.0;
    for (std::int64_t i = 0; i < n; ++i) s += std::abs(a[i * n + j]);
    best = std::max(best, s);
  }
  return best;
}

// out = c0 I + sum_i c_i P_i over the given (n, n) matrices.
void lincomb(double* out, std::int64_t n, double c0,
             std::initializer_list<std::pair<double, const double*>> terms) {
  const std::int64_t nn = n * n;
  std::fill(out, out + nn, 0.0);
  for (const auto& [c, p] : terms) {
    for (std::int64_t i = 0; i < nn; ++i) out[i] += c * p[i];
  }
  for (std::int64_t i = 0; i < n; ++i) out[i * n + i] += c0;
}

}  // namespace

// Higham (2005), "The scaling and squaring method for the matrix exponential
// revisited", Algorithm 2.3: r_m(A) = q_m(A)^{-1} p_m(A) with p_m(A) = U + V,
// q_m(A) = V - U (U the odd, V the even part), m the smallest of 3, 5, 7, 9
// whose theta_m bounds ||A||_1; otherwise m = 13 on A / 2^s, squared s times.
void expm(const double* a, std::int64_t n, double* out) {
  if (n == 0) return;
  const std::int64_t nn = n * n;
  static constexpr double kTheta[] = {1.495585217958292e-2, 2.539398330063230e-1,
                                      9.504178996162932e-1, 2.097847961257068e0};
  static constexpr double kTheta13 = 5.371920351148152e0;
  static constexpr double b3[] = {120., 60., 12., 1.};
  static constexpr double b5[] = {30240., 15120., 3360., 420., 30., 1.};
  static constexpr double b7[] = {17297280., 8648640., 1995840., 277200., 25200., 1512., 56., 1.};
  static constexpr double b9[] = {17643225600., 8821612800., 2075673600., 302702400., 30270240.,
                                  2162160.,     110880.,     3960.,       90.,        1.};
  static constexpr double b13[] = {64764752532480000.,
                                   32382376266240000.,
                                   7771770303897600.,
                                   1187353796428800.,
                                   129060195264000.,
                                   10559470521600.,
                                   670442572800.,
                                   33522128640.,
                                   1323241920.,
                                   40840800.,
                                   960960.,
                                   16380.,
                                   182.,
                                   1.};
  const double norm = norm1(a, n);
  std::vector<double> A(a, a + nn), A2(nn), A4(nn), A6(nn), A8(nn), U(nn), V(nn), T(nn);
  int s = 0;
  int m = 13;
  for (int i = 0; i < 4; ++i) {
    if (norm <= kTheta[i]) {
      m = 3 + 2 * i;
      break;
    }
  }
  if (m == 13 && norm > kTheta13) {
    s = static_cast<int>(std::ceil(std::log2(norm / kTheta13)));
    const double scale = std::ldexp(1.0, -s);
    for (double& v : A) v *= scale;
  }
  gemm(false, false, n, n, n, A.data(), n, A.data(), n, A2.data(), n);
  if (m >= 5) gemm(false, false, n, n, n, A2.data(), n, A2.data(), n, A4.data(), n);
  if (m >= 7) gemm(false, false, n, n, n, A4.data(), n, A2.data(), n, A6.data(), n);
  if (m == 9) gemm(false, false, n, n, n, A6.data(), n, A2.data(), n, A8.data(), n);
  switch (m) {
    case 3:
      lincomb(T.data(), n, b3[1], {{b3[3], A2.data()}});
      lincomb(V.data(), n, b3[0], {{b3[2], A2.data()}});
      break;
    case 5:
      lincomb(T.data(), n, b5[1], {{b5[3], A2.data()}, {b5[5], A4.data()}});
      lincomb(V.data(), n, b5[0], {{b5[2], A2.data()}, {b5[4], A4.data()}});
      break;
    case 7:
      lincomb(T.data(), n, b7[1], {{b7[3], A2.data()}, {b7[5], A4.data()}, {b7[7], A6.data()}});
      lincomb(V.data(), n, b7[0], {{b7[2], A2.data()}, {b7[4], A4.data()}, {b7[6], A6.data()}});
      break;
    case 9:
      lincomb(T.data(), n, b9[1],
              {{b9[3], A2.data()}, {b9[5], A4.data()}, {b9[7], A6.data()}, {b9[9], A8.data()}});
      lincomb(V.data(), n, b9[0],
              {{b9[2], A2.data()}, {b9[4], A4.data()}, {b9[6], A6.data()}, {b9[8], A8.data()}});
      break;
    default: {
      // U = A [A6 (b13 A6 + b11 A4 + b9 A2) + b7 A6 + b5 A4 + b3 A2 + b1 I]
      // V = A6 (b12 A6 + b10 A4 + b8 A2) + b6 A6 + b4 A4 + b2 A2 + b0 I
      std::vector<double> W(nn);
      lincomb(W.data(), n, 0.0, {{b13[13], A6.data()}, {b13[11], A4.data()}, {b13[9], A2.data()}});
      lincomb(T.data(), n, b13[1], {{b13[7], A6.data()}, {b13[5], A4.data()}, {b13[3], A2.data()}});
      gemm(false, false, n, n, n, A6.data(), n, W.data(), n, T.data(), n, true);
      lincomb(W.data(), n, 0.0, {{b13[12], A6.data()}, {b13[10], A4.data()}, {b13[8], A2.data()}});
      lincomb(V.data(), n, b13[0], {{b13[6], A6.data()}, {b13[4], A4.data()}, {b13[2], A2.data()}});
      gemm(false, false, n, n, n, A6.data(), n, W.data(), n, V.data(), n, true);
      break;
    }
  }
  gemm(false, false, n, n, n, A.data(), n, T.data(), n, U.data(), n);  // U = A T
  // (V - U) out = (V + U)
  std::vector<std::int64_t> piv(n);
  for (std::int64_t i = 0; i < nn; ++i) {
    out[i] = V[i] + U[i];
    T[i] = V[i] - U[i];
  }
  lu_factor(T.data(), n, piv.data());  // q_m(A) is nonsingular for ||A||_1 <= theta_m
  lu_solve(T.data(), piv.data(), n, false, out, n);
  for (int i = 0; i < s; ++i) {
    gemm(false, false, n, n, n, out, n, out, n, T.data(), n);
    std::copy(T.begin(), T.end(), out);
  }
}

}  // namespace dense

namespace {

// ---------------------------------------------------------------- discretization helpers

struct DiscShapes {
  std::int64_t H = 0, N = 0;
  bool shared_A = false, shared_B = false;
};

DiscShapes check_discretize(const char* op, const Tensor& A, const Tensor& B, const Tensor& dt) {
  SSM_CHECK(A.defined() && B.defined() && dt.defined(), op, "tensor is undefined");
  check_same_device(op, A, B);
  check_same_device(op, A, dt);
  check_same_dtype(op, A, B);
  check_same_dtype(op, A, dt);
  SSM_CHECK(dt.dim() == 1, op, "dt must be (H), got ", dt.desc());
  DiscShapes s;
  s.H = dt.size(0);
  SSM_CHECK((A.dim() == 2 || A.dim() == 3) && A.size(-1) == A.size(-2) && A.size(-1) >= 1, op,
            "A must be (N, N) or (H, N, N) with N >= 1, got ", A.desc());
  s.N = A.size(-1);
  s.shared_A = A.dim() == 2;
  SSM_CHECK(s.shared_A || A.size(0) == s.H, op, "A ", A.desc(), " has ", A.size(0),
            " features but dt ", dt.desc(), " has ", s.H);
  SSM_CHECK((B.dim() == 1 || B.dim() == 2) && B.size(-1) == s.N, op, "B must be (N) or (H, N) = (",
            s.H, ", ", s.N, ") to match A ", A.desc(), ", got ", B.desc());
  s.shared_B = B.dim() == 1;
  SSM_CHECK(s.shared_B || B.size(0) == s.H, op, "B ", B.desc(), " has ", B.size(0),
            " features but dt ", dt.desc(), " has ", s.H);
  return s;
}

Tensor to_f64(const Tensor& t) {
  return t.dtype() == DType::Float64 ? t.contiguous() : t.to(DType::Float64).contiguous();
}

Tensor from_f64(const Tensor& t, DType dtype) { return dtype == DType::Float64 ? t : t.to(dtype); }

std::vector<double> checked_dt(const char* op, const Tensor& dt) {
  std::vector<double> v = dt.to_vector<double>();
  for (std::size_t h = 0; h < v.size(); ++h) {
    SSM_CHECK(std::isfinite(v[h]) && v[h] > 0.0, op, "dt must be positive and finite, got dt[", h,
              "] = ", v[h]);
  }
  return v;
}

// Adds the per-feature (H, n) rows of `part` in order into (n) `out` (a shared operand's gradient).
void sum_features(const std::vector<double>& part, std::int64_t H, std::int64_t n, double* out) {
  std::fill(out, out + n, 0.0);
  for (std::int64_t h = 0; h < H; ++h) {
    const double* p = part.data() + h * n;
    for (std::int64_t i = 0; i < n; ++i) out[i] += p[i];
  }
}

// The first feature index that failed, or -1.
std::int64_t first_failure(const std::vector<char>& failed) {
  for (std::size_t h = 0; h < failed.size(); ++h) {
    if (failed[h]) return static_cast<std::int64_t>(h);
  }
  return -1;
}

// ---------------------------------------------------------------- Krylov helpers

// C (m, n) = op(A) op(B) (+ C when accumulate), row-major, in T.
template <class T>
void blas_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
               const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc,
               bool accumulate = false) {
  if (m == 0 || n == 0) return;
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  const T beta = accumulate ? T(1) : T(0);
  const auto i = [](std::int64_t v) { return static_cast<int>(std::max<std::int64_t>(v, 1)); };
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), 1.0f, a, i(lda), b, i(ldb), beta, c,
                i(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), 1.0, a, i(lda), b, i(ldb), beta, c,
                i(ldc));
  }
}

// The block width b of krylov_columns: a power of two in [16, 64]. Doubling up to b
// costs log2(b) squarings (2 N^3 flops each) against 2 N^2 L for the columns, so b is
// smaller when N is large relative to L; 16 columns still keep the GEMMs efficient.
std::int64_t krylov_block(std::int64_t N, std::int64_t L) {
  std::int64_t b = 64;
  while (b > 16 && b * N > 4 * L) b /= 2;
  return b;
}

// X[:, l] = op(A)^l v for l < L, X (N, ldx) row-major, op(A) = A or A^T.
// Doubling: X[:, s:2s] = op(A)^s X[:, 0:s] while s < b (op(A)^s by squaring,
// (A^T)^s = (A^s)^T), then X[:, s:s+b] = op(A)^b X[:, s-b:s] with b = krylov_block(N, L).
// O(N^2 L + N^3 log2 b) flops, all in GEMMs. pw, tmp: (N, N) scratch.
template <class T>
void krylov_columns(const T* A, bool trans, const T* v, std::int64_t N, std::int64_t L, T* X,
                    std::int64_t ldx, T* pw, T* tmp) {
  const std::int64_t block = krylov_block(N, L);
  for (std::int64_t n = 0; n < N; ++n) X[n * ldx] = v[n];
  if (L <= 1) return;
  std::copy(A, A + N * N, pw);  // pw = A^s
  std::int64_t s = 1;
  while (true) {
    const std::int64_t w = std::min(s, L - s);
    blas_gemm<T>(trans, false, N, w, N, pw, N, X, ldx, X + s, ldx);
    s += w;
    if (s >= L) return;
    blas_gemm<T>(false, false, N, N, N, pw, N, pw, N, tmp, N);
    std::copy(tmp, tmp + N * N, pw);
    if (s >= block) break;
  }
  const std::int64_t b = s;  // pw = A^b
  while (s < L) {
    const std::int64_t w = std::min(b, L - s);
    blas_gemm<T>(trans, false, N, w, N, pw, N, X + (s - b), ldx, X + s, ldx);
    s += w;
  }
}

struct KrylovShapes {
  std::int64_t H = 0, N = 0, Cc = 0;
};

KrylovShapes check_krylov(const char* op, const Tensor& dA, const Tensor& dB, const Tensor& C) {
  SSM_CHECK(dA.defined() && C.defined(), op, "tensor is undefined");
  check_same_device(op, dA, C);
  check_same_dtype(op, dA, C);
  SSM_CHECK(dA.dim() == 3 && dA.size(1) == dA.size(2) && dA.size(1) >= 1, op,
            "dA must be (H, N, N) with N >= 1, got ", dA.desc());
  KrylovShapes s;
  s.H = dA.size(0);
  s.N = dA.size(1);
  if (dB.defined()) {
    check_same_device(op, dA, dB);
    check_same_dtype(op, dA, dB);
    SSM_CHECK(dB.shape() == Shape({s.H, s.N}), op, "dB must be (H, N) = (", s.H, ", ", s.N,
              ") to match dA ", dA.desc(), ", got ", dB.desc());
  }
  SSM_CHECK(C.dim() == 3 && C.size(1) == s.H && C.size(2) == s.N, op,
            "C must be (Cc, H, N) = (Cc, ", s.H, ", ", s.N, ") to match dA ", dA.desc(), ", got ",
            C.desc());
  s.Cc = C.size(0);
  return s;
}

}  // namespace

// ---------------------------------------------------------------- gbt_discretize

// Per feature h, in float64: M = I - alpha dt A, R = [I + (1 - alpha) dt A | dt B] (N, N + 1);
// LU(M) and [Ā | B̄] = M^{-1} R.
Discretized gbt_discretize_forward(const Tensor& A, const Tensor& B, const Tensor& dt,
                                   double alpha) {
  SSM_CUDA_DISPATCH(A, cuda::gbt_discretize_forward(A, B, dt, alpha));
  const char* op = "gbt_discretize";
  const DiscShapes s = check_discretize(op, A, B, dt);
  SSM_CHECK(alpha >= 0.0 && alpha <= 1.0, op, "alpha must be in [0, 1], got ", alpha);
  require_cpu(op, {&A, &B, &dt});
  const std::int64_t H = s.H, N = s.N;
  const std::vector<double> dtv = checked_dt(op, dt);
  const Tensor A64 = to_f64(A), B64 = to_f64(B);
  Tensor dA = Tensor::empty({H, N, N}, DType::Float64);  // (H, N, N)
  Tensor dB = Tensor::empty({H, N}, DType::Float64);     // (H, N)
  const double* pA = A64.data<double>();
  const double* pB = B64.data<double>();
  double* pdA = dA.data<double>();
  double* pdB = dB.data<double>();
  std::vector<char> failed(H, 0);
#pragma omp parallel if (H > 1 && H * N * N * N > 65536)
  {
    std::vector<double> M(N * N), R(N * (N + 1));
    std::vector<std::int64_t> piv(N);
#pragma omp for schedule(static)
    for (std::int64_t h = 0; h < H; ++h) {
      const double* Ah = pA + (s.shared_A ? 0 : h * N * N);
      const double* Bh = pB + (s.shared_B ? 0 : h * N);
      const double d = dtv[h];
      for (std::int64_t i = 0; i < N; ++i) {
        for (std::int64_t j = 0; j < N; ++j) {
          const double a = d * Ah[i * N + j], e = i == j ? 1.0 : 0.0;
          M[i * N + j] = e - alpha * a;
          R[i * (N + 1) + j] = e + (1.0 - alpha) * a;
        }
        R[i * (N + 1) + N] = d * Bh[i];
      }
      if (!dense::lu_factor(M.data(), N, piv.data())) {
        failed[h] = 1;
        continue;
      }
      dense::lu_solve(M.data(), piv.data(), N, false, R.data(), N + 1);
      for (std::int64_t i = 0; i < N; ++i) {
        std::copy(R.begin() + i * (N + 1), R.begin() + i * (N + 1) + N, pdA + (h * N + i) * N);
        pdB[h * N + i] = R[i * (N + 1) + N];
      }
    }
  }
  const std::int64_t bad = first_failure(failed);
  SSM_CHECK(bad < 0, op, "I - alpha dt A is singular for feature ", bad, " (alpha ", alpha, ", dt ",
            bad < 0 ? 0.0 : dtv[bad], "), A ", A.desc());
  return {from_f64(dA, A.dtype()), from_f64(dB, A.dtype())};
}

// With S = M^{-T} G_Ā, s = M^{-T} g_B̄ and W = (1 - alpha) S + alpha (S Ā^T + s B̄^T):
//   grad_A_h = dt W,  grad_B_h = dt s,  grad_dt = <A_h, W> + <s, B_h>
// (from dĀ = M^{-1}(dP - dM Ā), dB̄ = M^{-1}(ddt B + dt dB - dM B̄), dM = -alpha d(dt A),
// dP = (1 - alpha) d(dt A)). A shared A or B gets the sum over h.
DiscretizeGrads gbt_discretize_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                        const Tensor& A, const Tensor& B, const Tensor& dt,
                                        double alpha, const Tensor& dA, const Tensor& dB,
                                        bool need_A, bool need_B, bool need_dt) {
  SSM_CUDA_DISPATCH(A, cuda::gbt_discretize_backward(grad_dA, grad_dB, A, B, dt, alpha, dA, dB,
                                                     need_A, need_B, need_dt));
  const char* op = "gbt_discretize";
  const DiscShapes s = check_discretize(op, A, B, dt);
  const std::int64_t H = s.H, N = s.N;
  SSM_CHECK(grad_dA.shape() == Shape({H, N, N}) && grad_dB.shape() == Shape({H, N}) &&
                dA.shape() == Shape({H, N, N}) && dB.shape() == Shape({H, N}),
            op, "gradients ", grad_dA.desc(), ", ", grad_dB.desc(), " and outputs ", dA.desc(),
            ", ", dB.desc(), " must be (H, N, N) and (H, N) = (", H, ", ", N, ")");
  require_cpu(op, {&grad_dA, &grad_dB, &A, &B, &dt, &dA, &dB});
  const std::vector<double> dtv = dt.to_vector<double>();
  const Tensor A64 = to_f64(A), B64 = to_f64(B), GA = to_f64(grad_dA), GB = to_f64(grad_dB);
  const Tensor dA64 = to_f64(dA), dB64 = to_f64(dB);
  const double *pA = A64.data<double>(), *pB = B64.data<double>();
  const double *pGA = GA.data<double>(), *pGB = GB.data<double>();
  const double *pdA = dA64.data<double>(), *pdB = dB64.data<double>();
  std::vector<double> gA(need_A ? H * N * N : 0), gB(need_B ? H * N : 0), gdt(H, 0.0);
  std::vector<char> failed(H, 0);
#pragma omp parallel if (H > 1 && H * N * N * N > 65536)
  {
    std::vector<double> M(N * N), R(N * (N + 1)), W(N * N), S(N * N);
    std::vector<std::int64_t> piv(N);
#pragma omp for schedule(static)
    for (std::int64_t h = 0; h < H; ++h) {
      const double* Ah = pA + (s.shared_A ? 0 : h * N * N);
      const double* Bh = pB + (s.shared_B ? 0 : h * N);
      const double d = dtv[h];
      for (std::int64_t i = 0; i < N; ++i) {
        for (std::int64_t j = 0; j < N; ++j) {
          M[i * N + j] = (i == j ? 1.0 : 0.0) - alpha * d * Ah[i * N + j];
          R[i * (N + 1) + j] = pGA[(h * N + i) * N + j];
        }
        R[i * (N + 1) + N] = pGB[h * N + i];
      }
      if (!dense::lu_factor(M.data(), N, piv.data())) {
        failed[h] = 1;
        continue;
      }
      dense::lu_solve(M.data(), piv.data(), N, true, R.data(), N + 1);  // [S | s]
      for (std::int64_t i = 0; i < N; ++i) {
        std::copy(R.begin() + i * (N + 1), R.begin() + i * (N + 1) + N, S.begin() + i * N);
      }
      // W = alpha S Ā^T + alpha s B̄^T + (1 - alpha) S
      dense::gemm(false, true, N, N, N, S.data(), N, pdA + h * N * N, N, W.data(), N);
      const double* dBh = pdB + h * N;
      for (std::int64_t i = 0; i < N; ++i) {
        const double si = R[i * (N + 1) + N];
        for (std::int64_t j = 0; j < N; ++j) {
          W[i * N + j] = alpha * (W[i * N + j] + si * dBh[j]) + (1.0 - alpha) * S[i * N + j];
        }
      }
      double g = 0.0;
      for (std::int64_t i = 0; i < N * N; ++i) g += Ah[i] * W[i];
      for (std::int64_t i = 0; i < N; ++i) g += R[i * (N + 1) + N] * Bh[i];
      gdt[h] = g;
      if (need_A) {
        for (std::int64_t i = 0; i < N * N; ++i) gA[h * N * N + i] = d * W[i];
      }
      if (need_B) {
        for (std::int64_t i = 0; i < N; ++i) gB[h * N + i] = d * R[i * (N + 1) + N];
      }
    }
  }
  const std::int64_t bad = first_failure(failed);
  SSM_CHECK(bad < 0, op, "I - alpha dt A is singular for feature ", bad);
  DiscretizeGrads out;
  if (need_A) {
    out.A = Tensor::empty(A.shape(), DType::Float64);
    if (s.shared_A) {
      sum_features(gA, H, N * N, out.A.data<double>());
    } else {
      std::copy(gA.begin(), gA.end(), out.A.data<double>());
    }
    out.A = from_f64(out.A, A.dtype());
  }
  if (need_B) {
    out.B = Tensor::empty(B.shape(), DType::Float64);
    if (s.shared_B) {
      sum_features(gB, H, N, out.B.data<double>());
    } else {
      std::copy(gB.begin(), gB.end(), out.B.data<double>());
    }
    out.B = from_f64(out.B, B.dtype());
  }
  if (need_dt) out.dt = Tensor::from_vector<double>(gdt, {H}, dt.dtype());
  return out;
}

// ---------------------------------------------------------------- zoh_discretize_dense

// Per feature: E = expm(dt [[A, B], [0, 0]]) ((N + 1) x (N + 1)); Ā = E[:N, :N], B̄ = E[:N, N].
Discretized zoh_discretize_dense_forward(const Tensor& A, const Tensor& B, const Tensor& dt) {
  SSM_CUDA_DISPATCH(A, cuda::zoh_discretize_dense_forward(A, B, dt));
  const char* op = "zoh_discretize_dense";
  const DiscShapes s = check_discretize(op, A, B, dt);
  require_cpu(op, {&A, &B, &dt});
  const std::int64_t H = s.H, N = s.N, N1 = N + 1;
  const std::vector<double> dtv = checked_dt(op, dt);
  const Tensor A64 = to_f64(A), B64 = to_f64(B);
  Tensor dA = Tensor::empty({H, N, N}, DType::Float64);  // (H, N, N)
  Tensor dB = Tensor::empty({H, N}, DType::Float64);     // (H, N)
  const double *pA = A64.data<double>(), *pB = B64.data<double>();
  double *pdA = dA.data<double>(), *pdB = dB.data<double>();
#pragma omp parallel if (H > 1 && H * N * N * N > 65536)
  {
    std::vector<double> M(N1 * N1), E(N1 * N1);
#pragma omp for schedule(static)
    for (std::int64_t h = 0; h < H; ++h) {
      const double* Ah = pA + (s.shared_A ? 0 : h * N * N);
      const double* Bh = pB + (s.shared_B ? 0 : h * N);
      const double d = dtv[h];
      std::fill(M.begin(), M.end(), 0.0);
      for (std::int64_t i = 0; i < N; ++i) {
        for (std::int64_t j = 0; j < N; ++j) M[i * N1 + j] = d * Ah[i * N + j];
        M[i * N1 + N] = d * Bh[i];
      }
      dense::expm(M.data(), N1, E.data());
      for (std::int64_t i = 0; i < N; ++i) {
        std::copy(E.begin() + i * N1, E.begin() + i * N1 + N, pdA + (h * N + i) * N);
        pdB[h * N + i] = E[i * N1 + N];
      }
    }
  }
  return {from_f64(dA, A.dtype()), from_f64(dB, A.dtype())};
}

// With M = dt Ã, Ã = [[A, B], [0, 0]], G = [[G_Ā, g_B̄], [0, 0]]:
//   grad_M = L_exp(M^T)[G] = top-right block of expm([[M^T, cG], [0, M^T]]) / c
// (c = ||M||_1 / ||G||_1 keeps the two blocks on one scale; the map is linear in G);
//   grad_A_h = dt grad_M[:N, :N],  grad_B_h = dt grad_M[:N, N],  grad_dt = <Ã, grad_M>.
DiscretizeGrads zoh_discretize_dense_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                              const Tensor& A, const Tensor& B, const Tensor& dt,
                                              bool need_A, bool need_B, bool need_dt) {
  SSM_CUDA_DISPATCH(
      A, cuda::zoh_discretize_dense_backward(grad_dA, grad_dB, A, B, dt, need_A, need_B, need_dt));
  const char* op = "zoh_discretize_dense";
  const DiscShapes s = check_discretize(op, A, B, dt);
  const std::int64_t H = s.H, N = s.N, N1 = N + 1, N2 = 2 * N1;
  SSM_CHECK(grad_dA.shape() == Shape({H, N, N}) && grad_dB.shape() == Shape({H, N}), op,
            "gradients ", grad_dA.desc(), ", ", grad_dB.desc(), " must be (H, N, N) and (H, N) = (",
            H, ", ", N, ")");
  require_cpu(op, {&grad_dA, &grad_dB, &A, &B, &dt});
  const std::vector<double> dtv = dt.to_vector<double>();
  const Tensor A64 = to_f64(A), B64 = to_f64(B), GA = to_f64(grad_dA), GB = to_f64(grad_dB);
  const double *pA = A64.data<double>(), *pB = B64.data<double>();
  const double *pGA = GA.data<double>(), *pGB = GB.data<double>();
  std::vector<double> gA(need_A ? H * N * N : 0), gB(need_B ? H * N : 0), gdt(H, 0.0);
#pragma omp parallel if (H > 1 && H * N * N * N > 8192)
  {
    std::vector<double> Big(N2 * N2), E(N2 * N2);
#pragma omp for schedule(static)
    for (std::int64_t h = 0; h < H; ++h) {
      const double* Ah = pA + (s.shared_A ? 0 : h * N * N);
      const double* Bh = pB + (s.shared_B ? 0 : h * N);
      const double d = dtv[h];
      // ||M||_1 and ||G||_1 (column sums; the last row of both is zero).
      double normM = 0.0, normG = 0.0;
      for (std::int64_t j = 0; j <= N; ++j) {
        double cm = 0.0, cg = 0.0;
        for (std::int64_t i = 0; i < N; ++i) {
          cm += std::abs(d * (j < N ? Ah[i * N + j] : Bh[i]));
          cg += std::abs(j < N ? pGA[(h * N + i) * N + j] : pGB[h * N + i]);
        }
        normM = std::max(normM, cm);
        normG = std::max(normG, cg);
      }
      if (normG == 0.0) continue;  // every gradient of this feature is 0
      const double c = (normM > 0.0 ? normM : 1.0) / normG;
      std::fill(Big.begin(), Big.end(), 0.0);
      for (std::int64_t i = 0; i < N1; ++i) {
        for (std::int64_t j = 0; j < N; ++j) {
          // M^T[i, j] = M[j, i]; M[j, i] = dt A[j, i] (i < N) or dt B[j] (i = N)
          const double mt = d * (i < N ? Ah[j * N + i] : Bh[j]);
          Big[i * N2 + j] = mt;
          Big[(N1 + i) * N2 + N1 + j] = mt;
        }
        // M^T's last column (j = N) is M's last row: zero.
      }
      for (std::int64_t i = 0; i < N; ++i) {
        for (std::int64_t j = 0; j < N; ++j) Big[i * N2 + N1 + j] = c * pGA[(h * N + i) * N + j];
        Big[i * N2 + N1 + N] = c * pGB[h * N + i];
      }
      dense::expm(Big.data(), N2, E.data());
      double g = 0.0;
      for (std::int64_t i = 0; i < N; ++i) {
        for (std::int64_t j = 0; j < N; ++j) {
          const double gm = E[i * N2 + N1 + j] / c;
          g += Ah[i * N + j] * gm;
          if (need_A) gA[(h * N + i) * N + j] = d * gm;
        }
        const double gm = E[i * N2 + N1 + N] / c;
        g += Bh[i] * gm;
        if (need_B) gB[h * N + i] = d * gm;
      }
      gdt[h] = g;
    }
  }
  DiscretizeGrads out;
  if (need_A) {
    out.A = Tensor::empty(A.shape(), DType::Float64);
    if (s.shared_A) {
      sum_features(gA, H, N * N, out.A.data<double>());
    } else {
      std::copy(gA.begin(), gA.end(), out.A.data<double>());
    }
    out.A = from_f64(out.A, A.dtype());
  }
  if (need_B) {
    out.B = Tensor::empty(B.shape(), DType::Float64);
    if (s.shared_B) {
      sum_features(gB, H, N, out.B.data<double>());
    } else {
      std::copy(gB.begin(), gB.end(), out.B.data<double>());
    }
    out.B = from_f64(out.B, B.dtype());
  }
  if (need_dt) out.dt = Tensor::from_vector<double>(gdt, {H}, dt.dtype());
  return out;
}

// ---------------------------------------------------------------- krylov_kernel

// Per feature h: X_h = krylov_columns(Ā_h, B̄_h) (N, L); K[:, h, :] = C[:, h, :] X_h (one GEMM).
KrylovResult krylov_kernel_forward(const Tensor& dA, const Tensor& dB, const Tensor& C,
                                   std::int64_t L) {
  SSM_CUDA_DISPATCH(dA, cuda::krylov_kernel_forward(dA, dB, C, L));
  const char* op = "krylov_kernel";
  SSM_CHECK(dB.defined(), op, "dB is undefined");
  const KrylovShapes s = check_krylov(op, dA, dB, C);
  SSM_CHECK(L >= 1, op, "L must be positive, got ", L);
  require_cpu(op, {&dA, &dB, &C});
  const std::int64_t H = s.H, N = s.N, Cc = s.Cc;
  const Tensor Ac = dA.contiguous(), Bc = dB.contiguous(), Cm = C.contiguous();
  KrylovResult out;
  out.X = Tensor::empty({H, N, L}, dA.dtype());   // (H, N, L)
  out.K = Tensor::empty({Cc, H, L}, dA.dtype());  // (Cc, H, L)
  dispatch_float(dA.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *pA = Ac.data<T>(), *pB = Bc.data<T>(), *pC = Cm.data<T>();
    T *pX = out.X.data<T>(), *pK = out.K.data<T>();
#pragma omp parallel if (H > 1 && H * N * N * L > 65536)
    {
      std::vector<T> pw(N * N), tmp(N * N);
#pragma omp for schedule(static)
      for (std::int64_t h = 0; h < H; ++h) {
        T* Xh = pX + h * N * L;
        krylov_columns<T>(pA + h * N * N, false, pB + h * N, N, L, Xh, L, pw.data(), tmp.data());
        blas_gemm<T>(false, false, Cc, L, N, pC + h * N, H * N, Xh, L, pK + h * L, H * L);
      }
    }
  });
  return out;
}

// See kernels/lssl.h. Per feature h (one thread): grad_C[:, h] = G_h X_h^T (GEMM); for each c,
// Y = krylov_columns(Ā^T, C[c, h]) (N, L), grad_B̄ += Y g_c, and the spectrum
// S[n] += conj(rfft(Y[n, :])) rfft(g_c[1:]) (P-point, P >= 2L: no wrap-around), so that
// irfft(S[n])[m] = sum_c sum_j Y_c[n, j] g_c[j + m + 1] = (sum_c Y_c Hankel(g_c))[n, m];
// then grad_Ā = Z X^T (GEMM).
KrylovGrads krylov_kernel_backward(const Tensor& grad, const Tensor& dA, const Tensor& C,
                                   const Tensor& X, bool need_dA, bool need_dB, bool need_C) {
  SSM_CUDA_DISPATCH(dA, cuda::krylov_kernel_backward(grad, dA, C, X, need_dA, need_dB, need_C));
  const char* op = "krylov_kernel";
  const KrylovShapes s = check_krylov(op, dA, Tensor(), C);
  const std::int64_t H = s.H, N = s.N, Cc = s.Cc;
  SSM_CHECK(grad.defined() && X.defined() && grad.dim() == 3 && grad.size(0) == Cc &&
                grad.size(1) == H && X.shape() == Shape({H, N, grad.size(2)}),
            op, "gradient ", grad.desc(), " and Krylov matrix ", X.desc(),
            " must be (Cc, H, L) and (H, N, L) with (Cc, H, N) = (", Cc, ", ", H, ", ", N, ")");
  check_same_dtype(op, dA, grad);
  check_same_dtype(op, dA, X);
  require_cpu(op, {&grad, &dA, &C, &X});
  const std::int64_t L = grad.size(2);
  const Tensor Gc = grad.contiguous(), Ac = dA.contiguous(), Cm = C.contiguous();
  const Tensor Xc = X.contiguous();
  KrylovGrads out;
  if (need_dA) out.dA = Tensor::empty({H, N, N}, dA.dtype());
  if (need_dB) out.dB = Tensor::empty({H, N}, dA.dtype());
  if (need_C) out.C = Tensor::empty({Cc, H, N}, dA.dtype());
  const std::int64_t P = fft::next_pow2(2 * L), F = P / 2 + 1;
  dispatch_float(dA.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using cT = std::complex<T>;
    const T *pG = Gc.data<T>(), *pA = Ac.data<T>(), *pC = Cm.data<T>(), *pX = Xc.data<T>();
#pragma omp parallel if (H > 1 && H * N * N * L > 65536)
    {
      std::vector<T> pw, tmp, Y, pad;
      std::vector<cT> S, spec, gspec;
      if (need_dA || need_dB) {
        pw.resize(N * N);
        tmp.resize(N * N);
        Y.resize(N * L);
      }
      if (need_dA) {
        pad.resize(P);
        S.resize(N * F);
        spec.resize(F);
        gspec.resize(F);
      }
#pragma omp for schedule(static)
      for (std::int64_t h = 0; h < H; ++h) {
        const T* Xh = pX + h * N * L;
        if (need_C) {
          blas_gemm<T>(false, true, Cc, N, L, pG + h * L, H * L, Xh, L,
                       out.C.template data<T>() + h * N, H * N);
        }
        if (!need_dA && !need_dB) continue;
        T* gB = need_dB ? out.dB.template data<T>() + h * N : nullptr;
        if (gB) std::fill(gB, gB + N, T(0));
        if (need_dA) std::fill(S.begin(), S.end(), cT(0));
        for (std::int64_t c = 0; c < Cc; ++c) {
          const T* g = pG + (c * H + h) * L;
          krylov_columns<T>(pA + h * N * N, true, pC + (c * H + h) * N, N, L, Y.data(), L,
                            pw.data(), tmp.data());
          if (gB) blas_gemm<T>(false, false, N, 1, L, Y.data(), L, g, 1, gB, 1, true);
          if (need_dA && L > 1) {
            std::fill(pad.begin(), pad.end(), T(0));
            std::copy(g + 1, g + L, pad.begin());
            fft::rfft(pad.data(), gspec.data(), P);
            for (std::int64_t n = 0; n < N; ++n) {
              std::fill(pad.begin(), pad.end(), T(0));
              std::copy(Y.begin() + n * L, Y.begin() + (n + 1) * L, pad.begin());
              fft::rfft(pad.data(), spec.data(), P);
              cT* Sn = S.data() + n * F;
              for (std::int64_t k = 0; k < F; ++k) Sn[k] += std::conj(spec[k]) * gspec[k];
            }
          }
        }
        if (need_dA) {
          T* gA = out.dA.template data<T>() + h * N * N;
          if (L == 1) {
            std::fill(gA, gA + N * N, T(0));
            continue;
          }
          for (std::int64_t n = 0; n < N; ++n) {  // Z = sum_c Y_c Hankel(g_c), into Y
            fft::irfft(S.data() + n * F, pad.data(), P);
            std::copy(pad.begin(), pad.begin() + L, Y.begin() + n * L);
          }
          blas_gemm<T>(false, true, N, N, L, Y.data(), L, Xh, L, gA, N);
        }
      }
    }
  });
  return out;
}

// ---------------------------------------------------------------- dense_ssm_step

// x' = Ā_h x + B̄_h u;  y[b, c, h] = C[c, h] x'. Rows (b, h) in parallel.
Tensor dense_ssm_step(const Tensor& dA, const Tensor& dB, const Tensor& C, const Tensor& u_t,
                      Tensor& state) {
  SSM_CUDA_DISPATCH(dA, cuda::dense_ssm_step(dA, dB, C, u_t, state));
  const char* op = "dense_ssm_step";
  SSM_CHECK(dB.defined() && u_t.defined() && state.defined(), op, "tensor is undefined");
  const KrylovShapes s = check_krylov(op, dA, dB, C);
  const std::int64_t H = s.H, N = s.N, Cc = s.Cc;
  check_same_device(op, dA, u_t);
  check_same_dtype(op, dA, u_t);
  check_same_device(op, dA, state);
  check_same_dtype(op, dA, state);
  SSM_CHECK(u_t.dim() == 2 && u_t.size(1) == H, op, "u_t must be (B, H) with H = ", H, ", got ",
            u_t.desc());
  const std::int64_t Bsz = u_t.size(0);
  SSM_CHECK(state.shape() == Shape({Bsz, H, N}), op, "state must be (B, H, N) = (", Bsz, ", ", H,
            ", ", N, "), got ", state.desc());
  require_cpu(op, {&dA, &dB, &C, &u_t, &state});
  const Tensor Ac = dA.contiguous(), Bc = dB.contiguous(), Cm = C.contiguous();
  const Tensor uc = u_t.contiguous();
  Tensor y = Tensor::empty({Bsz, Cc, H}, dA.dtype());  // (B, Cc, H)
  // The state is written in place through its own strides.
  const std::int64_t s0 = state.strides()[0], s1 = state.strides()[1], s2 = state.strides()[2];
  dispatch_float(dA.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *pA = Ac.data<T>(), *pB = Bc.data<T>(), *pC = Cm.data<T>(), *pu = uc.data<T>();
    T* ps = state.data<T>();
    T* py = y.data<T>();
#pragma omp parallel if (Bsz * H * N * N > 65536)
    {
      std::vector<T> x(N), xn(N);
#pragma omp for schedule(static)
      for (std::int64_t r = 0; r < Bsz * H; ++r) {
        const std::int64_t b = r / H, h = r % H;
        T* st = ps + b * s0 + h * s1;
        for (std::int64_t n = 0; n < N; ++n) x[n] = st[n * s2];
        const T u = pu[r];
        const T* Ah = pA + h * N * N;
        for (std::int64_t i = 0; i < N; ++i) {
          T acc = pB[h * N + i] * u;
          const T* row = Ah + i * N;
          for (std::int64_t j = 0; j < N; ++j) acc += row[j] * x[j];
          xn[i] = acc;
        }
        for (std::int64_t n = 0; n < N; ++n) st[n * s2] = xn[n];
        for (std::int64_t c = 0; c < Cc; ++c) {
          const T* Cr = pC + (c * H + h) * N;
          T acc = 0;
          for (std::int64_t n = 0; n < N; ++n) acc += Cr[n] * xn[n];
          py[(b * Cc + c) * H + h] = acc;
        }
      }
    }
  });
  return y;
}

}  // namespace ssm::kernels
