// CUDA FFT convolution, float32, with the semantics, argument checks and
// operation order of kernels/cpu/fftconv.cpp (the oracle; see its header for
// the math): one combined kernel row per (c, h),
//   r[0] = k[0] + D + k_rev[0],  r[s] = k[s],  r[n - s] = k_rev[s]  (0 < s < L),
// so that y = irfft(rfft(r) rfft(u_pad), n)[:L] holds the causal term, the
// bidirectional term and the skip D u in one circular convolution of length
// n = fft_conv_size(L) >= 2L. The D skip is thus fused into the pointwise
// complex product, as on the CPU.
//
// Transforms: cuFFT real-to-complex / complex-to-real plans of length n,
// batched over contiguous rows (fft_r2c / fft_c2r below), cached per
// (device, kind, n, rows) under a mutex, their work areas taken from the
// caching allocator at each call, all on the legacy default stream. cuFFT's
// inverse is unnormalised; the 1/n of fft::irfft is applied when the result
// is cropped to L (the same multiplication by 1.0f / n as the CPU's).
//
// Forward, per chunk of batch elements (the chunk bounds the scratch memory):
//   pad u rows to n, U = rfft (bc H rows), Y[b, c, h] = U[b, h] R[c, h]
//   (one thread per complex value), irfft (bc C H rows), crop and scale.
// Backward, per chunk:
//   G = rfft(g_pad) (bc C H rows);
//   grad_u: A[b, h] = sum_c G[b, c, h] conj(R[c, h]) (c in order, one thread
//           per (b, h, f)), irfft, crop and scale;
//   grad_r: P[c, h] (+)= G[b, c, h] conj(U[b, h]), one thread per (c, h, f)
//           adding the chunk's b in order onto P (written by b = 0): the sum
//           over the batch runs b = 0, 1, ..., B - 1 whatever the chunking.
//   then irfft(P) (C H rows) gives grad_k[s] = grad_r[s] and
//   grad_k_rev[s] = grad_r[(n - s) mod n].
//   grad_D[c, h] = sum_{b, t} g u in double: one block per (c, h), each
//   thread its strided t for b in order, then block_sum (a fixed order).
// No atomics: results repeat bit for bit (cuFFT's plans are deterministic).
// The batch sums run in another order than the CPU's batch groups, and cuFFT
// rounds differently from FFTW: CUDA and CPU agree to float rounding.
#include <cufft.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fftconv.h"

namespace ssm::kernels::cuda {

namespace {

using std::int64_t;

constexpr const char* kOp = "fft_conv";

// Scratch budget of one batch chunk, in floats (256 MiB).
constexpr int64_t kChunkFloats = int64_t{1} << 26;

const char* cufft_result_name(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "unknown cuFFT result";
  }
}

#define SSM_CUFFT_CHECK(stmt)                                                   \
  do {                                                                          \
    const cufftResult ssm_fr_ = (stmt);                                         \
    if (ssm_fr_ != CUFFT_SUCCESS) {                                             \
      ::ssm::fail("cufft", #stmt, " failed at ", __FILE__, ":", __LINE__, ": ", \
                  cufft_result_name(ssm_fr_));                                  \
    }                                                                           \
  } while (0)

// ---------------------------------------------------------------- plan cache

struct Plan {
  cufftHandle handle = 0;
  std::size_t work_bytes = 0;
};

using PlanKey = std::tuple<int, int, int64_t, int64_t>;  // (device, type, n, rows)

// Runs one batched transform with the cached plan for (device, type, n, rows).
// Plans are never destroyed (a few per shape); the mutex also covers setting
// the work area and the (asynchronous) launch, so that two threads never
// share a plan's work area.
void run_plan(cufftType type, const void* in, void* out, int64_t n, int64_t rows, Device dev) {
  SSM_CHECK(n >= 1 && rows >= 1, "fft", "transform of ", rows, " rows of length ", n);
  static std::mutex mutex;
  static auto* plans = new std::map<PlanKey, Plan>();  // never freed
  std::lock_guard<std::mutex> lock(mutex);
  SSM_CUDA_CHECK(cudaSetDevice(dev.index));
  const PlanKey key{dev.index, static_cast<int>(type), n, rows};
  auto it = plans->find(key);
  if (it == plans->end()) {
    Plan p;
    SSM_CUFFT_CHECK(cufftCreate(&p.handle));
    SSM_CUFFT_CHECK(cufftSetAutoAllocation(p.handle, 0));
    long long len = n, complex_len = n / 2 + 1;
    long long real_embed = n, complex_embed = complex_len;
    const bool r2c = type == CUFFT_R2C;
    // Rows are contiguous: the real rows n apart, the spectra n / 2 + 1 apart.
    SSM_CUFFT_CHECK(cufftMakePlanMany64(p.handle, 1, &len, r2c ? &real_embed : &complex_embed, 1,
                                        r2c ? len : complex_len, r2c ? &complex_embed : &real_embed,
                                        1, r2c ? complex_len : len, type, rows, &p.work_bytes));
    SSM_CUFFT_CHECK(cufftSetStream(p.handle, nullptr));
    it = plans->emplace(key, p).first;
  }
  const Plan& p = it->second;
  Tensor work;
  if (p.work_bytes > 0) {
    const int64_t words = static_cast<int64_t>((p.work_bytes + sizeof(float) - 1) / sizeof(float));
    work = Tensor::empty({words}, DType::Float32, dev);  // cuFFT's work area
    SSM_CUFFT_CHECK(cufftSetWorkArea(p.handle, work.data<float>()));
  }
  if (type == CUFFT_R2C) {
    SSM_CUFFT_CHECK(cufftExecR2C(p.handle, static_cast<cufftReal*>(const_cast<void*>(in)),
                                 static_cast<cufftComplex*>(out)));
  } else {
    SSM_CUFFT_CHECK(cufftExecC2R(p.handle, static_cast<cufftComplex*>(const_cast<void*>(in)),
                                 static_cast<cufftReal*>(out)));
  }
  // `work` goes back to the caching allocator: it is handed out again only to
  // work issued later on the same (default) stream.
}

// ---------------------------------------------------------------- shapes

struct Dims {
  int64_t B = 0, C = 0, H = 0, L = 0;
  int64_t n = 0;  // FFT length
  int64_t F = 0;  // spectrum length n / 2 + 1
  bool empty() const { return B == 0 || C == 0 || H == 0 || L == 0; }
};

// The CPU's checks (same messages), then float32 on one CUDA device.
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
  SSM_CHECK(d.L <= (int64_t{1} << 29), kOp, "sequence length ", d.L, " is too long");
  require_cuda_float32(kOp, {&u, &k, &D, &k_rev});
  if (d.L >= 1) {
    d.n = fft_conv_size(d.L);
    d.F = d.n / 2 + 1;
  }
  return d;
}

// Batch elements per chunk: the chunk's scratch (about `per_b` floats per
// batch element) within kChunkFloats; at least 1.
int64_t batch_chunk(int64_t B, int64_t per_b) {
  return std::max<int64_t>(1, std::min<int64_t>(B, kChunkFloats / std::max<int64_t>(1, per_b)));
}

// ---------------------------------------------------------------- kernels

// r (rows, n): the combined kernel rows (combined_kernel_row of the CPU):
// k (rows, L), k_rev (rows, L) or null, D (rows) or null.
__global__ void combined_rows_kernel(const float* __restrict__ k, const float* __restrict__ k_rev,
                                     const float* __restrict__ D, int64_t rows, int64_t L,
                                     int64_t n, float* __restrict__ r) {
  const int64_t total = rows * n;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t i = idx / n, j = idx % n;
    float v = 0.0f;
    if (j < L) v = k[i * L + j];
    if (j == 0) {
      if (D) v += D[i];
      if (k_rev) v += k_rev[i * L];
    } else if (k_rev && j > n - L) {
      v = k_rev[i * L + (n - j)];  // s = n - j in [1, L - 1]; j >= n - L + 1 >= L + 1
    }
    r[idx] = v;
  }
}

// out (rows, n) = x (rows, L) zero-padded to n.
__global__ void pad_rows_kernel(const float* __restrict__ x, int64_t rows, int64_t L, int64_t n,
                                float* __restrict__ out) {
  const int64_t total = rows * n;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t i = idx / n, j = idx % n;
    out[idx] = j < L ? x[i * L + j] : 0.0f;
  }
}

// y (rows, L) = x[:, :L] * scale for x (rows, n).
__global__ void crop_scale_kernel(const float* __restrict__ x, int64_t rows, int64_t L, int64_t n,
                                  float scale, float* __restrict__ y) {
  const int64_t total = rows * L;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t i = idx / L, t = idx % L;
    y[idx] = x[i * n + t] * scale;
  }
}

// Y[b, c, h] = U[b, h] R[c, h] over the chunk's bc batch elements: U (bc, H, F),
// R (C, H, F), Y (bc, C, H, F) complex (complex_mul<false, false> of the CPU).
__global__ void product_kernel(const float2* __restrict__ U, const float2* __restrict__ R,
                               int64_t bc, int64_t C, int64_t H, int64_t F,
                               float2* __restrict__ Y) {
  const int64_t total = bc * C * H * F;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t f = idx % F, h = (idx / F) % H, c = (idx / (F * H)) % C, b = idx / (F * H * C);
    const float2 a = U[(b * H + h) * F + f], r = R[(c * H + h) * F + f];
    const float re = a.x * r.x - a.y * r.y, im = a.x * r.y + a.y * r.x;
    Y[idx] = make_float2(re, im);
  }
}

// A[b, h] = sum_c G[b, c, h] conj(R[c, h]), c in order: G (bc, C, H, F),
// R (C, H, F), A (bc, H, F) (complex_mul<true, c > 0> of the CPU).
__global__ void grad_u_spectrum_kernel(const float2* __restrict__ G, const float2* __restrict__ R,
                                       int64_t bc, int64_t C, int64_t H, int64_t F,
                                       float2* __restrict__ A) {
  const int64_t total = bc * H * F;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t f = idx % F, h = (idx / F) % H, b = idx / (F * H);
    float re = 0.0f, im = 0.0f;
    for (int64_t c = 0; c < C; ++c) {
      const float2 a = G[((b * C + c) * H + h) * F + f], r = R[(c * H + h) * F + f];
      const float br = r.x, bi = -r.y;
      const float pr = a.x * br - a.y * bi, pi = a.x * bi + a.y * br;
      if (c == 0) {
        re = pr;
        im = pi;
      } else {
        re += pr;
        im += pi;
      }
    }
    A[idx] = make_float2(re, im);
  }
}

// P[c, h] (+)= sum over the chunk's b, in order, of G[b, c, h] conj(U[b, h]):
// G (bc, C, H, F), U (bc, H, F), P (C, H, F); `first`: the chunk starts at b = 0
// (P is written, not added to, by its first element).
__global__ void grad_r_spectrum_kernel(const float2* __restrict__ G, const float2* __restrict__ U,
                                       int64_t bc, int64_t C, int64_t H, int64_t F, bool first,
                                       float2* __restrict__ P) {
  const int64_t total = C * H * F;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t f = idx % F, h = (idx / F) % H, c = idx / (F * H);
    float2 acc = first ? make_float2(0.0f, 0.0f) : P[idx];
    for (int64_t b = 0; b < bc; ++b) {
      const float2 a = G[((b * C + c) * H + h) * F + f], x = U[(b * H + h) * F + f];
      const float br = x.x, bi = -x.y;
      const float pr = a.x * br - a.y * bi, pi = a.x * bi + a.y * br;
      if (first && b == 0) {
        acc = make_float2(pr, pi);
      } else {
        acc.x += pr;
        acc.y += pi;
      }
    }
    P[idx] = acc;
  }
}

// grad_k[i, s] = res[i, s] scale, grad_k_rev[i, 0] = res[i, 0] scale,
// grad_k_rev[i, s] = res[i, n - s] scale: res (rows, n), gk / gkr (rows, L) or null.
__global__ void kernel_grads_kernel(const float* __restrict__ res, int64_t rows, int64_t L,
                                    int64_t n, float scale, float* __restrict__ gk,
                                    float* __restrict__ gkr) {
  const int64_t total = rows * L;
  for (int64_t idx = thread_index(); idx < total; idx += thread_count()) {
    const int64_t i = idx / L, s = idx % L;
    if (gk) gk[idx] = res[i * n + s] * scale;
    if (gkr) gkr[idx] = res[i * n + (s == 0 ? 0 : n - s)] * scale;
  }
}

// grad_D[c, h] = sum_{b, t} g[b, c, h, t] u[b, h, t] in double: one block per
// (c, h) (grid-stride over rows, uniform per block), each thread its t = lane,
// lane + blockDim, ... for b in order, then block_sum.
__global__ void grad_D_kernel(const float* __restrict__ g, const float* __restrict__ u, int64_t B,
                              int64_t C, int64_t H, int64_t L, float* __restrict__ gD) {
  __shared__ double shared[32];
  for (int64_t i = blockIdx.x; i < C * H; i += gridDim.x) {
    const int64_t c = i / H, h = i % H;
    double acc = 0.0;
    for (int64_t b = 0; b < B; ++b) {
      const float* gr = g + ((b * C + c) * H + h) * L;
      const float* xr = u + (b * H + h) * L;
      for (int64_t t = threadIdx.x; t < L; t += blockDim.x) acc += double(gr[t]) * double(xr[t]);
    }
    acc = block_sum(acc, shared);
    if (threadIdx.x == 0) gD[i] = static_cast<float>(acc);
  }
}

const float* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

float2* as_float2(const Tensor& t) { return reinterpret_cast<float2*>(t.data<float>()); }

// R (C H rows of F complex) = rfft of the combined kernel rows.
Tensor kernel_spectra(const Dims& d, const Tensor& k, const Tensor& D, const Tensor& k_rev,
                      Device dev) {
  const int64_t rows = d.C * d.H;
  const Tensor kc = k.contiguous();                                  // (C, H, L)
  const Tensor Dc = contiguous_if_defined(D);                        // (C, H)
  const Tensor krc = contiguous_if_defined(k_rev);                   // (C, H, L)
  const Tensor r = Tensor::empty({rows, d.n}, DType::Float32, dev);  // (C, H, n)
  combined_rows_kernel<<<blocks_for(rows * d.n), kThreads>>>(
      kc.data<float>(), ptr_or_null(krc), ptr_or_null(Dc), rows, d.L, d.n, r.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  Tensor R = Tensor::empty({rows, d.F, 2}, DType::Float32, dev);  // (C, H, F) complex
  fft_r2c(r.data<float>(), R.data<float>(), d.n, rows, dev);
  return R;
}

}  // namespace

void fft_r2c(const float* x, float* X, int64_t n, int64_t rows, Device dev) {
  run_plan(CUFFT_R2C, x, X, n, rows, dev);
}

void fft_c2r(float* X, float* x, int64_t n, int64_t rows, Device dev) {
  run_plan(CUFFT_C2R, X, x, n, rows, dev);
}

// ---------------------------------------------------------------- forward

Tensor fft_conv_forward(const Tensor& u, const Tensor& k, const Tensor& D, const Tensor& k_rev) {
  const Dims d = check_inputs(u, k, D, k_rev);
  const Device dev = u.device();
  if (d.empty()) return Tensor::zeros({d.B, d.C, d.H, d.L}, DType::Float32, dev);
  const int64_t B = d.B, C = d.C, H = d.H, L = d.L, n = d.n, F = d.F;
  Tensor y = Tensor::empty({B, C, H, L}, DType::Float32, dev);  // (B, C, H, L)
  const Tensor R = kernel_spectra(d, k, D, k_rev, dev);         // (C, H, F) complex
  const Tensor uc = u.contiguous();                             // (B, H, L)
  // Per batch element: u_pad (H n), U (H 2F), Y (C H 2F), out (C H n).
  const int64_t bchunk = batch_chunk(B, H * (n + 2 * F) + C * H * (2 * F + n));
  const float scale = 1.0f / static_cast<float>(n);
  for (int64_t b0 = 0; b0 < B; b0 += bchunk) {
    const int64_t bc = std::min(bchunk, B - b0);
    const Tensor pad = Tensor::empty({bc * H, n}, DType::Float32, dev);   // (bc, H, n)
    const Tensor U = Tensor::empty({bc * H, F, 2}, DType::Float32, dev);  // (bc, H, F) complex
    const Tensor Y =
        Tensor::empty({bc * C * H, F, 2}, DType::Float32, dev);  // (bc, C, H, F) complex
    const Tensor out = Tensor::empty({bc * C * H, n}, DType::Float32, dev);  // (bc, C, H, n)
    pad_rows_kernel<<<blocks_for(bc * H * n), kThreads>>>(uc.data<float>() + b0 * H * L, bc * H, L,
                                                          n, pad.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
    fft_r2c(pad.data<float>(), U.data<float>(), n, bc * H, dev);
    product_kernel<<<blocks_for(bc * C * H * F), kThreads>>>(as_float2(U), as_float2(R), bc, C, H,
                                                             F, as_float2(Y));
    SSM_CUDA_CHECK_LAUNCH();
    fft_c2r(Y.data<float>(), out.data<float>(), n, bc * C * H, dev);
    crop_scale_kernel<<<blocks_for(bc * C * H * L), kThreads>>>(
        out.data<float>(), bc * C * H, L, n, scale, y.data<float>() + b0 * C * H * L);
    SSM_CUDA_CHECK_LAUNCH();
  }
  return y;
}

// ---------------------------------------------------------------- backward

FftConvGrads fft_conv_backward(const Tensor& grad_y, const Tensor& u, const Tensor& k,
                               const Tensor& D, const Tensor& k_rev, bool need_u, bool need_k,
                               bool need_D, bool need_k_rev) {
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
  require_cuda_float32(kOp, {&grad_y, &u, &k, &D, &k_rev});
  const Device dev = u.device();

  FftConvGrads out;
  const auto make = [&](bool need, const Tensor& like) {
    if (!need) return Tensor();
    return d.empty() ? Tensor::zeros(like.shape(), DType::Float32, dev)
                     : Tensor::empty(like.shape(), DType::Float32, dev);
  };
  out.u = make(need_u, u);
  out.k = make(need_k, k);
  out.D = make(need_D, D);
  out.k_rev = make(need_k_rev, k_rev);
  const bool need_r = need_k || need_k_rev;
  if (d.empty() || (!need_u && !need_r && !need_D)) return out;

  const int64_t B = d.B, C = d.C, H = d.H, L = d.L, n = d.n, F = d.F;
  const Tensor gc = grad_y.contiguous();                           // (B, C, H, L)
  const Tensor uc = need_r || need_D ? u.contiguous() : Tensor();  // (B, H, L)
  const float scale = 1.0f / static_cast<float>(n);

  if (need_D) {
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(C * H, 65535 * 8));
    grad_D_kernel<<<blocks, kThreads>>>(gc.data<float>(), uc.data<float>(), B, C, H, L,
                                        out.D.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (!need_u && !need_r) return out;

  Tensor R;  // (C, H, F) complex
  if (need_u) R = kernel_spectra(d, k, D, k_rev, dev);
  Tensor P;  // (C, H, F) complex: sum_b G conj(U)
  if (need_r) P = Tensor::empty({C * H, F, 2}, DType::Float32, dev);

  // Per batch element: g_pad (C H n), G (C H 2F), U and u_pad (H (2F + n)), A and res (H (2F + n)).
  const int64_t bchunk = batch_chunk(B, C * H * (n + 2 * F) + 2 * H * (2 * F + n));
  for (int64_t b0 = 0; b0 < B; b0 += bchunk) {
    const int64_t bc = std::min(bchunk, B - b0);
    const Tensor gpad = Tensor::empty({bc * C * H, n}, DType::Float32, dev);  // (bc, C, H, n)
    const Tensor G =
        Tensor::empty({bc * C * H, F, 2}, DType::Float32, dev);  // (bc, C, H, F) complex
    pad_rows_kernel<<<blocks_for(bc * C * H * n), kThreads>>>(gc.data<float>() + b0 * C * H * L,
                                                              bc * C * H, L, n, gpad.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
    fft_r2c(gpad.data<float>(), G.data<float>(), n, bc * C * H, dev);
    if (need_r) {
      const Tensor upad = Tensor::empty({bc * H, n}, DType::Float32, dev);  // (bc, H, n)
      const Tensor U = Tensor::empty({bc * H, F, 2}, DType::Float32, dev);  // (bc, H, F) complex
      pad_rows_kernel<<<blocks_for(bc * H * n), kThreads>>>(uc.data<float>() + b0 * H * L, bc * H,
                                                            L, n, upad.data<float>());
      SSM_CUDA_CHECK_LAUNCH();
      fft_r2c(upad.data<float>(), U.data<float>(), n, bc * H, dev);
      grad_r_spectrum_kernel<<<blocks_for(C * H * F), kThreads>>>(as_float2(G), as_float2(U), bc, C,
                                                                  H, F, b0 == 0, as_float2(P));
      SSM_CUDA_CHECK_LAUNCH();
    }
    if (need_u) {
      const Tensor A = Tensor::empty({bc * H, F, 2}, DType::Float32, dev);  // (bc, H, F) complex
      const Tensor res = Tensor::empty({bc * H, n}, DType::Float32, dev);   // (bc, H, n)
      grad_u_spectrum_kernel<<<blocks_for(bc * H * F), kThreads>>>(as_float2(G), as_float2(R), bc,
                                                                   C, H, F, as_float2(A));
      SSM_CUDA_CHECK_LAUNCH();
      fft_c2r(A.data<float>(), res.data<float>(), n, bc * H, dev);
      crop_scale_kernel<<<blocks_for(bc * H * L), kThreads>>>(
          res.data<float>(), bc * H, L, n, scale, out.u.data<float>() + b0 * H * L);
      SSM_CUDA_CHECK_LAUNCH();
    }
  }
  if (!need_r) return out;

  const Tensor res = Tensor::empty({C * H, n}, DType::Float32, dev);  // (C, H, n)
  fft_c2r(P.data<float>(), res.data<float>(), n, C * H, dev);
  kernel_grads_kernel<<<blocks_for(C * H * L), kThreads>>>(
      res.data<float>(), C * H, L, n, scale, need_k ? out.k.data<float>() : nullptr,
      need_k_rev ? out.k_rev.data<float>() : nullptr);
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

}  // namespace ssm::kernels::cuda
