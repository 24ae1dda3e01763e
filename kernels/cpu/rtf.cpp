// CPU RTF kernels (Parnichkun et al. 2024, "State-Free Inference of
// State-Space Models: The Transfer Function Approach"; the reference code is
// ruke1ire/RTF): the FFT kernel of a rational transfer function with its
// backward, the recovery of the state space numerator C = b̃ (I - A^L)^{-1},
// and the companion-form step.
//
// Gradient rule: backward kernels return fresh gradient tensors (=); the
// tape does the accumulation. grad_a sums over channels in a fixed order
// within one feature, so results do not depend on the thread count.
#include "kernels/rtf.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/fft.h"
#include "kernels/lssl.h"
#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/rtf.h"
#endif

namespace ssm::kernels {

namespace {

struct RtfShapes {
  std::int64_t H = 0, n = 0, Cc = 0;
};

// a (H, n) with n >= 1; b (Cc, H, n); h0 (Cc, H) when defined.
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

void check_length(const char* op, const RtfShapes& s, std::int64_t L) {
  SSM_CHECK(L > s.n, op, "L must exceed the state size n = ", s.n,
            " (the polynomials are padded to L points), got L = ", L);
}

// pad = [lead, coef[0..n-1], 0, ...] (L values).
template <class T>
void pad_poly(T lead, const T* coef, std::int64_t n, std::int64_t L, T* pad) {
  pad[0] = lead;
  std::copy(coef, coef + n, pad + 1);
  std::fill(pad + 1 + n, pad + L, T(0));
}

}  // namespace

// Per feature h: Â = rfft([1, a_h]) (L points); per row (c, h):
// K = irfft(rfft([0, b_ch]) / Â + h0_ch, L).
Tensor rtf_kernel_forward(const Tensor& a, const Tensor& b, const Tensor& h0, std::int64_t L) {
  // (An undefined a falls through to the checks below, which name the op.)
  if (a.defined()) SSM_CUDA_DISPATCH(a, cuda::rtf_kernel_forward(a, b, h0, L));
  const char* op = "rtf_kernel";
  SSM_CHECK(h0.defined(), op, "h0 is undefined");
  const RtfShapes s = check_rtf(op, a, b, h0);
  check_length(op, s, L);
  require_cpu(op, {&a, &b, &h0});
  const std::int64_t H = s.H, n = s.n, Cc = s.Cc, F = L / 2 + 1;
  const Tensor ac = a.contiguous(), bc = b.contiguous(), hc = h0.contiguous();
  Tensor K = Tensor::empty({Cc, H, L}, a.dtype());  // (Cc, H, L)
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using cT = std::complex<T>;
    const T *pa = ac.data<T>(), *pb = bc.data<T>(), *ph = hc.data<T>();
    T* pK = K.data<T>();
    std::vector<cT> Ahat(H * F);  // (H, F)
#pragma omp parallel if (Cc * H * L > 32768)
    {
      std::vector<T> pad(L);
      std::vector<cT> spec(F);
#pragma omp for schedule(static)
      for (std::int64_t h = 0; h < H; ++h) {
        pad_poly<T>(T(1), pa + h * n, n, L, pad.data());
        fft::rfft(pad.data(), Ahat.data() + h * F, L);
      }
#pragma omp for schedule(static)
      for (std::int64_t r = 0; r < Cc * H; ++r) {
        const std::int64_t h = r % H;
        pad_poly<T>(T(0), pb + r * n, n, L, pad.data());
        fft::rfft(pad.data(), spec.data(), L);
        const cT* Ah = Ahat.data() + h * F;
        for (std::int64_t k = 0; k < F; ++k) spec[k] = spec[k] / Ah[k] + ph[r];
        fft::irfft(spec.data(), pK + r * L, L);
      }
    }
  });
  return K;
}

// See kernels/rtf.h. One feature h per thread: Â once, then each channel c in order.
RtfGrads rtf_kernel_backward(const Tensor& grad, const Tensor& a, const Tensor& b, bool need_a,
                             bool need_b, bool need_h0) {
  // (An undefined a falls through to the checks below, which name the op.)
  if (a.defined())
    SSM_CUDA_DISPATCH(a, cuda::rtf_kernel_backward(grad, a, b, need_a, need_b, need_h0));
  const char* op = "rtf_kernel";
  const RtfShapes s = check_rtf(op, a, b, Tensor());
  SSM_CHECK(grad.defined() && grad.dim() == 3 && grad.size(0) == s.Cc && grad.size(1) == s.H, op,
            "gradient must be (Cc, H, L) = (", s.Cc, ", ", s.H, ", L), got ", grad.desc());
  check_same_dtype(op, a, grad);
  require_cpu(op, {&grad, &a, &b});
  const std::int64_t H = s.H, n = s.n, Cc = s.Cc, L = grad.size(2), F = L / 2 + 1;
  check_length(op, s, L);
  const Tensor gc = grad.contiguous(), ac = a.contiguous(), bc = b.contiguous();
  RtfGrads out;
  if (need_a) out.a = Tensor::empty({H, n}, a.dtype());
  if (need_b) out.b = Tensor::empty({Cc, H, n}, a.dtype());
  if (need_h0) out.h0 = Tensor::empty({Cc, H}, a.dtype());
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using cT = std::complex<T>;
    const T *pg = gc.data<T>(), *pa = ac.data<T>(), *pb = bc.data<T>();
    T* ga = need_a ? out.a.template data<T>() : nullptr;
    T* gb = need_b ? out.b.template data<T>() : nullptr;
    T* gh = need_h0 ? out.h0.template data<T>() : nullptr;
#pragma omp parallel if (Cc * H * L > 32768)
    {
      std::vector<T> pad(L);
      std::vector<cT> Ah(F), G(F), Bh(F), tmp(F), acc(F);
#pragma omp for schedule(static)
      for (std::int64_t h = 0; h < H; ++h) {
        pad_poly<T>(T(1), pa + h * n, n, L, pad.data());
        fft::rfft(pad.data(), Ah.data(), L);
        std::fill(acc.begin(), acc.end(), cT(0));
        for (std::int64_t c = 0; c < Cc; ++c) {
          const std::int64_t r = c * H + h;
          const T* g = pg + r * L;
          if (gh) gh[r] = g[0];
          if (!ga && !gb) continue;
          fft::rfft(g, G.data(), L);
          if (gb) {
            for (std::int64_t k = 0; k < F; ++k) tmp[k] = G[k] / std::conj(Ah[k]);
            fft::irfft(tmp.data(), pad.data(), L);
            std::copy(pad.begin() + 1, pad.begin() + 1 + n, gb + r * n);
          }
          if (ga) {
            pad_poly<T>(T(0), pb + r * n, n, L, pad.data());
            fft::rfft(pad.data(), Bh.data(), L);
            for (std::int64_t k = 0; k < F; ++k) {
              const cT q = std::conj(Bh[k] / Ah[k]);
              acc[k] -= G[k] * q / std::conj(Ah[k]);
            }
          }
        }
        if (ga) {
          fft::irfft(acc.data(), pad.data(), L);
          std::copy(pad.begin() + 1, pad.begin() + 1 + n, ga + h * n);
        }
      }
    }
  });
  return out;
}

// Per feature, in float64: A^L by binary powering, then (I - A^L)^T C^T = b̃^T.
Tensor rtf_state_space_C(const Tensor& a, const Tensor& b, std::int64_t L) {
  // (An undefined a falls through to the checks below, which name the op.)
  if (a.defined()) SSM_CUDA_DISPATCH(a, cuda::rtf_state_space_C(a, b, L));
  const char* op = "rtf_state_space_C";
  const RtfShapes s = check_rtf(op, a, b, Tensor());
  check_length(op, s, L);
  require_cpu(op, {&a, &b});
  const std::int64_t H = s.H, n = s.n, Cc = s.Cc;
  const std::vector<double> av = a.to_vector<double>();  // (H, n)
  const std::vector<double> bv = b.to_vector<double>();  // (Cc, H, n)
  std::vector<double> C(Cc * H * n);                     // (Cc, H, n)
  std::vector<char> failed(H, 0);
#pragma omp parallel if (H > 1 && H * n * n * n > 65536)
  {
    std::vector<double> A(n * n), P(n * n), R(n * n), T(n * n), rhs(n * Cc);
    std::vector<std::int64_t> piv(n);
#pragma omp for schedule(static)
    for (std::int64_t h = 0; h < H; ++h) {
      std::fill(A.begin(), A.end(), 0.0);
      for (std::int64_t j = 0; j < n; ++j) A[j] = -av[h * n + j];
      for (std::int64_t j = 1; j < n; ++j) A[j * n + j - 1] = 1.0;
      // R = A^L: P runs through A^(2^k), R collects the set bits of L.
      std::fill(R.begin(), R.end(), 0.0);
      for (std::int64_t i = 0; i < n; ++i) R[i * n + i] = 1.0;
      P = A;
      for (std::int64_t e = L; e > 0; e >>= 1) {
        if (e & 1) {
          dense::gemm(false, false, n, n, n, R.data(), n, P.data(), n, T.data(), n);
          std::swap(R, T);
        }
        if (e > 1) {
          dense::gemm(false, false, n, n, n, P.data(), n, P.data(), n, T.data(), n);
          std::swap(P, T);
        }
      }
      bool finite = true;
      for (std::int64_t i = 0; i < n * n; ++i) {
        finite = finite && std::isfinite(R[i]);
        R[i] = (i % (n + 1) == 0 ? 1.0 : 0.0) - R[i];  // I - A^L
      }
      if (!finite || !dense::lu_factor(R.data(), n, piv.data())) {
        failed[h] = 1;
        continue;
      }
      for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t c = 0; c < Cc; ++c) rhs[i * Cc + c] = bv[(c * H + h) * n + i];
      }
      dense::lu_solve(R.data(), piv.data(), n, true, rhs.data(), Cc);
      for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t c = 0; c < Cc; ++c) C[(c * H + h) * n + i] = rhs[i * Cc + c];
      }
    }
  }
  for (std::int64_t h = 0; h < H; ++h) {
    SSM_CHECK(!failed[h], op, "I - A^L is singular or A^L overflows for feature ", h, " (L = ", L,
              "): the denominator 1 + a_1 z^-1 + ... has a root on the L-th roots of unity or far "
              "outside the unit circle");
  }
  return Tensor::from_vector<double>(C, {Cc, H, n}, b.dtype());
}

// y = C x + h0 u; x' = (u - a . x, x_0, ..., x_{n-2}). Rows (b, h) in parallel.
Tensor rtf_step(const Tensor& a, const Tensor& C, const Tensor& h0, const Tensor& u_t,
                Tensor& state) {
  // (An undefined a falls through to the checks below, which name the op.)
  if (a.defined()) SSM_CUDA_DISPATCH(a, cuda::rtf_step(a, C, h0, u_t, state));
  const char* op = "rtf_step";
  SSM_CHECK(h0.defined() && u_t.defined() && state.defined(), op, "tensor is undefined");
  const RtfShapes s = check_rtf(op, a, C, h0);
  const std::int64_t H = s.H, n = s.n, Cc = s.Cc;
  check_same_device(op, a, u_t);
  check_same_dtype(op, a, u_t);
  check_same_device(op, a, state);
  check_same_dtype(op, a, state);
  SSM_CHECK(u_t.dim() == 2 && u_t.size(1) == H, op, "u_t must be (B, H) with H = ", H, ", got ",
            u_t.desc());
  const std::int64_t Bsz = u_t.size(0);
  SSM_CHECK(state.shape() == Shape({Bsz, H, n}), op, "state must be (B, H, n) = (", Bsz, ", ", H,
            ", ", n, "), got ", state.desc());
  require_cpu(op, {&a, &C, &h0, &u_t, &state});
  const Tensor ac = a.contiguous(), Cm = C.contiguous(), hc = h0.contiguous();
  const Tensor uc = u_t.contiguous();
  Tensor y = Tensor::empty({Bsz, Cc, H}, a.dtype());  // (B, Cc, H)
  // The state is written in place through its own strides.
  const std::int64_t s0 = state.strides()[0], s1 = state.strides()[1], s2 = state.strides()[2];
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *pa = ac.data<T>(), *pC = Cm.data<T>(), *ph = hc.data<T>(), *pu = uc.data<T>();
    T* ps = state.data<T>();
    T* py = y.data<T>();
#pragma omp parallel for schedule(static) if (Bsz * H * n * (Cc + 1) > 65536)
    for (std::int64_t r = 0; r < Bsz * H; ++r) {
      const std::int64_t bi = r / H, h = r % H;
      T* x = ps + bi * s0 + h * s1;
      const T u = pu[r];
      for (std::int64_t c = 0; c < Cc; ++c) {
        const T* Cr = pC + (c * H + h) * n;
        T acc = ph[c * H + h] * u;
        for (std::int64_t j = 0; j < n; ++j) acc += Cr[j] * x[j * s2];
        py[(bi * Cc + c) * H + h] = acc;
      }
      T first = u;
      for (std::int64_t j = 0; j < n; ++j) first -= pa[h * n + j] * x[j * s2];
      for (std::int64_t j = n - 1; j >= 1; --j) x[j * s2] = x[(j - 1) * s2];
      x[0] = first;
    }
  });
  return y;
}

}  // namespace ssm::kernels
