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
#include <numeric>
#include <vector>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cpu/simd_math.h"

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
  SSM_CHECK(t.shape() == want, op, name, " must be ", want_str, " = ", shape_str(want),
            ", got ", t.desc());
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
            " = ", shape_str(want), " for u ", u.desc(), " and A with N = ", N, ", got ",
            t.desc());
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

// Input-dependent B / C as the kernels read it: (B, G, L, N) contiguous, so
// that the N values of one step are contiguous; constant ones as (D, N).
Tensor projection_rows(const Tensor& t, const ScanShape& s, int64_t G) {
  if (G == 0) return t.contiguous();
  return t.reshape({s.B, G, s.N, s.L}).transpose(2, 3).contiguous();
}

// Where row (b, d) reads step t of B or C: p + t * stride.
template <class T>
struct RowPtr {
  T* p;
  int64_t stride;
};

template <class T>
RowPtr<T> projection_row(T* base, const ScanShape& s, int64_t G, int64_t b, int64_t d) {
  if (G == 0) return {base + d * s.N, 0};
  const int64_t g = d / (s.D / G);
  return {base + (b * G + g) * s.L * s.N, s.N};
}

// ---------------------------------------------------------------- row loops

// dt[t] = softplus(delta[t] + bias) or delta[t] + bias;  dtu[t] = dt[t] u[t].
template <class T>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void row_dt(const T* delta, const T* u, T bias, bool sp,
                                             int64_t L, T* dt, T* dtu) {
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

// Steps [t0, t1) of one row: h[n] <- exp(dt_t A[n]) h[n] + dtu_t B_t[n];
// ypre[t] = sum_n C_t[n] h[n] (when ypre is not null). With `as` and `hs` not
// null, also stores a_t = exp(dt_t A) in as[(t - t0) N + n] and h_t in
// hs[(t - t0 + 1) N + n] (the caller puts h_{t0-1} in hs[0 .. N)).
template <class T>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void scan_steps(T* __restrict h, const T* __restrict A, int64_t N,
                                                 const T* dt, const T* dtu, RowPtr<const T> Bp,
                                                 RowPtr<const T> Cp, int64_t t0, int64_t t1,
                                                 T* ypre, T* __restrict as, T* __restrict hs) {
  for (int64_t t = t0; t < t1; ++t) {
    const T dtt = dt[t], x = dtu[t];
    const T* __restrict Bt = Bp.p + t * Bp.stride;
    const T* __restrict Ct = Cp.p + t * Cp.stride;
    T acc = 0;
    if (as) {
      T* __restrict at = as + (t - t0) * N;
      T* __restrict ht = hs + (t - t0 + 1) * N;
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        const T a = simd::exp(dtt * A[n]);
        const T hn = a * h[n] + x * Bt[n];
        h[n] = hn;
        at[n] = a;
        ht[n] = hn;
        acc += Ct[n] * hn;
      }
    } else {
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        const T hn = simd::exp(dtt * A[n]) * h[n] + x * Bt[n];
        h[n] = hn;
        acc += Ct[n] * hn;
      }
    }
    if (ypre) ypre[t] = acc;
  }
}

// Accumulators of one row's backward walk.
template <class T>
struct RowGrads {
  T* carry;           // (N): exp(dt_{t+1} A) g_{t+1}, then grad h_{-1} at the end
  T* dA;              // (N): sum_t grad(dt_t A) dt_t, this row's part
  RowPtr<T> dB, dC;   // += g_t dtu_t, += gy_t h_t (stride 0: constant B / C)
  T* gdtu;            // (L): sum_n g_t B_t  (grad of dt_t u_t)
  T* gdt;             // (L): sum_n grad(dt_t A)[n] A[n]  (the exp part of grad dt_t)
};

// The reverse walk over steps [t0, t1) (taken t1 - 1 down to t0) of one row,
// given a_t and h_t of the chunk (as, hs from scan_steps, hs[0] = h_{t0-1}):
//   g = carry + gy_t C_t;  dC_t += gy_t h_t;  dB_t += g dtu_t;  gdtu_t = g . B_t;
//   e = g h_{t-1} a_t (grad of dt_t A);  gdt_t = e . A;  dA += e dt_t;  carry = a_t g.
template <class T>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void scan_steps_backward(
    const T* __restrict A, int64_t N, const T* dt, const T* dtu, const T* gy, RowPtr<const T> Bp,
    RowPtr<const T> Cp, int64_t t0, int64_t t1, const T* __restrict as, const T* __restrict hs,
    RowGrads<T> g) {
  T* __restrict carry = g.carry;
  T* __restrict dA = g.dA;
  for (int64_t t = t1 - 1; t >= t0; --t) {
    const T dtt = dt[t], x = dtu[t], gyt = gy[t];
    const T* __restrict Bt = Bp.p + t * Bp.stride;
    const T* __restrict Ct = Cp.p + t * Cp.stride;
    T* __restrict dBt = g.dB.p + t * g.dB.stride;
    T* __restrict dCt = g.dC.p + t * g.dC.stride;
    const T* __restrict at = as + (t - t0) * N;
    const T* __restrict hprev = hs + (t - t0) * N;
    const T* __restrict ht = hs + (t - t0 + 1) * N;
    T sb = 0, sa = 0;
#pragma omp simd reduction(+ : sb, sa)
    for (int64_t n = 0; n < N; ++n) {
      const T gn = carry[n] + gyt * Ct[n];
      dCt[n] += gyt * ht[n];
      dBt[n] += gn * x;
      sb += gn * Bt[n];
      const T e = gn * hprev[n] * at[n];
      sa += e * A[n];
      dA[n] += e * dtt;
      carry[n] = at[n] * gn;
    }
    g.gdtu[t] = sb;
    g.gdt[t] = sa;
  }
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
  double sb = 0.0, sd = 0.0;
  for (int64_t t = 0; t < L; ++t) {
    sb += static_cast<double>(ddelta[t]);
    sd += static_cast<double>(gy[t]) * static_cast<double>(u[t]);
  }
  dbias = sb;
  dD = sd;
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

// out (B, G, L, N) [b, g] = sum over the blocks of group g, in block order, of
// part (B, nblocks, L, N); returned as (B, G, N, L), reshaped to `shape`.
template <class T>
Tensor reduce_projection_grad(const std::vector<T>& part, const std::vector<ChannelBlock>& blocks,
                              const ScanShape& s, int64_t G, const Tensor& like) {
  const int64_t nb = static_cast<int64_t>(blocks.size()), LN = s.L * s.N, per = s.D / G;
  Tensor out = Tensor::empty({s.B, G, s.L, s.N}, like.dtype(), like.device());  // (B, G, L, N)
  T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (s.B * G * LN > 65536)
  for (int64_t bg = 0; bg < s.B * G; ++bg) {
    const int64_t b = bg / G, g = bg % G;
    T* o = po + bg * LN;
    std::fill(o, o + LN, T(0));
    for (int64_t k = 0; k < nb; ++k) {
      if (blocks[k].d0 / per != g) continue;
      const T* p = part.data() + (b * nb + k) * LN;
      for (int64_t i = 0; i < LN; ++i) o[i] += p[i];
    }
  }
  return out.transpose(2, 3).contiguous().reshape(like.shape());
}

// out[d, ...] = sum_b part[b, d, ...] in b order (part (B, D, inner) -> out (D, inner)).
template <class T, class P>
Tensor reduce_over_batch(const std::vector<P>& part, int64_t B, int64_t D, int64_t inner,
                         const Shape& shape, const Tensor& like) {
  Tensor out = Tensor::empty(shape, like.dtype(), like.device());
  T* po = out.data<T>();
  for (int64_t i = 0; i < D * inner; ++i) {
    double acc = 0.0;
    for (int64_t b = 0; b < B; ++b) acc += static_cast<double>(part[b * D * inner + i]);
    po[i] = static_cast<T>(acc);
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
  const char* op = "selective_scan";
  const ScanShape s = check_scan(op, u, delta, A, B, C, D_skip, z, delta_bias, initial_state);
  require_cpu(op, {&u, &delta, &A, &B, &C, &D_skip, &z, &delta_bias, &initial_state});
  const int64_t T_ = pick_chunk(chunk, s.L);
  const int64_t K = (s.L + T_ - 1) / T_;  // chunks
  const Tensor uc = u.contiguous(), dc = delta.contiguous(), Ac = A.contiguous();  // (B,D,L) (D,N)
  const Tensor Bc = projection_rows(B, s, s.GB), Cc = projection_rows(C, s, s.GC);
  const Tensor Dc = D_skip.defined() ? D_skip.contiguous() : D_skip;              // (D)
  const Tensor zc = z.defined() ? z.contiguous() : z;                             // (B, D, L)
  const Tensor bc = delta_bias.defined() ? delta_bias.contiguous() : delta_bias;  // (D)
  const Tensor h0 = initial_state.defined() ? initial_state.contiguous() : initial_state;
  SelectiveScanForward out;
  out.chunk = T_;
  out.y = Tensor::empty({s.B, s.D, s.L}, u.dtype(), u.device());
  out.last_state = Tensor::empty({s.B, s.D, s.N}, u.dtype(), u.device());
  out.checkpoints = Tensor::empty({s.B, s.D, K, s.N}, u.dtype(), u.device());
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
#pragma omp parallel if (s.B * s.D * s.L * s.N > 32768)
    {
      std::vector<T> scratch(2 * s.L);  // dt, dt u of one row
      alignas(64) T h[kSelectiveScanMaxState];
#pragma omp for schedule(static)
      for (int64_t r = 0; r < s.B * s.D; ++r) {
        const int64_t b = r / s.D, d = r % s.D;
        T* dt = scratch.data();
        T* dtu = dt + s.L;
        row_dt(pd + r * s.L, pu + r * s.L, pbias ? pbias[d] : T(0), delta_softplus, s.L, dt, dtu);
        const RowPtr<const T> Bp = projection_row(pB, s, s.GB, b, d);
        const RowPtr<const T> Cp = projection_row(pC, s, s.GC, b, d);
        for (int64_t n = 0; n < s.N; ++n) h[n] = ph0 ? ph0[r * s.N + n] : T(0);
        T* yr = py + r * s.L;
        for (int64_t k = 0; k < K; ++k) {
          std::copy(h, h + s.N, pck + (r * K + k) * s.N);
          scan_steps<T>(h, pA + d * s.N, s.N, dt, dtu, Bp, Cp, k * T_,
                        std::min(s.L, (k + 1) * T_), yr, nullptr, nullptr);
        }
        std::copy(h, h + s.N, plast + r * s.N);
        row_output(pu + r * s.L, pz ? pz + r * s.L : nullptr, pD ? pD[d] : T(0), s.L, yr);
      }
    }
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
  const char* op = "selective_scan";
  const ScanShape s = check_scan(op, u, delta, A, B, C, D_skip, z, delta_bias, initial_state);
  require_cpu(op, {&grad_y, &grad_last_state, &u, &delta, &A, &B, &C, &D_skip, &z, &delta_bias,
                   &initial_state, &fwd.checkpoints});
  check_optional(op, u, grad_y, "grad_y", u.shape(), "(B, D, L)");
  check_optional(op, u, grad_last_state, "grad_last_state", {s.B, s.D, s.N}, "(B, D, N)");
  const int64_t T_ = fwd.chunk;
  SSM_CHECK(T_ >= 1, op, "the forward's chunk length must be >= 1, got ", T_);
  const int64_t K = (s.L + T_ - 1) / T_;
  check_optional(op, u, fwd.checkpoints, "checkpoints", {s.B, s.D, K, s.N}, "(B, D, K, N)");
  SSM_CHECK(fwd.checkpoints.defined(), op, "the forward's checkpoints are undefined");

  const Tensor uc = u.contiguous(), dc = delta.contiguous(), Ac = A.contiguous();
  const Tensor Bc = projection_rows(B, s, s.GB), Cc = projection_rows(C, s, s.GC);
  const Tensor Dc = D_skip.defined() ? D_skip.contiguous() : D_skip;
  const Tensor zc = z.defined() ? z.contiguous() : z;
  const Tensor bc = delta_bias.defined() ? delta_bias.contiguous() : delta_bias;
  const Tensor gyc = grad_y.defined() ? grad_y.contiguous() : grad_y;
  const Tensor glc = grad_last_state.defined() ? grad_last_state.contiguous() : grad_last_state;
  const Tensor ck = fwd.checkpoints.contiguous();

  const bool need_u = needs.u, need_delta = needs.delta, need_A = needs.A;
  const bool need_B = needs.B && B.defined(), need_C = needs.C && C.defined();
  const bool need_D = needs.D_skip && D_skip.defined(), need_z = needs.z && z.defined();
  const bool need_bias = needs.delta_bias && delta_bias.defined();
  const bool need_h0 = needs.initial_state && initial_state.defined();
  const bool varB = s.GB > 0 && need_B, varC = s.GC > 0 && need_C;
  const std::vector<ChannelBlock> blocks = channel_blocks(s, varB || varC);
  const int64_t nb = static_cast<int64_t>(blocks.size());

  SelectiveScanGrads out;
  const auto fresh = [&](const Shape& shape) { return Tensor::empty(shape, u.dtype(), u.device()); };
  if (need_u) out.u = fresh({s.B, s.D, s.L});
  if (need_delta) out.delta = fresh({s.B, s.D, s.L});
  if (need_z) out.z = fresh({s.B, s.D, s.L});
  if (need_h0) out.initial_state = fresh({s.B, s.D, s.N});

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
    // Partial sums: per (b, d) for A, D, delta_bias and constant B / C; per
    // (b, channel block) for input-dependent B / C.
    const int64_t LN = s.L * s.N;
    std::vector<T> part_A(need_A ? s.B * s.D * s.N : 0);                          // (B, D, N)
    std::vector<T> part_B(need_B ? (varB ? s.B * nb * LN : s.B * s.D * s.N) : 0);  // see above
    std::vector<T> part_C(need_C ? (varC ? s.B * nb * LN : s.B * s.D * s.N) : 0);
    std::vector<double> part_D(need_D ? s.B * s.D : 0);        // (B, D)
    std::vector<double> part_bias(need_bias ? s.B * s.D : 0);  // (B, D)
    const int64_t tasks = s.B * nb;
#pragma omp parallel if (s.B * s.D * s.L * s.N > 32768)
    {
      // Row scratch: dt, dtu, gy, gdtu, gdt, ypre, ddelta (L each); chunk
      // states (T + 1, N) and decays (T, N); the accumulators of one row.
      std::vector<T> row(7 * s.L);
      std::vector<T> hs((T_ + 1) * s.N), as(T_ * s.N);
      std::vector<T> acc(4 * s.N);  // carry, and sinks for unneeded dA, dB, dC
      alignas(64) T h[kSelectiveScanMaxState];  // the running state of a recomputed chunk
#pragma omp for schedule(dynamic, 1)
      for (int64_t task = 0; task < tasks; ++task) {
        const int64_t b = task / nb, blk = task % nb;
        for (int64_t d = blocks[blk].d0; d < blocks[blk].d1; ++d) {
          const int64_t r = b * s.D + d;
          const T* ur = pu + r * s.L;
          const T* deltar = pd + r * s.L;
          const T* zr = pz ? pz + r * s.L : nullptr;
          const T bias = pbias ? pbias[d] : T(0);
          const T Dd = pD ? pD[d] : T(0);
          T* dt = row.data();
          T* dtu = dt + s.L;
          T* gy = dtu + s.L;
          T* gdtu = gy + s.L;
          T* gdt = gdtu + s.L;
          T* ypre = gdt + s.L;
          T* ddelta = ypre + s.L;
          row_dt(deltar, ur, bias, delta_softplus, s.L, dt, dtu);
          if (pgy) {
            row_gate_grad(pgy + r * s.L, zr, s.L, gy);
          } else {
            std::fill(gy, gy + s.L, T(0));
          }
          const RowPtr<const T> Bp = projection_row(pB, s, s.GB, b, d);
          const RowPtr<const T> Cp = projection_row(pC, s, s.GC, b, d);
          T* carry = acc.data();
          std::fill(acc.begin(), acc.end(), T(0));
          T* dA = need_A ? part_A.data() + r * s.N : carry + s.N;
          RowGrads<T> g{carry, dA, {carry + 2 * s.N, 0}, {carry + 3 * s.N, 0}, gdtu, gdt};
          if (need_B) {
            g.dB = varB ? RowPtr<T>{part_B.data() + (b * nb + blk) * LN, s.N}
                        : RowPtr<T>{part_B.data() + r * s.N, 0};
          }
          if (need_C) {
            g.dC = varC ? RowPtr<T>{part_C.data() + (b * nb + blk) * LN, s.N}
                        : RowPtr<T>{part_C.data() + r * s.N, 0};
          }
          for (int64_t n = 0; n < s.N; ++n) carry[n] = pgl ? pgl[r * s.N + n] : T(0);
          // The chunks last to first: recompute the states from the checkpoint, walk back.
          for (int64_t k = K - 1; k >= 0; --k) {
            const int64_t t0 = k * T_, t1 = std::min(s.L, t0 + T_);
            std::copy(pck + (r * K + k) * s.N, pck + (r * K + k + 1) * s.N, hs.data());
            std::copy(hs.data(), hs.data() + s.N, h);
            scan_steps<T>(h, pA + d * s.N, s.N, dt, dtu, Bp, Cp, t0, t1, need_z ? ypre : nullptr,
                          as.data(), hs.data());
            scan_steps_backward<T>(pA + d * s.N, s.N, dt, dtu, gy, Bp, Cp, t0, t1, as.data(),
                                   hs.data(), g);
            if (need_z) row_z_grad(pgy ? pgy + r * s.L : gy, zr, ur, ypre, Dd, t0, t1, pgz + r * s.L);
          }
          if (need_h0) std::copy(carry, carry + s.N, pgh0 + r * s.N);
          double dbias = 0.0, dD = 0.0;
          row_input_grads(ur, deltar, dt, gy, gdtu, gdt, bias, delta_softplus, Dd, s.L,
                          pgu ? pgu + r * s.L : nullptr, pgd ? pgd + r * s.L : ddelta, dbias, dD);
          if (need_bias) part_bias[r] = dbias;
          if (need_D) part_D[r] = dD;
        }
      }
    }
    if (need_A) out.A = reduce_over_batch<T>(part_A, s.B, s.D, s.N, A.shape(), u);
    if (need_D) out.D_skip = reduce_over_batch<T>(part_D, s.B, s.D, 1, D_skip.shape(), u);
    if (need_bias) {
      out.delta_bias = reduce_over_batch<T>(part_bias, s.B, s.D, 1, delta_bias.shape(), u);
    }
    if (need_B) {
      out.B = varB ? reduce_projection_grad<T>(part_B, blocks, s, s.GB, B)
                   : reduce_over_batch<T>(part_B, s.B, s.D, s.N, B.shape(), u);
    }
    if (need_C) {
      out.C = varC ? reduce_projection_grad<T>(part_C, blocks, s, s.GC, C)
                   : reduce_over_batch<T>(part_C, s.B, s.D, s.N, C.shape(), u);
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
  const char* op = "selective_state_update";
  SSM_CHECK(state.defined() && u_t.defined() && delta_t.defined() && A.defined() &&
                B_t.defined() && C_t.defined(),
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
  SSM_CHECK(state.shape() == Shape({Bsz, D, N}), op, "state must be (B, D, N) = ",
            shape_str({Bsz, D, N}), ", got ", state.desc());
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
