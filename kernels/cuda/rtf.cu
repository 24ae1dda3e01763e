// CUDA RTF kernels, float32, with the semantics, argument checks and
// operation order of kernels/cpu/rtf.cpp (the oracle; Parnichkun et al.
// 2024, see kernels/rtf.h):
//   forward:  Â = rfft([1, a_h]) (H rows), B̂ = rfft([0, b_ch]) (Cc H rows), both
//             L-point; K = irfft(B̂ / Â + h0, L): one pointwise kernel, one
//             batched complex-to-real transform, then the 1/L of fft::irfft.
//   backward: Ĝ = rfft(grad) (Cc H rows);
//             grad_b = irfft(Ĝ / conj(Â))[1 : n + 1];
//             grad_a = irfft(-sum_c Ĝ conj(B̂ / Â) / conj(Â))[1 : n + 1], one
//             thread per (h, frequency) adding the channels c in order (no atomics);
//             grad_h0 = grad[:, :, 0].
// The transforms are the batched cuFFT plans of kernels/cuda/fftconv.cu
// (fft_r2c / fft_c2r, cached per (device, kind, L, rows)); L need not be a
// power of two. The complex division is Smith's algorithm (the CPU's
// std::complex division scales too): results agree with the CPU to float
// rounding and repeat bit for bit.
//   rtf_state_space_C: float64 dense algebra (A^L by squaring, an LU solve)
//             of a setup-time call: run by the CPU kernel on host copies.
//   rtf_step: one thread per (b, h) row, the CPU's loops; the state is
//             updated in place through its own strides.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fftconv.h"
#include "kernels/cuda/rtf.h"

namespace ssm::kernels::cuda {

namespace {

using std::int64_t;

struct RtfShapes {
  int64_t H = 0, n = 0, Cc = 0;
};

// The CPU's check_rtf (same messages): a (H, n) with n >= 1; b (Cc, H, n);
// h0 (Cc, H) when defined.
RtfShapes check_rtf(const char* op, const Tensor& a, const Tensor& b, const Tensor& h0) {
  SSM_CHECK(a.defined() && b.defined(), op, "tensor is undefined");
  check_same_device(op, a, b);
  check_same_dtype(op, a, b);
  SSM_CHECK(a.dim() == 2 && a.size(1) >= 1, op, "a must be (H, n) with n >= 1, got ", a.desc());
  RtfShapes s;
  s.H = a.size(0);
  s.n = a.size(1);
  SSM_CHECK(b.dim() == 3 && b.size(1) == s.H && b.size(2) == s.n, op,
            "b must be (Cc, H, n) = (Cc, ", s.H, ", ", s.n, ") to match a ", a.desc(), ", got ",
            b.desc());
  s.Cc = b.size(0);
  if (h0.defined()) {
    check_same_device(op, a, h0);
    check_same_dtype(op, a, h0);
    SSM_CHECK(h0.shape() == Shape({s.Cc, s.H}), op, "h0 must be (Cc, H) = (", s.Cc, ", ", s.H,
              ") to match b ", b.desc(), ", got ", h0.desc());
  }
  return s;
}

void check_length(const char* op, const RtfShapes& s, int64_t L) {
  SSM_CHECK(L > s.n, op, "L must exceed the state size n = ", s.n,
            " (the polynomials are padded to L points), got L = ", L);
}

float2* as_float2(const Tensor& t) { return reinterpret_cast<float2*>(t.data<float>()); }

// ---------------------------------------------------------------- device math

__device__ inline float2 cmul(float2 x, float2 y) {
  return make_float2(x.x * y.x - x.y * y.y, x.x * y.y + x.y * y.x);
}
__device__ inline float2 cconj(float2 x) { return make_float2(x.x, -x.y); }
// x / y by Smith's algorithm (no overflow of |y|^2).
__device__ inline float2 cdiv(float2 x, float2 y) {
  if (fabsf(y.x) >= fabsf(y.y)) {
    const float r = y.y / y.x, den = y.x + y.y * r;
    return make_float2((x.x + x.y * r) / den, (x.y - x.x * r) / den);
  }
  const float r = y.x / y.y, den = y.y + y.x * r;
  return make_float2((x.x * r + x.y) / den, (x.y * r - x.x) / den);
}

// ---------------------------------------------------------------- kernels

// pad (rows, L) = [lead, coef[r, 0..n-1], 0, ...] for coef (rows, n) (pad_poly of the CPU).
__global__ void pad_poly_kernel(const float* __restrict__ coef, int64_t rows, int64_t n, int64_t L,
                                float lead, float* __restrict__ pad) {
  const int64_t total = rows * L;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t r = idx / L, j = idx % L;
    pad[idx] = j == 0 ? lead : (j <= n ? coef[r * n + j - 1] : 0.0f);
  }
}

// spec[r, k] = spec[r, k] / Â[h, k] + h0[r], r = c H + h: spec (Cc H, F), Â (H, F).
__global__ void forward_spectrum_kernel(float2* __restrict__ spec, const float2* __restrict__ Ah,
                                        const float* __restrict__ h0, int64_t rows, int64_t H,
                                        int64_t F) {
  const int64_t total = rows * F;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t r = idx / F, k = idx % F, h = r % H;
    float2 v = cdiv(spec[idx], Ah[h * F + k]);
    v.x += h0[r];
    spec[idx] = v;
  }
}

// x (count) *= scale.
__global__ void scale_kernel(float* __restrict__ x, int64_t count, float scale) {
  for (int64_t idx = thread_index(); idx < count; idx += thread_count()) x[idx] *= scale;
}

// gh0[r] = grad[r, 0] for grad (rows, L).
__global__ void first_column_kernel(const float* __restrict__ grad, int64_t rows, int64_t L,
                                    float* __restrict__ gh0) {
  for (int64_t r = thread_index(); r < rows; r += thread_count()) gh0[r] = grad[r * L];
}

// tmp[r, k] = Ĝ[r, k] / conj(Â[h, k]): Ĝ, tmp (Cc H, F), Â (H, F).
__global__ void grad_b_spectrum_kernel(const float2* __restrict__ G, const float2* __restrict__ Ah,
                                       int64_t rows, int64_t H, int64_t F,
                                       float2* __restrict__ tmp) {
  const int64_t total = rows * F;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t r = idx / F, k = idx % F, h = r % H;
    tmp[idx] = cdiv(G[idx], cconj(Ah[h * F + k]));
  }
}

// acc[h, k] = -sum_c Ĝ[c, h, k] conj(B̂[c, h, k] / Â[h, k]) / conj(Â[h, k]), c in
// order (the CPU's acc -= G q / conj(A)): Ĝ, B̂ (Cc, H, F), Â, acc (H, F).
__global__ void grad_a_spectrum_kernel(const float2* __restrict__ G, const float2* __restrict__ Bh,
                                       const float2* __restrict__ Ah, int64_t Cc, int64_t H,
                                       int64_t F, float2* __restrict__ acc) {
  const int64_t total = H * F;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t h = idx / F, k = idx % F;
    const float2 A = Ah[idx], Ac = cconj(A);
    float2 s = make_float2(0.0f, 0.0f);
    for (int64_t c = 0; c < Cc; ++c) {
      const int64_t i = (c * H + h) * F + k;
      const float2 q = cconj(cdiv(Bh[i], A));
      const float2 t = cdiv(cmul(G[i], q), Ac);
      s.x -= t.x;
      s.y -= t.y;
    }
    acc[idx] = s;
  }
}

// out[r, i] = res[r, i + 1] scale for i < n: res (rows, L), out (rows, n).
__global__ void coef_grad_kernel(const float* __restrict__ res, int64_t rows, int64_t n, int64_t L,
                                 float scale, float* __restrict__ out) {
  const int64_t total = rows * n;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t r = idx / n, i = idx % n;
    out[idx] = res[r * L + i + 1] * scale;
  }
}

// One companion-form step per (b, h) row (the CPU's loop body): y (B, Cc, H),
// state (B, H, n) at strides (s0, s1, s2), updated in place.
__global__ void rtf_step_kernel(const float* __restrict__ a, const float* __restrict__ C,
                                const float* __restrict__ h0, const float* __restrict__ u,
                                int64_t Bsz, int64_t H, int64_t n, int64_t Cc, float* state,
                                int64_t s0, int64_t s1, int64_t s2, float* __restrict__ y) {
  for (int64_t r = thread_index(); r < Bsz * H; r += thread_count()) {
    const int64_t bi = r / H, h = r % H;
    float* x = state + bi * s0 + h * s1;
    const float ur = u[r];
    for (int64_t c = 0; c < Cc; ++c) {
      const float* Cr = C + (c * H + h) * n;
      float acc = h0[c * H + h] * ur;
      for (int64_t j = 0; j < n; ++j) acc += Cr[j] * x[j * s2];
      y[(bi * Cc + c) * H + h] = acc;
    }
    float first = ur;
    for (int64_t j = 0; j < n; ++j) first -= a[h * n + j] * x[j * s2];
    for (int64_t j = n - 1; j >= 1; --j) x[j * s2] = x[(j - 1) * s2];
    x[0] = first;
  }
}

// Â = rfft([1, a_h]) (L points) for every h: (H, F) complex.
Tensor denominator_spectra(const Tensor& ac, int64_t H, int64_t n, int64_t L, Device dev) {
  const int64_t F = L / 2 + 1;
  const Tensor pad = Tensor::empty({H, L}, DType::Float32, dev);  // (H, L)
  pad_poly_kernel<<<blocks_for(H * L), kThreads>>>(ac.data<float>(), H, n, L, 1.0f,
                                                   pad.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  Tensor Ah = Tensor::empty({H, F, 2}, DType::Float32, dev);  // (H, F) complex
  fft_r2c(pad.data<float>(), Ah.data<float>(), L, H, dev);
  return Ah;
}

// B̂ = rfft([0, b_ch]) (L points) for every (c, h): (Cc H, F) complex.
Tensor numerator_spectra(const Tensor& bc, int64_t rows, int64_t n, int64_t L, Device dev) {
  const int64_t F = L / 2 + 1;
  const Tensor pad = Tensor::empty({rows, L}, DType::Float32, dev);  // (Cc, H, L)
  pad_poly_kernel<<<blocks_for(rows * L), kThreads>>>(bc.data<float>(), rows, n, L, 0.0f,
                                                      pad.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  Tensor Bh = Tensor::empty({rows, F, 2}, DType::Float32, dev);  // (Cc, H, F) complex
  fft_r2c(pad.data<float>(), Bh.data<float>(), L, rows, dev);
  return Bh;
}

}  // namespace

Tensor rtf_kernel_forward(const Tensor& a, const Tensor& b, const Tensor& h0, int64_t L) {
  const char* op = "rtf_kernel";
  SSM_CHECK(h0.defined(), op, "h0 is undefined");
  const RtfShapes s = check_rtf(op, a, b, h0);
  check_length(op, s, L);
  require_cuda_float32(op, {&a, &b, &h0});
  const Device dev = a.device();
  const int64_t H = s.H, n = s.n, Cc = s.Cc, F = L / 2 + 1, rows = Cc * H;
  Tensor K = Tensor::empty({Cc, H, L}, DType::Float32, dev);  // (Cc, H, L)
  if (rows == 0) return K;
  const Tensor ac = a.contiguous();                            // (H, n)
  const Tensor bc = b.contiguous();                            // (Cc, H, n)
  const Tensor hc = h0.contiguous();                           // (Cc, H)
  const Tensor Ah = denominator_spectra(ac, H, n, L, dev);     // (H, F) complex
  const Tensor spec = numerator_spectra(bc, rows, n, L, dev);  // (Cc, H, F) complex
  forward_spectrum_kernel<<<blocks_for(rows * F), kThreads>>>(as_float2(spec), as_float2(Ah),
                                                              hc.data<float>(), rows, H, F);
  SSM_CUDA_CHECK_LAUNCH();
  fft_c2r(spec.data<float>(), K.data<float>(), L, rows, dev);
  scale_kernel<<<blocks_for(rows * L), kThreads>>>(K.data<float>(), rows * L,
                                                   1.0f / static_cast<float>(L));
  SSM_CUDA_CHECK_LAUNCH();
  return K;
}

RtfGrads rtf_kernel_backward(const Tensor& grad, const Tensor& a, const Tensor& b, bool need_a,
                             bool need_b, bool need_h0) {
  const char* op = "rtf_kernel";
  const RtfShapes s = check_rtf(op, a, b, Tensor());
  SSM_CHECK(grad.defined() && grad.dim() == 3 && grad.size(0) == s.Cc && grad.size(1) == s.H, op,
            "gradient must be (Cc, H, L) = (", s.Cc, ", ", s.H, ", L), got ", grad.desc());
  check_same_dtype(op, a, grad);
  require_cuda_float32(op, {&grad, &a, &b});
  const int64_t H = s.H, n = s.n, Cc = s.Cc, L = grad.size(2), F = L / 2 + 1, rows = Cc * H;
  check_length(op, s, L);
  const Device dev = a.device();
  RtfGrads out;
  if (need_a) out.a = Tensor::empty({H, n}, DType::Float32, dev);      // (H, n)
  if (need_b) out.b = Tensor::empty({Cc, H, n}, DType::Float32, dev);  // (Cc, H, n)
  if (need_h0) out.h0 = Tensor::empty({Cc, H}, DType::Float32, dev);   // (Cc, H)
  if (rows == 0) {
    if (need_a) out.a = Tensor::zeros({H, n}, DType::Float32, dev);  // an empty sum over c
    return out;
  }
  const Tensor gc = grad.contiguous();  // (Cc, H, L)
  if (need_h0) {
    first_column_kernel<<<blocks_for(rows), kThreads>>>(gc.data<float>(), rows, L,
                                                        out.h0.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (!need_a && !need_b) return out;

  const float scale = 1.0f / static_cast<float>(L);
  const Tensor ac = a.contiguous();                         // (H, n)
  const Tensor Ah = denominator_spectra(ac, H, n, L, dev);  // (H, F) complex
  // Ĝ: the rows copied to a fresh (aligned) buffer first.
  const Tensor gcopy = Tensor::empty({rows, L}, DType::Float32, dev);  // (Cc, H, L)
  SSM_CUDA_CHECK(cudaMemcpyAsync(gcopy.data<float>(), gc.data<float>(),
                                 static_cast<std::size_t>(rows * L) * sizeof(float),
                                 cudaMemcpyDeviceToDevice, nullptr));
  const Tensor G = Tensor::empty({rows, F, 2}, DType::Float32, dev);  // (Cc, H, F) complex
  fft_r2c(gcopy.data<float>(), G.data<float>(), L, rows, dev);
  if (need_b) {
    const Tensor tmp = Tensor::empty({rows, F, 2}, DType::Float32, dev);  // (Cc, H, F) complex
    const Tensor res = Tensor::empty({rows, L}, DType::Float32, dev);     // (Cc, H, L)
    grad_b_spectrum_kernel<<<blocks_for(rows * F), kThreads>>>(as_float2(G), as_float2(Ah), rows, H,
                                                               F, as_float2(tmp));
    SSM_CUDA_CHECK_LAUNCH();
    fft_c2r(tmp.data<float>(), res.data<float>(), L, rows, dev);
    coef_grad_kernel<<<blocks_for(rows * n), kThreads>>>(res.data<float>(), rows, n, L, scale,
                                                         out.b.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (need_a) {
    const Tensor bc = b.contiguous();                                  // (Cc, H, n)
    const Tensor Bh = numerator_spectra(bc, rows, n, L, dev);          // (Cc, H, F) complex
    const Tensor acc = Tensor::empty({H, F, 2}, DType::Float32, dev);  // (H, F) complex
    const Tensor res = Tensor::empty({H, L}, DType::Float32, dev);     // (H, L)
    grad_a_spectrum_kernel<<<blocks_for(H * F), kThreads>>>(
        as_float2(G), as_float2(Bh), as_float2(Ah), Cc, H, F, as_float2(acc));
    SSM_CUDA_CHECK_LAUNCH();
    fft_c2r(acc.data<float>(), res.data<float>(), L, H, dev);
    coef_grad_kernel<<<blocks_for(H * n), kThreads>>>(res.data<float>(), H, n, L, scale,
                                                      out.a.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  return out;
}

Tensor rtf_state_space_C(const Tensor& a, const Tensor& b, int64_t L) {
  const char* op = "rtf_state_space_C";
  const RtfShapes s = check_rtf(op, a, b, Tensor());
  check_length(op, s, L);
  require_cuda_float32(op, {&a, &b});
  const Device host = Device::cpu();
  return kernels::rtf_state_space_C(a.to(host), b.to(host), L).to(a.device());
}

Tensor rtf_step(const Tensor& a, const Tensor& C, const Tensor& h0, const Tensor& u_t,
                Tensor& state) {
  const char* op = "rtf_step";
  SSM_CHECK(h0.defined() && u_t.defined() && state.defined(), op, "tensor is undefined");
  const RtfShapes s = check_rtf(op, a, C, h0);
  const int64_t H = s.H, n = s.n, Cc = s.Cc;
  check_same_device(op, a, u_t);
  check_same_dtype(op, a, u_t);
  check_same_device(op, a, state);
  check_same_dtype(op, a, state);
  SSM_CHECK(u_t.dim() == 2 && u_t.size(1) == H, op, "u_t must be (B, H) with H = ", H, ", got ",
            u_t.desc());
  const int64_t Bsz = u_t.size(0);
  SSM_CHECK(state.shape() == Shape({Bsz, H, n}), op, "state must be (B, H, n) = (", Bsz, ", ", H,
            ", ", n, "), got ", state.desc());
  require_cuda_float32(op, {&a, &C, &h0, &u_t, &state});
  const Device dev = a.device();
  const Tensor ac = a.contiguous();                             // (H, n)
  const Tensor Cm = C.contiguous();                             // (Cc, H, n)
  const Tensor hc = h0.contiguous();                            // (Cc, H)
  const Tensor uc = u_t.contiguous();                           // (B, H)
  Tensor y = Tensor::empty({Bsz, Cc, H}, DType::Float32, dev);  // (B, Cc, H)
  if (Bsz * H == 0) return y;
  // The state is written in place through its own strides.
  const int64_t s0 = state.strides()[0], s1 = state.strides()[1], s2 = state.strides()[2];
  rtf_step_kernel<<<blocks_for(Bsz * H), kThreads>>>(
      ac.data<float>(), Cm.data<float>(), hc.data<float>(), uc.data<float>(), Bsz, H, n, Cc,
      state.data<float>(), s0, s1, s2, y.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  return y;
}

}  // namespace ssm::kernels::cuda
