// CPU selective scan (Mamba's S6; Gu & Dao 2023, Algorithm 2 and section 3.3),
// with the semantics of mamba_ssm's selective_scan_ref:
//   dt_t = softplus(delta_t + delta_bias) (or delta_t + delta_bias),
//   h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t,  y_t = (C_t . h_t + D u_t) silu(z_t).
//
// Work is split over (b, d) rows (OpenMP), each a sequential recurrence in
// time whose N state values live in a stack array; the inner loops run over
// n (N contiguous: input-dependent B and C are transposed once to (B, G, L, N))
// and are compiled for AVX2 and the baseline (SSM_SIMD_CLONES). The per-step
// scalars (dt, dt u, silu(z)) are computed for a whole row first, in
// vectorized loops over t.
//
// Memory: the forward keeps the state only at chunk boundaries (every T
// steps): O(B D N L / T). Backward recomputes each chunk's states from its
// checkpoint into a (T + 1, N) scratch, then walks the chunk backwards.
//
// Gradient rule: backward returns fresh gradient tensors (=); the tape does the
// accumulation. Sums over b and over the channels of a group are taken from
// per-(b, d) or per-(b, channel block) partials added in a fixed order, so the
// gradients do not depend on the thread count.
#include "kernels/selective_scan.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cpu/simd_math.h"
#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/selective_scan.h"
#endif

namespace ssm::kernels {

namespace {

using std::int64_t;

// ---------------------------------------------------------------- scalar math

// log(1 + e) for e in [0, 1], branch-free: log(1 + e) = 2 atanh(s), s = e / (2 + e)
// in [0, 1/3] (no cancellation for small e), by its odd series
// 2 s (1 + s^2/3 + s^4/5 + ...), cut where the next term is below the
// precision of T (s^2 <= 1/9: 8 terms for float, 16 for double).
template <class T>
SSM_SIMD_INLINE T log1p_unit(T e) {
  const T s = e / (T(2) + e);
  const T w = s * s;
  constexpr int terms = std::is_same_v<T, float> ? 8 : 16;
  T p = T(1) / T(2 * terms - 1);
  for (int k = terms - 2; k >= 0; --k) p = p * w + T(1) / T(2 * k + 1);
  return T(2) * s * p;
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), and x itself above
// 20 (PyTorch's threshold, as the reference CUDA kernel).
template <class T>
SSM_SIMD_INLINE T softplus(T x) {
  const T sp = std::max(x, T(0)) + log1p_unit(simd::exp(-std::abs(x)));
  return x > T(20) ? x : sp;
}

// d softplus / dx = sigmoid(x), and 1 above the threshold.
template <class T>
SSM_SIMD_INLINE T softplus_grad(T x) {
  return x > T(20) ? T(1) : simd::sigmoid(x);
}

template <class T>
SSM_SIMD_INLINE T silu(T x) {
  return x * simd::sigmoid(x);
}

// d silu(z) / dz = s (1 + z (1 - s)), s = sigmoid(z).
template <class T>
SSM_SIMD_INLINE T silu_grad(T z) {
  const T s = simd::sigmoid(z);
  return s * (T(1) + z * (T(1) - s));
}

// ---------------------------------------------------------------- shapes

struct ScanShape {
  int64_t B = 0, D = 0, L = 0, N = 0;
  int64_t GB = 0, GC = 0;  // groups of input-dependent B / C; 0: constant (D, N)
};

void check_optional(const char* op, const Tensor& ref, const Tensor& t, const char* name,
                    const Shape& want, const char* want_str) {
  if (!t.defined()) return;
  check_same_device(op, ref, t);
  check_same_dtype(op, ref, t);
  SSM_CHECK(t.shape() == want, op, name, " must be ", want_str, " = ", shape_str(want), ", got ",
            t.desc());
}

// B or C of the scan: (D, N) constant, (B, N, L) or (B, G, N, L) input-dependent
// with D % G == 0. Returns G (0 for constant).
int64_t check_projection(const char* op, const Tensor& u, const Tensor& t, const char* name,
                         int64_t B, int64_t D, int64_t N, int64_t L) {
  SSM_CHECK(t.defined(), op, name, " is undefined");
  check_same_device(op, u, t);
  check_same_dtype(op, u, t);
  if (t.dim() == 2) {
    SSM_CHECK(t.shape() == Shape({D, N}), op, name, " must be (D, N) = ", shape_str({D, N}),
              " when constant, got ", t.desc());
    return 0;
  }
  SSM_CHECK(t.dim() == 3 || t.dim() == 4, op, name,
            " must be (D, N), (B, N, L) or (B, G, N, L), got ", t.desc());
  const int64_t G = t.dim() == 3 ? 1 : t.size(1);
  const Shape want = t.dim() == 3 ? Shape{B, N, L} : Shape{B, G, N, L};
  SSM_CHECK(t.shape() == want, op, name, " must be ", t.dim() == 3 ? "(B, N, L)" : "(B, G, N, L)",
            " = ", shape_str(want), " for u ", u.desc(), " and A with N = ", N, ", got ", t.desc());
  SSM_CHECK(G >= 1 && D % G == 0, op, name, " has G = ", G,
            " groups, which must divide the D = ", D, " channels: u ", u.desc(), ", ", name, " ",
            t.desc());
  return G;
}

void check_state_size(const char* op, const Tensor& A) {
  const int64_t N = A.size(1);
  SSM_CHECK(N <= kSelectiveScanMaxState, op, "d_state N = ", N, " exceeds the supported ",
            kSelectiveScanMaxState, " (A ", A.desc(), ")");
  SSM_CHECK(N >= 1, op, "d_state N must be at least 1, got A ", A.desc());
}

ScanShape check_scan(const char* op, const Tensor& u, const Tensor& delta, const Tensor& A,
                     const Tensor& B, const Tensor& C, const Tensor& D_skip, const Tensor& z,
                     const Tensor& delta_bias, const Tensor& initial_state) {
  SSM_CHECK(u.defined() && delta.defined() && A.defined(), op, "u, delta and A are required");
  SSM_CHECK(u.dim() == 3, op, "u must be (B, D, L), got ", u.desc());
  dispatch_float(u.dtype(), op, [](auto) {});
  ScanShape s;
  s.B = u.size(0);
  s.D = u.size(1);
  s.L = u.size(2);
  check_same_device(op, u, delta);
  check_same_dtype(op, u, delta);
  SSM_CHECK(delta.shape() == u.shape(), op, "delta must have u's shape ", shape_str(u.shape()),
            ", got ", delta.desc());
  check_same_device(op, u, A);
  check_same_dtype(op, u, A);
  SSM_CHECK(A.dim() == 2 && A.size(0) == s.D, op, "A must be (D, N) with D = ", s.D,
            " (the channels of u ", u.desc(), "), got ", A.desc());
  check_state_size(op, A);
  s.N = A.size(1);
  s.GB = check_projection(op, u, B, "B", s.B, s.D, s.N, s.L);
  s.GC = check_projection(op, u, C, "C", s.B, s.D, s.N, s.L);
  check_optional(op, u, D_skip, "D", {s.D}, "(D)");
  check_optional(op, u, z, "z", u.shape(), "(B, D, L)");
  check_optional(op, u, delta_bias, "delta_bias", {s.D}, "(D)");
  check_optional(op, u, initial_state, "initial_state", {s.B, s.D, s.N}, "(B, D, N)");
  return s;
}

// The kernels run over a state padded to Np = N rounded up to kLanes (8) with
// zeros in A, B, C and the states (exp(0 dt) = 1 keeps a padded state at 0, and
// it reaches no output), so that dot products over n are kLanes partial sums
// added pairwise: vector adds, a fixed order, no scalar tail.
constexpr int64_t kLanes = 8;
int64_t padded_state(int64_t N) { return (N + kLanes - 1) / kLanes * kLanes; }

// Input-dependent B / C as the kernels read it: (B, G, L, Np), so that the
// values of one step are contiguous; constant B / C and A as (D, Np).
Tensor projection_rows(const Tensor& t, const ScanShape& s, int64_t G, int64_t Np) {
  const Tensor src = G == 0 ? t : t.reshape({s.B, G, s.N, s.L}).transpose(2, 3);
  if (Np == s.N) return src.contiguous();
  Tensor out = G == 0 ? Tensor::zeros({s.D, Np}, t.dtype(), t.device())
                      : Tensor::zeros({s.B, G, s.L, Np}, t.dtype(), t.device());
  out.narrow(-1, 0, s.N).copy_(src);
  return out;
}

// Where row (b, d) reads step t of B or C: p + t * stride.
template <class T>
struct RowPtr {
  T* p;
  int64_t stride;
};

template <class T>
RowPtr<T> projection_row(T* base, const ScanShape& s, int64_t G, int64_t Np, int64_t b, int64_t d) {
  if (G == 0) return {base + d * Np, 0};
  const int64_t g = d / (s.D / G);
  return {base + (b * G + g) * s.L * Np, Np};
}

// Runs f(std::integral_constant<int, W>) with W = Np for the common padded
// widths (the loops over n then unroll and keep the state in registers), W = 0
// (width read at run time) otherwise.
template <class F>
void with_state_width(int64_t Np, F&& f) {
  if (Np == 16) {
    f(std::integral_constant<int, 16>{});
  } else if (Np == 8) {
    f(std::integral_constant<int, 8>{});
  } else {
    f(std::integral_constant<int, 0>{});
  }
}

// ---------------------------------------------------------------- row loops

// dt[t] = softplus(delta[t] + bias) or delta[t] + bias;  dtu[t] = dt[t] u[t].
template <class T>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void row_dt(const T* delta, const T* u, T bias, bool sp, int64_t L,
                                             T* dt, T* dtu) {
  if (sp) {
    for (int64_t t = 0; t < L; ++t) dt[t] = softplus(delta[t] + bias);
  } else {
    for (int64_t t = 0; t < L; ++t) dt[t] = delta[t] + bias;
  }
  for (int64_t t = 0; t < L; ++t) dtu[t] = dt[t] * u[t];
}

// y[t] = (y[t] + D u[t]) * silu(z[t]) (z may be null: no gate).
template <class T>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void row_output(const T* u, const T* z, T Dd, int64_t L, T* y) {
  if (z) {
    for (int64_t t = 0; t < L; ++t) y[t] = (y[t] + Dd * u[t]) * silu(z[t]);
  } else {
    for (int64_t t = 0; t < L; ++t) y[t] += Dd * u[t];
  }
}

// sum_n v[n] over n < Np (a multiple of kLanes): lane i sums the n = i mod kLanes
// terms in order, then the lanes are halved three times (l[i] + l[i + 4], ...).
// Written with GCC's vector types: as plain arrays the halvings compile to
// scalar adds, here to one vector add and shuffle per halving.
template <class T>
SSM_SIMD_INLINE T lane_sum(const T* v, int64_t Np) {
  typedef T V8 __attribute__((vector_size(kLanes * sizeof(T))));
  typedef T V4 __attribute__((vector_size(4 * sizeof(T))));
  typedef T V2 __attribute__((vector_size(2 * sizeof(T))));
  V8 l;
  std::memcpy(&l, v, sizeof(V8));
  for (int64_t n0 = kLanes; n0 < Np; n0 += kLanes) {
    V8 x;
    std::memcpy(&x, v + n0, sizeof(V8));
    l += x;
  }
  const V4 a =
      __builtin_shufflevector(l, l, 0, 1, 2, 3) + __builtin_shufflevector(l, l, 4, 5, 6, 7);
  const V2 b = __builtin_shufflevector(a, a, 0, 1) + __builtin_shufflevector(a, a, 2, 3);
  return b[0] + b[1];
}

// Steps [t0, t1) of one row, W = Np or 0 (Np read at run time):
//   h[n] <- exp(dt_t A[n]) h[n] + dtu_t B_t[n];  ypre[t] = sum_n C_t[n] h[n] (ypre not null).
// With Store, also a_t = exp(dt_t A) -> as[(t - t0) Np + n] and h_t -> hs[(t - t0 + 1) Np + n]
// (the caller puts h_{t0-1} in hs[0 .. Np)).
template <class T, int W, bool Store>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void scan_steps(T* h_io, const T* A_in, int64_t np, const T* dt,
                                                 const T* dtu, RowPtr<const T> Bp,
                                                 RowPtr<const T> Cp, int64_t t0, int64_t t1,
                                                 T* ypre, T* as, T* hs) {
  constexpr int64_t cap = W ? W : kSelectiveScanMaxState;
  const int64_t Np = W ? W : np;
  alignas(64) T h[cap], A[cap], prod[cap];
  std::copy(h_io, h_io + Np, h);
  std::copy(A_in, A_in + Np, A);
  for (int64_t t = t0; t < t1; ++t) {
    const T dtt = dt[t], x = dtu[t];
    const T* __restrict Bt = Bp.p + t * Bp.stride;
    const T* __restrict Ct = Cp.p + t * Cp.stride;
    if constexpr (Store) {
      T* __restrict at = as + (t - t0) * Np;
      T* __restrict ht = hs + (t - t0 + 1) * Np;
#pragma omp simd
      for (int64_t n = 0; n < Np; ++n) {
        const T a = simd::exp(dtt * A[n]);
        const T hn = a * h[n] + x * Bt[n];
        h[n] = hn;
        at[n] = a;
        ht[n] = hn;
        prod[n] = Ct[n] * hn;
      }
    } else {
#pragma omp simd
      for (int64_t n = 0; n < Np; ++n) {
        const T hn = simd::exp(dtt * A[n]) * h[n] + x * Bt[n];
        h[n] = hn;
        prod[n] = Ct[n] * hn;
      }
    }
    if (ypre) ypre[t] = lane_sum(prod, Np);
  }
  std::copy(h, h + Np, h_io);
}

// Accumulators of one row's backward walk.
template <class T>
struct RowGrads {
  T* carry;          // (Np): exp(dt_{t+1} A) g_{t+1}, then grad h_{-1} at the end
  T* dA;             // (Np): sum_t grad(dt_t A) dt_t, this row's part
  RowPtr<T> dB, dC;  // += g_t dtu_t, += gy_t h_t (stride 0: constant B / C)
  T* gdtu;           // (L): sum_n g_t B_t  (grad of dt_t u_t)
  T* gdt;            // (L): sum_n grad(dt_t A)[n] A[n]  (the exp part of grad dt_t)
};

// The reverse walk over steps [t0, t1) (taken t1 - 1 down to t0) of one row,
// given a_t and h_t of the chunk (as, hs from scan_steps, hs[0] = h_{t0-1}):
//   g = carry + gy_t C_t;  dC_t += gy_t h_t;  dB_t += g dtu_t;  gdtu_t = g . B_t;
//   e = g h_{t-1} a_t (grad of dt_t A);  gdt_t = e . A;  dA += e dt_t;  carry = a_t g.
template <class T, int W>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void scan_steps_backward(const T* A_in, int64_t np, const T* dt,
                                                          const T* dtu, const T* gy,
                                                          RowPtr<const T> Bp, RowPtr<const T> Cp,
                                                          int64_t t0, int64_t t1, const T* as,
                                                          const T* hs, RowGrads<T> g) {
  constexpr int64_t cap = W ? W : kSelectiveScanMaxState;
  const int64_t Np = W ? W : np;
  alignas(64) T carry[cap], dA[cap], A[cap], pb[cap], pa[cap];
  std::copy(g.carry, g.carry + Np, carry);
  std::copy(g.dA, g.dA + Np, dA);
  std::copy(A_in, A_in + Np, A);
  for (int64_t t = t1 - 1; t >= t0; --t) {
    const T dtt = dt[t], x = dtu[t], gyt = gy[t];
    const T* __restrict Bt = Bp.p + t * Bp.stride;
    const T* __restrict Ct = Cp.p + t * Cp.stride;
    T* __restrict dBt = g.dB.p + t * g.dB.stride;
    T* __restrict dCt = g.dC.p + t * g.dC.stride;
    const T* __restrict at = as + (t - t0) * Np;
    const T* __restrict hprev = hs + (t - t0) * Np;
    const T* __restrict ht = hs + (t - t0 + 1) * Np;
#pragma omp simd
    for (int64_t n = 0; n < Np; ++n) {
      const T gn = carry[n] + gyt * Ct[n];
      dCt[n] += gyt * ht[n];
      dBt[n] += gn * x;
      pb[n] = gn * Bt[n];
      const T e = gn * hprev[n] * at[n];
      pa[n] = e * A[n];
      dA[n] += e * dtt;
      carry[n] = at[n] * gn;
    }
    g.gdtu[t] = lane_sum(pb, Np);
    g.gdt[t] = lane_sum(pa, Np);
  }
  std::copy(carry, carry + Np, g.carry);
  std::copy(dA, dA + Np, g.dA);
}

// gy[t] = grad_y[t] silu(z[t]) (grad_y itself without z).
template <class T>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void row_gate_grad(const T* gout, const T* z, int64_t L, T* gy) {
  if (z) {
    for (int64_t t = 0; t < L; ++t) gy[t] = gout[t] * silu(z[t]);
  } else {
    for (int64_t t = 0; t < L; ++t) gy[t] = gout[t];
  }
}

// gz[t] = grad_y[t] (ypre[t] + D u[t]) silu'(z[t]) over [t0, t1).
template <class T>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void row_z_grad(const T* gout, const T* z, const T* u,
                                                 const T* ypre, T Dd, int64_t t0, int64_t t1,
                                                 T* gz) {
  for (int64_t t = t0; t < t1; ++t) gz[t] = gout[t] * (ypre[t] + Dd * u[t]) * silu_grad(z[t]);
}

// From the walk's per-step sums: du = dt gdtu + D gy;  ddelta = (u gdtu + gdt) dt'(x);
// returns sum_t ddelta (the row's delta_bias gradient) and sets dD = sum_t gy u.
template <class T>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void row_input_grads(const T* u, const T* delta, const T* dt,
                                                      const T* gy, const T* gdtu, const T* gdt,
                                                      T bias, bool sp, T Dd, int64_t L, T* du,
                                                      T* ddelta, double& dbias, double& dD) {
  if (du) {
    for (int64_t t = 0; t < L; ++t) du[t] = dt[t] * gdtu[t] + Dd * gy[t];
  }
  if (sp) {
    for (int64_t t = 0; t < L; ++t) {
      ddelta[t] = (u[t] * gdtu[t] + gdt[t]) * softplus_grad(delta[t] + bias);
    }
  } else {
    for (int64_t t = 0; t < L; ++t) ddelta[t] = u[t] * gdtu[t] + gdt[t];
  }
  // The two sums in double, as kLanes lane sums (vectorized), tail in lane 0.
  double sb[kLanes] = {}, sd[kLanes] = {};
  int64_t t = 0;
  for (; t + kLanes <= L; t += kLanes) {
    for (int i = 0; i < kLanes; ++i) {
      sb[i] += static_cast<double>(ddelta[t + i]);
      sd[i] += static_cast<double>(gy[t + i]) * static_cast<double>(u[t + i]);
    }
  }
  for (; t < L; ++t) {
    sb[0] += static_cast<double>(ddelta[t]);
    sd[0] += static_cast<double>(gy[t]) * static_cast<double>(u[t]);
  }
  dbias = dD = 0.0;
  for (int i = 0; i < kLanes; ++i) {
    dbias += sb[i];
    dD += sd[i];
  }
}

// Channel blocks of the backward: each is one task per b, sequential inside,
// with its own partial sums of input-dependent B / C gradients. Blocks never
// straddle a group of B or of C, and depend only on the shapes (never on the
// thread count), so the sums over them are taken in a fixed order.
struct ChannelBlock {
  int64_t d0, d1;
};
std::vector<ChannelBlock> channel_blocks(const ScanShape& s, bool partial_sums) {
  constexpr int64_t kBlock = 64;
  const int64_t hb = s.GB ? s.D / s.GB : s.D, hc = s.GC ? s.D / s.GC : s.D;
  const int64_t seg = std::gcd(hb, hc);  // a segment lies inside one group of each
  const int64_t width = partial_sums ? kBlock : 1;
  std::vector<ChannelBlock> blocks;
  for (int64_t s0 = 0; s0 < s.D; s0 += seg) {
    for (int64_t d0 = s0; d0 < s0 + seg; d0 += width) {
      blocks.push_back({d0, std::min(d0 + width, s0 + seg)});
    }
  }
  return blocks;
}

// out (B, G, L, Np) [b, g] = sum over the blocks of group g, in block order, of
// part (B, nblocks, L, Np); returned without padding as (B, G, N, L), in `like`'s shape.
template <class T>
Tensor reduce_projection_grad(const T* part, const std::vector<ChannelBlock>& blocks,
                              const ScanShape& s, int64_t G, int64_t Np, const Tensor& like) {
  const int64_t nb = static_cast<int64_t>(blocks.size()), LN = s.L * Np, per = s.D / G;
  Tensor out = Tensor::empty({s.B, G, s.L, Np}, like.dtype(), like.device());  // (B, G, L, Np)
  T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (s.B * G * LN > 65536)
  for (int64_t bg = 0; bg < s.B * G; ++bg) {
    const int64_t b = bg / G, g = bg % G;
    T* o = po + bg * LN;
    std::fill(o, o + LN, T(0));
    for (int64_t k = 0; k < nb; ++k) {
      if (blocks[k].d0 / per != g) continue;
      const T* p = part + (b * nb + k) * LN;
      for (int64_t i = 0; i < LN; ++i) o[i] += p[i];
    }
  }
  return out.narrow(3, 0, s.N).transpose(2, 3).contiguous().reshape(like.shape());
}

// out[d, i] = sum_b part[b, d, i] in b order, for i < n of the `inner` values
// per (b, d) (part (B, D, inner) -> out (D, n), reshaped to `shape`).
template <class T, class P>
Tensor reduce_over_batch(const P* part, int64_t B, int64_t D, int64_t inner, int64_t n,
                         const Shape& shape, const Tensor& like) {
  Tensor out = Tensor::empty(shape, like.dtype(), like.device());
  T* po = out.data<T>();
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t i = 0; i < n; ++i) {
      double acc = 0.0;
      for (int64_t b = 0; b < B; ++b) acc += static_cast<double>(part[(b * D + d) * inner + i]);
      po[d * n + i] = static_cast<T>(acc);
    }
  }
  return out;
}

int64_t pick_chunk(int64_t chunk, int64_t L) {
  SSM_CHECK(chunk >= 0, "selective_scan", "chunk must be >= 0 (0: default), got ", chunk);
  if (chunk == 0) chunk = kSelectiveScanDefaultChunk;
  return std::max<int64_t>(1, std::min(chunk, L));
}

}  // namespace

// ---------------------------------------------------------------- forward

SelectiveScanForward selective_scan_forward(const Tensor& u, const Tensor& delta, const Tensor& A,
                                            const Tensor& B, const Tensor& C, const Tensor& D_skip,
                                            const Tensor& z, const Tensor& delta_bias,
                                            bool delta_softplus, const Tensor& initial_state,
                                            int64_t chunk) {
  SSM_CUDA_DISPATCH(u, cuda::selective_scan_forward(u, delta, A, B, C, D_skip, z, delta_bias,
                                                    delta_softplus, initial_state, chunk));
  const char* op = "selective_scan";
  const ScanShape s = check_scan(op, u, delta, A, B, C, D_skip, z, delta_bias, initial_state);
  require_cpu(op, {&u, &delta, &A, &B, &C, &D_skip, &z, &delta_bias, &initial_state});
  const int64_t T_ = pick_chunk(chunk, s.L);
  const int64_t K = (s.L + T_ - 1) / T_;  // chunks
  const int64_t N = s.N, Np = padded_state(N), L = s.L;
  const Tensor uc = u.contiguous(), dc = delta.contiguous();  // (B, D, L)
  const Tensor Ac = projection_rows(A, s, 0, Np);             // (D, Np)
  const Tensor Bc = projection_rows(B, s, s.GB, Np), Cc = projection_rows(C, s, s.GC, Np);
  const Tensor Dc = D_skip.defined() ? D_skip.contiguous() : D_skip;              // (D)
  const Tensor zc = z.defined() ? z.contiguous() : z;                             // (B, D, L)
  const Tensor bc = delta_bias.defined() ? delta_bias.contiguous() : delta_bias;  // (D)
  const Tensor h0 = initial_state.defined() ? initial_state.contiguous() : initial_state;
  SelectiveScanForward out;
  out.chunk = T_;
  out.y = Tensor::empty({s.B, s.D, L}, u.dtype(), u.device());
  out.last_state = Tensor::empty({s.B, s.D, N}, u.dtype(), u.device());
  out.checkpoints = Tensor::empty({s.B, s.D, K, N}, u.dtype(), u.device());
  dispatch_float(u.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pu = uc.data<T>();
    const T* pd = dc.data<T>();
    const T* pA = Ac.data<T>();
    const T* pB = Bc.data<T>();
    const T* pC = Cc.data<T>();
    const T* pD = Dc.defined() ? Dc.data<T>() : nullptr;
    const T* pz = zc.defined() ? zc.data<T>() : nullptr;
    const T* pbias = bc.defined() ? bc.data<T>() : nullptr;
    const T* ph0 = h0.defined() ? h0.data<T>() : nullptr;
    T* py = out.y.data<T>();
    T* plast = out.last_state.data<T>();
    T* pck = out.checkpoints.data<T>();
    with_state_width(Np, [&](auto width) {
      constexpr int W = decltype(width)::value;
#pragma omp parallel if (s.B * s.D * L * N > 32768)
      {
        std::vector<T> scratch(2 * L);  // dt, dt u of one row
        alignas(64) T h[kSelectiveScanMaxState] = {};
#pragma omp for schedule(static)
        for (int64_t r = 0; r < s.B * s.D; ++r) {
          const int64_t b = r / s.D, d = r % s.D;
          T* dt = scratch.data();
          T* dtu = dt + L;
          row_dt(pd + r * L, pu + r * L, pbias ? pbias[d] : T(0), delta_softplus, L, dt, dtu);
          const RowPtr<const T> Bp = projection_row(pB, s, s.GB, Np, b, d);
          const RowPtr<const T> Cp = projection_row(pC, s, s.GC, Np, b, d);
          for (int64_t n = 0; n < Np; ++n) h[n] = ph0 && n < N ? ph0[r * N + n] : T(0);
          T* yr = py + r * L;
          for (int64_t k = 0; k < K; ++k) {
            std::copy(h, h + N, pck + (r * K + k) * N);
            scan_steps<T, W, false>(h, pA + d * Np, Np, dt, dtu, Bp, Cp, k * T_,
                                    std::min(L, (k + 1) * T_), yr, nullptr, nullptr);
          }
          std::copy(h, h + N, plast + r * N);
          row_output(pu + r * L, pz ? pz + r * L : nullptr, pD ? pD[d] : T(0), L, yr);
        }
      }
    });
  });
  return out;
}

// ---------------------------------------------------------------- backward

SelectiveScanGrads selective_scan_backward(const Tensor& grad_y, const Tensor& grad_last_state,
                                           const Tensor& u, const Tensor& delta, const Tensor& A,
                                           const Tensor& B, const Tensor& C, const Tensor& D_skip,
                                           const Tensor& z, const Tensor& delta_bias,
                                           bool delta_softplus, const Tensor& initial_state,
                                           const SelectiveScanForward& fwd,
                                           const SelectiveScanNeeds& needs) {
  SSM_CUDA_DISPATCH(
      u, cuda::selective_scan_backward(grad_y, grad_last_state, u, delta, A, B, C, D_skip, z,
                                       delta_bias, delta_softplus, initial_state, fwd, needs));
  const char* op = "selective_scan";
  const ScanShape s = check_scan(op, u, delta, A, B, C, D_skip, z, delta_bias, initial_state);
  require_cpu(op, {&grad_y, &grad_last_state, &u, &delta, &A, &B, &C, &D_skip, &z, &delta_bias,
                   &initial_state, &fwd.checkpoints});
  check_optional(op, u, grad_y, "grad_y", u.shape(), "(B, D, L)");
  check_optional(op, u, grad_last_state, "grad_last_state", {s.B, s.D, s.N}, "(B, D, N)");
  const int64_t T_ = fwd.chunk;
  SSM_CHECK(T_ >= 1, op, "the forward's chunk length must be >= 1, got ", T_);
  const int64_t K = (s.L + T_ - 1) / T_;
  SSM_CHECK(fwd.checkpoints.defined(), op, "the forward's checkpoints are undefined");
  check_optional(op, u, fwd.checkpoints, "checkpoints", {s.B, s.D, K, s.N}, "(B, D, K, N)");
  const int64_t N = s.N, Np = padded_state(N), L = s.L;

  const Tensor uc = u.contiguous(), dc = delta.contiguous();
  const Tensor Ac = projection_rows(A, s, 0, Np);
  const Tensor Bc = projection_rows(B, s, s.GB, Np), Cc = projection_rows(C, s, s.GC, Np);
  const Tensor Dc = D_skip.defined() ? D_skip.contiguous() : D_skip;
  const Tensor zc = z.defined() ? z.contiguous() : z;
  const Tensor bc = delta_bias.defined() ? delta_bias.contiguous() : delta_bias;
  const Tensor gyc = grad_y.defined() ? grad_y.contiguous() : grad_y;
  const Tensor glc = grad_last_state.defined() ? grad_last_state.contiguous() : grad_last_state;
  const Tensor ck = fwd.checkpoints.contiguous();

  const bool need_u = needs.u, need_delta = needs.delta, need_A = needs.A;
  const bool need_B = needs.B, need_C = needs.C;
  const bool need_D = needs.D_skip && D_skip.defined(), need_z = needs.z && z.defined();
  const bool need_bias = needs.delta_bias && delta_bias.defined();
  const bool need_h0 = needs.initial_state && initial_state.defined();
  const bool varB = s.GB > 0 && need_B, varC = s.GC > 0 && need_C;
  const std::vector<ChannelBlock> blocks = channel_blocks(s, varB || varC);
  const int64_t nb = static_cast<int64_t>(blocks.size());

  SelectiveScanGrads out;
  const auto fresh = [&](const Shape& shape) {
    return Tensor::empty(shape, u.dtype(), u.device());
  };
  if (need_u) out.u = fresh({s.B, s.D, L});
  if (need_delta) out.delta = fresh({s.B, s.D, L});
  if (need_z) out.z = fresh({s.B, s.D, L});
  if (need_h0) out.initial_state = fresh({s.B, s.D, N});

  dispatch_float(u.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pu = uc.data<T>();
    const T* pd = dc.data<T>();
    const T* pA = Ac.data<T>();
    const T* pB = Bc.data<T>();
    const T* pC = Cc.data<T>();
    const T* pD = Dc.defined() ? Dc.data<T>() : nullptr;
    const T* pz = zc.defined() ? zc.data<T>() : nullptr;
    const T* pbias = bc.defined() ? bc.data<T>() : nullptr;
    const T* pgy = gyc.defined() ? gyc.data<T>() : nullptr;
    const T* pgl = glc.defined() ? glc.data<T>() : nullptr;
    const T* pck = ck.data<T>();
    T* pgu = need_u ? out.u.data<T>() : nullptr;
    T* pgd = need_delta ? out.delta.data<T>() : nullptr;
    T* pgz = need_z ? out.z.data<T>() : nullptr;
    T* pgh0 = need_h0 ? out.initial_state.data<T>() : nullptr;
    // Partial sums: per (b, d) for A, D, delta_bias and constant B / C (Np
    // values each); per (b, channel block) for input-dependent B / C, (L, Np).
    const int64_t LN = L * Np;
    // (Tensors, not vectors: the CPU allocator keeps large blocks, so that a
    // training step does not pay page faults for them.)
    const auto zeros = [&](bool need, int64_t n) {
      return Tensor::zeros({need ? n : 0}, u.dtype(), u.device());
    };
    const Tensor part_A = zeros(need_A, s.B * s.D * Np);                         // (B, D, Np)
    const Tensor part_B = zeros(need_B, varB ? s.B * nb * LN : s.B * s.D * Np);  // see above
    const Tensor part_C = zeros(need_C, varC ? s.B * nb * LN : s.B * s.D * Np);
    T* pA_part = part_A.data<T>();
    T* pB_part = part_B.data<T>();
    T* pC_part = part_C.data<T>();
    std::vector<double> part_D(need_D ? s.B * s.D : 0);        // (B, D)
    std::vector<double> part_bias(need_bias ? s.B * s.D : 0);  // (B, D)
    const int64_t tasks = s.B * nb;
    with_state_width(Np, [&](auto width) {
      constexpr int W = decltype(width)::value;
#pragma omp parallel if (s.B * s.D * L * N > 32768)
      {
        // Row scratch: dt, dtu, gy, gdtu, gdt, ypre, ddelta (L each); chunk
        // states (T + 1, Np) and decays (T, Np); the accumulators of one row.
        std::vector<T> row(7 * L);
        std::vector<T> hs((T_ + 1) * Np), as(T_ * Np);
        std::vector<T> acc(4 * Np);               // carry, and sinks for unneeded dA, dB, dC
        alignas(64) T h[kSelectiveScanMaxState];  // the running state of a recomputed chunk
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < tasks; ++task) {
          const int64_t b = task / nb, blk = task % nb;
          for (int64_t d = blocks[blk].d0; d < blocks[blk].d1; ++d) {
            const int64_t r = b * s.D + d;
            const T* ur = pu + r * L;
            const T* deltar = pd + r * L;
            const T* zr = pz ? pz + r * L : nullptr;
            const T bias = pbias ? pbias[d] : T(0);
            const T Dd = pD ? pD[d] : T(0);
            T* dt = row.data();
            T* dtu = dt + L;
            T* gy = dtu + L;
            T* gdtu = gy + L;
            T* gdt = gdtu + L;
            T* ypre = gdt + L;
            T* ddelta = ypre + L;
            row_dt(deltar, ur, bias, delta_softplus, L, dt, dtu);
            if (pgy) {
              row_gate_grad(pgy + r * L, zr, L, gy);
            } else {
              std::fill(gy, gy + L, T(0));
            }
            const RowPtr<const T> Bp = projection_row(pB, s, s.GB, Np, b, d);
            const RowPtr<const T> Cp = projection_row(pC, s, s.GC, Np, b, d);
            std::fill(acc.begin(), acc.end(), T(0));
            T* carry = acc.data();
            T* dA = need_A ? pA_part + r * Np : carry + Np;
            RowGrads<T> g{carry, dA, {carry + 2 * Np, 0}, {carry + 3 * Np, 0}, gdtu, gdt};
            if (need_B) {
              g.dB = varB ? RowPtr<T>{pB_part + (b * nb + blk) * LN, Np}
                          : RowPtr<T>{pB_part + r * Np, 0};
            }
            if (need_C) {
              g.dC = varC ? RowPtr<T>{pC_part + (b * nb + blk) * LN, Np}
                          : RowPtr<T>{pC_part + r * Np, 0};
            }
            if (pgl) std::copy(pgl + r * N, pgl + (r + 1) * N, carry);
            // The chunks last to first: recompute the states from the checkpoint, walk back.
            for (int64_t k = K - 1; k >= 0; --k) {
              const int64_t t0 = k * T_, t1 = std::min(L, t0 + T_);
              std::fill(hs.begin(), hs.begin() + Np, T(0));
              std::copy(pck + (r * K + k) * N, pck + (r * K + k + 1) * N, hs.data());
              std::copy(hs.data(), hs.data() + Np, h);
              scan_steps<T, W, true>(h, pA + d * Np, Np, dt, dtu, Bp, Cp, t0, t1,
                                     need_z ? ypre : nullptr, as.data(), hs.data());
              scan_steps_backward<T, W>(pA + d * Np, Np, dt, dtu, gy, Bp, Cp, t0, t1, as.data(),
                                        hs.data(), g);
              if (need_z) row_z_grad(pgy ? pgy + r * L : gy, zr, ur, ypre, Dd, t0, t1, pgz + r * L);
            }
            if (need_h0) std::copy(carry, carry + N, pgh0 + r * N);
            double dbias = 0.0, dD = 0.0;
            row_input_grads(ur, deltar, dt, gy, gdtu, gdt, bias, delta_softplus, Dd, L,
                            pgu ? pgu + r * L : nullptr, pgd ? pgd + r * L : ddelta, dbias, dD);
            if (need_bias) part_bias[r] = dbias;
            if (need_D) part_D[r] = dD;
          }
        }
      }
    });
    if (need_A) out.A = reduce_over_batch<T>(pA_part, s.B, s.D, Np, N, A.shape(), u);
    if (need_D) out.D_skip = reduce_over_batch<T>(part_D.data(), s.B, s.D, 1, 1, D_skip.shape(), u);
    if (need_bias) {
      out.delta_bias =
          reduce_over_batch<T>(part_bias.data(), s.B, s.D, 1, 1, delta_bias.shape(), u);
    }
    if (need_B) {
      out.B = varB ? reduce_projection_grad<T>(pB_part, blocks, s, s.GB, Np, B)
                   : reduce_over_batch<T>(pB_part, s.B, s.D, Np, N, B.shape(), u);
    }
    if (need_C) {
      out.C = varC ? reduce_projection_grad<T>(pC_part, blocks, s, s.GC, Np, C)
                   : reduce_over_batch<T>(pC_part, s.B, s.D, Np, N, C.shape(), u);
    }
  });
  return out;
}

// ---------------------------------------------------------------- one step

// For every (b, d): dt = softplus(delta_t + delta_bias) (or without softplus);
// h[n] <- exp(dt A[d, n]) h[n] + dt B_t[n] u_t;  y_t = sum_n C_t[n] h[n] + D u_t,
// times silu(z_t) when z_t is given. The state is updated through its strides.
Tensor selective_state_update(Tensor& state, const Tensor& u_t, const Tensor& delta_t,
                              const Tensor& A, const Tensor& B_t, const Tensor& C_t,
                              const Tensor& D_skip, const Tensor& z_t, const Tensor& delta_bias,
                              bool delta_softplus) {
  SSM_CUDA_DISPATCH(u_t, cuda::selective_state_update(state, u_t, delta_t, A, B_t, C_t, D_skip, z_t,
                                                      delta_bias, delta_softplus));
  const char* op = "selective_state_update";
  SSM_CHECK(state.defined() && u_t.defined() && delta_t.defined() && A.defined() && B_t.defined() &&
                C_t.defined(),
            op, "state, u_t, delta_t, A, B_t and C_t are required");
  SSM_CHECK(u_t.dim() == 2, op, "u_t must be (B, D), got ", u_t.desc());
  dispatch_float(u_t.dtype(), op, [](auto) {});
  const int64_t Bsz = u_t.size(0), D = u_t.size(1);
  check_same_device(op, u_t, delta_t);
  check_same_dtype(op, u_t, delta_t);
  SSM_CHECK(delta_t.shape() == u_t.shape(), op, "delta_t must have u_t's shape ",
            shape_str(u_t.shape()), ", got ", delta_t.desc());
  check_same_device(op, u_t, A);
  check_same_dtype(op, u_t, A);
  SSM_CHECK(A.dim() == 2 && A.size(0) == D, op, "A must be (D, N) with D = ", D,
            " (the channels of u_t ", u_t.desc(), "), got ", A.desc());
  check_state_size(op, A);
  const int64_t N = A.size(1);
  const auto groups = [&](const Tensor& t, const char* name) -> int64_t {
    check_same_device(op, u_t, t);
    check_same_dtype(op, u_t, t);
    if (t.dim() == 2) {
      SSM_CHECK(t.shape() == Shape({D, N}), op, name, " must be (D, N) = ", shape_str({D, N}),
                " when constant, got ", t.desc());
      return 0;
    }
    SSM_CHECK(t.dim() == 3 && t.size(0) == Bsz && t.size(2) == N, op, name,
              " must be (B, G, N) = (", Bsz, ", G, ", N, ") or (D, N) = ", shape_str({D, N}),
              ", got ", t.desc());
    const int64_t G = t.size(1);
    SSM_CHECK(G >= 1 && D % G == 0, op, name, " has G = ", G,
              " groups, which must divide the D = ", D, " channels: u_t ", u_t.desc(), ", ", name,
              " ", t.desc());
    return G;
  };
  const int64_t GB = groups(B_t, "B_t"), GC = groups(C_t, "C_t");
  check_optional(op, u_t, D_skip, "D", {D}, "(D)");
  check_optional(op, u_t, z_t, "z_t", u_t.shape(), "(B, D)");
  check_optional(op, u_t, delta_bias, "delta_bias", {D}, "(D)");
  check_same_device(op, u_t, state);
  check_same_dtype(op, u_t, state);
  SSM_CHECK(state.shape() == Shape({Bsz, D, N}), op,
            "state must be (B, D, N) = ", shape_str({Bsz, D, N}), ", got ", state.desc());
  require_cpu(op, {&state, &u_t, &delta_t, &A, &B_t, &C_t, &D_skip, &z_t, &delta_bias});

  const Tensor uc = u_t.contiguous(), dc = delta_t.contiguous(), Ac = A.contiguous();
  const Tensor Bc = B_t.contiguous(), Cc = C_t.contiguous();  // (B, G, N) or (D, N)
  const Tensor Dc = D_skip.defined() ? D_skip.contiguous() : D_skip;
  const Tensor zc = z_t.defined() ? z_t.contiguous() : z_t;
  const Tensor bc = delta_bias.defined() ? delta_bias.contiguous() : delta_bias;
  Tensor y = Tensor::empty({Bsz, D}, u_t.dtype(), u_t.device());  // (B, D)
  const int64_t s0 = state.strides()[0], s1 = state.strides()[1], s2 = state.strides()[2];
  dispatch_float(u_t.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pu = uc.data<T>();
    const T* pd = dc.data<T>();
    const T* pA = Ac.data<T>();
    const T* pB = Bc.data<T>();
    const T* pC = Cc.data<T>();
    const T* pD = Dc.defined() ? Dc.data<T>() : nullptr;
    const T* pz = zc.defined() ? zc.data<T>() : nullptr;
    const T* pbias = bc.defined() ? bc.data<T>() : nullptr;
    T* ps = state.data<T>();
    T* py = y.data<T>();
    const auto row_of = [&](const T* base, int64_t G, int64_t b, int64_t d) {
      return G == 0 ? base + d * N : base + (b * G + d / (D / G)) * N;
    };
#pragma omp parallel for schedule(static) if (Bsz * D * N > 32768)
    for (int64_t r = 0; r < Bsz * D; ++r) {
      const int64_t b = r / D, d = r % D;
      const T x = pd[r] + (pbias ? pbias[d] : T(0));
      const T dt = delta_softplus ? softplus(x) : x;
      const T* Bn = row_of(pB, GB, b, d);
      const T* Cn = row_of(pC, GC, b, d);
      const T* An = pA + d * N;
      T* h = ps + b * s0 + d * s1;
      const T dtu = dt * pu[r];
      T acc = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T hn = simd::exp(dt * An[n]) * h[n * s2] + dtu * Bn[n];
        h[n * s2] = hn;
        acc += Cn[n] * hn;
      }
      T out = acc + (pD ? pD[d] : T(0)) * pu[r];
      if (pz) out *= silu(pz[r]);
      py[r] = out;
    }
  });
  return y;
}

}  // namespace ssm::kernels
