// CPU FFT convolution: the long convolution of S4 (Gu, Goel & Re 2022,
// "Efficiently Modeling Long Sequences with Structured State Spaces",
// section 3: y = K * u + D u computed with FFTs), and its bidirectional form
// (the S4 repository's `bidirectional=True`: y = K_fwd * u + flip(K_bwd * flip(u))).
//
// One combined kernel row per (c, h). With n = fft_conv_size(L) >= 2L, the
// real row of length n
//   r[0] = k[0] + k_rev[0] + D,   r[s] = k[s],   r[n-s] = k_rev[s]   (0 < s < L),
//   r = 0 elsewhere (k_rev and D taken as 0 when undefined)
// turns the whole op into one circular convolution of length n: with u_pad
// = u zero-padded to n, y[t] = sum_j r[j] u_pad[(t - j) mod n] for t < L:
//   - j = s <= t gives the causal term k[s] u[t-s]; for s > t the index
//     t - s wraps to n + t - s >= n - L + 1 >= L, where u_pad is 0;
//   - j = n - s gives k_rev[s] u_pad[t + s] (t + s < n): the anti-causal term,
//     0 once t + s >= L;
//   - D sits at r[0]: D u[t].
// So y = irfft(rfft(r) rfft(u_pad), n)[:L]: one rfft per kernel row (not per
// batch element), one per u row and one irfft per output row, with the D
// term and the bidirectional term folded into the product. rfft(r) equals
// rfft(k) + conj(rfft(k_rev)) + D (../shared/SSM_MATH.md), in one transform.
//
// Backward, with g = grad_y zero-padded to n, G = rfft(g), R = rfft(r),
// U = rfft(u_pad) (the same no-wrap argument applies to each correlation):
//   grad_u     = irfft(sum_c G_c conj(R_c))[:L]   (the correlation of g with k,
//                the convolution with k_rev and D g, all at once)
//   grad_r[j]  = sum_{b, t} g[t] u_pad[(t - j) mod n] = irfft(sum_b G conj(U))[j]
//   grad_k[s]  = grad_r[s],  grad_k_rev[s] = grad_r[(n - s) mod n]
//   grad_D     = sum_{b, t} g u   (directly, in double)
// The spectra U and R are recomputed in backward rather than saved by
// forward: that is B H + C H rffts more, and saves the B H (n/2 + 1) complex
// values per layer that saving U would keep alive between forward and
// backward (16 MiB at B = 16, H = 128, L = 1024 in float32).
//
// Gradient rule: backward returns fresh gradient tensors (=); the tape does
// the accumulation. The sums over the batch (grad_k, grad_k_rev, grad_D) run
// in an order fixed by the shapes alone, so results do not depend on the
// thread count.
#include "kernels/fftconv.h"

#include <algorithm>
#include <complex>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/fft.h"
#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/fftconv.h"
#endif

namespace ssm::kernels {

namespace {

constexpr const char* kOp = "fft_conv";

// Below this much work (elements times FFT length) the loops run serially.
constexpr std::int64_t kParallelWork = std::int64_t{1} << 16;

struct Dims {
  std::int64_t B = 0, C = 0, H = 0, L = 0;
  std::int64_t n = 0;   // FFT length
  std::int64_t F = 0;   // spectrum length n / 2 + 1
  std::int64_t Fs = 0;  // spectrum stride: F rounded up to even, so that every
                        // spectrum in a buffer starts 16-byte aligned (FFTW's SIMD)
  bool empty() const { return B == 0 || C == 0 || H == 0 || L == 0; }
};

// Checks u (B, H, L), k (C, H, L), D (C, H) and k_rev (C, H, L): one dtype
// (float32 or float64), one device.
Dims check_inputs(const Tensor& u, const Tensor& k, const Tensor& D, const Tensor& k_rev) {
  SSM_CHECK(u.defined(), kOp, "u is undefined");
  SSM_CHECK(k.defined(), kOp, "k is undefined");
  SSM_CHECK(u.dtype() == DType::Float32 || u.dtype() == DType::Float64, kOp,
            "expected float32 or float64 tensors, got u ", u.desc());
  SSM_CHECK(u.dim() == 3, kOp, "u must be (B, H, L), got ", u.desc());
  check_same_device(kOp, u, k);
  check_same_dtype(kOp, u, k);
  Dims d;
  d.B = u.size(0);
  d.H = u.size(1);
  d.L = u.size(2);
  SSM_CHECK(k.dim() == 3 && k.size(1) == d.H && k.size(2) == d.L, kOp,
            "k must be (C, H, L) with (H, L) = (", d.H, ", ", d.L, ") of u ", u.desc(), ", got ",
            k.desc());
  d.C = k.size(0);
  if (D.defined()) {
    check_same_device(kOp, u, D);
    check_same_dtype(kOp, u, D);
    SSM_CHECK(D.shape() == Shape({d.C, d.H}), kOp, "D must be (C, H) = ", shape_str({d.C, d.H}),
              " for k ", k.desc(), ", got ", D.desc());
  }
  if (k_rev.defined()) {
    check_same_device(kOp, u, k_rev);
    check_same_dtype(kOp, u, k_rev);
    SSM_CHECK(k_rev.shape() == k.shape(), kOp, "k_rev must be k's shape ", shape_str(k.shape()),
              ", got ", k_rev.desc());
  }
  // FFTW takes int lengths; fft.h allows up to 2^30.
  SSM_CHECK(d.L <= (std::int64_t{1} << 29), kOp, "sequence length ", d.L, " is too long");
  if (d.L >= 1) {
    d.n = fft_conv_size(d.L);
    d.F = d.n / 2 + 1;
    d.Fs = (d.F + 1) / 2 * 2;
  }
  return d;
}

template <class T>
using Cpx = std::complex<T>;

template <class T>
Cpx<T>* as_cpx(T* p) {
  return reinterpret_cast<Cpx<T>*>(p);
}

// z = x y, or z (+)= x conj(y) with kConj (+= with kAccumulate), over F
// complex values stored as interleaved (re, im). Written out on reals: the
// std::complex operator* checks for NaN / infinity (Annex G) and does not
// vectorize.
template <bool kConj, bool kAccumulate, class T>
void complex_mul(const Cpx<T>* x, const Cpx<T>* y, Cpx<T>* z, std::int64_t F) {
  const T* __restrict a = reinterpret_cast<const T*>(x);
  const T* __restrict b = reinterpret_cast<const T*>(y);
  T* __restrict c = reinterpret_cast<T*>(z);
  for (std::int64_t f = 0; f < F; ++f) {
    const T ar = a[2 * f], ai = a[2 * f + 1];
    const T br = b[2 * f], bi = kConj ? -b[2 * f + 1] : b[2 * f + 1];
    const T re = ar * br - ai * bi, im = ar * bi + ai * br;
    if constexpr (kAccumulate) {
      c[2 * f] += re;
      c[2 * f + 1] += im;
    } else {
      c[2 * f] = re;
      c[2 * f + 1] = im;
    }
  }
}

// The combined kernel row r of length n (see the top of the file) from one
// (c, h) row: k (L), k_rev (L) or null, d = D[c, h] (0 when undefined).
template <class T>
void combined_kernel_row(const T* k, const T* k_rev, T d, std::int64_t L, std::int64_t n, T* r) {
  std::copy(k, k + L, r);
  std::fill(r + L, r + n, T(0));
  r[0] += d;
  if (k_rev) {
    r[0] += k_rev[0];
    for (std::int64_t s = 1; s < L; ++s) r[n - s] = k_rev[s];  // n - s >= L + 1
  }
}

// R[c, h] = rfft(r[c, h]) for every (c, h): a (C, H, Fs) complex buffer.
// k, D, k_rev contiguous (D and k_rev may be undefined).
template <class T>
Tensor kernel_spectra(const Dims& d, const Tensor& k, const Tensor& D, const Tensor& k_rev) {
  const DType dtype = k.dtype();
  const std::int64_t rows = d.C * d.H;
  Tensor R = Tensor::empty({rows * d.Fs * 2}, dtype);  // (C, H, Fs) complex
  const T* pk = k.data<T>();
  const T* pD = D.defined() ? D.data<T>() : nullptr;
  const T* pkr = k_rev.defined() ? k_rev.data<T>() : nullptr;
  Cpx<T>* pR = as_cpx(R.data<T>());
#pragma omp parallel if (rows > 1 && rows * d.n > kParallelWork)
  {
    const Tensor scratch = Tensor::empty({d.n}, dtype);  // r (n)
    T* r = scratch.data<T>();
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < rows; ++i) {
      combined_kernel_row(pk + i * d.L, pkr ? pkr + i * d.L : nullptr, pD ? pD[i] : T(0), d.L, d.n,
                          r);
      fft::rfft(r, pR + i * d.Fs, d.n);
    }
  }
  return R;
}

// The batch is cut into groups of consecutive elements so that (group, h)
// gives enough parallel tasks when H is small; the count depends on the
// shapes only, never on the thread count.
struct BatchGroups {
  std::int64_t count = 1, size = 1;
};
BatchGroups batch_groups(std::int64_t B, std::int64_t H) {
  constexpr std::int64_t kTasks = 64;
  BatchGroups g;
  const std::int64_t want = H >= kTasks ? 1 : std::min(B, (kTasks + H - 1) / H);
  g.size = (B + want - 1) / want;
  g.count = (B + g.size - 1) / g.size;
  return g;
}

}  // namespace

std::int64_t fft_conv_size(std::int64_t L) {
  SSM_CHECK(L >= 1, kOp, "sequence length must be >= 1, got ", L);
  return fft::next_pow2(2 * L);
}

// ---------------------------------------------------------------- forward

// y[b, c, h, :] = irfft(R[c, h] rfft(u_pad[b, h]), n)[:L], R = rfft(r) of the
// combined kernel row r = k + D delta + circularly reversed k_rev.
Tensor fft_conv_forward(const Tensor& u, const Tensor& k, const Tensor& D, const Tensor& k_rev) {
  // (An undefined u falls through to the checks below, which name the op.)
  if (u.defined()) SSM_CUDA_DISPATCH(u, cuda::fft_conv_forward(u, k, D, k_rev));
  const Dims d = check_inputs(u, k, D, k_rev);
  require_cpu(kOp, {&u, &k, &D, &k_rev});
  if (d.empty()) return Tensor::zeros({d.B, d.C, d.H, d.L}, u.dtype(), u.device());
  const Tensor uc = u.contiguous();                                       // (B, H, L)
  const Tensor kc = k.contiguous();                                       // (C, H, L)
  const Tensor Dc = D.defined() ? D.contiguous() : D;                     // (C, H)
  const Tensor krc = k_rev.defined() ? k_rev.contiguous() : k_rev;        // (C, H, L)
  Tensor y = Tensor::empty({d.B, d.C, d.H, d.L}, u.dtype(), u.device());  // (B, C, H, L)
  dispatch_float(u.dtype(), kOp, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Tensor R = kernel_spectra<T>(d, kc, Dc, krc);  // (C, H, Fs) complex
    const Cpx<T>* pR = as_cpx(R.data<T>());
    const T* pu = uc.data<T>();
    T* py = y.data<T>();
    const std::int64_t rows = d.B * d.H, L = d.L, n = d.n;
#pragma omp parallel if (rows > 1 && rows * d.C * n > kParallelWork)
    {
      // pad (n), out (n), U (Fs complex), Y (Fs complex); one per thread
      const Tensor scratch = Tensor::empty({2 * n + 4 * d.Fs}, u.dtype());
      T* pad = scratch.data<T>();
      T* out = pad + n;
      Cpx<T>* U = as_cpx(out + n);
      Cpx<T>* Y = U + d.Fs;
      std::fill(pad + L, pad + n, T(0));  // the zero padding; only [0, L) is rewritten
#pragma omp for schedule(static)
      for (std::int64_t row = 0; row < rows; ++row) {
        const std::int64_t b = row / d.H, h = row % d.H;
        std::copy(pu + row * L, pu + (row + 1) * L, pad);
        fft::rfft(pad, U, n);
        for (std::int64_t c = 0; c < d.C; ++c) {
          complex_mul<false, false>(U, pR + (c * d.H + h) * d.Fs, Y, d.F);
          fft::irfft(Y, out, n);
          std::copy(out, out + L, py + ((b * d.C + c) * d.H + h) * L);
        }
      }
    }
  });
  return y;
}

// ---------------------------------------------------------------- backward

// grad_u[b, h] = irfft(sum_c G[b, c, h] conj(R[c, h]))[:L];
// grad_r[c, h] = irfft(sum_b G[b, c, h] conj(U[b, h])), grad_k[s] = grad_r[s],
// grad_k_rev[s] = grad_r[(n - s) mod n]; grad_D[c, h] = sum_{b, t} g u.
FftConvGrads fft_conv_backward(const Tensor& grad_y, const Tensor& u, const Tensor& k,
                               const Tensor& D, const Tensor& k_rev, bool need_u, bool need_k,
                               bool need_D, bool need_k_rev) {
  // (An undefined u falls through to the checks below, which name the op.)
  if (u.defined())
    SSM_CUDA_DISPATCH(
        u, cuda::fft_conv_backward(grad_y, u, k, D, k_rev, need_u, need_k, need_D, need_k_rev));
  const Dims d = check_inputs(u, k, D, k_rev);
  SSM_CHECK(grad_y.defined(), kOp, "grad_y is undefined");
  check_same_device(kOp, u, grad_y);
  check_same_dtype(kOp, u, grad_y);
  SSM_CHECK(grad_y.shape() == Shape({d.B, d.C, d.H, d.L}), kOp,
            "grad_y must be (B, C, H, L) = ", shape_str({d.B, d.C, d.H, d.L}), " for u ", u.desc(),
            " and k ", k.desc(), ", got ", grad_y.desc());
  SSM_CHECK(!need_D || D.defined(), kOp, "the gradient of D was requested but D is undefined");
  SSM_CHECK(!need_k_rev || k_rev.defined(), kOp,
            "the gradient of k_rev was requested but k_rev is undefined");
  require_cpu(kOp, {&grad_y, &u, &k, &D, &k_rev});

  FftConvGrads out;
  const auto make = [&](bool need, const Tensor& like) {
    if (!need) return Tensor();
    return d.empty() ? Tensor::zeros(like.shape(), like.dtype(), like.device())
                     : Tensor::empty(like.shape(), like.dtype(), like.device());
  };
  out.u = make(need_u, u);
  out.k = make(need_k, k);
  out.D = make(need_D, D);
  out.k_rev = make(need_k_rev, k_rev);
  const bool need_r = need_k || need_k_rev;
  if (d.empty() || (!need_u && !need_r && !need_D)) return out;

  const Tensor gc = grad_y.contiguous();                           // (B, C, H, L)
  const Tensor uc = need_r || need_D ? u.contiguous() : Tensor();  // (B, H, L)
  dispatch_float(u.dtype(), kOp, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const std::int64_t B = d.B, C = d.C, H = d.H, L = d.L, n = d.n, Fs = d.Fs;
    const T* pg = gc.data<T>();
    const T* pu = uc.defined() ? uc.data<T>() : nullptr;

    if (need_D) {
      T* gD = out.D.data<T>();
#pragma omp parallel for schedule(static) if (B * C * H * L > kParallelWork)
      for (std::int64_t i = 0; i < C * H; ++i) {
        const std::int64_t c = i / H, h = i % H;
        double acc = 0.0;
        for (std::int64_t b = 0; b < B; ++b) {
          const T* g = pg + ((b * C + c) * H + h) * L;
          const T* x = pu + (b * H + h) * L;
          for (std::int64_t t = 0; t < L; ++t) acc += double(g[t]) * double(x[t]);
        }
        gD[i] = static_cast<T>(acc);
      }
    }
    if (!need_u && !need_r) return;

    Tensor R;  // (C, H, Fs) complex
    if (need_u) {
      R = kernel_spectra<T>(d, k.contiguous(), D.defined() ? D.contiguous() : D,
                            k_rev.defined() ? k_rev.contiguous() : k_rev);
    }
    const Cpx<T>* pR = need_u ? as_cpx(R.data<T>()) : nullptr;
    const BatchGroups groups = batch_groups(B, H);
    // P[group, c, h] = sum over the group's b, in order, of G[b, c, h] conj(U[b, h])
    Tensor P = need_r ? Tensor::empty({groups.count * C * H * Fs * 2}, u.dtype()) : Tensor();
    Cpx<T>* pP = need_r ? as_cpx(P.data<T>()) : nullptr;
    T* gu = need_u ? out.u.data<T>() : nullptr;
    const std::int64_t tasks = groups.count * H;
#pragma omp parallel if (tasks > 1 && B * C * H * n > kParallelWork)
    {
      // pad (n), out (n), U, G, A (Fs complex each); one per thread
      const Tensor scratch = Tensor::empty({2 * n + 6 * Fs}, u.dtype());
      T* pad = scratch.data<T>();
      T* res = pad + n;
      Cpx<T>* U = as_cpx(res + n);
      Cpx<T>* G = U + Fs;
      Cpx<T>* A = G + Fs;
      std::fill(pad + L, pad + n, T(0));  // the zero padding; only [0, L) is rewritten
#pragma omp for schedule(static)
      for (std::int64_t task = 0; task < tasks; ++task) {
        const std::int64_t grp = task / H, h = task % H;
        const std::int64_t b0 = grp * groups.size, b1 = std::min(B, b0 + groups.size);
        for (std::int64_t b = b0; b < b1; ++b) {
          if (need_r) {
            std::copy(pu + (b * H + h) * L, pu + (b * H + h + 1) * L, pad);
            fft::rfft(pad, U, n);
          }
          for (std::int64_t c = 0; c < C; ++c) {
            const T* g = pg + ((b * C + c) * H + h) * L;
            std::copy(g, g + L, pad);
            fft::rfft(pad, G, n);
            if (need_r) {
              Cpx<T>* Pi = pP + ((grp * C + c) * H + h) * Fs;
              if (b == b0) {
                complex_mul<true, false>(G, U, Pi, d.F);
              } else {
                complex_mul<true, true>(G, U, Pi, d.F);
              }
            }
            if (need_u) {
              const Cpx<T>* Ri = pR + (c * H + h) * Fs;
              if (c == 0) {
                complex_mul<true, false>(G, Ri, A, d.F);
              } else {
                complex_mul<true, true>(G, Ri, A, d.F);
              }
            }
          }
          if (need_u) {
            fft::irfft(A, res, n);
            std::copy(res, res + L, gu + (b * H + h) * L);
          }
        }
      }
    }
    if (!need_r) return;

    // grad_r[c, h] = irfft(sum over groups, in order, of P[group, c, h]).
    T* gk = need_k ? out.k.data<T>() : nullptr;
    T* gkr = need_k_rev ? out.k_rev.data<T>() : nullptr;
    const std::int64_t rows = C * H;
#pragma omp parallel if (rows > 1 && rows * n > kParallelWork)
    {
      // S (Fs complex), res (n); one per thread
      const Tensor scratch = Tensor::empty({2 * Fs + n}, u.dtype());
      Cpx<T>* S = as_cpx(scratch.data<T>());
      T* res = scratch.data<T>() + 2 * Fs;
#pragma omp for schedule(static)
      for (std::int64_t i = 0; i < rows; ++i) {
        const Cpx<T>* spectrum = pP + i * Fs;
        if (groups.count > 1) {
          T* s = reinterpret_cast<T*>(S);
          std::copy(reinterpret_cast<const T*>(spectrum),
                    reinterpret_cast<const T*>(spectrum) + 2 * d.F, s);
          for (std::int64_t grp = 1; grp < groups.count; ++grp) {
            const T* p = reinterpret_cast<const T*>(pP + (grp * rows + i) * Fs);
            for (std::int64_t f = 0; f < 2 * d.F; ++f) s[f] += p[f];
          }
          spectrum = S;
        }
        fft::irfft(spectrum, res, n);
        if (gk) std::copy(res, res + L, gk + i * L);
        if (gkr) {
          gkr[i * L] = res[0];
          for (std::int64_t s = 1; s < L; ++s) gkr[i * L + s] = res[n - s];
        }
      }
    }
  });
  return out;
}

}  // namespace ssm::kernels
