// CUDA LSSL kernels, float32 tensors, with the semantics, checks and messages
// of kernels/cpu/lssl.cpp (the oracle):
//
// Discretizations (gbt_discretize, zoh_discretize_dense): one block of
// kBlock threads per feature h, computing in float64 in global scratch
// (Tensor::empty on the device) as the CPU does: the block factors its
// (n, n) matrix by LU with partial pivoting (right-looking, unblocked: the
// pivot search by warp 0, first index of the largest |a[i, k]| as the CPU,
// then the row swap, the column scaling and the rank-1 update of the
// trailing matrix, each followed by __syncthreads), then solves with one
// thread per right-hand-side column. The matrix exponential is the CPU's
// Padé scaling-and-squaring (Higham 2005) transcribed per block, its
// products one thread per output element summing over k in order. A shared
// A or B gets the sum of the per-feature float64 gradients over h in order
// (sum_features_kernel), as the CPU. A singular I - alpha dt A sets a flag
// per feature; the host throws naming the first one.
//
// Krylov kernel: one block per feature, x_{l+1} = Ā x_l (float64 state in
// shared memory, one warp per row, warp_sum), X[h, :, l] = x_l and
// K[c, h, l] = C[c, h] . x_l (one warp per c). Backward by the adjoint
// recurrence (equal to the CPU's Y Hankel(g) form):
//   lam_{L-1} = sum_c C_c g_c[L-1],  lam_l = sum_c C_c g_c[l] + Ā^T lam_{l+1},
//   grad_B̄ = lam_0,  grad_Ā = sum_{m < L-1} lam_{m+1} x_m^T,  grad_C = G X^T,
// the last two by a tiled batched product summing over m in order in float64.
//
// dense_ssm_step: one block per (b, h) row, one warp per state row.
//
// No atomics: every sum runs in a fixed order, results repeat bit for bit.
// The Krylov recurrence rounds differently from the CPU's doubling GEMMs
// (float32), so CUDA and CPU agree to about 1e-6 relative, not bitwise.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/lssl.h"

namespace ssm::kernels::cuda {

namespace {

using std::int64_t;

constexpr int kBlock = 256;  // threads per block of the per-feature kernels (a multiple of 32)
constexpr int kTile = 16;    // tile of the batched products
constexpr int kMaxGridZ = 65535;
// Float64 scratch of the discretizations per launch (features are processed in chunks).
constexpr int64_t kScratchBytes = int64_t{512} << 20;

// ---------------------------------------------------------------- argument checks

struct DiscShapes {
  int64_t H = 0, N = 0;
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

std::vector<double> checked_dt(const char* op, const Tensor& dt) {
  std::vector<double> v = dt.to(Device::cpu()).to_vector<double>();
  for (std::size_t h = 0; h < v.size(); ++h) {
    SSM_CHECK(std::isfinite(v[h]) && v[h] > 0.0, op, "dt must be positive and finite, got dt[", h,
              "] = ", v[h]);
  }
  return v;
}

struct KrylovShapes {
  int64_t H = 0, N = 0, Cc = 0;
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
  SSM_CHECK(s.N <= kLsslMaxState, op, "state size N = ", s.N, " exceeds the supported ",
            kLsslMaxState, " of the CUDA kernels");
  return s;
}

// The first feature whose flag is set, or -1.
int64_t first_failure(const Tensor& failed) {
  const std::vector<std::int32_t> v = failed.to(Device::cpu()).to_vector<std::int32_t>();
  for (std::size_t h = 0; h < v.size(); ++h) {
    if (v[h]) return static_cast<int64_t>(h);
  }
  return -1;
}

// Features per launch so that `per_feature` doubles each stay within kScratchBytes.
int64_t feature_chunk(int64_t H, int64_t per_feature) {
  const int64_t bytes = std::max<int64_t>(1, per_feature * int64_t{8});
  return std::max<int64_t>(1, std::min<int64_t>(H, kScratchBytes / bytes));
}

// ---------------------------------------------------------------- block-wide float64 helpers
// Every thread of the block calls these with the same arguments (uniform control flow): they
// contain __syncthreads and end with one, so their results are visible to the whole block.

// In-place LU with partial pivoting of the row-major (n, n) a (the CPU's dense::lu_factor
// unblocked): P a = L U, piv[k] the row swapped with row k. Returns false (in every thread)
// when a pivot is exactly zero. sh_piv: one int of shared memory.
__device__ bool block_lu_factor(double* a, int n, int* piv, int* sh_piv) {
  const int tid = static_cast<int>(threadIdx.x), nt = static_cast<int>(blockDim.x);
  for (int k = 0; k < n; ++k) {
    if (tid < 32) {
      // The first index of the largest |a[i, k]|, i >= k (ties: the smaller index).
      double best = -1.0;
      int bi = n;
      for (int i = k + tid; i < n; i += 32) {
        const double v = fabs(a[static_cast<int64_t>(i) * n + k]);
        if (v > best) {
          best = v;
          bi = i;
        }
      }
      for (int o = 16; o > 0; o >>= 1) {
        const double ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > best || (ov == best && oi < bi)) {
          best = ov;
          bi = oi;
        }
      }
      if (tid == 0) {
        *sh_piv = bi < n ? bi : k;  // bi == n only when every |a[i, k]| is NaN
        piv[k] = *sh_piv;
      }
    }
    __syncthreads();
    const int p = *sh_piv;
    if (p != k) {
      double* rk = a + static_cast<int64_t>(k) * n;
      double* rp = a + static_cast<int64_t>(p) * n;
      for (int j = tid; j < n; j += nt) {
        const double t = rk[j];
        rk[j] = rp[j];
        rp[j] = t;
      }
    }
    __syncthreads();
    const double pivot = a[static_cast<int64_t>(k) * n + k];
    if (pivot == 0.0) return false;  // uniform: every thread read the same value
    const double inv = 1.0 / pivot;
    for (int i = k + 1 + tid; i < n; i += nt) a[static_cast<int64_t>(i) * n + k] *= inv;
    __syncthreads();
    const int64_t w = n - k - 1;
    const double* rk = a + static_cast<int64_t>(k) * n;
    for (int64_t e = tid; e < w * w; e += nt) {
      const int64_t i = k + 1 + e / w, j = k + 1 + e % w;
      a[i * n + j] -= a[i * n + k] * rk[j];
    }
    __syncthreads();
  }
  return true;
}

// Solves op(a) X = b in place for the row-major (n, nrhs) b with leading dimension ldb,
// given block_lu_factor's output (the CPU's dense::lu_solve): one thread per column.
__device__ void block_lu_solve(const double* lu, const int* piv, int n, bool transpose, double* b,
                               int64_t nrhs, int64_t ldb) {
  for (int64_t c = threadIdx.x; c < nrhs; c += blockDim.x) {
    double* x = b + c;  // x[i * ldb] is row i of this column
    if (!transpose) {
      // L U x = P b
      for (int k = 0; k < n; ++k) {
        const int p = piv[k];
        if (p != k) {
          const double t = x[k * ldb];
          x[k * ldb] = x[p * ldb];
          x[p * ldb] = t;
        }
      }
      for (int i = 1; i < n; ++i) {
        double s = x[i * ldb];
        const double* row = lu + static_cast<int64_t>(i) * n;
        for (int j = 0; j < i; ++j) s -= row[j] * x[j * ldb];
        x[i * ldb] = s;
      }
      for (int i = n - 1; i >= 0; --i) {
        double s = x[i * ldb];
        const double* row = lu + static_cast<int64_t>(i) * n;
        for (int j = i + 1; j < n; ++j) s -= row[j] * x[j * ldb];
        x[i * ldb] = s / row[i];
      }
    } else {
      // U^T L^T (P x) = b
      for (int i = 0; i < n; ++i) {
        double s = x[i * ldb];
        for (int j = 0; j < i; ++j) s -= lu[static_cast<int64_t>(j) * n + i] * x[j * ldb];
        x[i * ldb] = s / lu[static_cast<int64_t>(i) * n + i];
      }
      for (int i = n - 2; i >= 0; --i) {
        double s = x[i * ldb];
        for (int j = i + 1; j < n; ++j) s -= lu[static_cast<int64_t>(j) * n + i] * x[j * ldb];
        x[i * ldb] = s;
      }
      for (int k = n - 1; k >= 0; --k) {
        const int p = piv[k];
        if (p != k) {
          const double t = x[k * ldb];
          x[k * ldb] = x[p * ldb];
          x[p * ldb] = t;
        }
      }
    }
  }
  __syncthreads();
}

// c (n, n) = a b (+ c when accumulate); c aliases neither a nor b. One thread per element,
// k in order.
__device__ void block_gemm(const double* a, const double* b, double* c, int n, bool accumulate) {
  const int64_t nn = static_cast<int64_t>(n) * n;
  for (int64_t e = threadIdx.x; e < nn; e += blockDim.x) {
    const int64_t i = e / n, j = e % n;
    double s = 0.0;
    const double* row = a + i * n;
    for (int k = 0; k < n; ++k) s += row[k] * b[static_cast<int64_t>(k) * n + j];
    c[e] = accumulate ? c[e] + s : s;
  }
  __syncthreads();
}

// out = c0 I + sum_t coef[t] p[t] (the CPU's lincomb: terms added in order, then c0).
__device__ void block_lincomb(double* out, int n, double c0, int terms, const double* coef,
                              const double* const* p) {
  const int64_t nn = static_cast<int64_t>(n) * n;
  for (int64_t e = threadIdx.x; e < nn; e += blockDim.x) {
    double v = 0.0;
    for (int t = 0; t < terms; ++t) v += coef[t] * p[t][e];
    if (e / n == e % n) v += c0;
    out[e] = v;
  }
  __syncthreads();
}

// The 1-norm (largest column sum of |a|), in every thread.
__device__ double block_norm1(const double* a, int n, double* sh_red) {
  double best = 0.0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    double s = 0.0;
    for (int i = 0; i < n; ++i) s += fabs(a[static_cast<int64_t>(i) * n + j]);
    best = fmax(best, s);
  }
  return block_max(best, sh_red);
}

__constant__ double c_theta[] = {1.495585217958292e-2, 2.539398330063230e-1, 9.504178996162932e-1,
                                 2.097847961257068e0};
constexpr double kTheta13 = 5.371920351148152e0;
__constant__ double c_b3[] = {120., 60., 12., 1.};
__constant__ double c_b5[] = {30240., 15120., 3360., 420., 30., 1.};
__constant__ double c_b7[] = {17297280., 8648640., 1995840., 277200., 25200., 1512., 56., 1.};
__constant__ double c_b9[] = {17643225600., 8821612800., 2075673600., 302702400., 30270240.,
                              2162160.,     110880.,     3960.,       90.,        1.};
__constant__ double c_b13[] = {64764752532480000.,
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

// Doubles of work space block_expm needs for an (n, n) matrix.
constexpr int64_t expm_work(int64_t n) { return 9 * n * n; }

// out = exp(a) for the row-major (n, n) a (the CPU's dense::expm, Higham 2005 Algorithm
// 2.3); out aliases neither a nor work. work: expm_work(n) doubles; piv: n ints.
__device__ void block_expm(const double* a, int n, double* out, double* work, int* piv,
                           double* sh_red, int* sh_piv) {
  const int64_t nn = static_cast<int64_t>(n) * n;
  double* A = work;
  double* A2 = work + nn;
  double* A4 = work + 2 * nn;
  double* A6 = work + 3 * nn;
  double* A8 = work + 4 * nn;
  double* U = work + 5 * nn;
  double* V = work + 6 * nn;
  double* T = work + 7 * nn;
  double* W = work + 8 * nn;
  const double norm = block_norm1(a, n, sh_red);
  int s = 0;
  int m = 13;
  for (int i = 0; i < 4; ++i) {
    if (norm <= c_theta[i]) {
      m = 3 + 2 * i;
      break;
    }
  }
  double scale = 1.0;
  if (m == 13 && norm > kTheta13) {
    s = static_cast<int>(ceil(log2(norm / kTheta13)));
    scale = ldexp(1.0, -s);
  }
  for (int64_t e = threadIdx.x; e < nn; e += blockDim.x) A[e] = s > 0 ? a[e] * scale : a[e];
  __syncthreads();
  block_gemm(A, A, A2, n, false);
  if (m >= 5) block_gemm(A2, A2, A4, n, false);
  if (m >= 7) block_gemm(A4, A2, A6, n, false);
  if (m == 9) block_gemm(A6, A2, A8, n, false);
  const double* P[4] = {A2, A4, A6, A8};
  switch (m) {
    case 3: {
      const double ct[] = {c_b3[3]}, cv[] = {c_b3[2]};
      block_lincomb(T, n, c_b3[1], 1, ct, P);
      block_lincomb(V, n, c_b3[0], 1, cv, P);
      break;
    }
    case 5: {
      const double ct[] = {c_b5[3], c_b5[5]}, cv[] = {c_b5[2], c_b5[4]};
      block_lincomb(T, n, c_b5[1], 2, ct, P);
      block_lincomb(V, n, c_b5[0], 2, cv, P);
      break;
    }
    case 7: {
      const double ct[] = {c_b7[3], c_b7[5], c_b7[7]}, cv[] = {c_b7[2], c_b7[4], c_b7[6]};
      block_lincomb(T, n, c_b7[1], 3, ct, P);
      block_lincomb(V, n, c_b7[0], 3, cv, P);
      break;
    }
    case 9: {
      const double ct[] = {c_b9[3], c_b9[5], c_b9[7], c_b9[9]};
      const double cv[] = {c_b9[2], c_b9[4], c_b9[6], c_b9[8]};
      block_lincomb(T, n, c_b9[1], 4, ct, P);
      block_lincomb(V, n, c_b9[0], 4, cv, P);
      break;
    }
    default: {
      // U = A [A6 (b13 A6 + b11 A4 + b9 A2) + b7 A6 + b5 A4 + b3 A2 + b1 I]
      // V = A6 (b12 A6 + b10 A4 + b8 A2) + b6 A6 + b4 A4 + b2 A2 + b0 I
      const double* Q[3] = {A6, A4, A2};
      const double w1[] = {c_b13[13], c_b13[11], c_b13[9]};
      const double t1[] = {c_b13[7], c_b13[5], c_b13[3]};
      const double w2[] = {c_b13[12], c_b13[10], c_b13[8]};
      const double v2[] = {c_b13[6], c_b13[4], c_b13[2]};
      block_lincomb(W, n, 0.0, 3, w1, Q);
      block_lincomb(T, n, c_b13[1], 3, t1, Q);
      block_gemm(A6, W, T, n, true);
      block_lincomb(W, n, 0.0, 3, w2, Q);
      block_lincomb(V, n, c_b13[0], 3, v2, Q);
      block_gemm(A6, W, V, n, true);
      break;
    }
  }
  block_gemm(A, T, U, n, false);  // U = A T
  // (V - U) out = (V + U)
  for (int64_t e = threadIdx.x; e < nn; e += blockDim.x) {
    out[e] = V[e] + U[e];
    T[e] = V[e] - U[e];
  }
  __syncthreads();
  block_lu_factor(T, n, piv, sh_piv);  // q_m(A) is nonsingular for ||A||_1 <= theta_m
  block_lu_solve(T, piv, n, false, out, n, n);
  for (int i = 0; i < s; ++i) {
    block_gemm(out, out, T, n, false);
    for (int64_t e = threadIdx.x; e < nn; e += blockDim.x) out[e] = T[e];
    __syncthreads();
  }
}

// ---------------------------------------------------------------- discretization kernels

struct DiscArgs {
  const float* A = nullptr;   // (N, N) or (H, N, N), contiguous
  const float* B = nullptr;   // (N) or (H, N)
  const float* dt = nullptr;  // (H)
  int64_t N = 0;
  bool shared_A = false, shared_B = false;
};

__device__ inline const float* feature_A(const DiscArgs& d, int64_t h) {
  return d.A + (d.shared_A ? 0 : h * d.N * d.N);
}
__device__ inline const float* feature_B(const DiscArgs& d, int64_t h) {
  return d.B + (d.shared_B ? 0 : h * d.N);
}

// Block h0 + blockIdx.x: M = I - alpha dt A, R = [I + (1 - alpha) dt A | dt B] (N, N + 1);
// [Ā | B̄] = M^{-1} R. Scratch per block (the chunk's index): M (N, N), R (N, N + 1), piv (N).
__global__ void gbt_forward_kernel(DiscArgs d, double alpha, int64_t h0, double* Ms, double* Rs,
                                   int* pivs, float* dA, float* dB, int* failed) {
  __shared__ int sh_piv;
  const int64_t h = h0 + blockIdx.x, N = d.N, N1 = N + 1;
  double* M = Ms + blockIdx.x * N * N;
  double* R = Rs + blockIdx.x * N * N1;
  int* piv = pivs + blockIdx.x * N;
  const float* Ah = feature_A(d, h);
  const float* Bh = feature_B(d, h);
  const double dth = d.dt[h];
  for (int64_t e = threadIdx.x; e < N * N; e += blockDim.x) {
    const int64_t i = e / N, j = e % N;
    const double a = dth * static_cast<double>(Ah[e]), id = i == j ? 1.0 : 0.0;
    M[e] = id - alpha * a;
    R[i * N1 + j] = id + (1.0 - alpha) * a;
  }
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    R[i * N1 + N] = dth * static_cast<double>(Bh[i]);
  }
  __syncthreads();
  if (!block_lu_factor(M, static_cast<int>(N), piv, &sh_piv)) {
    if (threadIdx.x == 0) failed[h] = 1;
    return;
  }
  block_lu_solve(M, piv, static_cast<int>(N), false, R, N1, N1);
  for (int64_t e = threadIdx.x; e < N * N; e += blockDim.x) {
    dA[h * N * N + e] = static_cast<float>(R[(e / N) * N1 + e % N]);
  }
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    dB[h * N + i] = static_cast<float>(R[i * N1 + N]);
  }
}

// [S | s] = M^{-T} [G_Ā | g_B̄];  W = alpha (S Ā^T + s B̄^T) + (1 - alpha) S;
// gA[h] = dt W, gB[h] = dt s, gdt[h] = <A_h, W> + <s, B_h> (float64 partials).
__global__ void gbt_backward_kernel(DiscArgs d, double alpha, int64_t h0, const float* GA,
                                    const float* GB, const float* dA, const float* dB, double* Ms,
                                    double* Rs, int* pivs, double* gA, double* gB, double* gdt,
                                    int* failed) {
  __shared__ int sh_piv;
  __shared__ double sh_red[32];
  const int64_t h = h0 + blockIdx.x, N = d.N, N1 = N + 1;
  double* M = Ms + blockIdx.x * N * N;
  double* R = Rs + blockIdx.x * N * N1;
  int* piv = pivs + blockIdx.x * N;
  const float* Ah = feature_A(d, h);
  const float* Bh = feature_B(d, h);
  const double dth = d.dt[h];
  for (int64_t e = threadIdx.x; e < N * N; e += blockDim.x) {
    const int64_t i = e / N, j = e % N;
    M[e] = (i == j ? 1.0 : 0.0) - alpha * dth * static_cast<double>(Ah[e]);
    R[i * N1 + j] = GA[h * N * N + e];
  }
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) R[i * N1 + N] = GB[h * N + i];
  __syncthreads();
  if (!block_lu_factor(M, static_cast<int>(N), piv, &sh_piv)) {
    if (threadIdx.x == 0) failed[h] = 1;
    return;
  }
  block_lu_solve(M, piv, static_cast<int>(N), true, R, N1, N1);  // [S | s]
  const float* dAh = dA + h * N * N;
  const float* dBh = dB + h * N;
  double g = 0.0;
  for (int64_t e = threadIdx.x; e < N * N; e += blockDim.x) {
    const int64_t i = e / N, j = e % N;
    const double* Si = R + i * N1;
    double w = 0.0;
    for (int64_t k = 0; k < N; ++k) w += Si[k] * static_cast<double>(dAh[j * N + k]);
    w = alpha * (w + Si[N] * static_cast<double>(dBh[j])) + (1.0 - alpha) * Si[j];
    g += static_cast<double>(Ah[e]) * w;
    if (gA) gA[h * N * N + e] = dth * w;
  }
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    const double si = R[i * N1 + N];
    g += si * static_cast<double>(Bh[i]);
    if (gB) gB[h * N + i] = dth * si;
  }
  g = block_sum(g, sh_red);
  if (threadIdx.x == 0) gdt[h] = g;
}

// Per feature: E = expm(dt [[A, B], [0, 0]]) ((N + 1) x (N + 1)); Ā = E[:N, :N], B̄ = E[:N, N].
// Scratch per block: M, E (N1, N1), expm work, piv (N1).
__global__ void zoh_forward_kernel(DiscArgs d, int64_t h0, double* Ms, double* Es, double* works,
                                   int* pivs, float* dA, float* dB) {
  __shared__ int sh_piv;
  __shared__ double sh_red[32];
  const int64_t h = h0 + blockIdx.x, N = d.N, N1 = N + 1;
  double* M = Ms + blockIdx.x * N1 * N1;
  double* E = Es + blockIdx.x * N1 * N1;
  double* work = works + blockIdx.x * expm_work(N1);
  int* piv = pivs + blockIdx.x * N1;
  const float* Ah = feature_A(d, h);
  const float* Bh = feature_B(d, h);
  const double dth = d.dt[h];
  for (int64_t e = threadIdx.x; e < N1 * N1; e += blockDim.x) {
    const int64_t i = e / N1, j = e % N1;
    double v = 0.0;
    if (i < N) v = dth * static_cast<double>(j < N ? Ah[i * N + j] : Bh[i]);
    M[e] = v;
  }
  __syncthreads();
  block_expm(M, static_cast<int>(N1), E, work, piv, sh_red, &sh_piv);
  for (int64_t e = threadIdx.x; e < N * N; e += blockDim.x) {
    dA[h * N * N + e] = static_cast<float>(E[(e / N) * N1 + e % N]);
  }
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    dB[h * N + i] = static_cast<float>(E[i * N1 + N]);
  }
}

// With M = dt [[A, B], [0, 0]] and G = [[G_Ā, g_B̄], [0, 0]]: grad_M = top-right block of
// expm([[M^T, cG], [0, M^T]]) / c, c = ||M||_1 / ||G||_1 (the CPU's scaling);
// gA[h] = dt grad_M[:N, :N], gB[h] = dt grad_M[:N, N], gdt[h] = <[A, B], grad_M[:N, :]>.
// Scratch per block: Big, E (N2, N2), expm work, piv (N2).
__global__ void zoh_backward_kernel(DiscArgs d, int64_t h0, const float* GA, const float* GB,
                                    double* Bigs, double* Es, double* works, int* pivs, double* gA,
                                    double* gB, double* gdt) {
  __shared__ int sh_piv;
  __shared__ double sh_red[32];
  const int64_t h = h0 + blockIdx.x, N = d.N, N1 = N + 1, N2 = 2 * N1;
  double* Big = Bigs + blockIdx.x * N2 * N2;
  double* E = Es + blockIdx.x * N2 * N2;
  double* work = works + blockIdx.x * expm_work(N2);
  int* piv = pivs + blockIdx.x * N2;
  const float* Ah = feature_A(d, h);
  const float* Bh = feature_B(d, h);
  const float* GAh = GA + h * N * N;
  const float* GBh = GB + h * N;
  const double dth = d.dt[h];
  // ||M||_1 and ||G||_1 (column sums; the last row of both is zero).
  double cm_best = 0.0, cg_best = 0.0;
  for (int64_t j = threadIdx.x; j <= N; j += blockDim.x) {
    double cm = 0.0, cg = 0.0;
    for (int64_t i = 0; i < N; ++i) {
      cm += fabs(dth * static_cast<double>(j < N ? Ah[i * N + j] : Bh[i]));
      cg += fabs(static_cast<double>(j < N ? GAh[i * N + j] : GBh[i]));
    }
    cm_best = fmax(cm_best, cm);
    cg_best = fmax(cg_best, cg);
  }
  const double normM = block_max(cm_best, sh_red);
  const double normG = block_max(cg_best, sh_red);
  if (normG == 0.0) {  // every gradient of this feature is 0 (uniform)
    for (int64_t e = threadIdx.x; e < N * N; e += blockDim.x) {
      if (gA) gA[h * N * N + e] = 0.0;
    }
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
      if (gB) gB[h * N + i] = 0.0;
    }
    if (threadIdx.x == 0) gdt[h] = 0.0;
    return;
  }
  const double c = (normM > 0.0 ? normM : 1.0) / normG;
  for (int64_t e = threadIdx.x; e < N2 * N2; e += blockDim.x) {
    const int64_t r = e / N2, q = e % N2;
    double v = 0.0;
    if (r < N1 && q < N1) {
      // M^T[r, q] = M[q, r]: dt A[q, r] (r < N) or dt B[q] (r = N); zero for q = N.
      if (q < N) v = dth * static_cast<double>(r < N ? Ah[q * N + r] : Bh[q]);
    } else if (r >= N1 && q >= N1) {
      const int64_t i = r - N1, j = q - N1;
      if (j < N) v = dth * static_cast<double>(i < N ? Ah[j * N + i] : Bh[j]);
    } else if (r < N && q >= N1) {
      const int64_t j = q - N1;
      v = c * static_cast<double>(j < N ? GAh[r * N + j] : GBh[r]);
    }
    Big[e] = v;
  }
  __syncthreads();
  block_expm(Big, static_cast<int>(N2), E, work, piv, sh_red, &sh_piv);
  double g = 0.0;
  for (int64_t e = threadIdx.x; e < N * N1; e += blockDim.x) {
    const int64_t i = e / N1, j = e % N1;
    const double gm = E[i * N2 + N1 + j] / c;
    if (j < N) {
      g += static_cast<double>(Ah[i * N + j]) * gm;
      if (gA) gA[h * N * N + i * N + j] = dth * gm;
    } else {
      g += static_cast<double>(Bh[i]) * gm;
      if (gB) gB[h * N + i] = dth * gm;
    }
  }
  g = block_sum(g, sh_red);
  if (threadIdx.x == 0) gdt[h] = g;
}

// out (n) = sum_h part[h, :] in order (shared operand), or out (H, n) = part.
__global__ void sum_features_kernel(const double* part, int64_t H, int64_t n, bool shared,
                                    float* out) {
  const int64_t total = shared ? n : H * n;
  for (int64_t e = thread_index(); e < total; e += thread_count()) {
    if (shared) {
      double s = 0.0;
      for (int64_t h = 0; h < H; ++h) s += part[h * n + e];
      out[e] = static_cast<float>(s);
    } else {
      out[e] = static_cast<float>(part[e]);
    }
  }
}

__global__ void to_float_kernel(const double* in, int64_t n, float* out) {
  for (int64_t e = thread_index(); e < n; e += thread_count()) out[e] = static_cast<float>(in[e]);
}

DiscArgs disc_args(const Tensor& A, const Tensor& B, const Tensor& dt, const DiscShapes& s) {
  DiscArgs d;
  d.A = A.data<float>();
  d.B = B.data<float>();
  d.dt = dt.data<float>();
  d.N = s.N;
  d.shared_A = s.shared_A;
  d.shared_B = s.shared_B;
  return d;
}

// The gradient of a (possibly shared) operand from its per-feature float64 rows (H, n).
Tensor feature_grad(const Tensor& part, int64_t H, int64_t n, bool shared, const Shape& shape) {
  Tensor out = Tensor::empty(shape, DType::Float32, part.device());
  const int64_t total = shared ? n : H * n;
  sum_features_kernel<<<blocks_for(total), kThreads>>>(part.data<double>(), H, n, shared,
                                                       out.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

DiscretizeGrads disc_grads(const Tensor& gA, const Tensor& gB, const Tensor& gdt, const Tensor& A,
                           const Tensor& B, const DiscShapes& s, bool need_A, bool need_B,
                           bool need_dt) {
  DiscretizeGrads out;
  if (need_A) out.A = feature_grad(gA, s.H, s.N * s.N, s.shared_A, A.shape());
  if (need_B) out.B = feature_grad(gB, s.H, s.N, s.shared_B, B.shape());
  if (need_dt) {
    out.dt = Tensor::empty({s.H}, DType::Float32, A.device());
    to_float_kernel<<<blocks_for(s.H), kThreads>>>(gdt.data<double>(), s.H, out.dt.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  return out;
}

// ---------------------------------------------------------------- Krylov kernels

// Block h: x_0 = B̄_h, x_{l+1} = Ā_h x_l in float64 (shared memory, 2 N doubles);
// X[h, :, l] = x_l, K[c, h, l] = C[c, h] . x_l. One warp per row of Ā, one per c.
__global__ void krylov_forward_kernel(const float* dA, const float* dB, const float* C, int64_t H,
                                      int64_t N, int64_t Cc, int64_t L, float* X, float* K) {
  extern __shared__ double sh_x[];
  const int64_t h = blockIdx.x;
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int nwarps = static_cast<int>(blockDim.x >> 5);
  const float* Ah = dA + h * N * N;
  float* Xh = X + h * N * L;
  double* x = sh_x;
  double* xn = sh_x + N;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    x[n] = static_cast<double>(dB[h * N + n]);
    Xh[n * L] = dB[h * N + n];
  }
  __syncthreads();
  for (int64_t l = 0; l < L; ++l) {
    // x holds x_l: K[:, h, l], then x_{l+1} into xn.
    for (int64_t c = warp; c < Cc; c += nwarps) {
      const float* Cr = C + (c * H + h) * N;
      double s = 0.0;
      for (int64_t n = lane; n < N; n += 32) s += static_cast<double>(Cr[n]) * x[n];
      s = warp_sum(s);
      if (lane == 0) K[(c * H + h) * L + l] = static_cast<float>(s);
    }
    if (l + 1 < L) {
      for (int64_t i = warp; i < N; i += nwarps) {
        const float* row = Ah + i * N;
        double s = 0.0;
        for (int64_t j = lane; j < N; j += 32) s += static_cast<double>(row[j]) * x[j];
        s = warp_sum(s);
        if (lane == 0) {
          xn[i] = s;
          Xh[i * L + l + 1] = static_cast<float>(s);
        }
      }
    }
    __syncthreads();  // xn complete; every read of x done
    double* t = x;
    x = xn;
    xn = t;
  }
}

// Block h: lam_{L-1} = sum_c C_c g_c[L-1], lam_l = sum_c C_c g_c[l] + Ā^T lam_{l+1}
// (float64, shared memory, 2 N doubles); Lam[h, :, l] = lam_l when Lam is given,
// gB[h] = lam_0 when gB is given.
__global__ void krylov_adjoint_kernel(const float* dA, const float* C, const float* G, int64_t H,
                                      int64_t N, int64_t Cc, int64_t L, float* Lam, float* gB) {
  extern __shared__ double sh_lam[];
  const int64_t h = blockIdx.x;
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int nwarps = static_cast<int>(blockDim.x >> 5);
  const float* Ah = dA + h * N * N;
  double* lam = sh_lam;
  double* next = sh_lam + N;
  for (int64_t l = L - 1; l >= 0; --l) {
    // next = sum_c C_c g_c[l] (+ Ā^T lam when l < L - 1); lam holds lam_{l+1}.
    for (int64_t i = warp; i < N; i += nwarps) {
      double s = 0.0;
      if (l + 1 < L) {
        for (int64_t j = lane; j < N; j += 32) s += static_cast<double>(Ah[j * N + i]) * lam[j];
        s = warp_sum(s);
      }
      if (lane == 0) {
        double src = 0.0;
        for (int64_t c = 0; c < Cc; ++c) {
          src += static_cast<double>(C[(c * H + h) * N + i]) *
                 static_cast<double>(G[(c * H + h) * L + l]);
        }
        next[i] = src + s;
        if (Lam) Lam[(h * N + i) * L + l] = static_cast<float>(src + s);
      }
    }
    __syncthreads();  // next complete; every read of lam done
    double* t = lam;
    lam = next;
    next = t;
  }
  if (gB) {
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x)
      gB[h * N + n] = static_cast<float>(lam[n]);
  }
}

// Batched out[b][r][q] = sum_{m < K} P[b][r][m] Q[b][q][m] (float64 sums over m in order),
// with element (b, r, m) of P at P + b * pb + r * pr + m and likewise for Q and out.
struct ProductArgs {
  const float* P = nullptr;
  const float* Q = nullptr;
  float* out = nullptr;
  int64_t batch = 0, rows = 0, cols = 0, K = 0;
  int64_t pb = 0, pr = 0, qb = 0, qr = 0, ob = 0, orow = 0;
};

__global__ void batched_product_kernel(ProductArgs a) {
  __shared__ float Ps[kTile][kTile + 1];  // (rows, m) tile
  __shared__ float Qs[kTile][kTile + 1];  // (cols, m) tile
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int64_t r = static_cast<int64_t>(blockIdx.y) * kTile + ty;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * kTile + tx;
  for (int64_t b = blockIdx.z; b < a.batch; b += gridDim.z) {
    const float* P = a.P + b * a.pb;
    const float* Q = a.Q + b * a.qb;
    double acc = 0.0;
    for (int64_t m0 = 0; m0 < a.K; m0 += kTile) {
      // Ps[ty][tx] = P[row blockIdx.y * kTile + ty][m0 + tx]; Qs[ty][tx] = Q[col .. + ty][m0 + tx]
      const int64_t m = m0 + tx;
      const int64_t pr_row = static_cast<int64_t>(blockIdx.y) * kTile + ty;
      const int64_t qc_row = static_cast<int64_t>(blockIdx.x) * kTile + ty;
      Ps[ty][tx] = pr_row < a.rows && m < a.K ? P[pr_row * a.pr + m] : 0.0f;
      Qs[ty][tx] = qc_row < a.cols && m < a.K ? Q[qc_row * a.qr + m] : 0.0f;
      __syncthreads();
      const int64_t kk = a.K - m0 < kTile ? a.K - m0 : kTile;
      for (int64_t k = 0; k < kk; ++k) {
        acc += static_cast<double>(Ps[ty][k]) * static_cast<double>(Qs[tx][k]);
      }
      __syncthreads();
    }
    if (r < a.rows && q < a.cols) a.out[b * a.ob + r * a.orow + q] = static_cast<float>(acc);
  }
}

void batched_product(const ProductArgs& a) {
  if (a.batch == 0 || a.rows == 0 || a.cols == 0) return;
  const dim3 block(kTile, kTile);
  const dim3 grid(static_cast<unsigned>((a.cols + kTile - 1) / kTile),
                  static_cast<unsigned>((a.rows + kTile - 1) / kTile),
                  static_cast<unsigned>(std::min<int64_t>(a.batch, kMaxGridZ)));
  batched_product_kernel<<<grid, block>>>(a);
  SSM_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- dense_ssm_step

// Block r = (b, h): x' = Ā_h x + B̄_h u (one warp per row, float64 sums), written back
// through the state's strides; y[b, c, h] = C[c, h] . x' (one warp per c).
__global__ void dense_step_kernel(const float* dA, const float* dB, const float* C, const float* u,
                                  float* state, int64_t s0, int64_t s1, int64_t s2, int64_t H,
                                  int64_t N, int64_t Cc, float* y) {
  extern __shared__ float sh_state[];
  const int64_t row = blockIdx.x, b = row / H, h = row % H;
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int nwarps = static_cast<int>(blockDim.x >> 5);
  float* x = sh_state;
  float* xn = sh_state + N;
  float* st = state + b * s0 + h * s1;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) x[n] = st[n * s2];
  __syncthreads();
  const double uv = static_cast<double>(u[row]);
  const float* Ah = dA + h * N * N;
  for (int64_t i = warp; i < N; i += nwarps) {
    const float* Ar = Ah + i * N;
    double s = 0.0;
    for (int64_t j = lane; j < N; j += 32) s += static_cast<double>(Ar[j]) * x[j];
    s = warp_sum(s);
    if (lane == 0) xn[i] = static_cast<float>(static_cast<double>(dB[h * N + i]) * uv + s);
  }
  __syncthreads();
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) st[n * s2] = xn[n];
  for (int64_t c = warp; c < Cc; c += nwarps) {
    const float* Cr = C + (c * H + h) * N;
    double s = 0.0;
    for (int64_t n = lane; n < N; n += 32) s += static_cast<double>(Cr[n]) * xn[n];
    s = warp_sum(s);
    if (lane == 0) y[(b * Cc + c) * H + h] = static_cast<float>(s);
  }
}

// Threads of the per-feature Krylov / step blocks: whole warps, at most one per row.
int row_threads(int64_t N) {
  const int64_t warps = std::min<int64_t>(8, std::max<int64_t>(1, N));
  return static_cast<int>(warps * 32);
}

}  // namespace

// ---------------------------------------------------------------- gbt_discretize

Discretized gbt_discretize_forward(const Tensor& A, const Tensor& B, const Tensor& dt,
                                   double alpha) {
  const char* op = "gbt_discretize";
  const DiscShapes s = check_discretize(op, A, B, dt);
  SSM_CHECK(alpha >= 0.0 && alpha <= 1.0, op, "alpha must be in [0, 1], got ", alpha);
  require_cuda_float32(op, {&A, &B, &dt});
  const int64_t H = s.H, N = s.N;
  SSM_CHECK(N < (int64_t{1} << 31) / (N + 1), op, "N = ", N, " is too large");
  const std::vector<double> dtv = checked_dt(op, dt);
  const Device dev = A.device();
  const Tensor Ac = A.contiguous(), Bc = B.contiguous(), dtc = dt.contiguous();
  Discretized out;
  out.dA = Tensor::empty({H, N, N}, DType::Float32, dev);  // (H, N, N)
  out.dB = Tensor::empty({H, N}, DType::Float32, dev);     // (H, N)
  if (H == 0) return out;
  const int64_t chunk = feature_chunk(H, N * N + N * (N + 1) + N);
  Tensor M = Tensor::empty({chunk, N, N}, DType::Float64, dev);      // (chunk, N, N)
  Tensor R = Tensor::empty({chunk, N, N + 1}, DType::Float64, dev);  // (chunk, N, N + 1)
  Tensor piv = Tensor::empty({chunk, N}, DType::Int32, dev);         // (chunk, N)
  Tensor failed = Tensor::zeros({H}, DType::Int32, dev);             // (H)
  const DiscArgs d = disc_args(Ac, Bc, dtc, s);
  for (int64_t h0 = 0; h0 < H; h0 += chunk) {
    const int64_t n = std::min(chunk, H - h0);
    gbt_forward_kernel<<<static_cast<unsigned>(n), kBlock>>>(
        d, alpha, h0, M.data<double>(), R.data<double>(), piv.data<std::int32_t>(),
        out.dA.data<float>(), out.dB.data<float>(), failed.data<std::int32_t>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  const int64_t bad = first_failure(failed);
  SSM_CHECK(bad < 0, op, "I - alpha dt A is singular for feature ", bad, " (alpha ", alpha, ", dt ",
            bad < 0 ? 0.0 : dtv[bad], "), A ", A.desc());
  return out;
}

DiscretizeGrads gbt_discretize_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                        const Tensor& A, const Tensor& B, const Tensor& dt,
                                        double alpha, const Tensor& dA, const Tensor& dB,
                                        bool need_A, bool need_B, bool need_dt) {
  const char* op = "gbt_discretize";
  const DiscShapes s = check_discretize(op, A, B, dt);
  const int64_t H = s.H, N = s.N;
  SSM_CHECK(grad_dA.shape() == Shape({H, N, N}) && grad_dB.shape() == Shape({H, N}) &&
                dA.shape() == Shape({H, N, N}) && dB.shape() == Shape({H, N}),
            op, "gradients ", grad_dA.desc(), ", ", grad_dB.desc(), " and outputs ", dA.desc(),
            ", ", dB.desc(), " must be (H, N, N) and (H, N) = (", H, ", ", N, ")");
  require_cuda_float32(op, {&grad_dA, &grad_dB, &A, &B, &dt, &dA, &dB});
  const Device dev = A.device();
  const Tensor Ac = A.contiguous(), Bc = B.contiguous(), dtc = dt.contiguous();
  const Tensor GA = grad_dA.contiguous(), GB = grad_dB.contiguous();
  const Tensor dAc = dA.contiguous(), dBc = dB.contiguous();
  Tensor gA = need_A ? Tensor::empty({H, N, N}, DType::Float64, dev) : Tensor();  // (H, N, N)
  Tensor gB = need_B ? Tensor::empty({H, N}, DType::Float64, dev) : Tensor();     // (H, N)
  Tensor gdt = Tensor::empty({H}, DType::Float64, dev);                           // (H)
  Tensor failed = Tensor::zeros({H}, DType::Int32, dev);                          // (H)
  if (H > 0) {
    const int64_t chunk = feature_chunk(H, N * N + N * (N + 1) + N);
    Tensor M = Tensor::empty({chunk, N, N}, DType::Float64, dev);      // (chunk, N, N)
    Tensor R = Tensor::empty({chunk, N, N + 1}, DType::Float64, dev);  // (chunk, N, N + 1)
    Tensor piv = Tensor::empty({chunk, N}, DType::Int32, dev);         // (chunk, N)
    const DiscArgs d = disc_args(Ac, Bc, dtc, s);
    for (int64_t h0 = 0; h0 < H; h0 += chunk) {
      const int64_t n = std::min(chunk, H - h0);
      gbt_backward_kernel<<<static_cast<unsigned>(n), kBlock>>>(
          d, alpha, h0, GA.data<float>(), GB.data<float>(), dAc.data<float>(), dBc.data<float>(),
          M.data<double>(), R.data<double>(), piv.data<std::int32_t>(),
          need_A ? gA.data<double>() : nullptr, need_B ? gB.data<double>() : nullptr,
          gdt.data<double>(), failed.data<std::int32_t>());
      SSM_CUDA_CHECK_LAUNCH();
    }
  }
  const int64_t bad = first_failure(failed);
  SSM_CHECK(bad < 0, op, "I - alpha dt A is singular for feature ", bad);
  return disc_grads(gA, gB, gdt, A, B, s, need_A, need_B, need_dt);
}

// ---------------------------------------------------------------- zoh_discretize_dense

Discretized zoh_discretize_dense_forward(const Tensor& A, const Tensor& B, const Tensor& dt) {
  const char* op = "zoh_discretize_dense";
  const DiscShapes s = check_discretize(op, A, B, dt);
  require_cuda_float32(op, {&A, &B, &dt});
  const int64_t H = s.H, N = s.N, N1 = N + 1;
  SSM_CHECK(N1 < (int64_t{1} << 15), op, "N = ", N, " is too large");
  checked_dt(op, dt);
  const Device dev = A.device();
  const Tensor Ac = A.contiguous(), Bc = B.contiguous(), dtc = dt.contiguous();
  Discretized out;
  out.dA = Tensor::empty({H, N, N}, DType::Float32, dev);  // (H, N, N)
  out.dB = Tensor::empty({H, N}, DType::Float32, dev);     // (H, N)
  if (H == 0) return out;
  const int64_t chunk = feature_chunk(H, 2 * N1 * N1 + expm_work(N1) + N1);
  Tensor M = Tensor::empty({chunk, N1, N1}, DType::Float64, dev);            // (chunk, N1, N1)
  Tensor E = Tensor::empty({chunk, N1, N1}, DType::Float64, dev);            // (chunk, N1, N1)
  Tensor work = Tensor::empty({chunk, expm_work(N1)}, DType::Float64, dev);  // (chunk, 9 N1^2)
  Tensor piv = Tensor::empty({chunk, N1}, DType::Int32, dev);                // (chunk, N1)
  const DiscArgs d = disc_args(Ac, Bc, dtc, s);
  for (int64_t h0 = 0; h0 < H; h0 += chunk) {
    const int64_t n = std::min(chunk, H - h0);
    zoh_forward_kernel<<<static_cast<unsigned>(n), kBlock>>>(
        d, h0, M.data<double>(), E.data<double>(), work.data<double>(), piv.data<std::int32_t>(),
        out.dA.data<float>(), out.dB.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  return out;
}

DiscretizeGrads zoh_discretize_dense_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                              const Tensor& A, const Tensor& B, const Tensor& dt,
                                              bool need_A, bool need_B, bool need_dt) {
  const char* op = "zoh_discretize_dense";
  const DiscShapes s = check_discretize(op, A, B, dt);
  const int64_t H = s.H, N = s.N, N1 = N + 1, N2 = 2 * N1;
  SSM_CHECK(grad_dA.shape() == Shape({H, N, N}) && grad_dB.shape() == Shape({H, N}), op,
            "gradients ", grad_dA.desc(), ", ", grad_dB.desc(), " must be (H, N, N) and (H, N) = (",
            H, ", ", N, ")");
  require_cuda_float32(op, {&grad_dA, &grad_dB, &A, &B, &dt});
  SSM_CHECK(N2 < (int64_t{1} << 15), op, "N = ", N, " is too large");
  const Device dev = A.device();
  const Tensor Ac = A.contiguous(), Bc = B.contiguous(), dtc = dt.contiguous();
  const Tensor GA = grad_dA.contiguous(), GB = grad_dB.contiguous();
  Tensor gA = need_A ? Tensor::empty({H, N, N}, DType::Float64, dev) : Tensor();  // (H, N, N)
  Tensor gB = need_B ? Tensor::empty({H, N}, DType::Float64, dev) : Tensor();     // (H, N)
  Tensor gdt = Tensor::empty({H}, DType::Float64, dev);                           // (H)
  if (H > 0) {
    const int64_t chunk = feature_chunk(H, 2 * N2 * N2 + expm_work(N2) + N2);
    Tensor Big = Tensor::empty({chunk, N2, N2}, DType::Float64, dev);          // (chunk, N2, N2)
    Tensor E = Tensor::empty({chunk, N2, N2}, DType::Float64, dev);            // (chunk, N2, N2)
    Tensor work = Tensor::empty({chunk, expm_work(N2)}, DType::Float64, dev);  // (chunk, 9 N2^2)
    Tensor piv = Tensor::empty({chunk, N2}, DType::Int32, dev);                // (chunk, N2)
    const DiscArgs d = disc_args(Ac, Bc, dtc, s);
    for (int64_t h0 = 0; h0 < H; h0 += chunk) {
      const int64_t n = std::min(chunk, H - h0);
      zoh_backward_kernel<<<static_cast<unsigned>(n), kBlock>>>(
          d, h0, GA.data<float>(), GB.data<float>(), Big.data<double>(), E.data<double>(),
          work.data<double>(), piv.data<std::int32_t>(), need_A ? gA.data<double>() : nullptr,
          need_B ? gB.data<double>() : nullptr, gdt.data<double>());
      SSM_CUDA_CHECK_LAUNCH();
    }
  }
  return disc_grads(gA, gB, gdt, A, B, s, need_A, need_B, need_dt);
}

// ---------------------------------------------------------------- krylov_kernel

KrylovResult krylov_kernel_forward(const Tensor& dA, const Tensor& dB, const Tensor& C,
                                   std::int64_t L) {
  const char* op = "krylov_kernel";
  SSM_CHECK(dB.defined(), op, "dB is undefined");
  const KrylovShapes s = check_krylov(op, dA, dB, C);
  SSM_CHECK(L >= 1, op, "L must be positive, got ", L);
  require_cuda_float32(op, {&dA, &dB, &C});
  const int64_t H = s.H, N = s.N, Cc = s.Cc;
  const Device dev = dA.device();
  const Tensor Ac = dA.contiguous(), Bc = dB.contiguous(), Cm = C.contiguous();
  KrylovResult out;
  out.X = Tensor::empty({H, N, L}, DType::Float32, dev);   // (H, N, L)
  out.K = Tensor::empty({Cc, H, L}, DType::Float32, dev);  // (Cc, H, L)
  if (H == 0) return out;
  const int threads = row_threads(N);
  const std::size_t smem = static_cast<std::size_t>(2 * N) * sizeof(double);
  krylov_forward_kernel<<<static_cast<unsigned>(H), threads, smem>>>(
      Ac.data<float>(), Bc.data<float>(), Cm.data<float>(), H, N, Cc, L, out.X.data<float>(),
      out.K.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

KrylovGrads krylov_kernel_backward(const Tensor& grad, const Tensor& dA, const Tensor& C,
                                   const Tensor& X, bool need_dA, bool need_dB, bool need_C) {
  const char* op = "krylov_kernel";
  const KrylovShapes s = check_krylov(op, dA, Tensor(), C);
  const int64_t H = s.H, N = s.N, Cc = s.Cc;
  SSM_CHECK(grad.defined() && X.defined() && grad.dim() == 3 && grad.size(0) == Cc &&
                grad.size(1) == H && X.shape() == Shape({H, N, grad.size(2)}),
            op, "gradient ", grad.desc(), " and Krylov matrix ", X.desc(),
            " must be (Cc, H, L) and (H, N, L) with (Cc, H, N) = (", Cc, ", ", H, ", ", N, ")");
  check_same_dtype(op, dA, grad);
  check_same_dtype(op, dA, X);
  require_cuda_float32(op, {&grad, &dA, &C, &X});
  const int64_t L = grad.size(2);
  const Device dev = dA.device();
  const Tensor Gc = grad.contiguous(), Ac = dA.contiguous(), Cm = C.contiguous();
  const Tensor Xc = X.contiguous();
  KrylovGrads out;
  if (need_dA) out.dA = Tensor::empty({H, N, N}, DType::Float32, dev);  // (H, N, N)
  if (need_dB) out.dB = Tensor::empty({H, N}, DType::Float32, dev);     // (H, N)
  if (need_C) out.C = Tensor::empty({Cc, H, N}, DType::Float32, dev);   // (Cc, H, N)
  if (H == 0 || L == 0) {
    if (need_dA) out.dA.zero_();
    if (need_dB) out.dB.zero_();
    if (need_C) out.C.zero_();
    return out;
  }
  if (need_C) {
    // grad_C[c, h, n] = sum_l G[c, h, l] X[h, n, l]
    ProductArgs a;
    a.P = Gc.data<float>();
    a.Q = Xc.data<float>();
    a.out = out.C.data<float>();
    a.batch = H;
    a.rows = Cc;
    a.cols = N;
    a.K = L;
    a.pb = L;
    a.pr = H * L;
    a.qb = N * L;
    a.qr = L;
    a.ob = N;
    a.orow = H * N;
    batched_product(a);
  }
  if (!need_dA && !need_dB) return out;
  Tensor Lam = need_dA ? Tensor::empty({H, N, L}, DType::Float32, dev) : Tensor();  // (H, N, L)
  const int threads = row_threads(N);
  const std::size_t smem = static_cast<std::size_t>(2 * N) * sizeof(double);
  krylov_adjoint_kernel<<<static_cast<unsigned>(H), threads, smem>>>(
      Ac.data<float>(), Cm.data<float>(), Gc.data<float>(), H, N, Cc, L,
      need_dA ? Lam.data<float>() : nullptr, need_dB ? out.dB.data<float>() : nullptr);
  SSM_CUDA_CHECK_LAUNCH();
  if (need_dA) {
    if (L == 1) {
      out.dA.zero_();
      return out;
    }
    // grad_Ā[h, i, j] = sum_{m < L - 1} Lam[h, i, m + 1] X[h, j, m]
    ProductArgs a;
    a.P = Lam.data<float>() + 1;
    a.Q = Xc.data<float>();
    a.out = out.dA.data<float>();
    a.batch = H;
    a.rows = N;
    a.cols = N;
    a.K = L - 1;
    a.pb = N * L;
    a.pr = L;
    a.qb = N * L;
    a.qr = L;
    a.ob = N * N;
    a.orow = N;
    batched_product(a);
  }
  return out;
}

// ---------------------------------------------------------------- dense_ssm_step

Tensor dense_ssm_step(const Tensor& dA, const Tensor& dB, const Tensor& C, const Tensor& u_t,
                      Tensor& state) {
  const char* op = "dense_ssm_step";
  SSM_CHECK(dB.defined() && u_t.defined() && state.defined(), op, "tensor is undefined");
  const KrylovShapes s = check_krylov(op, dA, dB, C);
  const int64_t H = s.H, N = s.N, Cc = s.Cc;
  check_same_device(op, dA, u_t);
  check_same_dtype(op, dA, u_t);
  check_same_device(op, dA, state);
  check_same_dtype(op, dA, state);
  SSM_CHECK(u_t.dim() == 2 && u_t.size(1) == H, op, "u_t must be (B, H) with H = ", H, ", got ",
            u_t.desc());
  const int64_t Bsz = u_t.size(0);
  SSM_CHECK(state.shape() == Shape({Bsz, H, N}), op, "state must be (B, H, N) = (", Bsz, ", ", H,
            ", ", N, "), got ", state.desc());
  require_cuda_float32(op, {&dA, &dB, &C, &u_t, &state});
  const Tensor Ac = dA.contiguous(), Bc = dB.contiguous(), Cm = C.contiguous();
  const Tensor uc = u_t.contiguous();
  Tensor y = Tensor::empty({Bsz, Cc, H}, DType::Float32, dA.device());  // (B, Cc, H)
  const int64_t rows = Bsz * H;
  if (rows == 0) return y;
  SSM_CHECK(rows <= 2147483647, op, "B * H = ", rows, " exceeds the grid");
  // The state is written in place through its own strides.
  const Shape& st = state.strides();
  const int threads = row_threads(N);
  const std::size_t smem = static_cast<std::size_t>(2 * N) * sizeof(float);
  dense_step_kernel<<<static_cast<unsigned>(rows), threads, smem>>>(
      Ac.data<float>(), Bc.data<float>(), Cm.data<float>(), uc.data<float>(), state.data<float>(),
      st[0], st[1], st[2], H, N, Cc, y.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  return y;
}

}  // namespace ssm::kernels::cuda
