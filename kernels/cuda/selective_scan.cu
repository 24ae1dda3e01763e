// CUDA selective scan (Mamba's S6), float32, with the options and results of
// kernels/cpu/selective_scan.cpp (the oracle):
//   dt_t = softplus(delta_t + delta_bias) (or delta_t + delta_bias),
//   h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t,  y_t = (C_t . h_t + D u_t) silu(z_t).
//
// Lane groups: a (b, d) row is handled by a group of W = min(32, next power of
// two >= N) lanes of one warp; lane j owns the S = ceil(N / W) states
// n = j + i W (i < S) in registers. Sums over n (C_t . h_t and the backward's
// per-step sums) are each lane's states in order, then an xor butterfly over
// the group's lanes: a fixed order.
//
// Forward (chunked parallel scan, the CPU's chunk length T, K = ceil(L / T)):
//   pass 1, one group per (b, d, k < K - 1): the chunk run from state 0 gives
//           hloc (B, D, K, N) and dtsum (B, D, K) = sum_t dt_t, so that the
//           chunk maps h to exp(A dtsum) h + hloc;
//   pass 2, one thread per (b, d, n): checkpoints[k] = h; h = exp(A dtsum_k) h + hloc_k;
//   pass 3, one group per (b, d, k): the chunk again from checkpoints[k],
//           writing y_t, and last_state at the end of the last chunk.
// Backward, over chunks of Tc = min(T, 64) steps (when T > 64, the states
// entering each 64-step chunk are first recomputed from the forward's
// checkpoints). The adjoint g_t = C_t gy_t + exp(dt_{t+1} A) g_{t+1} is the
// same kind of linear recurrence, right to left:
//   pass 1, per (b, d, c >= 1): the chunk walked back from carry 0 gives its
//           local carry a_{t0} g_{t0}, and dtsum;
//   pass 2, per (b, d, n), chunks right to left from grad_last_state:
//           carry_in[c] = carry; carry = exp(A dtsum_c) carry + local_c;
//   pass 3, one block per (b, c, channel tile): each group recomputes its
//           chunk's states in sub-chunks of kHist / S steps (kept in
//           registers; the state entering a sub-chunk is recomputed from the
//           chunk's start), walks them back from carry_in[c], and writes
//           du, ddelta, dz per step, grad initial_state (c = 0), and partial
//           sums per (b, d, c) of dA, dD, ddelta_bias and constant dB / dC.
//           Input-dependent dB_t / dC_t are summed over the channels of the
//           block's tile (one group of B / C) through shared memory, groups
//           in order, into (B, tiles, L, N) partials.
//   small kernels then add the partials over b and c (and over the tiles of a
//   group) in a fixed order. No atomics anywhere: results repeat bit for bit.
// The chunked sums round differently from the CPU's sequential loop (a chunk
// decay exp(A sum dt) for a product of exp(dt A)), so CUDA and CPU agree to
// about 1e-5 relative, not bitwise.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/selective_scan.h"

namespace ssm::kernels::cuda {

namespace {

using std::int64_t;

constexpr int kBlock = 256;               // threads per block of the group kernels
constexpr int kHist = 32;                 // states per lane kept for a backward sub-chunk
constexpr int64_t kBackwardChunk = 64;    // the longest backward chunk
constexpr int64_t kTileChannels = 64;     // channels per block when dB / dC are summed
constexpr int64_t kMaxGrid = 2147483647;  // blocks of a 1-D grid

__host__ __device__ inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

const float* data_or_null(const Tensor& t) {
  return t.defined() && t.numel() > 0 ? t.data<float>() : nullptr;
}

// ---------------------------------------------------------------- device math

__device__ inline float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }
// softplus(x) = log(1 + e^x), x itself above 20 (PyTorch's threshold).
__device__ inline float softplus_f(float x) {
  return x > 20.0f ? x : fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}
__device__ inline float softplus_grad_f(float x) { return x > 20.0f ? 1.0f : sigmoid_f(x); }
__device__ inline float silu_f(float z) { return z * sigmoid_f(z); }
// d silu(z) / dz = s (1 + z (1 - s)), s = sigmoid(z).
__device__ inline float silu_grad_f(float z) {
  const float s = sigmoid_f(z);
  return s * (1.0f + z * (1.0f - s));
}

// Sum over the `width` lanes of an aligned group of a warp (width a power of
// two <= 32); every lane of the warp must call it. All lanes of the group get
// the same bits (a + b == b + a).
__device__ inline float group_sum(float v, int width) {
  for (int o = width >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ---------------------------------------------------------------- layouts

struct ScanDims {
  int64_t B = 0, D = 0, L = 0, N = 0;
};

// B or C as the kernels read it: constant (D, N) (G = 0) or input-dependent
// (B, G, L, N) (transposed once so that the N values of a step are contiguous).
struct ProjView {
  const float* p = nullptr;
  int64_t G = 0;
};

// Row (b, d) of a projection: step t, state n at base[t * stride + n].
__device__ inline const float* proj_row(const ProjView& P, const ScanDims& s, int64_t b, int64_t d,
                                        int64_t& stride) {
  if (P.G == 0) {
    stride = 0;
    return P.p + d * s.N;
  }
  stride = s.N;
  return P.p + (b * P.G + d / (s.D / P.G)) * s.L * s.N;
}

// One step of a row for the states a lane owns: h <- exp(dt A) h + (dt u) B_t.
template <int S>
__device__ inline void scan_step(float (&h)[S], const float (&a)[S], float dtt, float x,
                                 const float* Bt, int lane, int width, int64_t N) {
#pragma unroll
  for (int i = 0; i < S; ++i) {
    const int64_t n = lane + static_cast<int64_t>(i) * width;
    if (n < N) h[i] = expf(dtt * a[i]) * h[i] + x * Bt[n];
  }
}

// A[d, n] for the lane's states (0 past N).
template <int S>
__device__ inline void load_a(float (&a)[S], const float* A, int64_t d, int lane, int width,
                              int64_t N) {
#pragma unroll
  for (int i = 0; i < S; ++i) {
    const int64_t n = lane + static_cast<int64_t>(i) * width;
    a[i] = n < N ? A[d * N + n] : 0.0f;
  }
}

// A state vector of N at p for the lane's states (0 past N, or everywhere when p is null).
template <int S>
__device__ inline void load_state(float (&h)[S], const float* p, int lane, int width, int64_t N) {
#pragma unroll
  for (int i = 0; i < S; ++i) {
    const int64_t n = lane + static_cast<int64_t>(i) * width;
    h[i] = p && n < N ? p[n] : 0.0f;
  }
}

template <int S>
__device__ inline void store_state(float* p, const float (&h)[S], int lane, int width, int64_t N) {
#pragma unroll
  for (int i = 0; i < S; ++i) {
    const int64_t n = lane + static_cast<int64_t>(i) * width;
    if (n < N) p[n] = h[i];
  }
}

// Group g of a 1-D grid of lane groups, ordered (b, k, d) with d fastest:
// the groups of a warp are consecutive channels of one (b, chunk).
struct GroupIndex {
  int64_t b = 0, k = 0, d = 0;
};
__device__ inline GroupIndex group_index(int64_t g, int64_t D, int64_t chunks) {
  GroupIndex r;
  r.d = g % D;
  r.k = (g / D) % chunks;
  r.b = g / (D * chunks);
  return r;
}

// ---------------------------------------------------------------- forward kernels

// dt = softplus(delta + bias[d]) or delta + bias[d], elementwise over (B, D, L).
__global__ void dt_kernel(const float* __restrict__ delta, const float* __restrict__ bias,
                          bool softplus, int64_t D, int64_t L, int64_t total,
                          float* __restrict__ dt) {
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const float x = delta[i] + (bias ? bias[(i / L) % D] : 0.0f);
    dt[i] = softplus ? softplus_f(x) : x;
  }
}

// Forward pass 1: chunk k < chunks of row (b, d) from state 0 ->
// hloc[b, d, k] (B, D, K, N) and dtsum[b, d, k] (B, D, K).
template <int S>
__global__ void __launch_bounds__(kBlock)
    scan_chunk_local(ScanDims s, int width, const float* __restrict__ dt,
                     const float* __restrict__ u, const float* __restrict__ A, ProjView Bp,
                     int64_t T, int64_t K, int64_t chunks, float* __restrict__ hloc,
                     float* __restrict__ dtsum) {
  const int gpb = blockDim.x / width, lane = threadIdx.x % width;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * gpb + threadIdx.x / width;
  if (g >= s.B * chunks * s.D) return;  // no warp-synchronous code below
  const GroupIndex at = group_index(g, s.D, chunks);
  const int64_t bd = at.b * s.D + at.d, row = bd * s.L;
  const int64_t t0 = at.k * T, t1 = imin(s.L, t0 + T);
  float a[S], h[S];
  load_a(a, A, at.d, lane, width, s.N);
  load_state(h, nullptr, lane, width, s.N);
  int64_t bstride = 0;
  const float* Br = proj_row(Bp, s, at.b, at.d, bstride);
  float sum = 0.0f;
  for (int64_t t = t0; t < t1; ++t) {
    const float dtt = dt[row + t];
    scan_step(h, a, dtt, dtt * u[row + t], Br + t * bstride, lane, width, s.N);
    sum += dtt;
  }
  store_state(hloc + (bd * K + at.k) * s.N, h, lane, width, s.N);
  if (lane == 0) dtsum[bd * K + at.k] = sum;
}

// Forward pass 2, one thread per (b, d, n): ck[b, d, k, n] = h for k < K,
// h = exp(A dtsum_k) h + hloc_k between chunks; h starts at h0 (or 0).
__global__ void scan_chunk_carry(ScanDims s, int64_t K, const float* __restrict__ A,
                                 const float* __restrict__ dtsum, const float* __restrict__ hloc,
                                 const float* __restrict__ h0, float* __restrict__ ck) {
  const int64_t total = s.B * s.D * s.N;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const int64_t n = i % s.N, bd = i / s.N, d = bd % s.D;
    const float a = A[d * s.N + n];
    float h = h0 ? h0[i] : 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t at = (bd * K + k) * s.N + n;
      ck[at] = h;
      if (k + 1 < K) h = expf(a * dtsum[bd * K + k]) * h + hloc[at];
    }
  }
}

// Forward pass 3, one group per (b, d, k): the chunk from ck[b, d, k], y_t =
// (C_t . h_t + D u_t) silu(z_t); the last chunk also writes last_state. Every
// group runs T iterations (a shorter last chunk idles), so that the shuffles
// of a warp are reached uniformly; groups past the end compute group 0's
// values and write nothing.
template <int S>
__global__ void __launch_bounds__(kBlock)
    scan_output(ScanDims s, int width, const float* __restrict__ dt, const float* __restrict__ u,
                const float* __restrict__ z, const float* __restrict__ Dskip,
                const float* __restrict__ A, ProjView Bp, ProjView Cp, int64_t T, int64_t K,
                const float* __restrict__ ck, float* __restrict__ y, float* __restrict__ last) {
  const int gpb = blockDim.x / width, lane = threadIdx.x % width;
  const int64_t graw = static_cast<int64_t>(blockIdx.x) * gpb + threadIdx.x / width;
  const bool valid = graw < s.B * K * s.D;
  const GroupIndex at = group_index(valid ? graw : 0, s.D, K);
  const int64_t bd = at.b * s.D + at.d, row = bd * s.L;
  const int64_t t0 = at.k * T, t1 = imin(s.L, t0 + T);
  float a[S], h[S];
  load_a(a, A, at.d, lane, width, s.N);
  load_state(h, ck + (bd * K + at.k) * s.N, lane, width, s.N);
  int64_t bstride = 0, cstride = 0;
  const float* Br = proj_row(Bp, s, at.b, at.d, bstride);
  const float* Cr = proj_row(Cp, s, at.b, at.d, cstride);
  const float Dd = Dskip ? Dskip[at.d] : 0.0f;
  for (int64_t j = 0; j < T; ++j) {
    const int64_t t = t0 + j;
    const bool on = t < t1;
    float part = 0.0f, ut = 0.0f;
    if (on) {
      const float dtt = dt[row + t];
      ut = u[row + t];
      scan_step(h, a, dtt, dtt * ut, Br + t * bstride, lane, width, s.N);
      const float* Ct = Cr + t * cstride;
#pragma unroll
      for (int i = 0; i < S; ++i) {
        const int64_t n = lane + static_cast<int64_t>(i) * width;
        if (n < s.N) part += Ct[n] * h[i];
      }
    }
    part = group_sum(part, width);
    if (on && valid && lane == 0) {
      float v = part + Dd * ut;
      if (z) v *= silu_f(z[row + t]);
      y[row + t] = v;
    }
  }
  if (valid && at.k == K - 1) store_state(last + bd * s.N, h, lane, width, s.N);
}

// ---------------------------------------------------------------- backward kernels

// States entering every Tc-step chunk, hc (B, D, Kc, N), from the forward's
// checkpoints ck (B, D, K, N) of T-step chunks: one group per (b, d, k) walks
// its forward chunk and saves h before each step t with t % Tc == 0.
template <int S>
__global__ void __launch_bounds__(kBlock)
    scan_resample(ScanDims s, int width, const float* __restrict__ dt, const float* __restrict__ u,
                  const float* __restrict__ A, ProjView Bp, int64_t T, int64_t K,
                  const float* __restrict__ ck, int64_t Tc, int64_t Kc, float* __restrict__ hc) {
  const int gpb = blockDim.x / width, lane = threadIdx.x % width;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * gpb + threadIdx.x / width;
  if (g >= s.B * K * s.D) return;  // no warp-synchronous code below
  const GroupIndex at = group_index(g, s.D, K);
  const int64_t bd = at.b * s.D + at.d, row = bd * s.L;
  const int64_t t0 = at.k * T, t1 = imin(s.L, t0 + T);
  float a[S], h[S];
  load_a(a, A, at.d, lane, width, s.N);
  load_state(h, ck + (bd * K + at.k) * s.N, lane, width, s.N);
  int64_t bstride = 0;
  const float* Br = proj_row(Bp, s, at.b, at.d, bstride);
  for (int64_t t = t0; t < t1; ++t) {
    if (t % Tc == 0) store_state(hc + (bd * Kc + t / Tc) * s.N, h, lane, width, s.N);
    const float dtt = dt[row + t];
    scan_step(h, a, dtt, dtt * u[row + t], Br + t * bstride, lane, width, s.N);
  }
}

// gy_t = grad_y_t silu(z_t) (grad_y_t without z; 0 without grad_y).
__device__ inline float gate_grad(const float* gout, const float* z, int64_t i) {
  if (!gout) return 0.0f;
  return z ? gout[i] * silu_f(z[i]) : gout[i];
}

// Backward pass 1, one group per (b, d, c), c = 1 .. Kc - 1: the chunk walked
// back from carry 0, g = carry + gy_t C_t, carry = exp(dt_t A) g, gives
// carry[b, d, c] (B, D, Kc, N) = a_{t0} g_{t0} and dtsum[b, d, c] (B, D, Kc).
template <int S>
__global__ void __launch_bounds__(kBlock)
    scan_bwd_chunk_local(ScanDims s, int width, const float* __restrict__ dt,
                         const float* __restrict__ gout, const float* __restrict__ z,
                         const float* __restrict__ A, ProjView Cp, int64_t Tc, int64_t Kc,
                         float* __restrict__ carry, float* __restrict__ dtsum) {
  const int gpb = blockDim.x / width, lane = threadIdx.x % width;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * gpb + threadIdx.x / width;
  if (g >= s.B * (Kc - 1) * s.D) return;  // no warp-synchronous code below
  const GroupIndex at = group_index(g, s.D, Kc - 1);
  const int64_t c = at.k + 1;
  const int64_t bd = at.b * s.D + at.d, row = bd * s.L;
  const int64_t t0 = c * Tc, t1 = imin(s.L, t0 + Tc);
  float a[S], cr[S];
  load_a(a, A, at.d, lane, width, s.N);
  load_state(cr, nullptr, lane, width, s.N);
  int64_t cstride = 0;
  const float* Cr = proj_row(Cp, s, at.b, at.d, cstride);
  float sum = 0.0f;
  for (int64_t t = t1 - 1; t >= t0; --t) {
    const float dtt = dt[row + t], gyt = gate_grad(gout, z, row + t);
    const float* Ct = Cr + t * cstride;
#pragma unroll
    for (int i = 0; i < S; ++i) {
      const int64_t n = lane + static_cast<int64_t>(i) * width;
      if (n < s.N) cr[i] = expf(dtt * a[i]) * (cr[i] + gyt * Ct[n]);
    }
    sum += dtt;
  }
  store_state(carry + (bd * Kc + c) * s.N, cr, lane, width, s.N);
  if (lane == 0) dtsum[bd * Kc + c] = sum;
}

// Backward pass 2, one thread per (b, d, n), in place: on entry carry[b, d, c]
// holds chunk c's local carry (c >= 1), on exit the carry entering chunk c
// from the right: carry_in[Kc - 1] = grad_last_state (or 0),
// carry_in[c - 1] = exp(A dtsum_c) carry_in[c] + local_c.
__global__ void scan_bwd_carry(ScanDims s, int64_t Kc, const float* __restrict__ A,
                               const float* __restrict__ dtsum, const float* __restrict__ gl,
                               float* __restrict__ carry) {
  const int64_t total = s.B * s.D * s.N;
  for (int64_t i = thread_index(); i < total; i += thread_count()) {
    const int64_t n = i % s.N, bd = i / s.N, d = bd % s.D;
    const float a = A[d * s.N + n];
    float c = gl ? gl[i] : 0.0f;
    for (int64_t k = Kc - 1; k >= 0; --k) {
      const int64_t at = (bd * Kc + k) * s.N + n;
      const float local = k > 0 ? carry[at] : 0.0f;
      carry[at] = c;
      if (k > 0) c = expf(a * dtsum[bd * Kc + k]) * c + local;
    }
  }
}

struct BackwardArgs {
  ScanDims s;
  int width = 1;
  const float *dt, *u, *delta, *z, *gout, *A, *Dskip, *bias;
  bool softplus = false;
  ProjView Bp, Cp;
  const float* hc;     // (B, D, Kc, N): the state entering each chunk
  const float* carry;  // (B, D, Kc, N): the adjoint carry entering each chunk from the right
  int64_t Tc = 1, Kc = 0;
  // Channel tiles: segments of `seg` channels (inside one group of B and of
  // C), each cut into tiles of up to `W` channels; tile = segment * tps + i.
  int64_t seg = 1, W = 1, tps = 1, ntiles = 1;
  float *gu, *gdelta, *gz, *gh0;  // (B, D, L) x3, (B, D, N); null when not needed
  // dA (B, D, Kc, N); dB / dC (B, D, Kc, N) constant or (B, ntiles, L, N)
  // input-dependent (varB / varC); dD, ddelta_bias (B, D, Kc). Null when not needed.
  float *pA, *pB, *pC;
  double *pD, *pbias;
  bool varB = false, varC = false;
};

// Backward pass 3: block (b, c, tile); its groups take the tile's channels in
// rounds (group i of round r: channel d0 + r gpb + i). Per channel: the
// chunk's sub-chunks last to first, each recomputed from the chunk's start
// state (hist[j] = h at step ts + j, in registers), then walked back:
//   g = carry + gy_t C_t;  dC_t += gy_t h_t;  dB_t += g dt_t u_t;  gdtu = g . B_t;
//   e = g h_{t-1} a_t;  gdt = e . A;  dA += e dt_t;  carry = a_t g;
//   du_t = dt_t gdtu + D gy_t;  ddelta_t = (u_t gdtu + gdt) softplus'(delta_t + bias);
//   dz_t = grad_y_t (C_t . h_t + D u_t) silu'(z_t).
// Everything in a block shares (b, c): loop counts are uniform, so the
// barriers of the input-dependent dB / dC sums are reached by every thread.
template <int S>
__global__ void __launch_bounds__(kBlock) scan_bwd_final(BackwardArgs p) {
  constexpr int TS = kHist / S;  // steps of a sub-chunk
  // Two buffers (alternating steps) of the (gpb, N) dB and dC contributions;
  // gpb N <= kBlock S.
  __shared__ float sbuf[4 * kBlock * S];
  const ScanDims s = p.s;
  const int64_t N = s.N;
  const int width = p.width, gpb = blockDim.x / width;
  const int gi = threadIdx.x / width, lane = threadIdx.x % width;
  const int64_t tile = blockIdx.x % p.ntiles, bc = blockIdx.x / p.ntiles;
  const int64_t c = bc % p.Kc, b = bc / p.Kc;
  const int64_t segi = tile / p.tps;
  const int64_t d0 = segi * p.seg + (tile % p.tps) * p.W;
  const int64_t d1 = imin(d0 + p.W, (segi + 1) * p.seg);
  const int64_t t0 = c * p.Tc, t1 = imin(s.L, t0 + p.Tc);
  const int64_t subs = (t1 - t0 + TS - 1) / TS;
  const int64_t rounds = (d1 - d0 + gpb - 1) / gpb;
  const bool reduce_tiles = p.varB || p.varC;
  const int64_t NN = gpb * N;
  int par = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    const int64_t draw = d0 + r * gpb + gi;
    const bool valid = draw < d1;
    const int64_t d = valid ? draw : d0;  // past the tile: channel d0's values, nothing written
    const int nvalid = static_cast<int>(imin(gpb, d1 - d0 - r * gpb));
    const int64_t bd = b * s.D + d, row = bd * s.L, slot = bd * p.Kc + c;
    float a[S], carry[S], dA[S], dBc[S], dCc[S], h[S], hstart[S], cB[S], cC[S];
    float hist[TS][S];
    load_a(a, p.A, d, lane, width, N);
    load_state(carry, p.carry + slot * N, lane, width, N);
#pragma unroll
    for (int i = 0; i < S; ++i) dA[i] = dBc[i] = dCc[i] = cB[i] = cC[i] = 0.0f;
    int64_t bstride = 0, cstride = 0;
    const float* Br = proj_row(p.Bp, s, b, d, bstride);
    const float* Cr = proj_row(p.Cp, s, b, d, cstride);
    const float Dd = p.Dskip ? p.Dskip[d] : 0.0f;
    const float bias = p.bias ? p.bias[d] : 0.0f;
    double sum_D = 0.0, sum_bias = 0.0;
    for (int64_t sub = subs - 1; sub >= 0; --sub) {
      const int64_t ts = t0 + sub * TS, te = imin(t1, ts + TS);
      load_state(h, p.hc + slot * N, lane, width, N);
      for (int64_t t = t0; t < ts; ++t) {
        const float dtt = p.dt[row + t];
        scan_step(h, a, dtt, dtt * p.u[row + t], Br + t * bstride, lane, width, N);
      }
#pragma unroll
      for (int i = 0; i < S; ++i) hstart[i] = h[i];
#pragma unroll
      for (int j = 0; j < TS; ++j) {
        const int64_t t = ts + j;
        if (t < te) {
          const float dtt = p.dt[row + t];
          scan_step(h, a, dtt, dtt * p.u[row + t], Br + t * bstride, lane, width, N);
        }
#pragma unroll
        for (int i = 0; i < S; ++i) hist[j][i] = h[i];
      }
#pragma unroll
      for (int jj = 0; jj < TS; ++jj) {
        const int j = TS - 1 - jj;
        const int64_t t = ts + j;
        const bool on = t < te;  // the same for the whole block
        float pb = 0.0f, pa = 0.0f, py = 0.0f;
        float dtt = 0.0f, ut = 0.0f, go = 0.0f, zt = 0.0f, gyt = 0.0f;
        if (on) {
          dtt = p.dt[row + t];
          ut = p.u[row + t];
          go = p.gout ? p.gout[row + t] : 0.0f;
          zt = p.z ? p.z[row + t] : 0.0f;
          gyt = p.z ? go * silu_f(zt) : go;
          const float x = dtt * ut;
          const float* Bt = Br + t * bstride;
          const float* Ct = Cr + t * cstride;
#pragma unroll
          for (int i = 0; i < S; ++i) {
            const int64_t n = lane + static_cast<int64_t>(i) * width;
            if (n < N) {
              const float ht = hist[j][i];
              const float hp = j > 0 ? hist[j > 0 ? j - 1 : 0][i] : hstart[i];
              const float at = expf(dtt * a[i]);
              const float cn = Ct[n];
              const float gn = carry[i] + gyt * cn;
              cC[i] = gyt * ht;
              cB[i] = gn * x;
              dCc[i] += cC[i];
              dBc[i] += cB[i];
              pb += gn * Bt[n];
              const float e = gn * hp * at;
              pa += e * a[i];
              dA[i] += e * dtt;
              carry[i] = at * gn;
              py += cn * ht;
            }
          }
        }
        pb = group_sum(pb, width);
        pa = group_sum(pa, width);
        if (p.gz) py = group_sum(py, width);
        if (on && valid && lane == 0) {
          if (p.gu) p.gu[row + t] = dtt * pb + Dd * gyt;
          float dd = ut * pb + pa;
          if (p.softplus) dd *= softplus_grad_f(p.delta[row + t] + bias);
          if (p.gdelta) p.gdelta[row + t] = dd;
          sum_bias += static_cast<double>(dd);
          sum_D += static_cast<double>(gyt) * static_cast<double>(ut);
          if (p.gz) p.gz[row + t] = go * (py + Dd * ut) * silu_grad_f(zt);
        }
        if (reduce_tiles) {
          float* buf = sbuf + par * 2 * NN;
          if (on && valid) {
#pragma unroll
            for (int i = 0; i < S; ++i) {
              const int64_t n = lane + static_cast<int64_t>(i) * width;
              if (n < N) {
                buf[gi * N + n] = cB[i];
                buf[NN + gi * N + n] = cC[i];
              }
            }
          }
          __syncthreads();
          if (on) {
            for (int64_t idx = threadIdx.x; idx < 2 * N; idx += blockDim.x) {
              const int which = idx < N ? 0 : 1;
              const int64_t n = idx - which * N;
              float* out = which == 0 ? (p.varB ? p.pB : nullptr) : (p.varC ? p.pC : nullptr);
              if (!out) continue;
              const float* src = buf + which * NN + n;
              float acc = 0.0f;
              for (int k = 0; k < nvalid; ++k) acc += src[k * N];
              const int64_t o = ((b * p.ntiles + tile) * s.L + t) * N + n;
              out[o] = r == 0 ? acc : out[o] + acc;
            }
          }
          par ^= 1;
        }
      }
    }
    if (valid) {
      if (p.pA) store_state(p.pA + slot * N, dA, lane, width, N);
      if (p.pB && !p.varB) store_state(p.pB + slot * N, dBc, lane, width, N);
      if (p.pC && !p.varC) store_state(p.pC + slot * N, dCc, lane, width, N);
      if (c == 0 && p.gh0) store_state(p.gh0 + bd * N, carry, lane, width, N);
      if (lane == 0) {
        if (p.pD) p.pD[slot] = sum_D;
        if (p.pbias) p.pbias[slot] = sum_bias;
      }
    }
  }
}

// out[d, i] = sum over b, then c, of part[b, d, c, i] (part (B, D, Kc, n)), in double.
template <class P>
__global__ void reduce_chunks(const P* __restrict__ part, int64_t B, int64_t D, int64_t Kc,
                              int64_t n, float* __restrict__ out) {
  const int64_t total = D * n;
  for (int64_t e = thread_index(); e < total; e += thread_count()) {
    const int64_t d = e / n, i = e % n;
    double acc = 0.0;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t c = 0; c < Kc; ++c)
        acc += static_cast<double>(part[((b * D + d) * Kc + c) * n + i]);
    }
    out[e] = static_cast<float>(acc);
  }
}

// out (B, G, L, N)[b, g] = sum over tiles g tpg .. (g + 1) tpg - 1, in order,
// of part (B, ntiles, L, N)[b, tile], in double.
__global__ void reduce_tiles_kernel(const float* __restrict__ part, int64_t B, int64_t G,
                                    int64_t LN, int64_t ntiles, int64_t tpg,
                                    float* __restrict__ out) {
  const int64_t total = B * G * LN;
  for (int64_t e = thread_index(); e < total; e += thread_count()) {
    const int64_t i = e % LN, bg = e / LN, g = bg % G, b = bg / G;
    double acc = 0.0;
    for (int64_t k = g * tpg; k < (g + 1) * tpg; ++k) {
      acc += static_cast<double>(part[(b * ntiles + k) * LN + i]);
    }
    out[e] = static_cast<float>(acc);
  }
}

// ---------------------------------------------------------------- one step

// One group per (b, d): h <- exp(dt A) h + dt u B_t through the state's
// strides; y = (C_t . h + D u) silu(z). B_t / C_t (B, G, N) or (D, N).
template <int S>
__global__ void __launch_bounds__(kBlock)
    state_update_kernel(int64_t Bsz, int64_t D, int64_t N, int width, const float* __restrict__ u,
                        const float* __restrict__ delta, const float* __restrict__ A,
                        const float* __restrict__ Bm, int64_t GB, const float* __restrict__ Cm,
                        int64_t GC, const float* __restrict__ Dskip, const float* __restrict__ z,
                        const float* __restrict__ bias, bool softplus, float* state, int64_t s0,
                        int64_t s1, int64_t s2, float* __restrict__ y) {
  const int gpb = blockDim.x / width, lane = threadIdx.x % width;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * gpb + threadIdx.x / width;
  const bool valid = r < Bsz * D;
  float part = 0.0f, ut = 0.0f;
  int64_t b = 0, d = 0;
  if (valid) {
    b = r / D;
    d = r % D;
    const float x = delta[r] + (bias ? bias[d] : 0.0f);
    const float dt = softplus ? softplus_f(x) : x;
    ut = u[r];
    const float dtu = dt * ut;
    const float* Bn = GB == 0 ? Bm + d * N : Bm + (b * GB + d / (D / GB)) * N;
    const float* Cn = GC == 0 ? Cm + d * N : Cm + (b * GC + d / (D / GC)) * N;
    float* h = state + b * s0 + d * s1;
#pragma unroll
    for (int i = 0; i < S; ++i) {
      const int64_t n = lane + static_cast<int64_t>(i) * width;
      if (n < N) {
        const float hn = expf(dt * A[d * N + n]) * h[n * s2] + dtu * Bn[n];
        h[n * s2] = hn;
        part += Cn[n] * hn;
      }
    }
  }
  part = group_sum(part, width);
  if (valid && lane == 0) {
    float v = part + (Dskip ? Dskip[d] : 0.0f) * ut;
    if (z) v *= silu_f(z[r]);
    y[r] = v;
  }
}

// ---------------------------------------------------------------- host helpers

struct ScanShape {
  int64_t B = 0, D = 0, L = 0, N = 0;
  int64_t GB = 0, GC = 0;  // groups of input-dependent B / C; 0: constant (D, N)
  ScanDims dims() const { return {B, D, L, N}; }
};

void check_optional(const char* op, const Tensor& ref, const Tensor& t, const char* name,
                    const Shape& want, const char* want_str) {
  if (!t.defined()) return;
  check_same_device(op, ref, t);
  check_same_dtype(op, ref, t);
  SSM_CHECK(t.shape() == want, op, name, " must be ", want_str, " = ", shape_str(want), ", got ",
            t.desc());
}

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
  require_cuda_float32(op, {&u, &delta, &A, &B, &C, &D_skip, &z, &delta_bias, &initial_state});
  return s;
}

int64_t pick_chunk(int64_t chunk, int64_t L) {
  SSM_CHECK(chunk >= 0, "selective_scan", "chunk must be >= 0 (0: default), got ", chunk);
  if (chunk == 0) chunk = kSelectiveScanDefaultChunk;
  return std::max<int64_t>(1, std::min(chunk, L));
}

// Lane groups: `width` lanes per row, each owning S states (S a power of two).
struct Lanes {
  int width = 1, S = 1;
};
Lanes lanes_for(int64_t N) {
  if (N <= 32) {
    int w = 1;
    while (w < N) w <<= 1;
    return {w, 1};
  }
  return {32, N <= 64 ? 2 : N <= 128 ? 4 : 8};
}

template <class F>
void with_states(int S, F&& f) {
  switch (S) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    default: f(std::integral_constant<int, 8>{}); break;
  }
}

// Blocks of kBlock threads for `groups` lane groups of `width` lanes.
unsigned group_blocks(int64_t groups, int width) {
  const int64_t gpb = kBlock / width;
  const int64_t blocks = std::max<int64_t>(1, (groups + gpb - 1) / gpb);
  SSM_CHECK(blocks <= kMaxGrid, "selective_scan", "too many rows for one launch: ", groups);
  return static_cast<unsigned>(blocks);
}

// B or C as the kernels read it (see ProjView): (D, N), or (B, G, L, N).
Tensor projection_rows(const Tensor& t, int64_t G, const ScanShape& s) {
  if (G == 0) return t.contiguous();
  return t.reshape({s.B, G, s.N, s.L}).transpose(2, 3).contiguous();
}

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? t.contiguous() : t; }

}  // namespace

// ---------------------------------------------------------------- forward

SelectiveScanForward selective_scan_forward(const Tensor& u, const Tensor& delta, const Tensor& A,
                                            const Tensor& B, const Tensor& C, const Tensor& D_skip,
                                            const Tensor& z, const Tensor& delta_bias,
                                            bool delta_softplus, const Tensor& initial_state,
                                            int64_t chunk) {
  const char* op = "selective_scan";
  const ScanShape s = check_scan(op, u, delta, A, B, C, D_skip, z, delta_bias, initial_state);
  const int64_t T = pick_chunk(chunk, s.L);
  const int64_t K = (s.L + T - 1) / T;  // chunks
  const int64_t N = s.N, L = s.L;
  const Device dev = u.device();
  SelectiveScanForward out;
  out.chunk = T;
  out.y = Tensor::empty({s.B, s.D, L}, DType::Float32, dev);               // (B, D, L)
  out.last_state = Tensor::empty({s.B, s.D, N}, DType::Float32, dev);      // (B, D, N)
  out.checkpoints = Tensor::empty({s.B, s.D, K, N}, DType::Float32, dev);  // (B, D, K, N)
  if (s.B * s.D == 0) return out;
  if (L == 0) {  // no steps: last_state = h_{-1}
    if (initial_state.defined()) {
      out.last_state.copy_(initial_state);
    } else {
      out.last_state = Tensor::zeros({s.B, s.D, N}, DType::Float32, dev);
    }
    return out;
  }
  const Tensor uc = u.contiguous(), dc = delta.contiguous();  // (B, D, L)
  const Tensor Ac = A.contiguous();                           // (D, N)
  const Tensor Bc = projection_rows(B, s.GB, s);              // (D, N) or (B, G, L, N)
  const Tensor Cc = projection_rows(C, s.GC, s);
  const Tensor Dc = contiguous_or_undefined(D_skip);         // (D)
  const Tensor zc = contiguous_or_undefined(z);              // (B, D, L)
  const Tensor bc = contiguous_or_undefined(delta_bias);     // (D)
  const Tensor h0 = contiguous_or_undefined(initial_state);  // (B, D, N)
  const ScanDims dims = s.dims();
  const int64_t total = s.B * s.D * L;
  Tensor dt = Tensor::empty({s.B, s.D, L}, DType::Float32, dev);  // (B, D, L)
  dt_kernel<<<blocks_for(total), kThreads>>>(dc.data<float>(), data_or_null(bc), delta_softplus,
                                             s.D, L, total, dt.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  const ProjView Bp{Bc.data<float>(), s.GB}, Cp{Cc.data<float>(), s.GC};
  const Lanes ln = lanes_for(N);
  Tensor hloc, dtsum;
  if (K > 1) {
    hloc = Tensor::empty({s.B, s.D, K, N}, DType::Float32, dev);  // (B, D, K, N)
    dtsum = Tensor::empty({s.B, s.D, K}, DType::Float32, dev);    // (B, D, K)
  }
  with_states(ln.S, [&](auto states) {
    constexpr int S = decltype(states)::value;
    if (K > 1) {
      const int64_t groups = s.B * (K - 1) * s.D;
      scan_chunk_local<S><<<group_blocks(groups, ln.width), kBlock>>>(
          dims, ln.width, dt.data<float>(), uc.data<float>(), Ac.data<float>(), Bp, T, K, K - 1,
          hloc.data<float>(), dtsum.data<float>());
      SSM_CUDA_CHECK_LAUNCH();
    }
    scan_chunk_carry<<<blocks_for(s.B * s.D * N), kThreads>>>(
        dims, K, Ac.data<float>(), K > 1 ? dtsum.data<float>() : nullptr,
        K > 1 ? hloc.data<float>() : nullptr, data_or_null(h0), out.checkpoints.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
    scan_output<S><<<group_blocks(s.B * K * s.D, ln.width), kBlock>>>(
        dims, ln.width, dt.data<float>(), uc.data<float>(), data_or_null(zc), data_or_null(Dc),
        Ac.data<float>(), Bp, Cp, T, K, out.checkpoints.data<float>(), out.y.data<float>(),
        out.last_state.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
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
  check_optional(op, u, grad_y, "grad_y", u.shape(), "(B, D, L)");
  check_optional(op, u, grad_last_state, "grad_last_state", {s.B, s.D, s.N}, "(B, D, N)");
  const int64_t T = fwd.chunk;
  SSM_CHECK(T >= 1, op, "the forward's chunk length must be >= 1, got ", T);
  const int64_t K = (s.L + T - 1) / T;
  SSM_CHECK(fwd.checkpoints.defined(), op, "the forward's checkpoints are undefined");
  check_optional(op, u, fwd.checkpoints, "checkpoints", {s.B, s.D, K, s.N}, "(B, D, K, N)");
  require_cuda_float32(op, {&u, &grad_y, &grad_last_state, &fwd.checkpoints});
  const int64_t N = s.N, L = s.L;
  const Device dev = u.device();

  const bool need_u = needs.u, need_delta = needs.delta, need_A = needs.A;
  const bool need_B = needs.B, need_C = needs.C;
  const bool need_D = needs.D_skip && D_skip.defined(), need_z = needs.z && z.defined();
  const bool need_bias = needs.delta_bias && delta_bias.defined();
  const bool need_h0 = needs.initial_state && initial_state.defined();
  const bool varB = s.GB > 0 && need_B, varC = s.GC > 0 && need_C;

  SelectiveScanGrads out;
  const auto fresh = [&](const Shape& shape) { return Tensor::empty(shape, DType::Float32, dev); };
  const auto zeros = [&](const Shape& shape) { return Tensor::zeros(shape, DType::Float32, dev); };
  if (s.B * s.D == 0 || L == 0) {  // nothing to walk: sums are 0, grad h_{-1} = grad_last_state
    if (need_u) out.u = fresh({s.B, s.D, L});
    if (need_delta) out.delta = fresh({s.B, s.D, L});
    if (need_z) out.z = fresh({s.B, s.D, L});
    if (need_A) out.A = zeros(A.shape());
    if (need_B) out.B = zeros(B.shape());
    if (need_C) out.C = zeros(C.shape());
    if (need_D) out.D_skip = zeros(D_skip.shape());
    if (need_bias) out.delta_bias = zeros(delta_bias.shape());
    if (need_h0) {
      out.initial_state = zeros({s.B, s.D, N});
      if (grad_last_state.defined()) out.initial_state.copy_(grad_last_state);
    }
    return out;
  }
  if (need_u) out.u = fresh({s.B, s.D, L});               // (B, D, L)
  if (need_delta) out.delta = fresh({s.B, s.D, L});       // (B, D, L)
  if (need_z) out.z = fresh({s.B, s.D, L});               // (B, D, L)
  if (need_h0) out.initial_state = fresh({s.B, s.D, N});  // (B, D, N)

  const Tensor uc = u.contiguous(), dc = delta.contiguous();  // (B, D, L)
  const Tensor Ac = A.contiguous();                           // (D, N)
  const Tensor Bc = projection_rows(B, s.GB, s);              // (D, N) or (B, G, L, N)
  const Tensor Cc = projection_rows(C, s.GC, s);
  const Tensor Dc = contiguous_or_undefined(D_skip);            // (D)
  const Tensor zc = contiguous_or_undefined(z);                 // (B, D, L)
  const Tensor bc = contiguous_or_undefined(delta_bias);        // (D)
  const Tensor gyc = contiguous_or_undefined(grad_y);           // (B, D, L)
  const Tensor glc = contiguous_or_undefined(grad_last_state);  // (B, D, N)
  const Tensor ck = fwd.checkpoints.contiguous();               // (B, D, K, N)
  const ScanDims dims = s.dims();
  const int64_t total = s.B * s.D * L;
  Tensor dt = fresh({s.B, s.D, L});  // (B, D, L)
  dt_kernel<<<blocks_for(total), kThreads>>>(dc.data<float>(), data_or_null(bc), delta_softplus,
                                             s.D, L, total, dt.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  const ProjView Bp{Bc.data<float>(), s.GB}, Cp{Cc.data<float>(), s.GC};
  const Lanes ln = lanes_for(N);

  // The backward's chunks: the forward's when they are short enough, else
  // kBackwardChunk steps with their entering states recomputed.
  const int64_t Tc = std::min(T, kBackwardChunk);
  const int64_t Kc = (L + Tc - 1) / Tc;
  Tensor hc = ck;  // (B, D, Kc, N)
  if (Tc != T) hc = fresh({s.B, s.D, Kc, N});
  Tensor carry = fresh({s.B, s.D, Kc, N});  // (B, D, Kc, N)
  Tensor dtsum = fresh({s.B, s.D, Kc});     // (B, D, Kc); entry c = 0 unused

  // Channel tiles of the last pass.
  const int64_t gpb = kBlock / ln.width;
  const int64_t hB = s.GB ? s.D / s.GB : s.D, hC = s.GC ? s.D / s.GC : s.D;
  BackwardArgs p;
  p.seg = (varB || varC) ? std::gcd(varB ? hB : s.D, varC ? hC : s.D) : s.D;
  p.W = (varB || varC) ? gpb * std::max<int64_t>(1, kTileChannels / gpb) : gpb;
  p.tps = (p.seg + p.W - 1) / p.W;
  p.ntiles = (s.D / p.seg) * p.tps;

  // Partial sums.
  const auto part = [&](bool need, const Shape& shape, DType dtype = DType::Float32) {
    return need ? Tensor::empty(shape, dtype, dev) : Tensor();
  };
  const Shape per_chunk{s.B, s.D, Kc, N}, per_tile{s.B, p.ntiles, L, N};
  const Tensor part_A = part(need_A, per_chunk);                    // (B, D, Kc, N)
  const Tensor part_B = part(need_B, varB ? per_tile : per_chunk);  // or (B, tiles, L, N)
  const Tensor part_C = part(need_C, varC ? per_tile : per_chunk);
  const Tensor part_D = part(need_D, {s.B, s.D, Kc}, DType::Float64);        // (B, D, Kc)
  const Tensor part_bias = part(need_bias, {s.B, s.D, Kc}, DType::Float64);  // (B, D, Kc)

  p.s = dims;
  p.width = ln.width;
  p.dt = dt.data<float>();
  p.u = uc.data<float>();
  p.delta = dc.data<float>();
  p.z = data_or_null(zc);
  p.gout = data_or_null(gyc);
  p.A = Ac.data<float>();
  p.Dskip = data_or_null(Dc);
  p.bias = data_or_null(bc);
  p.softplus = delta_softplus;
  p.Bp = Bp;
  p.Cp = Cp;
  p.hc = hc.data<float>();
  p.carry = carry.data<float>();
  p.Tc = Tc;
  p.Kc = Kc;
  p.gu = need_u ? out.u.data<float>() : nullptr;
  p.gdelta = need_delta ? out.delta.data<float>() : nullptr;
  p.gz = need_z ? out.z.data<float>() : nullptr;
  p.gh0 = need_h0 ? out.initial_state.data<float>() : nullptr;
  p.pA = need_A ? part_A.data<float>() : nullptr;
  p.pB = need_B ? part_B.data<float>() : nullptr;
  p.pC = need_C ? part_C.data<float>() : nullptr;
  p.pD = need_D ? part_D.data<double>() : nullptr;
  p.pbias = need_bias ? part_bias.data<double>() : nullptr;
  p.varB = varB;
  p.varC = varC;
  const int64_t final_blocks = s.B * Kc * p.ntiles;
  SSM_CHECK(final_blocks <= kMaxGrid, op, "too many chunks for one launch: ", final_blocks);

  with_states(ln.S, [&](auto states) {
    constexpr int S = decltype(states)::value;
    if (Tc != T) {
      scan_resample<S><<<group_blocks(s.B * K * s.D, ln.width), kBlock>>>(
          dims, ln.width, dt.data<float>(), uc.data<float>(), Ac.data<float>(), Bp, T, K,
          ck.data<float>(), Tc, Kc, hc.data<float>());
      SSM_CUDA_CHECK_LAUNCH();
    }
    if (Kc > 1) {
      scan_bwd_chunk_local<S><<<group_blocks(s.B * (Kc - 1) * s.D, ln.width), kBlock>>>(
          dims, ln.width, dt.data<float>(), data_or_null(gyc), data_or_null(zc), Ac.data<float>(),
          Cp, Tc, Kc, carry.data<float>(), dtsum.data<float>());
      SSM_CUDA_CHECK_LAUNCH();
    }
    scan_bwd_carry<<<blocks_for(s.B * s.D * N), kThreads>>>(
        dims, Kc, Ac.data<float>(), dtsum.data<float>(), data_or_null(glc), carry.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
    scan_bwd_final<S><<<static_cast<unsigned>(final_blocks), kBlock>>>(p);
    SSM_CUDA_CHECK_LAUNCH();
  });

  // The sums over b and chunks (and tiles), in a fixed order.
  if (need_A) {
    out.A = fresh(A.shape());
    reduce_chunks<float><<<blocks_for(s.D * N), kThreads>>>(part_A.data<float>(), s.B, s.D, Kc, N,
                                                            out.A.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (need_D) {
    out.D_skip = fresh(D_skip.shape());
    reduce_chunks<double><<<blocks_for(s.D), kThreads>>>(part_D.data<double>(), s.B, s.D, Kc, 1,
                                                         out.D_skip.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (need_bias) {
    out.delta_bias = fresh(delta_bias.shape());
    reduce_chunks<double><<<blocks_for(s.D), kThreads>>>(part_bias.data<double>(), s.B, s.D, Kc, 1,
                                                         out.delta_bias.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  const auto projection_grad = [&](const Tensor& partial, bool var, int64_t G, int64_t h,
                                   const Tensor& like) {
    if (!var) {
      Tensor g = fresh(like.shape());  // (D, N)
      reduce_chunks<float><<<blocks_for(s.D * N), kThreads>>>(partial.data<float>(), s.B, s.D, Kc,
                                                              N, g.data<float>());
      SSM_CUDA_CHECK_LAUNCH();
      return g;
    }
    Tensor g = fresh({s.B, G, L, N});  // (B, G, L, N)
    const int64_t tpg = h / p.seg * p.tps;
    reduce_tiles_kernel<<<blocks_for(s.B * G * L * N), kThreads>>>(
        partial.data<float>(), s.B, G, L * N, p.ntiles, tpg, g.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
    return g.transpose(2, 3).contiguous().reshape(like.shape());  // (B, G, N, L)
  };
  if (need_B) out.B = projection_grad(part_B, varB, s.GB, hB, B);
  if (need_C) out.C = projection_grad(part_C, varC, s.GC, hC, C);
  return out;
}

// ---------------------------------------------------------------- one step

Tensor selective_state_update(Tensor& state, const Tensor& u_t, const Tensor& delta_t,
                              const Tensor& A, const Tensor& B_t, const Tensor& C_t,
                              const Tensor& D_skip, const Tensor& z_t, const Tensor& delta_bias,
                              bool delta_softplus) {
  const char* op = "selective_state_update";
  SSM_CHECK(state.defined() && u_t.defined() && delta_t.defined() && A.defined() && B_t.defined() &&
                C_t.defined(),
            op, "state, u_t, delta_t, A, B_t and C_t are required");
  SSM_CHECK(u_t.dim() == 2, op, "u_t must be (B, D), got ", u_t.desc());
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
  require_cuda_float32(op, {&state, &u_t, &delta_t, &A, &B_t, &C_t, &D_skip, &z_t, &delta_bias});

  Tensor y = Tensor::empty({Bsz, D}, DType::Float32, u_t.device());  // (B, D)
  if (Bsz * D == 0) return y;
  const Tensor uc = u_t.contiguous(), dc = delta_t.contiguous();  // (B, D)
  const Tensor Ac = A.contiguous();                               // (D, N)
  const Tensor Bc = B_t.contiguous(), Cc = C_t.contiguous();      // (B, G, N) or (D, N)
  const Tensor Dc = contiguous_or_undefined(D_skip);              // (D)
  const Tensor zc = contiguous_or_undefined(z_t);                 // (B, D)
  const Tensor bc = contiguous_or_undefined(delta_bias);          // (D)
  const Shape& ss = state.strides();
  const Lanes ln = lanes_for(N);
  with_states(ln.S, [&](auto states) {
    constexpr int S = decltype(states)::value;
    state_update_kernel<S><<<group_blocks(Bsz * D, ln.width), kBlock>>>(
        Bsz, D, N, ln.width, uc.data<float>(), dc.data<float>(), Ac.data<float>(), Bc.data<float>(),
        GB, Cc.data<float>(), GC, data_or_null(Dc), data_or_null(zc), data_or_null(bc),
        delta_softplus, state.data<float>(), ss[0], ss[1], ss[2], y.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  });
  return y;
}

}  // namespace ssm::kernels::cuda
