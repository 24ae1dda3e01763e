// CUDA S4 family, float32 tensors computed in double, with the formulas,
// checks and results of kernels/cpu/s4.cpp (the oracle).
//
// diag_discretize: one thread per (h, n); backward: one block per h, threads
//   over n, the dt gradient summed with block_sum (fixed order).
// s4d_kernel forward: one block per (l tile of kFwdTile, h, c). Thread t owns
//   l = l0 + t + kThreads j (j < kFwdPer); the modes n arrive in shared-memory
//   chunks, and for each n the thread forms dA^l from the polar form
//   (|dA|^l, l arg dA) once and steps it by dA^kThreads (precomputed per n), so
//   no (H, N2, L) tensor exists. K[c, h, l] = 2 Re sum_n CW[c, n] dA_n^l, n in order.
// s4d_kernel backward: one block per (l tile, h, c and chunk of modes),
//   thread per n, walking its tile's l in order like the CPU loop (the G
//   values of the tile staged in shared memory): per-tile partials of
//   T = sum_l G_l dA^l and U = sum_l l G_l dA^(l-1), then one block per h adds
//   the tiles in order and applies the CPU's chain rule (dt by block_sum).
// s4_dplr_kernel forward: one warp per (h, node k); lane j owns the modes
//   n = j + 32 i (i < kLaneModes, so N2 <= 256) and their Cauchy inverses in
//   registers; the Cauchy sums are lane sums then warp_sum; lane 0 solves the
//   R x R Woodbury system (shared memory per warp) and writes K^[c, h, k]; then
//   a batched cuFFT Z2D (double) per row and a scale by 1/L give K.
// s4_dplr_kernel backward: a batched D2Z of grad gives the adjoint of the
//   irfft; one warp per (h, tile of nodes) walks its nodes in order (lane 0
//   does the serial Woodbury backward), accumulating the gradients of the
//   Cauchy products v (per (h, tile, pair, n)) and of Lambda and dt (per
//   (h, tile, n)); small kernels add the tiles in order and pass v's
//   gradients to B, P, C (one thread per (h, n)); dt by block_sum.
// Steps: one thread per (b, h, n) (S4D) or one warp per (b, h, row i)
//   (dense), then one warp per (b, h) for y = 2 Re C x'.
// No atomics: every sum has a fixed order, so results repeat bit for bit. The
// sums over n and over l tiles are grouped differently from the CPU's loops,
// and the FFTs are cuFFT's, so CUDA agrees with the CPU to float32 rounding.
#include <cufft.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/s4.h"

namespace ssm::kernels::cuda {

namespace {

using std::int64_t;

constexpr int kFwdPer = 4;                            // l values per thread of the s4d forward
constexpr int64_t kFwdTile = kThreads * kFwdPer;      // l values per block of the s4d forward
constexpr int kBwdThreads = 128;                      // modes per block of the s4d backward
constexpr int64_t kBwdStage = 256;                    // G values staged at a time (s4d backward)
constexpr int kLaneModes = 8;                         // modes per lane of the DPLR kernels
constexpr int64_t kMaxDplrN2 = 32 * kLaneModes;       // N2 limit of the DPLR kernels
constexpr int kWarps = kThreads / 32;                 // warps per block
constexpr int64_t kPartialBudget = int64_t{1} << 22;  // complex doubles of partial sums
constexpr int64_t kTargetWarps = 4096;                // DPLR backward: warps to aim for
constexpr unsigned kMaxGridYZ = 65535;

__host__ __device__ inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// ---------------------------------------------------------------- complex double

struct cx {
  double re, im;
};
__device__ inline cx operator+(cx a, cx b) { return {a.re + b.re, a.im + b.im}; }
__device__ inline cx operator-(cx a, cx b) { return {a.re - b.re, a.im - b.im}; }
__device__ inline cx operator*(double s, cx a) { return {s * a.re, s * a.im}; }
__device__ inline cx mul(cx a, cx b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
__device__ inline cx inv(cx a) {
  const double s = 1.0 / (a.re * a.re + a.im * a.im);
  return {a.re * s, -a.im * s};
}
__device__ inline cx cj(cx a) { return {a.re, -a.im}; }
__device__ inline double cabs_(cx a) { return hypot(a.re, a.im); }
__device__ inline cx cexp_(cx z) {
  double s, c;
  sincos(z.im, &s, &c);
  const double e = exp(z.re);
  return {e * c, e * s};
}
__device__ inline cx load(const float* p, int64_t i) {
  return {static_cast<double>(p[2 * i]), static_cast<double>(p[2 * i + 1])};
}
__device__ inline void store(float* p, int64_t i, cx v) {
  p[2 * i] = static_cast<float>(v.re);
  p[2 * i + 1] = static_cast<float>(v.im);
}
__device__ inline cx loadd(const double* p, int64_t i) { return {p[2 * i], p[2 * i + 1]}; }
__device__ inline void stored(double* p, int64_t i, cx v) {
  p[2 * i] = v.re;
  p[2 * i + 1] = v.im;
}

// z^l for an integer l >= 0 from the polar form (lr, th) = (log |z|, arg z):
// |z|^l (cos l th, sin l th); z^0 = 1 (also for z = 0, where lr = -inf).
__device__ inline cx polar_pow(double lr, double th, int64_t l) {
  if (l == 0) return {1.0, 0.0};
  const double dl = static_cast<double>(l);
  double s, c;
  sincos(dl * th, &s, &c);
  const double m = exp(dl * lr);
  return {m * c, m * s};
}

// ---------------------------------------------------------------- discretization math

// exp(z) - 1 without cancellation near 0: (expm1(x) cos y - 2 sin^2(y/2)) + i e^x sin y.
__device__ inline cx expm1c(cx z) {
  const double s = sin(0.5 * z.im);
  return {expm1(z.re) * cos(z.im) - 2.0 * s * s, exp(z.re) * sin(z.im)};
}

// phi(z) = (e^z - 1) / z (phi(0) = 1): the series below |z| = 1/2, expm1c(z) / z above.
__device__ inline cx phi(cx z) {
  if (cabs_(z) < 0.5) {
    cx sum{0.0, 0.0}, zk{1.0, 0.0};
    double fact = 1.0;  // (k + 1)!
    for (int k = 0; k < 24; ++k) {
      sum = sum + (1.0 / fact) * zk;
      zk = mul(zk, z);
      fact *= static_cast<double>(k + 2);
    }
    return sum;
  }
  return mul(expm1c(z), inv(z));
}

// psi(z) = phi'(z) = (z e^z - e^z + 1) / z^2: the series below |z| = 1/2, the closed form above.
__device__ inline cx psi(cx z) {
  if (cabs_(z) < 0.5) {
    cx sum{0.0, 0.0}, zk{1.0, 0.0};
    double fact = 2.0;  // (k + 2)!
    for (int k = 0; k < 24; ++k) {
      sum = sum + (static_cast<double>(k + 1) / fact) * zk;
      zk = mul(zk, z);
      fact *= static_cast<double>(k + 3);
    }
    return sum;
  }
  const cx iz = inv(z);
  return mul(mul(z, cexp_(z)) - expm1c(z), mul(iz, iz));
}

struct DiscPoint {
  cx dA, dB;
};
// (dA, dB) at one (dt, A): zoh (dA = e^z, dB = dt phi(z)) or bilinear
// (dA = (1 + z/2) q, dB = dt q, q = 1 / (1 - z/2)), z = dt A.
__device__ inline DiscPoint disc_point(bool zoh, double dt, cx A) {
  const cx z = dt * A;
  if (zoh) return {cexp_(z), dt * phi(z)};
  const cx q = inv(cx{1.0 - 0.5 * z.re, -0.5 * z.im});
  return {mul(cx{1.0 + 0.5 * z.re, 0.5 * z.im}, q), dt * q};
}

struct DiscDeriv {
  cx dA_A, dA_dt, dB_A, dB_dt;
};
// The partial derivatives of (dA, dB) in A and dt (see kernels/cpu/s4.cpp).
__device__ inline DiscDeriv disc_deriv(bool zoh, double dt, cx A) {
  const cx z = dt * A;
  if (zoh) {
    const cx e = cexp_(z);
    return {dt * e, mul(A, e), (dt * dt) * psi(z), e};
  }
  const cx q = inv(cx{1.0 - 0.5 * z.re, -0.5 * z.im});
  const cx q2 = mul(q, q);
  return {dt * q2, mul(A, q2), (0.5 * dt * dt) * q2, q2};
}

// g_A of one (h, n) and its contribution to g_dt, from the gradients of dA and dB.
__device__ inline cx disc_backward(const DiscDeriv& d, cx g_dA, cx g_dB, double& g_dt) {
  g_dt += (mul(cj(d.dA_dt), g_dA) + mul(cj(d.dB_dt), g_dB)).re;
  return mul(cj(d.dA_A), g_dA) + mul(cj(d.dB_A), g_dB);
}

// ---------------------------------------------------------------- host-side checks

enum class Disc { Zoh, Bilinear };

Disc parse_method(const char* op, const std::string& method) {
  if (method == "zoh") return Disc::Zoh;
  if (method == "bilinear") return Disc::Bilinear;
  fail(op, "method must be \"zoh\" or \"bilinear\", got \"", method, "\"");
}

void check_defined(const char* op, const Tensor& t, const char* name) {
  SSM_CHECK(t.defined(), op, name, " is undefined");
}

struct Lead {
  enum Kind { None, Any, Exact } kind = None;
  int64_t size = 0;
  const char* label = "";
};
constexpr Lead kNoLead{};
inline Lead any_lead(const char* label) { return {Lead::Any, 0, label}; }
inline Lead exact_lead(int64_t size) { return {Lead::Exact, size, ""}; }

void check_complex(const char* op, const Tensor& t, const char* name, Lead lead, int64_t H,
                   int64_t N2, const Tensor& ref) {
  check_defined(op, t, name);
  check_same_device(op, ref, t);
  check_same_dtype(op, ref, t);
  const int64_t nd = lead.kind == Lead::None ? 0 : 1;
  bool ok = t.dim() == nd + 3 && t.size(-1) == 2 && t.size(-2) == N2 && t.size(-3) == H;
  if (ok && lead.kind == Lead::Any) ok = t.size(0) >= 1;
  if (ok && lead.kind == Lead::Exact) ok = t.size(0) == lead.size;
  std::string want = "(";
  if (lead.kind == Lead::Any) want += std::string(lead.label) + ", ";
  if (lead.kind == Lead::Exact) want += std::to_string(lead.size) + ", ";
  want += std::to_string(H) + ", " + std::to_string(N2) + ", 2)";
  SSM_CHECK(ok, op, name, " must be ", want, " (complex as a trailing dim 2), got ", t.desc());
}

std::pair<int64_t, int64_t> check_dt_A(const char* op, const Tensor& dt, const Tensor& A,
                                       const char* a_name) {
  check_defined(op, dt, "dt");
  check_defined(op, A, a_name);
  SSM_CHECK(dt.dtype() == DType::Float32 || dt.dtype() == DType::Float64, op,
            "expected float32 or float64 tensors, got dt ", dt.desc());
  SSM_CHECK(dt.dim() == 1, op, "dt must be (H), got ", dt.desc());
  SSM_CHECK(A.dim() == 3 && A.size(-1) == 2, op, a_name,
            " must be (H, N2, 2) (complex as a trailing dim 2), got ", A.desc());
  const int64_t H = dt.size(0), N2 = A.size(1);
  check_complex(op, A, a_name, kNoLead, H, N2, dt);
  return {H, N2};
}

void check_length(const char* op, int64_t L) {
  SSM_CHECK(L >= 1, op, "kernel length L must be positive, got ", L);
}

void check_grad(const char* op, const Tensor& grad, const Tensor& dt, int64_t Cn, int64_t H) {
  check_defined(op, grad, "grad");
  check_same_device(op, dt, grad);
  check_same_dtype(op, dt, grad);
  SSM_CHECK(grad.dim() == 3 && grad.size(0) == Cn && grad.size(1) == H && grad.size(2) >= 1, op,
            "grad must be (", Cn, ", ", H, ", L), got ", grad.desc());
}

const float* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
float* out_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

Tensor scratch(const Shape& shape, DType dtype, const Tensor& like, bool zero = false) {
  return zero ? Tensor::zeros(shape, dtype, like.device())
              : Tensor::empty(shape, dtype, like.device());
}

unsigned grid_yz(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(n, kMaxGridYZ)); }

// ---------------------------------------------------------------- diag_discretize kernels

__global__ void diag_forward_kernel(const float* __restrict__ dt, const float* __restrict__ A,
                                    bool zoh, int64_t N2, int64_t total, float* __restrict__ dA,
                                    float* __restrict__ dB) {
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const DiscPoint d = disc_point(zoh, static_cast<double>(dt[i / N2]), load(A, i));
    store(dA, i, d.dA);
    store(dB, i, d.dB);
  }
}

// One block per h (grid-stride), threads over n.
__global__ void diag_backward_kernel(const float* __restrict__ gA, const float* __restrict__ gB,
                                     const float* __restrict__ dt, const float* __restrict__ A,
                                     bool zoh, int64_t H, int64_t N2, float* __restrict__ odt,
                                     float* __restrict__ oA) {
  __shared__ double red[32];
  for (int64_t h = blockIdx.x; h < H; h += gridDim.x) {  // uniform over the block
    const double dth = static_cast<double>(dt[h]);
    double g_dt = 0.0;
    for (int64_t n = threadIdx.x; n < N2; n += blockDim.x) {
      const int64_t i = h * N2 + n;
      const DiscDeriv d = disc_deriv(zoh, dth, load(A, i));
      const cx g_A =
          disc_backward(d, gA ? load(gA, i) : cx{0.0, 0.0}, gB ? load(gB, i) : cx{0.0, 0.0}, g_dt);
      if (oA) store(oA, i, g_A);
    }
    g_dt = block_sum(g_dt, red);
    if (odt && threadIdx.x == 0) odt[h] = static_cast<float>(g_dt);
  }
}

// ---------------------------------------------------------------- s4d kernels

// Per (h, n): z = dA (H, N2), its polar form (log |z|, arg z) and z^kThreads;
// per (c, h, n): CW = C dB B (Cn, H, N2). All complex double.
__global__ void s4d_prep_kernel(const float* __restrict__ dt, const float* __restrict__ A,
                                const float* __restrict__ B, const float* __restrict__ C, bool zoh,
                                int64_t Cn, int64_t H, int64_t N2, double* __restrict__ z,
                                double* __restrict__ zpol, double* __restrict__ zstep,
                                double* __restrict__ cw) {
  for (int64_t i = thread_index(); i < H * N2; i += thread_count()) {
    const int64_t h = i / N2, n = i % N2;
    const DiscPoint d = disc_point(zoh, static_cast<double>(dt[h]), load(A, i));
    const cx W = mul(d.dB, load(B, i));
    stored(z, i, d.dA);
    const double lr = log(cabs_(d.dA)), th = atan2(d.dA.im, d.dA.re);
    stored(zpol, i, cx{lr, th});
    stored(zstep, i, polar_pow(lr, th, kThreads));
    for (int64_t c = 0; c < Cn; ++c) {
      const int64_t j = (c * H + h) * N2 + n;
      stored(cw, j, mul(load(C, j), W));
    }
  }
}

// K[c, h, l] = 2 Re sum_n CW[c, h, n] z[h, n]^l. Block (l tile, h, c); thread t
// owns l = l0 + t + kThreads j, j < kFwdPer.
__global__ void __launch_bounds__(kThreads)
    s4d_forward_kernel(const double* __restrict__ zpol, const double* __restrict__ zstep,
                       const double* __restrict__ cw, int64_t Cn, int64_t H, int64_t N2, int64_t L,
                       float* __restrict__ K) {
  __shared__ double s_lr[kThreads], s_th[kThreads], s_sr[kThreads], s_si[kThreads];
  __shared__ double s_cr[kThreads], s_ci[kThreads];
  const int t = threadIdx.x;
  const int64_t l0 = static_cast<int64_t>(blockIdx.x) * kFwdTile + t;
  for (int64_t c = blockIdx.z; c < Cn; c += gridDim.z) {
    for (int64_t h = blockIdx.y; h < H; h += gridDim.y) {  // uniform over the block
      double acc[kFwdPer];
#pragma unroll
      for (int j = 0; j < kFwdPer; ++j) acc[j] = 0.0;
      for (int64_t n0 = 0; n0 < N2; n0 += kThreads) {
        __syncthreads();  // the previous chunk has been read
        const int64_t n = n0 + t;
        if (n < N2) {
          const int64_t i = h * N2 + n, j = (c * H + h) * N2 + n;
          s_lr[t] = zpol[2 * i];
          s_th[t] = zpol[2 * i + 1];
          s_sr[t] = zstep[2 * i];
          s_si[t] = zstep[2 * i + 1];
          s_cr[t] = cw[2 * j];
          s_ci[t] = cw[2 * j + 1];
        }
        __syncthreads();
        const int m = static_cast<int>(imin(kThreads, N2 - n0));
        for (int k = 0; k < m; ++k) {
          cx p = polar_pow(s_lr[k], s_th[k], l0);
          const cx step{s_sr[k], s_si[k]};
          const double cr = s_cr[k], ci = s_ci[k];
#pragma unroll
          for (int j = 0; j < kFwdPer; ++j) {
            acc[j] += cr * p.re - ci * p.im;
            p = mul(p, step);
          }
        }
      }
#pragma unroll
      for (int j = 0; j < kFwdPer; ++j) {
        const int64_t l = l0 + static_cast<int64_t>(j) * kThreads;
        if (l < L) K[(c * H + h) * L + l] = static_cast<float>(2.0 * acc[j]);
      }
    }
  }
}

// Per-tile partials of T[c, n] = sum_l G[c, h, l] z^l and U[c, n] = sum_l l G z^(l-1)
// over l in [tile * tile_len, ...): Tp, Up (tiles, Cn, H, N2) complex double.
// Block (tile, h, c * chunks + chunk of kBwdThreads modes); thread per n.
__global__ void __launch_bounds__(kBwdThreads)
    s4d_backward_partial_kernel(const float* __restrict__ G, const double* __restrict__ z,
                                const double* __restrict__ zpol, int64_t Cn, int64_t H, int64_t N2,
                                int64_t L, int64_t tile_len, int64_t chunks, bool need_U,
                                double* __restrict__ Tp, double* __restrict__ Up) {
  __shared__ double s_g[kBwdStage];
  const int64_t tile = blockIdx.x;
  const int64_t lbeg = tile * tile_len, lend = imin(L, lbeg + tile_len);
  for (int64_t cz = blockIdx.z; cz < Cn * chunks; cz += gridDim.z) {
    const int64_t c = cz / chunks, n = (cz % chunks) * kBwdThreads + threadIdx.x;
    for (int64_t h = blockIdx.y; h < H; h += gridDim.y) {  // uniform over the block
      const bool active = n < N2;
      cx zn{0.0, 0.0}, p{1.0, 0.0}, q{0.0, 0.0}, T{0.0, 0.0}, U{0.0, 0.0};
      if (active) {
        const int64_t i = h * N2 + n;
        zn = loadd(z, i);
        const double lr = zpol[2 * i], th = zpol[2 * i + 1];
        p = polar_pow(lr, th, lbeg);                    // z^l
        if (lbeg > 0) q = polar_pow(lr, th, lbeg - 1);  // z^(l-1)
      }
      const float* g = G + (c * H + h) * L;
      for (int64_t s0 = lbeg; s0 < lend; s0 += kBwdStage) {
        const int64_t m = imin(kBwdStage, lend - s0);
        __syncthreads();  // the previous stage has been read
        for (int64_t k = threadIdx.x; k < m; k += blockDim.x)
          s_g[k] = static_cast<double>(g[s0 + k]);
        __syncthreads();
        if (active) {
          for (int64_t k = 0; k < m; ++k) {
            const int64_t l = s0 + k;
            const double gv = s_g[k];
            T.re += gv * p.re;
            T.im += gv * p.im;
            if (need_U && l > 0) {
              const double gl = gv * static_cast<double>(l);
              U.re += gl * q.re;
              U.im += gl * q.im;
            }
            q = p;
            p = mul(q, zn);
          }
        }
      }
      if (active) {
        const int64_t o = ((tile * Cn + c) * H + h) * N2 + n;
        stored(Tp, o, T);
        if (need_U) stored(Up, o, U);
      }
    }
  }
}

// One block per h, threads over n: the tiles' partials added in order, then
//   gC = 2 conj(W T), g_W = 2 sum_c conj(C T), g_dA = 2 sum_c conj(C W U),
//   gB = conj(dB) g_W, g_dB = conj(B) g_W, (gA, g_dt) by disc_backward.
__global__ void s4d_backward_finish_kernel(
    const double* __restrict__ Tp, const double* __restrict__ Up, const float* __restrict__ dt,
    const float* __restrict__ A, const float* __restrict__ B, const float* __restrict__ C, bool zoh,
    int64_t tiles, int64_t Cn, int64_t H, int64_t N2, bool need_U, bool need_W,
    float* __restrict__ odt, float* __restrict__ oA, float* __restrict__ oB,
    float* __restrict__ oC) {
  __shared__ double red[32];
  for (int64_t h = blockIdx.x; h < H; h += gridDim.x) {  // uniform over the block
    const double dth = static_cast<double>(dt[h]);
    double g_dt = 0.0;
    for (int64_t n = threadIdx.x; n < N2; n += blockDim.x) {
      const int64_t i = h * N2 + n;
      const cx a = load(A, i), b = load(B, i);
      const DiscPoint d = disc_point(zoh, dth, a);
      const cx W = mul(d.dB, b);
      cx g_W{0.0, 0.0}, g_dA{0.0, 0.0};
      for (int64_t c = 0; c < Cn; ++c) {
        cx Tv{0.0, 0.0}, Uv{0.0, 0.0};
        for (int64_t t = 0; t < tiles; ++t) {
          const int64_t o = ((t * Cn + c) * H + h) * N2 + n;
          Tv = Tv + loadd(Tp, o);
          if (need_U) Uv = Uv + loadd(Up, o);
        }
        const int64_t j = (c * H + h) * N2 + n;
        const cx Cv = load(C, j);
        if (oC) store(oC, j, 2.0 * cj(mul(W, Tv)));
        if (need_W) g_W = g_W + 2.0 * cj(mul(Cv, Tv));
        if (need_U) g_dA = g_dA + 2.0 * cj(mul(mul(Cv, W), Uv));
      }
      if (oB) store(oB, i, mul(cj(d.dB), g_W));
      if (need_U) {
        const cx g_A = disc_backward(disc_deriv(zoh, dth, a), g_dA, mul(cj(b), g_W), g_dt);
        if (oA) store(oA, i, g_A);
      }
    }
    g_dt = block_sum(g_dt, red);
    if (odt && threadIdx.x == 0) odt[h] = static_cast<float>(g_dt);
  }
}

// ---------------------------------------------------------------- DPLR kernels

// The pairs of the Cauchy sums, numbered as on the CPU:
//   CB[c] = c, CP[c][r] = Cn + c R + r, PB[r] = Cn (1 + R) + r, PP[r][q] = Cn (1 + R) + R + r R + q
// with v = C_c B, C_c P_r, conj(P_r) B, conj(P_r) P_q.
struct Pairs {
  int64_t Cn, R;
  __host__ __device__ int64_t count() const { return Cn * (1 + R) + R * (1 + R); }
  __device__ int64_t cb(int64_t c) const { return c; }
  __device__ int64_t cp(int64_t c, int64_t r) const { return Cn + c * R + r; }
  __device__ int64_t pb(int64_t r) const { return Cn * (1 + R) + r; }
  __device__ int64_t pp(int64_t r, int64_t q) const { return Cn * (1 + R) + R + r * R + q; }
};

// v (H, pairs, N2) complex double, one thread per (h, n).
__global__ void dplr_prep_kernel(const float* __restrict__ P, const float* __restrict__ B,
                                 const float* __restrict__ C, Pairs pr, int64_t H, int64_t N2,
                                 double* __restrict__ v) {
  const int64_t np = pr.count();
  for (int64_t i = thread_index(); i < H * N2; i += thread_count()) {
    const int64_t h = i / N2, n = i % N2;
    double* vh = v + 2 * h * np * N2;
    const cx b = load(B, i);
    for (int64_t c = 0; c < pr.Cn; ++c) {
      const cx cv = load(C, (c * H + h) * N2 + n);
      stored(vh, pr.cb(c) * N2 + n, mul(cv, b));
      for (int64_t r = 0; r < pr.R; ++r) {
        stored(vh, pr.cp(c, r) * N2 + n, mul(cv, load(P, (r * H + h) * N2 + n)));
      }
    }
    for (int64_t r = 0; r < pr.R; ++r) {
      const cx pc = cj(load(P, (r * H + h) * N2 + n));
      stored(vh, pr.pb(r) * N2 + n, mul(pc, b));
      for (int64_t q = 0; q < pr.R; ++q) {
        stored(vh, pr.pp(r, q) * N2 + n, mul(pc, load(P, (q * H + h) * N2 + n)));
      }
    }
  }
}

// Node k of L: (1 - omega, 1 + omega) with omega = exp(-2 pi i k / L).
__device__ inline void node(int64_t k, int64_t L, cx& om1, cx& kap) {
  const double t = 2.0 * 3.14159265358979323846 * static_cast<double>(k) / static_cast<double>(L);
  const double sh = sin(0.5 * t), ch = cos(0.5 * t), st = sin(t);
  om1 = {2.0 * sh * sh, st};
  kap = {2.0 * ch * ch, -st};
}

// x = M^{-1} x (or (M^H)^{-1} x), M (R, R) row-major, a scratch (R, R):
// Gaussian elimination with partial pivoting, as small_solve on the CPU.
__device__ void small_solve(const cx* M, int64_t R, bool conj_transpose, cx* a, cx* x) {
  for (int64_t i = 0; i < R; ++i) {
    for (int64_t j = 0; j < R; ++j) a[i * R + j] = conj_transpose ? cj(M[j * R + i]) : M[i * R + j];
  }
  for (int64_t k = 0; k < R; ++k) {
    int64_t piv = k;
    for (int64_t i = k + 1; i < R; ++i) {
      if (cabs_(a[i * R + k]) > cabs_(a[piv * R + k])) piv = i;
    }
    if (piv != k) {
      for (int64_t j = 0; j < R; ++j) {
        const cx tmp = a[k * R + j];
        a[k * R + j] = a[piv * R + j];
        a[piv * R + j] = tmp;
      }
      const cx tmp = x[k];
      x[k] = x[piv];
      x[piv] = tmp;
    }
    const cx d = inv(a[k * R + k]);
    for (int64_t i = k + 1; i < R; ++i) {
      const cx m = mul(a[i * R + k], d);
      for (int64_t j = k; j < R; ++j) a[i * R + j] = a[i * R + j] - mul(m, a[k * R + j]);
      x[i] = x[i] - mul(m, x[k]);
    }
  }
  for (int64_t k = R - 1; k >= 0; --k) {
    cx v = x[k];
    for (int64_t j = k + 1; j < R; ++j) v = v - mul(a[k * R + j], x[j]);
    x[k] = mul(v, inv(a[k * R + k]));
  }
}

// The per-warp shared scratch of the DPLR kernels (complex values):
// s (pairs), M (R, R), a (R, R), y (R), g (pairs: gs in the backward), gy (R).
struct WarpScratch {
  cx *s, *M, *a, *y, *g, *gy;
  __device__ WarpScratch(cx* base, int64_t np, int64_t R) {
    s = base;
    M = s + np;
    a = M + R * R;
    y = a + R * R;
    g = y + R;
    gy = g + np;
  }
};
__host__ __device__ inline int64_t warp_scratch_values(int64_t np, int64_t R) {
  return 2 * np + 2 * R * R + 2 * R;
}

// One lane's modes n = lane + 32 i at one node: 1/d_n = (ir, ii), 1/d'_n = (br, bi),
// d = (2/dt)(1 - omega) - kap Lambda, d' = the same with conj Lambda (0 past N2).
struct LaneInverses {
  double ir[kLaneModes], ii[kLaneModes], br[kLaneModes], bi[kLaneModes];
};
__device__ inline void lane_inverses(const double* lr, const double* li, int lane, int64_t N2,
                                     double ar, double ai, cx kap, LaneInverses& v) {
#pragma unroll
  for (int m = 0; m < kLaneModes; ++m) {
    const int64_t n = lane + 32 * m;
    if (n < N2) {
      const double kr = kap.re, ki = kap.im;
      const double d1r = ar - (kr * lr[m] - ki * li[m]), d1i = ai - (kr * li[m] + ki * lr[m]);
      const double d2r = ar - (kr * lr[m] + ki * li[m]), d2i = ai - (ki * lr[m] - kr * li[m]);
      const double s1 = 1.0 / (d1r * d1r + d1i * d1i), s2 = 1.0 / (d2r * d2r + d2i * d2i);
      v.ir[m] = d1r * s1;
      v.ii[m] = -d1i * s1;
      v.br[m] = d2r * s2;
      v.bi[m] = -d2i * s2;
    } else {
      v.ir[m] = v.ii[m] = v.br[m] = v.bi[m] = 0.0;
    }
  }
}

// The Cauchy sums of every pair at the current node into w.s (every lane gets
// them after the warp sums; lane 0 writes), then (lane 0) M = I + kap s_PP,
// y = M^{-1} s_PB. Ends with __syncwarp: w.s, w.M, w.y are visible to the warp.
__device__ inline void dplr_sums(const double* vh, int64_t np, int64_t N2, const Pairs& pr,
                                 const LaneInverses& v, int lane, cx kap, WarpScratch& w) {
  for (int64_t p = 0; p < np; ++p) {
    const double* vp = vh + 2 * p * N2;
    double re = 0.0, im = 0.0;
#pragma unroll
    for (int m = 0; m < kLaneModes; ++m) {
      const int64_t n = lane + 32 * m;
      if (n < N2) {
        const double a = vp[2 * n], b = vp[2 * n + 1];
        re += a * (v.ir[m] + v.br[m]) + b * (v.bi[m] - v.ii[m]);
        im += a * (v.ii[m] + v.bi[m]) + b * (v.ir[m] - v.br[m]);
      }
    }
    re = warp_sum(re);
    im = warp_sum(im);
    if (lane == 0) w.s[p] = {re, im};
  }
  __syncwarp();
  if (lane == 0) {
    const int64_t R = pr.R;
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t q = 0; q < R; ++q) {
        w.M[r * R + q] = (r == q ? cx{1.0, 0.0} : cx{0.0, 0.0}) + mul(kap, w.s[pr.pp(r, q)]);
      }
      w.y[r] = w.s[pr.pb(r)];
    }
    small_solve(w.M, R, false, w.a, w.y);
  }
  __syncwarp();
}

// Lambda of the lane's modes (0 past N2).
__device__ inline void lane_lambda(const float* Lam, int64_t h, int64_t N2, int lane,
                                   double (&lr)[kLaneModes], double (&li)[kLaneModes]) {
#pragma unroll
  for (int m = 0; m < kLaneModes; ++m) {
    const int64_t n = lane + 32 * m;
    lr[m] = n < N2 ? static_cast<double>(Lam[2 * (h * N2 + n)]) : 0.0;
    li[m] = n < N2 ? static_cast<double>(Lam[2 * (h * N2 + n) + 1]) : 0.0;
  }
}

// X[c, h, k] (Cn * H, nodes) complex double: K^ at node k, one warp per (h, k).
// The imaginary parts of X[0] and (L even) X[L/2], which the irfft ignores, are 0.
__global__ void __launch_bounds__(kThreads)
    dplr_forward_kernel(const double* __restrict__ v, const float* __restrict__ dt,
                        const float* __restrict__ Lam, Pairs pr, int64_t H, int64_t N2, int64_t L,
                        int64_t nodes, double* __restrict__ X) {
  extern __shared__ double smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t np = pr.count();
  WarpScratch w(reinterpret_cast<cx*>(smem) + warp * warp_scratch_values(np, pr.R), np, pr.R);
  const int64_t total = H * nodes;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * kWarps + warp; g < total;
       g += static_cast<int64_t>(gridDim.x) * kWarps) {  // uniform over the warp
    const int64_t h = g / nodes, k = g % nodes;
    const double dth = static_cast<double>(dt[h]);
    double lr[kLaneModes], li[kLaneModes];
    lane_lambda(Lam, h, N2, lane, lr, li);
    cx om1, kap;
    node(k, L, om1, kap);
    LaneInverses inv_n;
    lane_inverses(lr, li, lane, N2, 2.0 / dth * om1.re, 2.0 / dth * om1.im, kap, inv_n);
    dplr_sums(v + 2 * h * np * N2, np, N2, pr, inv_n, lane, kap, w);
    if (lane == 0) {
      for (int64_t c = 0; c < pr.Cn; ++c) {
        cx corr{0.0, 0.0};
        for (int64_t r = 0; r < pr.R; ++r) corr = corr + mul(w.s[pr.cp(c, r)], w.y[r]);
        cx val = 2.0 * (w.s[pr.cb(c)] - mul(kap, corr));
        if (k == 0 || 2 * k == L) val.im = 0.0;
        stored(X, (c * H + h) * nodes + k, val);
      }
    }
    __syncwarp();  // w is reused by the next node
  }
}

// Partials over a tile of nodes, one warp per (h, tile):
//   Gv (H, tiles, pairs, N2) complex: sum of the gradients of v,
//   gL (H, tiles, N2) complex, gdt (H, tiles, N2): Lambda's and dt's per mode.
// gX (Cn * H, nodes) complex: rfft of grad (unscaled).
__global__ void __launch_bounds__(kThreads)
    dplr_backward_kernel(const double* __restrict__ v, const double* __restrict__ gX,
                         const float* __restrict__ dt, const float* __restrict__ Lam, Pairs pr,
                         int64_t H, int64_t N2, int64_t L, int64_t nodes, int64_t tiles,
                         int64_t tile_len, double* __restrict__ Gv, double* __restrict__ gL,
                         double* __restrict__ gdt) {
  extern __shared__ double smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t np = pr.count(), R = pr.R, Cn = pr.Cn;
  WarpScratch w(reinterpret_cast<cx*>(smem) + warp * warp_scratch_values(np, R), np, R);
  const int64_t total = H * tiles;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * kWarps + warp; g < total;
       g += static_cast<int64_t>(gridDim.x) * kWarps) {  // uniform over the warp
    const int64_t h = g / tiles, tile = g % tiles;
    const double dth = static_cast<double>(dt[h]);
    double lr[kLaneModes], li[kLaneModes];
    lane_lambda(Lam, h, N2, lane, lr, li);
    double gLr[kLaneModes], gLi[kLaneModes], gd[kLaneModes];
#pragma unroll
    for (int m = 0; m < kLaneModes; ++m) gLr[m] = gLi[m] = gd[m] = 0.0;
    const double* vh = v + 2 * h * np * N2;
    double* Gt = Gv + 2 * (h * tiles + tile) * np * N2;
    const int64_t kbeg = tile * tile_len, kend = imin(nodes, kbeg + tile_len);
    for (int64_t k = kbeg; k < kend; ++k) {
      cx om1, kap;
      node(k, L, om1, kap);
      LaneInverses iv;
      lane_inverses(lr, li, lane, N2, 2.0 / dth * om1.re, 2.0 / dth * om1.im, kap, iv);
      dplr_sums(vh, np, N2, pr, iv, lane, kap, w);
      if (lane == 0) {
        // K^[c] = 2 (s_CB[c] - kap s_CP[c] . y),  y = M^{-1} s_PB,  M = I + kap s_PP.
        const cx ckap = cj(kap);
        const bool edge = k == 0 || 2 * k == L;
        const double Ld = static_cast<double>(L);
        for (int64_t r = 0; r < R; ++r) w.gy[r] = {0.0, 0.0};
        for (int64_t c = 0; c < Cn; ++c) {
          // The adjoint of the irfft: (w_k / L) rfft(G)[k], w_k = 1 at the edges (real part only).
          const cx x = loadd(gX, (c * H + h) * nodes + k);
          const cx gk = edge ? cx{x.re / Ld, 0.0} : (2.0 / Ld) * x;
          w.g[pr.cb(c)] = 2.0 * gk;
          for (int64_t r = 0; r < R; ++r) {
            w.g[pr.cp(c, r)] = -2.0 * mul(cj(mul(kap, w.y[r])), gk);
            w.gy[r] = w.gy[r] + -2.0 * mul(cj(mul(kap, w.s[pr.cp(c, r)])), gk);
          }
        }
        small_solve(w.M, R, true, w.a, w.gy);
        for (int64_t r = 0; r < R; ++r) {
          w.g[pr.pb(r)] = w.gy[r];
          for (int64_t q = 0; q < R; ++q) {
            const cx t = mul(ckap, mul(w.gy[r], cj(w.y[q])));
            w.g[pr.pp(r, q)] = {-t.re, -t.im};
          }
        }
      }
      __syncwarp();
      // Through s = sum_n v_n i_n + conj(v_n) b_n:
      //   g_v += g_s conj(i) + conj(g_s) b,  g_i += g_s conj(v),  g_b += g_s v.
      double g1r[kLaneModes], g1i[kLaneModes], g2r[kLaneModes], g2i[kLaneModes];
#pragma unroll
      for (int m = 0; m < kLaneModes; ++m) g1r[m] = g1i[m] = g2r[m] = g2i[m] = 0.0;
      for (int64_t p = 0; p < np; ++p) {
        const double gr = w.g[p].re, gi = w.g[p].im;
        const double* vp = vh + 2 * p * N2;
        double* Gp = Gt + 2 * p * N2;
#pragma unroll
        for (int m = 0; m < kLaneModes; ++m) {
          const int64_t n = lane + 32 * m;
          if (n < N2) {
            const double vr = vp[2 * n], vi = vp[2 * n + 1];
            Gp[2 * n] += gr * (iv.ir[m] + iv.br[m]) + gi * (iv.ii[m] + iv.bi[m]);
            Gp[2 * n + 1] += gi * (iv.ir[m] - iv.br[m]) + gr * (iv.bi[m] - iv.ii[m]);
            g1r[m] += gr * vr + gi * vi;
            g1i[m] += gi * vr - gr * vi;
            g2r[m] += gr * vr - gi * vi;
            g2i[m] += gr * vi + gi * vr;
          }
        }
      }
      // 1/d is holomorphic in Lambda, 1/d' antiholomorphic (see the CPU code):
      //   g_Lambda += conj(kap i^2) g_i + conj(g_b) kap b^2,
      //   g_dt += Re(conj(c i^2) g_i + conj(c b^2) g_b),  c = 2 (1 - omega) / dt^2.
      const cx c_dt = (2.0 / (dth * dth)) * om1;
      const double kr = kap.re, ki = kap.im, cr = c_dt.re, ci = c_dt.im;
#pragma unroll
      for (int m = 0; m < kLaneModes; ++m) {
        const double ir = iv.ir[m], ii = iv.ii[m], br = iv.br[m], bi = iv.bi[m];
        const double i2r = ir * ir - ii * ii, i2i = 2.0 * ir * ii;
        const double b2r = br * br - bi * bi, b2i = 2.0 * br * bi;
        const double ur = kr * i2r - ki * i2i, ui = kr * i2i + ki * i2r;
        const double wr = kr * b2r - ki * b2i, wi = kr * b2i + ki * b2r;
        gLr[m] += ur * g1r[m] + ui * g1i[m] + g2r[m] * wr + g2i[m] * wi;
        gLi[m] += ur * g1i[m] - ui * g1r[m] + g2r[m] * wi - g2i[m] * wr;
        const double er = cr * i2r - ci * i2i, ei = cr * i2i + ci * i2r;
        const double fr = cr * b2r - ci * b2i, fi = cr * b2i + ci * b2r;
        gd[m] += er * g1r[m] + ei * g1i[m] + fr * g2r[m] + fi * g2i[m];
      }
      __syncwarp();  // w.g has been read before the next node overwrites w
    }
#pragma unroll
    for (int m = 0; m < kLaneModes; ++m) {
      const int64_t n = lane + 32 * m;
      if (n < N2) {
        const int64_t o = (h * tiles + tile) * N2 + n;
        gL[2 * o] = gLr[m];
        gL[2 * o + 1] = gLi[m];
        gdt[o] = gd[m];
      }
    }
  }
}

// The tiles of Gv added in order: Gs (H, pairs, N2) complex, one thread per (h, p, n).
__global__ void dplr_reduce_kernel(const double* __restrict__ Gv, int64_t H, int64_t np, int64_t N2,
                                   int64_t tiles, double* __restrict__ Gs) {
  const int64_t total = H * np * N2;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const int64_t h = i / (np * N2), pn = i % (np * N2);
    cx acc{0.0, 0.0};
    for (int64_t t = 0; t < tiles; ++t) acc = acc + loadd(Gv, (h * tiles + t) * np * N2 + pn);
    stored(Gs, i, acc);
  }
}

// One block per h, threads over n: gLambda and gdt (tiles in order, dt by
// block_sum), and the gradients of v passed to the factors of v = a b
// (g_a += g_v conj(b), g_b += g_v conj(a); for a = conj(P_r): g_{P_r} += conj(g_v) b).
__global__ void dplr_finish_kernel(const double* __restrict__ Gs, const double* __restrict__ gL,
                                   const double* __restrict__ gdt, const float* __restrict__ P,
                                   const float* __restrict__ B, const float* __restrict__ C,
                                   Pairs pr, int64_t H, int64_t N2, int64_t tiles,
                                   float* __restrict__ odt, float* __restrict__ oL,
                                   float* __restrict__ oP, float* __restrict__ oB,
                                   float* __restrict__ oC) {
  __shared__ double red[32];
  const int64_t np = pr.count(), R = pr.R, Cn = pr.Cn;
  for (int64_t h = blockIdx.x; h < H; h += gridDim.x) {  // uniform over the block
    double g_dt = 0.0;
    for (int64_t n = threadIdx.x; n < N2; n += blockDim.x) {
      const double* G = Gs + 2 * h * np * N2;
      const auto Gv = [&](int64_t p) { return loadd(G, p * N2 + n); };
      cx gl{0.0, 0.0};
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t o = (h * tiles + t) * N2 + n;
        gl = gl + loadd(gL, o);
        g_dt += gdt[o];
      }
      if (oL) store(oL, h * N2 + n, gl);
      const cx bn = load(B, h * N2 + n);
      const auto Pn = [&](int64_t r) { return load(P, (r * H + h) * N2 + n); };
      const auto Cv = [&](int64_t c) { return load(C, (c * H + h) * N2 + n); };
      if (oC) {
        for (int64_t c = 0; c < Cn; ++c) {
          cx g = mul(Gv(pr.cb(c)), cj(bn));
          for (int64_t r = 0; r < R; ++r) g = g + mul(Gv(pr.cp(c, r)), cj(Pn(r)));
          store(oC, (c * H + h) * N2 + n, g);
        }
      }
      if (oB) {
        cx g{0.0, 0.0};
        for (int64_t c = 0; c < Cn; ++c) g = g + mul(Gv(pr.cb(c)), cj(Cv(c)));
        for (int64_t r = 0; r < R; ++r) g = g + mul(Gv(pr.pb(r)), Pn(r));
        store(oB, h * N2 + n, g);
      }
      if (oP) {
        for (int64_t t = 0; t < R; ++t) {
          cx g{0.0, 0.0};
          for (int64_t c = 0; c < Cn; ++c) g = g + mul(Gv(pr.cp(c, t)), cj(Cv(c)));
          g = g + mul(cj(Gv(pr.pb(t))), bn);
          for (int64_t r = 0; r < R; ++r) g = g + mul(Gv(pr.pp(r, t)), Pn(r));
          for (int64_t q = 0; q < R; ++q) g = g + mul(cj(Gv(pr.pp(t, q))), Pn(q));
          store(oP, (t * H + h) * N2 + n, g);
        }
      }
    }
    g_dt = block_sum(g_dt, red);
    if (odt && threadIdx.x == 0) odt[h] = static_cast<float>(g_dt);
  }
}

// K = x / L (float), from the irfft's unscaled double output.
__global__ void scale_to_float_kernel(const double* __restrict__ x, double scale, int64_t total,
                                      float* __restrict__ y) {
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    y[i] = static_cast<float>(x[i] * scale);
  }
}

// L = 1: the irfft of one value is its real part; the rfft of one value is itself.
__global__ void real_parts_kernel(const double* __restrict__ X, int64_t total,
                                  float* __restrict__ y) {
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    y[i] = static_cast<float>(X[2 * i]);
  }
}
__global__ void to_complex_kernel(const float* __restrict__ x, int64_t total,
                                  double* __restrict__ X) {
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    X[2 * i] = static_cast<double>(x[i]);
    X[2 * i + 1] = 0.0;
  }
}
__global__ void to_double_kernel(const float* __restrict__ x, int64_t total,
                                 double* __restrict__ y) {
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    y[i] = static_cast<double>(x[i]);
  }
}

// ---------------------------------------------------------------- cuFFT plans

const char* cufft_error(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "success";
    case CUFFT_INVALID_PLAN: return "invalid plan";
    case CUFFT_ALLOC_FAILED: return "allocation failed";
    case CUFFT_INVALID_VALUE: return "invalid value";
    case CUFFT_INTERNAL_ERROR: return "internal error";
    case CUFFT_EXEC_FAILED: return "execution failed";
    case CUFFT_SETUP_FAILED: return "setup failed";
    case CUFFT_INVALID_SIZE: return "invalid size";
    default: return "error";
  }
}

#define SSM_CUFFT_CHECK(op, stmt)                                                         \
  do {                                                                                    \
    const cufftResult ssm_r_ = (stmt);                                                    \
    SSM_CHECK(ssm_r_ == CUFFT_SUCCESS, op, #stmt, " failed: ", cufft_error(ssm_r_), " (", \
              static_cast<int>(ssm_r_), ")");                                             \
  } while (0)

// Batched 1-D double transforms of length n over `batch` rows (Z2D: rows of
// n/2 + 1 complex in, n real out; D2Z the reverse), on the legacy default
// stream. Plans are cached by (device, type, n, batch) and made without
// automatic work areas: each execution gets its work area from the caching
// allocator. The mutex guards the cache and each (set work area, execute).
struct PlanEntry {
  cufftHandle plan = 0;
  size_t work = 0;
};
std::mutex g_plan_mutex;
std::map<std::tuple<int, int, int64_t, int64_t>, PlanEntry>& plan_cache() {
  static auto* cache = new std::map<std::tuple<int, int, int64_t, int64_t>, PlanEntry>();
  return *cache;  // never destroyed: plans outlive static destruction order
}

void exec_fft(const char* op, bool inverse, int64_t n, int64_t batch, const Tensor& like,
              double* in, double* out) {
  SSM_CHECK(n <= (int64_t{1} << 30) && batch <= (int64_t{1} << 30), op,
            "FFT sizes too large for cuFFT: n ", n, ", batch ", batch);
  const int dev = like.device().index;
  const cufftType type = inverse ? CUFFT_Z2D : CUFFT_D2Z;
  std::lock_guard<std::mutex> lock(g_plan_mutex);
  auto key = std::make_tuple(dev, static_cast<int>(type), n, batch);
  auto it = plan_cache().find(key);
  if (it == plan_cache().end()) {
    PlanEntry e;
    SSM_CUFFT_CHECK(op, cufftCreate(&e.plan));
    SSM_CUFFT_CHECK(op, cufftSetAutoAllocation(e.plan, 0));
    int dims[1] = {static_cast<int>(n)};
    const int half = static_cast<int>(n / 2 + 1), full = static_cast<int>(n);
    const int idist = inverse ? half : full, odist = inverse ? full : half;
    SSM_CUFFT_CHECK(op, cufftMakePlanMany(e.plan, 1, dims, nullptr, 1, idist, nullptr, 1, odist,
                                          type, static_cast<int>(batch), &e.work));
    it = plan_cache().emplace(key, e).first;
  }
  const PlanEntry& e = it->second;
  Tensor work;
  if (e.work > 0) {
    work = Tensor::empty({static_cast<int64_t>((e.work + 7) / 8)}, DType::Float64, like.device());
    SSM_CUFFT_CHECK(op, cufftSetWorkArea(e.plan, work.data<double>()));
  }
  if (inverse) {
    SSM_CUFFT_CHECK(op, cufftExecZ2D(e.plan, reinterpret_cast<cufftDoubleComplex*>(in), out));
  } else {
    SSM_CUFFT_CHECK(op, cufftExecD2Z(e.plan, in, reinterpret_cast<cufftDoubleComplex*>(out)));
  }
}

// ---------------------------------------------------------------- launch helpers

unsigned elementwise_blocks(int64_t n) { return blocks_for(n); }
unsigned per_h_blocks(int64_t H) { return static_cast<unsigned>(std::min<int64_t>(H, 65535 * 8)); }
unsigned warp_blocks(int64_t warps) { return blocks_for(warps, kWarps); }

struct DplrShapes {
  int64_t Cn, R, H, N2;
};

DplrShapes check_dplr(const char* op, const Tensor& dt, const Tensor& Lambda, const Tensor& P,
                      const Tensor& B, const Tensor& C) {
  const auto [H, N2] = check_dt_A(op, dt, Lambda, "Lambda");
  check_complex(op, P, "P", any_lead("R"), H, N2, dt);
  check_complex(op, B, "B", kNoLead, H, N2, dt);
  check_complex(op, C, "C", any_lead("C"), H, N2, dt);
  return {C.size(0), P.size(0), H, N2};
}

// The dynamic shared memory of a DPLR warp kernel (bytes per block), checked.
size_t dplr_shared_bytes(const char* op, const Pairs& pr) {
  const int64_t bytes = kWarps * warp_scratch_values(pr.count(), pr.R) * 16;
  SSM_CHECK(bytes <= 48 * 1024, op, "C = ", pr.Cn, " channels and rank R = ", pr.R, " need ", bytes,
            " bytes of shared memory per block in the CUDA kernel (at most 48 KB)");
  return static_cast<size_t>(bytes);
}

void check_dplr_modes(const char* op, int64_t N2) {
  SSM_CHECK(N2 <= kMaxDplrN2, op, "the CUDA kernel supports N2 <= ", kMaxDplrN2,
            " stored modes (N <= ", 2 * kMaxDplrN2, "), got N2 = ", N2);
}

struct StepShapes {
  int64_t Bn, Cn, H, N2;
};

StepShapes check_step(const char* op, const Tensor& u_t, const Tensor& state, const Tensor& dB,
                      const Tensor& C) {
  check_defined(op, u_t, "u_t");
  check_defined(op, state, "state");
  check_defined(op, dB, "dB");
  check_defined(op, C, "C");
  SSM_CHECK(u_t.dtype() == DType::Float32 || u_t.dtype() == DType::Float64, op,
            "expected float32 or float64 tensors, got u_t ", u_t.desc());
  SSM_CHECK(dB.dim() == 3 && dB.size(-1) == 2, op,
            "dB must be (H, N2, 2) (complex as a trailing dim 2), got ", dB.desc());
  const int64_t H = dB.size(0), N2 = dB.size(1);
  check_same_device(op, u_t, dB);
  check_same_dtype(op, u_t, dB);
  SSM_CHECK(u_t.dim() == 2 && u_t.size(1) == H, op, "u_t must be (B, ", H, "), got ", u_t.desc());
  const int64_t Bn = u_t.size(0);
  check_complex(op, state, "state", exact_lead(Bn), H, N2, u_t);
  check_complex(op, C, "C", any_lead("C"), H, N2, u_t);
  return {Bn, C.size(0), H, N2};
}

// ---------------------------------------------------------------- step kernels

// x'[b, h, n] = dA[h, n] x[b, h, n] + dB[h, n] u[b, h], one thread per (b, h, n).
__global__ void s4d_state_kernel(const float* __restrict__ u, const float* __restrict__ x,
                                 const float* __restrict__ dA, const float* __restrict__ dB,
                                 int64_t H, int64_t N2, int64_t total, float* __restrict__ next) {
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const int64_t bh = i / N2, n = i % N2, hn = (bh % H) * N2 + n;
    const double uv = static_cast<double>(u[bh]);
    store(next, i, mul(load(dA, hn), load(x, i)) + uv * load(dB, hn));
  }
}

// x'[b, h, i] = sum_j (dA[h, i, j] x[b, h, j] + dA_conj[h, i, j] conj(x[b, h, j])) + dB[h, i] u[b,
// h], one warp per (b, h, i), lanes over j.
__global__ void __launch_bounds__(kThreads)
    dense_state_kernel(const float* __restrict__ u, const float* __restrict__ x,
                       const float* __restrict__ dA, const float* __restrict__ dA2,
                       const float* __restrict__ dB, int64_t H, int64_t N2, int64_t rows,
                       float* __restrict__ next) {
  const int lane = threadIdx.x & 31;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); g < rows;
       g += static_cast<int64_t>(gridDim.x) * kWarps) {  // uniform over the warp
    const int64_t bh = g / N2, i = g % N2, h = bh % H;
    const int64_t row = (h * N2 + i) * N2;
    double re = 0.0, im = 0.0;
    for (int64_t j = lane; j < N2; j += 32) {
      const cx xj = load(x, bh * N2 + j);
      const cx t = mul(load(dA, row + j), xj) + mul(load(dA2, row + j), cj(xj));
      re += t.re;
      im += t.im;
    }
    re = warp_sum(re);
    im = warp_sum(im);
    if (lane == 0) {
      const double uv = static_cast<double>(u[bh]);
      store(next, g, uv * load(dB, h * N2 + i) + cx{re, im});
    }
  }
}

// y[b, c, h] = 2 Re sum_n C[c, h, n] x'[b, h, n] (x' as stored in float), one warp per (b, h).
__global__ void __launch_bounds__(kThreads)
    step_output_kernel(const float* __restrict__ next, const float* __restrict__ C, int64_t Cn,
                       int64_t H, int64_t N2, int64_t BH, float* __restrict__ y) {
  const int lane = threadIdx.x & 31;
  for (int64_t bh = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); bh < BH;
       bh += static_cast<int64_t>(gridDim.x) * kWarps) {  // uniform over the warp
    const int64_t b = bh / H, h = bh % H;
    for (int64_t c = 0; c < Cn; ++c) {
      double acc = 0.0;
      for (int64_t n = lane; n < N2; n += 32) {
        acc += mul(load(C, (c * H + h) * N2 + n), load(next, bh * N2 + n)).re;
      }
      acc = warp_sum(acc);
      if (lane == 0) y[(b * Cn + c) * H + h] = static_cast<float>(2.0 * acc);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- diag_discretize

DiagDiscrete diag_discretize_forward(const Tensor& dt, const Tensor& A, const std::string& method) {
  const char* op = "diag_discretize";
  const Disc disc = parse_method(op, method);
  const auto [H, N2] = check_dt_A(op, dt, A, "A");
  require_cuda_float32(op, {&dt, &A});
  const Tensor dtc = dt.contiguous(), Ac = A.contiguous();
  DiagDiscrete out{Tensor::empty(A.shape(), A.dtype(), A.device()),
                   Tensor::empty(A.shape(), A.dtype(), A.device())};
  const int64_t total = H * N2;
  if (total == 0) return out;
  diag_forward_kernel<<<elementwise_blocks(total), kThreads>>>(
      dtc.data<float>(), Ac.data<float>(), disc == Disc::Zoh, N2, total, out.dA.data<float>(),
      out.dB.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

DiagDiscretizeGrads diag_discretize_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                             const Tensor& dt, const Tensor& A,
                                             const std::string& method, bool need_dt, bool need_A) {
  const char* op = "diag_discretize_backward";
  const Disc disc = parse_method(op, method);
  const auto [H, N2] = check_dt_A(op, dt, A, "A");
  if (grad_dA.defined()) check_complex(op, grad_dA, "grad_dA", kNoLead, H, N2, dt);
  if (grad_dB.defined()) check_complex(op, grad_dB, "grad_dB", kNoLead, H, N2, dt);
  require_cuda_float32(op, {&grad_dA, &grad_dB, &dt, &A});
  const Tensor dtc = dt.contiguous(), Ac = A.contiguous();
  const Tensor gAc = contiguous_if_defined(grad_dA), gBc = contiguous_if_defined(grad_dB);
  DiagDiscretizeGrads out;
  if (need_dt) out.dt = Tensor::empty({H}, dt.dtype(), dt.device());
  if (need_A) out.A = Tensor::empty(A.shape(), A.dtype(), A.device());
  if ((!need_dt && !need_A) || H == 0) return out;
  diag_backward_kernel<<<per_h_blocks(H), kThreads>>>(
      ptr_or_null(gAc), ptr_or_null(gBc), dtc.data<float>(), Ac.data<float>(), disc == Disc::Zoh, H,
      N2, out_or_null(out.dt), out_or_null(out.A));
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

// ---------------------------------------------------------------- s4d_kernel

namespace {

struct S4DPrep {
  Tensor z, zpol, zstep, cw;  // (H, N2, 2) x 3, (Cn, H, N2, 2); float64
};

S4DPrep s4d_prep(const Tensor& dtc, const Tensor& Ac, const Tensor& Bc, const Tensor& Cc, bool zoh,
                 int64_t Cn, int64_t H, int64_t N2) {
  S4DPrep p;
  p.z = scratch({H, N2, 2}, DType::Float64, dtc);
  p.zpol = scratch({H, N2, 2}, DType::Float64, dtc);
  p.zstep = scratch({H, N2, 2}, DType::Float64, dtc);
  p.cw = scratch({Cn, H, N2, 2}, DType::Float64, dtc);
  if (H * N2 == 0) return p;
  s4d_prep_kernel<<<elementwise_blocks(H * N2), kThreads>>>(
      dtc.data<float>(), Ac.data<float>(), Bc.data<float>(), Cc.data<float>(), zoh, Cn, H, N2,
      p.z.data<double>(), p.zpol.data<double>(), p.zstep.data<double>(), p.cw.data<double>());
  SSM_CUDA_CHECK_LAUNCH();
  return p;
}

}  // namespace

Tensor s4d_kernel_forward(const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                          std::int64_t L, const std::string& method) {
  const char* op = "s4d_kernel";
  const Disc disc = parse_method(op, method);
  check_length(op, L);
  const auto [H, N2] = check_dt_A(op, dt, A, "A");
  check_complex(op, B, "B", kNoLead, H, N2, dt);
  check_complex(op, C, "C", any_lead("C"), H, N2, dt);
  require_cuda_float32(op, {&dt, &A, &B, &C});
  const int64_t Cn = C.size(0);
  const Tensor dtc = dt.contiguous(), Ac = A.contiguous(), Bc = B.contiguous();
  const Tensor Cc = C.contiguous();
  Tensor K = Tensor::empty({Cn, H, L}, A.dtype(), A.device());
  if (H == 0) return K;
  const S4DPrep p = s4d_prep(dtc, Ac, Bc, Cc, disc == Disc::Zoh, Cn, H, N2);
  const int64_t tiles = (L + kFwdTile - 1) / kFwdTile;
  SSM_CHECK(tiles <= 2147483647, op, "L too large: ", L);
  const dim3 grid(static_cast<unsigned>(tiles), grid_yz(H), grid_yz(Cn));
  s4d_forward_kernel<<<grid, kThreads>>>(p.zpol.data<double>(), p.zstep.data<double>(),
                                         p.cw.data<double>(), Cn, H, N2, L, K.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  return K;
}

S4DKernelGrads s4d_kernel_backward(const Tensor& grad, const Tensor& dt, const Tensor& A,
                                   const Tensor& B, const Tensor& C, const std::string& method,
                                   bool need_dt, bool need_A, bool need_B, bool need_C) {
  const char* op = "s4d_kernel_backward";
  const Disc disc = parse_method(op, method);
  const auto [H, N2] = check_dt_A(op, dt, A, "A");
  check_complex(op, B, "B", kNoLead, H, N2, dt);
  check_complex(op, C, "C", any_lead("C"), H, N2, dt);
  const int64_t Cn = C.size(0);
  check_grad(op, grad, dt, Cn, H);
  require_cuda_float32(op, {&grad, &dt, &A, &B, &C});
  const int64_t L = grad.size(2);
  S4DKernelGrads out;
  const Device dev = dt.device();
  if (need_dt) out.dt = Tensor::empty(dt.shape(), dt.dtype(), dev);
  if (need_A) out.A = Tensor::empty(A.shape(), A.dtype(), dev);
  if (need_B) out.B = Tensor::empty(B.shape(), B.dtype(), dev);
  if (need_C) out.C = Tensor::empty(C.shape(), C.dtype(), dev);
  if (!need_dt && !need_A && !need_B && !need_C) return out;
  if (H == 0) return out;
  const bool need_U = need_dt || need_A;
  const bool need_W = need_dt || need_A || need_B;
  const Tensor gc = grad.contiguous(), dtc = dt.contiguous(), Ac = A.contiguous();
  const Tensor Bc = B.contiguous(), Cc = C.contiguous();
  if (N2 == 0) {
    if (need_dt) out.dt.fill_(0.0);
    return out;
  }
  const S4DPrep p = s4d_prep(dtc, Ac, Bc, Cc, disc == Disc::Zoh, Cn, H, N2);
  // l tiles of at least kBwdStage values, as many as the partial budget allows.
  const int64_t per_tile_values = Cn * H * N2 * (need_U ? 2 : 1);
  const int64_t max_tiles = std::max<int64_t>(1, kPartialBudget / per_tile_values);
  int64_t tile_len = std::max<int64_t>(kBwdStage, (L + max_tiles - 1) / max_tiles);
  const int64_t tiles = (L + tile_len - 1) / tile_len;
  const int64_t chunks = (N2 + kBwdThreads - 1) / kBwdThreads;
  Tensor Tp = scratch({tiles, Cn, H, N2, 2}, DType::Float64, dtc);
  Tensor Up = need_U ? scratch({tiles, Cn, H, N2, 2}, DType::Float64, dtc) : Tensor();
  const dim3 grid(static_cast<unsigned>(tiles), grid_yz(H), grid_yz(Cn * chunks));
  s4d_backward_partial_kernel<<<grid, kBwdThreads>>>(
      gc.data<float>(), p.z.data<double>(), p.zpol.data<double>(), Cn, H, N2, L, tile_len, chunks,
      need_U, Tp.data<double>(), need_U ? Up.data<double>() : nullptr);
  SSM_CUDA_CHECK_LAUNCH();
  s4d_backward_finish_kernel<<<per_h_blocks(H), kThreads>>>(
      Tp.data<double>(), need_U ? Up.data<double>() : nullptr, dtc.data<float>(), Ac.data<float>(),
      Bc.data<float>(), Cc.data<float>(), disc == Disc::Zoh, tiles, Cn, H, N2, need_U, need_W,
      out_or_null(out.dt), out_or_null(out.A), out_or_null(out.B), out_or_null(out.C));
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

// ---------------------------------------------------------------- s4_dplr_kernel

Tensor s4_dplr_kernel_forward(const Tensor& dt, const Tensor& Lambda, const Tensor& P,
                              const Tensor& B, const Tensor& C, std::int64_t L) {
  const char* op = "s4_dplr_kernel";
  check_length(op, L);
  const DplrShapes s = check_dplr(op, dt, Lambda, P, B, C);
  require_cuda_float32(op, {&dt, &Lambda, &P, &B, &C});
  check_dplr_modes(op, s.N2);
  const Pairs pr{s.Cn, s.R};
  const size_t shmem = dplr_shared_bytes(op, pr);
  const Tensor dtc = dt.contiguous(), Lc = Lambda.contiguous(), Pc = P.contiguous();
  const Tensor Bc = B.contiguous(), Cc = C.contiguous();
  Tensor K = Tensor::empty({s.Cn, s.H, L}, dt.dtype(), dt.device());
  if (s.H == 0) return K;
  const int64_t nodes = L / 2 + 1, np = pr.count(), rows = s.Cn * s.H;
  Tensor v = scratch({s.H, np, s.N2, 2}, DType::Float64, dtc);
  if (s.N2 > 0) {
    dplr_prep_kernel<<<elementwise_blocks(s.H * s.N2), kThreads>>>(
        Pc.data<float>(), Bc.data<float>(), Cc.data<float>(), pr, s.H, s.N2, v.data<double>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  Tensor X = scratch({rows, nodes, 2}, DType::Float64, dtc);  // (Cn * H, L/2 + 1) complex
  dplr_forward_kernel<<<warp_blocks(s.H * nodes), kThreads, shmem>>>(
      v.data<double>(), dtc.data<float>(), Lc.data<float>(), pr, s.H, s.N2, L, nodes,
      X.data<double>());
  SSM_CUDA_CHECK_LAUNCH();
  if (L == 1) {
    real_parts_kernel<<<elementwise_blocks(rows), kThreads>>>(X.data<double>(), rows,
                                                              K.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
    return K;
  }
  Tensor x = scratch({rows, L}, DType::Float64, dtc);
  exec_fft(op, true, L, rows, dtc, X.data<double>(), x.data<double>());
  scale_to_float_kernel<<<elementwise_blocks(rows * L), kThreads>>>(
      x.data<double>(), 1.0 / static_cast<double>(L), rows * L, K.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  return K;
}

S4DplrKernelGrads s4_dplr_kernel_backward(const Tensor& grad, const Tensor& dt,
                                          const Tensor& Lambda, const Tensor& P, const Tensor& B,
                                          const Tensor& C, bool need_dt, bool need_Lambda,
                                          bool need_P, bool need_B, bool need_C) {
  const char* op = "s4_dplr_kernel_backward";
  const DplrShapes s = check_dplr(op, dt, Lambda, P, B, C);
  check_grad(op, grad, dt, s.Cn, s.H);
  require_cuda_float32(op, {&grad, &dt, &Lambda, &P, &B, &C});
  check_dplr_modes(op, s.N2);
  const Pairs pr{s.Cn, s.R};
  const size_t shmem = dplr_shared_bytes(op, pr);
  S4DplrKernelGrads out;
  const Device dev = dt.device();
  if (need_dt) out.dt = Tensor::empty(dt.shape(), dt.dtype(), dev);
  if (need_Lambda) out.Lambda = Tensor::empty(Lambda.shape(), Lambda.dtype(), dev);
  if (need_P) out.P = Tensor::empty(P.shape(), P.dtype(), dev);
  if (need_B) out.B = Tensor::empty(B.shape(), B.dtype(), dev);
  if (need_C) out.C = Tensor::empty(C.shape(), C.dtype(), dev);
  if (!need_dt && !need_Lambda && !need_P && !need_B && !need_C) return out;
  if (s.H == 0) return out;
  const int64_t L = grad.size(2), nodes = L / 2 + 1, np = pr.count();
  const int64_t H = s.H, N2 = s.N2, rows = s.Cn * s.H;
  const Tensor gc = grad.contiguous(), dtc = dt.contiguous(), Lc = Lambda.contiguous();
  const Tensor Pc = P.contiguous(), Bc = B.contiguous(), Cc = C.contiguous();
  if (N2 == 0) {
    if (need_dt) out.dt.fill_(0.0);
    return out;
  }
  // gX = rfft(grad) per row (Cn * H, L/2 + 1) complex; scaled in the warp kernel.
  Tensor gX = scratch({rows, nodes, 2}, DType::Float64, dtc);
  if (L == 1) {
    to_complex_kernel<<<elementwise_blocks(rows), kThreads>>>(gc.data<float>(), rows,
                                                              gX.data<double>());
    SSM_CUDA_CHECK_LAUNCH();
  } else {
    Tensor g64 = scratch({rows, L}, DType::Float64, dtc);
    to_double_kernel<<<elementwise_blocks(rows * L), kThreads>>>(gc.data<float>(), rows * L,
                                                                 g64.data<double>());
    SSM_CUDA_CHECK_LAUNCH();
    exec_fft(op, false, L, rows, dtc, g64.data<double>(), gX.data<double>());
  }
  Tensor v = scratch({H, np, N2, 2}, DType::Float64, dtc);
  dplr_prep_kernel<<<elementwise_blocks(H * N2), kThreads>>>(
      Pc.data<float>(), Bc.data<float>(), Cc.data<float>(), pr, H, N2, v.data<double>());
  SSM_CUDA_CHECK_LAUNCH();
  // Tiles of nodes: enough warps to fill the GPU, within the partial budget.
  int64_t tiles = std::min(nodes, std::max<int64_t>(1, (kTargetWarps + H - 1) / H));
  tiles = std::min(tiles, std::max<int64_t>(1, kPartialBudget / (H * np * N2)));
  const int64_t tile_len = (nodes + tiles - 1) / tiles;
  tiles = (nodes + tile_len - 1) / tile_len;
  Tensor Gv = scratch({H, tiles, np, N2, 2}, DType::Float64, dtc, true);
  Tensor gL = scratch({H, tiles, N2, 2}, DType::Float64, dtc);
  Tensor gdt = scratch({H, tiles, N2}, DType::Float64, dtc);
  dplr_backward_kernel<<<warp_blocks(H * tiles), kThreads, shmem>>>(
      v.data<double>(), gX.data<double>(), dtc.data<float>(), Lc.data<float>(), pr, H, N2, L, nodes,
      tiles, tile_len, Gv.data<double>(), gL.data<double>(), gdt.data<double>());
  SSM_CUDA_CHECK_LAUNCH();
  Tensor Gs = scratch({H, np, N2, 2}, DType::Float64, dtc);
  dplr_reduce_kernel<<<elementwise_blocks(H * np * N2), kThreads>>>(Gv.data<double>(), H, np, N2,
                                                                    tiles, Gs.data<double>());
  SSM_CUDA_CHECK_LAUNCH();
  dplr_finish_kernel<<<per_h_blocks(H), kThreads>>>(
      Gs.data<double>(), gL.data<double>(), gdt.data<double>(), Pc.data<float>(), Bc.data<float>(),
      Cc.data<float>(), pr, H, N2, tiles, out_or_null(out.dt), out_or_null(out.Lambda),
      out_or_null(out.P), out_or_null(out.B), out_or_null(out.C));
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

// ---------------------------------------------------------------- recurrent steps

Tensor s4d_step(const Tensor& u_t, Tensor& state, const Tensor& dA, const Tensor& dB,
                const Tensor& C) {
  const char* op = "s4d_step";
  const StepShapes s = check_step(op, u_t, state, dB, C);
  check_complex(op, dA, "dA", kNoLead, s.H, s.N2, u_t);
  require_cuda_float32(op, {&u_t, &state, &dA, &dB, &C});
  const Tensor uc = u_t.contiguous(), xc = state.contiguous(), Ac = dA.contiguous();
  const Tensor Bc = dB.contiguous(), Cc = C.contiguous();
  Tensor next = Tensor::empty(state.shape(), state.dtype(), state.device());
  Tensor y = Tensor::empty({s.Bn, s.Cn, s.H}, u_t.dtype(), u_t.device());
  const int64_t BH = s.Bn * s.H, total = BH * s.N2;
  if (total > 0) {
    s4d_state_kernel<<<elementwise_blocks(total), kThreads>>>(uc.data<float>(), xc.data<float>(),
                                                              Ac.data<float>(), Bc.data<float>(),
                                                              s.H, s.N2, total, next.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (BH > 0 && s.Cn > 0) {
    step_output_kernel<<<warp_blocks(BH), kThreads>>>(next.data<float>(), Cc.data<float>(), s.Cn,
                                                      s.H, s.N2, BH, y.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  state.copy_(next);
  return y;
}

Tensor s4_dense_step(const Tensor& u_t, Tensor& state, const Tensor& dA, const Tensor& dA_conj,
                     const Tensor& dB, const Tensor& C) {
  const char* op = "s4_dense_step";
  const StepShapes s = check_step(op, u_t, state, dB, C);
  const int64_t N2 = s.N2;
  for (const auto& [t, name] : {std::pair{&dA, "dA"}, std::pair{&dA_conj, "dA_conj"}}) {
    check_defined(op, *t, name);
    check_same_device(op, u_t, *t);
    check_same_dtype(op, u_t, *t);
    SSM_CHECK(t->dim() == 4 && t->size(0) == s.H && t->size(1) == N2 && t->size(2) == N2 &&
                  t->size(3) == 2,
              op, name, " must be (", s.H, ", ", N2, ", ", N2, ", 2), got ", t->desc());
  }
  require_cuda_float32(op, {&u_t, &state, &dA, &dA_conj, &dB, &C});
  const Tensor uc = u_t.contiguous(), xc = state.contiguous(), Ac = dA.contiguous();
  const Tensor A2c = dA_conj.contiguous(), Bc = dB.contiguous(), Cc = C.contiguous();
  Tensor next = Tensor::empty(state.shape(), state.dtype(), state.device());
  Tensor y = Tensor::empty({s.Bn, s.Cn, s.H}, u_t.dtype(), u_t.device());
  const int64_t BH = s.Bn * s.H, rows = BH * N2;
  if (rows > 0) {
    dense_state_kernel<<<warp_blocks(rows), kThreads>>>(
        uc.data<float>(), xc.data<float>(), Ac.data<float>(), A2c.data<float>(), Bc.data<float>(),
        s.H, N2, rows, next.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (BH > 0 && s.Cn > 0) {
    step_output_kernel<<<warp_blocks(BH), kThreads>>>(next.data<float>(), Cc.data<float>(), s.Cn,
                                                      s.H, N2, BH, y.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  state.copy_(next);
  return y;
}

}  // namespace ssm::kernels::cuda
