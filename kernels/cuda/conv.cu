// CUDA convolution kernels: causal depthwise conv1d with fused bias and SiLU
// (and its one-step update), conv2d by im2col + cuBLAS, GLU. float32; the
// semantics, checks and messages are kernels/cpu/conv.cpp's (the oracle).
//
// Inputs may be any view: the direct kernels read x, weight, bias and grad
// through their strides; cuBLAS gets contiguous operands (a strided copy
// kernel makes them when needed, never a copy staged through the host).
//
// Determinism, no atomics: every output element is computed by one thread in
// a fixed order. Parameter gradients are reduced in two passes: per-row
// (causal_conv1d: per (b, d) row; conv2d: per image) partials, each summed by
// one block in a fixed tree (block_sum) or by one cuBLAS GEMM, then an ordered
// pass over the batch. Sums of the causal conv run in double, as on the CPU.
#include <algorithm>
#include <climits>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv.h"

namespace ssm::kernels::cuda {

namespace {

__device__ inline std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_threads() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

// Blocks for a kernel that gives one block to each of n rows (grid-stride past the cap).
unsigned row_blocks(std::int64_t n) {
  return static_cast<unsigned>(std::clamp<std::int64_t>(n, 1, 65535 * 8));
}

// 1 / (1 + e^-z), without overflow for large |z|.
__device__ inline float sigmoid(float z) {
  if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
  const float e = expf(z);
  return e / (1.0f + e);
}

// d silu(z) / dz = s (1 + z (1 - s)), s = sigmoid(z).
__device__ inline float silu_grad(float z) {
  const float s = sigmoid(z);
  return s * (1.0f + z * (1.0f - s));
}

// t itself when contiguous, else a contiguous copy on its device.
Tensor contiguous_f32(const Tensor& t, const char* /*op*/) { return t.contiguous(); }

// ------------------------------------------------------------ causal_conv1d

// Checks weight ((D, K) or (D, 1, K), K >= 1) and bias ((D) or undefined)
// against the D channels of x (the CPU's depthwise_weight, messages
// included); returns K.
std::int64_t depthwise_checks(const char* op, const Tensor& x, std::int64_t channels,
                              const Tensor& weight, const Tensor& bias) {
  SSM_CHECK(weight.defined(), op, "weight is undefined");
  check_same_device(op, x, weight);
  check_same_dtype(op, x, weight);
  const bool two_d = weight.dim() == 2;
  const bool three_d = weight.dim() == 3 && weight.size(1) == 1;
  SSM_CHECK((two_d || three_d) && weight.size(-1) >= 1, op,
            "weight must be (D, K) or (D, 1, K) with K >= 1, got ", weight.desc());
  SSM_CHECK(weight.size(0) == channels, op, "weight has ", weight.size(0), " channels but x has ",
            channels, ": x ", x.desc(), ", weight ", weight.desc());
  if (bias.defined()) {
    check_same_device(op, x, bias);
    check_same_dtype(op, x, bias);
    SSM_CHECK(bias.dim() == 1 && bias.size(0) == channels, op, "bias must be ",
              shape_str({channels}), " to match x ", x.desc(), ", got ", bias.desc());
  }
  return weight.size(-1);
}

// A strided (B, D, L) view.
struct View3 {
  const float* p = nullptr;
  std::int64_t s0 = 0, s1 = 0, s2 = 0;
};
View3 view3(const Tensor& t) {
  return {t.data<float>(), t.strides()[0], t.strides()[1], t.strides()[2]};
}

// The depthwise weight w[d, k] (of (D, K) or (D, 1, K)) and bias[d] (null: none).
struct DwParams {
  const float* w = nullptr;
  std::int64_t ws_d = 0, ws_k = 0;
  const float* b = nullptr;
  std::int64_t bs = 0;
  __device__ float weight(std::int64_t d, std::int64_t k) const { return w[d * ws_d + k * ws_k]; }
  __device__ float bias(std::int64_t d) const { return b ? b[d * bs] : 0.0f; }
};
DwParams dw_params(const Tensor& weight, const Tensor& bias) {
  DwParams p;
  p.w = weight.data<float>();
  p.ws_d = weight.strides()[0];
  p.ws_k = weight.strides()[static_cast<std::size_t>(weight.dim() - 1)];
  if (bias.defined()) {
    p.b = bias.data<float>();
    p.bs = bias.strides()[0];
  }
  return p;
}

// z[b, d, l] = bias[d] + sum_{k<K} w[d, k] x[b, d, l - (K-1) + k], k ascending,
// the terms before l = 0 left out (the CPU's order of additions).
__device__ inline float causal_z(const View3& x, const DwParams& p, std::int64_t b, std::int64_t d,
                                 std::int64_t l, std::int64_t K) {
  const float* xr = x.p + b * x.s0 + d * x.s1;
  float z = p.bias(d);
  for (std::int64_t k = K - 1 - l > 0 ? K - 1 - l : 0; k < K; ++k) {
    z += p.weight(d, k) * xr[(l - (K - 1) + k) * x.s2];
  }
  return z;
}

// y[b, d, l] = silu ? z sigmoid(z) : z, z = causal_z; one thread per output.
__global__ void causal_conv1d_kernel(View3 x, DwParams p, bool silu, float* y, std::int64_t D,
                                     std::int64_t L, std::int64_t K, std::int64_t total) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t l = t % L, r = t / L;
    const float z = causal_z(x, p, r / D, r % D, l, K);
    y[t] = silu ? z * sigmoid(z) : z;
  }
}

// gz[b, d, l] = silu ? g silu'(z) : g (z recomputed), contiguous (B, D, L).
__global__ void causal_gz_kernel(View3 g, View3 x, DwParams p, bool silu, float* gz, std::int64_t D,
                                 std::int64_t L, std::int64_t K, std::int64_t total) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t l = t % L, r = t / L, b = r / D, d = r % D;
    const float gv = g.p[b * g.s0 + d * g.s1 + l * g.s2];
    gz[t] = silu ? gv * silu_grad(causal_z(x, p, b, d, l, K)) : gv;
  }
}

// gx[b, d, s] = sum_{k<K} w[d, k] gz[b, d, s + (K-1) - k], k ascending, the
// terms past L left out (gz contiguous (B, D, L)).
__global__ void causal_gx_kernel(const float* gz, DwParams p, float* gx, std::int64_t D,
                                 std::int64_t L, std::int64_t K, std::int64_t total) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t s = t % L, r = t / L, d = r % D;
    const float* gr = gz + r * L;
    float acc = 0.0f;
    for (std::int64_t k = 0; k < K; ++k) {
      const std::int64_t u = s + (K - 1) - k;
      if (u < L) acc += p.weight(d, k) * gr[u];
    }
    gx[t] = acc;
  }
}

// Per row r = (b, d), one block:
//   part_w[r, k] = sum_{l >= K-1-k} gz[r, l] x[b, d, l - (K-1-k)],  part_b[r] = sum_l gz[r, l],
// in double: thread i sums l = i, i + blockDim, ... in order, then block_sum
// adds the threads in a fixed tree. part_w / part_b null: not wanted.
__global__ void causal_param_partials_kernel(const float* gz, View3 x, double* part_w,
                                             double* part_b, std::int64_t rows, std::int64_t D,
                                             std::int64_t L, std::int64_t K) {
  __shared__ double shared[32];
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* gr = gz + r * L;
    const float* xr = x.p + (r / D) * x.s0 + (r % D) * x.s1;
    if (part_w) {
      for (std::int64_t k = 0; k < K; ++k) {
        const std::int64_t shift = K - 1 - k;
        double acc = 0.0;
        for (std::int64_t l = shift + threadIdx.x; l < L; l += blockDim.x) {
          acc += static_cast<double>(gr[l]) * static_cast<double>(xr[(l - shift) * x.s2]);
        }
        acc = block_sum(acc, shared);
        if (threadIdx.x == 0) part_w[r * K + k] = acc;
      }
    }
    if (part_b) {
      double acc = 0.0;
      for (std::int64_t l = threadIdx.x; l < L; l += blockDim.x) acc += static_cast<double>(gr[l]);
      acc = block_sum(acc, shared);
      if (threadIdx.x == 0) part_b[r] = acc;
    }
  }
}

// out[d, k] = sum_{b<B} part[(b D + d) width + k], b ascending, in double then
// rounded (the ordered second pass of the parameter gradients).
__global__ void batch_reduce_kernel(const double* part, float* out, std::int64_t B, std::int64_t D,
                                    std::int64_t width) {
  const std::int64_t total = D * width;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    double acc = 0.0;
    for (std::int64_t b = 0; b < B; ++b) acc += part[b * total + t];
    out[t] = static_cast<float>(acc);
  }
}

// conv_state[b, d, :] <- (conv_state[b, d, 1:], x_t[b, d]);
// y_t[b, d] = bias[d] + sum_k w[d, k] conv_state[b, d, k] (k ascending), silu'd when `silu`.
// One thread per (b, d); the state is written through its own strides.
__global__ void causal_update_kernel(const float* x, std::int64_t xs0, std::int64_t xs1,
                                     float* state, std::int64_t ss0, std::int64_t ss1,
                                     std::int64_t ss2, DwParams p, bool silu, float* y,
                                     std::int64_t D, std::int64_t K, std::int64_t total) {
  for (std::int64_t r = global_thread(); r < total; r += grid_threads()) {
    const std::int64_t b = r / D, d = r % D;
    float* s = state + b * ss0 + d * ss1;
    for (std::int64_t k = 0; k + 1 < K; ++k) s[k * ss2] = s[(k + 1) * ss2];
    s[(K - 1) * ss2] = x[b * xs0 + d * xs1];
    float acc = p.bias(d);
    for (std::int64_t k = 0; k < K; ++k) acc += p.weight(d, k) * s[k * ss2];
    y[r] = silu ? acc * sigmoid(acc) : acc;
  }
}

// ------------------------------------------------------------ conv2d

struct Conv2dGeometry {
  std::int64_t C, H, W;                              // input channels and size
  std::int64_t kh, kw;                               // kernel
  std::int64_t sh, sw;                               // stride
  std::int64_t ph, pw;                               // padding
  std::int64_t Ho, Wo;                               // output size
  std::int64_t rows() const { return C * kh * kw; }  // im2col rows
  std::int64_t cols() const { return Ho * Wo; }      // im2col columns
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

// The CPU's conv2d_geometry, checks and messages included.
Conv2dGeometry conv2d_geometry(const Tensor& x, const Tensor& weight,
                               std::array<std::int64_t, 2> stride,
                               std::array<std::int64_t, 2> padding) {
  const char* op = "conv2d";
  SSM_CHECK(x.defined() && weight.defined(), op, "tensor is undefined");
  check_same_device(op, x, weight);
  check_same_dtype(op, x, weight);
  SSM_CHECK(x.dim() == 4, op, "x must be (N, C, H, W), got ", x.desc());
  SSM_CHECK(weight.dim() == 4 && weight.size(2) >= 1 && weight.size(3) >= 1, op,
            "weight must be (O, C, kh, kw) with kh, kw >= 1, got ", weight.desc());
  SSM_CHECK(weight.size(1) == x.size(1), op, "weight has ", weight.size(1),
            " input channels but x has ", x.size(1), ": x ", x.desc(), ", weight ", weight.desc());
  SSM_CHECK(stride[0] >= 1 && stride[1] >= 1, op, "stride must be positive, got (", stride[0], ", ",
            stride[1], ")");
  SSM_CHECK(padding[0] >= 0 && padding[1] >= 0, op, "padding must be non-negative, got (",
            padding[0], ", ", padding[1], ")");
  Conv2dGeometry g{};
  g.C = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.kh = weight.size(2);
  g.kw = weight.size(3);
  g.sh = stride[0];
  g.sw = stride[1];
  g.ph = padding[0];
  g.pw = padding[1];
  const std::int64_t hp = g.H + 2 * g.ph, wp = g.W + 2 * g.pw;
  SSM_CHECK(g.kh <= hp && g.kw <= wp, op, "kernel (", g.kh, ", ", g.kw,
            ") is larger than the padded input (", hp, ", ", wp, "): x ", x.desc(), ", weight ",
            weight.desc(), ", padding (", g.ph, ", ", g.pw, ")");
  g.Ho = (hp - g.kh) / g.sh + 1;
  g.Wo = (wp - g.kw) / g.sw + 1;
  const std::int64_t out_channels = weight.size(0);
  SSM_CHECK(g.rows() <= INT_MAX && g.cols() <= INT_MAX && out_channels <= INT_MAX, op,
            "GEMM dimensions exceed the BLAS int range: x ", x.desc(), ", weight ", weight.desc());
  return g;
}

// A strided (N, C, H, W) view.
struct View4 {
  const float* p = nullptr;
  std::int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
};
View4 view4(const Tensor& t) {
  return {t.data<float>(), t.strides()[0], t.strides()[1], t.strides()[2], t.strides()[3]};
}

// cols[m, (c, p, q), (i, j)] = x[n0 + m, c, i sh - ph + p, j sw - pw + q]
// (0 outside the image): the im2col matrices (C kh kw, Ho Wo) of images
// n0 .. n0 + count - 1; total = count C kh kw Ho Wo.
__global__ void im2col_kernel(View4 x, Conv2dGeometry g, std::int64_t n0, float* cols,
                              std::int64_t total) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    std::int64_t r = t;
    const std::int64_t j = r % g.Wo;
    r /= g.Wo;
    const std::int64_t i = r % g.Ho;
    r /= g.Ho;
    const std::int64_t q = r % g.kw;
    r /= g.kw;
    const std::int64_t p = r % g.kh;
    r /= g.kh;
    const std::int64_t c = r % g.C, m = r / g.C;
    const std::int64_t h = i * g.sh - g.ph + p, w = j * g.sw - g.pw + q;
    const bool inside = h >= 0 && h < g.H && w >= 0 && w < g.W;
    cols[t] = inside ? x.p[(n0 + m) * x.s0 + c * x.s1 + h * x.s2 + w * x.s3] : 0.0f;
  }
}

// The adjoint of im2col: gx[n0 + m, c, h, w] = sum over p < kh, q < kw (p, q
// ascending, the CPU's order) of gcols[m, (c, p, q), (i, j)] with
// i sh = h + ph - p and j sw = w + pw - q inside the output; a gather, one
// thread per element of gx (gx points at image n0; total = count C H W).
__global__ void col2im_kernel(const float* gcols, Conv2dGeometry g, float* gx, std::int64_t total) {
  const std::int64_t P = g.Ho * g.Wo;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    std::int64_t r = t;
    const std::int64_t w = r % g.W;
    r /= g.W;
    const std::int64_t h = r % g.H;
    r /= g.H;
    const std::int64_t c = r % g.C, m = r / g.C;
    const float* base = gcols + (m * g.C + c) * g.kh * g.kw * P;
    float acc = 0.0f;
    for (std::int64_t p = 0; p < g.kh; ++p) {
      const std::int64_t hi = h + g.ph - p;
      if (hi < 0 || hi % g.sh != 0 || hi / g.sh >= g.Ho) continue;
      const std::int64_t i = hi / g.sh;
      for (std::int64_t q = 0; q < g.kw; ++q) {
        const std::int64_t wi = w + g.pw - q;
        if (wi < 0 || wi % g.sw != 0 || wi / g.sw >= g.Wo) continue;
        acc += base[(p * g.kw + q) * P + i * g.Wo + wi / g.sw];
      }
    }
    gx[t] = acc;
  }
}

// y[n, o, p] = bias[o] (0 without bias): the GEMM then adds W cols (beta = 1).
__global__ void fill_bias_kernel(const float* bias, std::int64_t bs, float* y, std::int64_t O,
                                 std::int64_t P, std::int64_t total) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    y[t] = bias ? bias[((t / P) % O) * bs] : 0.0f;
  }
}

// gb[o] = sum_{n, p} g[n, o, p] (g contiguous (N, O, P)): one block per o, in
// double, thread i summing e = i, i + blockDim, ... of the (n, p) pairs, then block_sum.
__global__ void conv2d_bias_grad_kernel(const float* g, float* gb, std::int64_t N, std::int64_t O,
                                        std::int64_t P) {
  __shared__ double shared[32];
  for (std::int64_t o = blockIdx.x; o < O; o += gridDim.x) {
    double acc = 0.0;
    for (std::int64_t e = threadIdx.x; e < N * P; e += blockDim.x) {
      acc += static_cast<double>(g[((e / P) * O + o) * P + e % P]);
    }
    acc = block_sum(acc, shared);
    if (threadIdx.x == 0) gb[o] = static_cast<float>(acc);
  }
}

// gw[e] += sum_{m < count} partial[m, e], m ascending (the ordered pass over
// the images of one chunk; gw carries the sum of the chunks before).
__global__ void accumulate_partials_kernel(const float* partial, float* gw, std::int64_t count,
                                           std::int64_t size) {
  for (std::int64_t e = global_thread(); e < size; e += grid_threads()) {
    float acc = gw[e];
    for (std::int64_t m = 0; m < count; ++m) acc += partial[m * size + e];
    gw[e] = acc;
  }
}

// Row-major, batched: C[b] (m, n) = alpha op(A[b]) op(B[b]) + beta C[b] for
// b < batch, A[b] = a + b sa (sa = 0: one A for all). cuBLAS is column-major,
// where the row-major C is C^T = op(B)^T op(A)^T: the operands swap, the
// transpose flags stay. k > 0.
void gemm_rm_batched(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                     float alpha, const float* a, std::int64_t lda, std::int64_t sa, const float* b,
                     std::int64_t ldb, std::int64_t sb, float beta, float* c, std::int64_t ldc,
                     std::int64_t sc, std::int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  const auto i = [](std::int64_t v) { return static_cast<int>(std::max<std::int64_t>(v, 1)); };
  SSM_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                             trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, i(n), i(m), i(k),
                                             &alpha, b, i(ldb), sb, a, i(lda), sa, &beta, c, i(ldc),
                                             sc, static_cast<int>(batch)));
}

// Images per chunk: the im2col scratch (count, R, P) and the weight-gradient
// partials (count, O, R) stay under kScratch floats (at least one image,
// at most 65535 per batched GEMM).
constexpr std::int64_t kScratch = std::int64_t{1} << 25;  // 128 MiB of float32
std::int64_t chunk_images(std::int64_t N, std::int64_t per_image) {
  const std::int64_t c = kScratch / std::max<std::int64_t>(per_image, 1);
  return std::clamp<std::int64_t>(c, 1,
                                  std::min<std::int64_t>(std::max<std::int64_t>(N, 1), 65535));
}

Tensor zeros_f32(const Shape& shape, Device device) {
  Tensor t = Tensor::empty(shape, DType::Float32, device);
  if (t.numel() > 0) {
    SSM_CUDA_CHECK(
        cudaMemsetAsync(t.raw_data(), 0, static_cast<std::size_t>(t.numel()) * sizeof(float)));
  }
  return t;
}

// ------------------------------------------------------------ glu

// x as (outer, 2, half) in row-major order: out[o, i] = a sigmoid(b),
// a = x[o, 0, i], b = x[o, 1, i]; x read through its indexer.
__global__ void glu_kernel(const float* x, Indexer xi, float* out, std::int64_t half,
                           std::int64_t total) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t base = (t / half) * 2 * half + t % half;
    out[t] = x[xi(base)] * sigmoid(x[xi(base + half)]);
  }
}

// gx[o, 0, i] = g sigmoid(b);  gx[o, 1, i] = g a sigmoid(b) (1 - sigmoid(b)).
__global__ void glu_backward_kernel(const float* g, Indexer gi, const float* x, Indexer xi,
                                    float* gx, std::int64_t half, std::int64_t total) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t base = (t / half) * 2 * half + t % half;
    const float gv = g[gi(t)], a = x[xi(base)];
    const float s = sigmoid(x[xi(base + half)]);
    gx[base] = gv * s;
    gx[base + half] = gv * a * s * (1.0f - s);
  }
}

// x viewed as (outer, 2, half) (the CPU's glu_layout, message included).
struct GluLayout {
  std::int64_t outer = 1, half = 1;
};

GluLayout glu_layout(const Tensor& x, std::int64_t dim) {
  const std::int64_t size = x.size(dim);
  SSM_CHECK(size % 2 == 0, "glu", "dim ", dim, " of x ", x.desc(), " has odd size ", size,
            "; glu splits it into two equal halves");
  GluLayout l;
  for (std::int64_t d = 0; d < dim; ++d) l.outer *= x.size(d);
  l.half = size / 2;
  for (std::int64_t d = dim + 1; d < x.dim(); ++d) l.half *= x.size(d);
  return l;
}

}  // namespace

// ---------------------------------------------------------------- causal_conv1d

// z[b, d, t] = bias[d] + sum_{k<K} w[d, k] x[b, d, t - (K-1) + k]; y = silu ? z sigmoid(z) : z.
Tensor causal_conv1d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool silu) {
  const char* op = "causal_conv1d";
  SSM_CHECK(x.defined(), op, "x is undefined");
  SSM_CHECK(x.dim() == 3, op, "x must be (B, D, L), got ", x.desc());
  const std::int64_t B = x.size(0), D = x.size(1), L = x.size(2);
  const std::int64_t K = depthwise_checks(op, x, D, weight, bias);
  require_cuda_float32(op, {&x, &weight, &bias});
  Tensor y = Tensor::empty({B, D, L}, DType::Float32, x.device());
  const std::int64_t total = y.numel();
  if (total == 0) return y;
  causal_conv1d_kernel<<<blocks_for(total), kThreads>>>(view3(x), dw_params(weight, bias), silu,
                                                        y.data<float>(), D, L, K, total);
  SSM_CUDA_CHECK_LAUNCH();
  return y;
}

// gz = silu ? g silu'(z) : g (z recomputed from x), materialized contiguous;
// gx[b, d, s] = sum_k w[d, k] gz[b, d, s + (K-1) - k];
// gw[d, k] = sum_{b, t} gz[b, d, t] x[b, d, t - (K-1) + k];  gb[d] = sum_{b, t} gz[b, d, t]:
// per-(b, d) partials in double (one block each), then summed over b in order.
CausalConv1dGrads causal_conv1d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                                         const Tensor& bias, bool silu, bool need_x,
                                         bool need_weight, bool need_bias) {
  const char* op = "causal_conv1d";
  SSM_CHECK(grad.shape() == x.shape(), op, "gradient ", grad.desc(), " does not match x ",
            x.desc());
  const std::int64_t B = x.size(0), D = x.size(1), L = x.size(2);
  const std::int64_t K = depthwise_checks(op, x, D, weight, bias);
  require_cuda_float32(op, {&grad, &x, &weight, &bias});
  const Device dev = x.device();
  const DwParams p = dw_params(weight, bias);
  const std::int64_t total = B * D * L, rows = B * D;
  CausalConv1dGrads out;
  if (need_x) out.x = Tensor::empty({B, D, L}, DType::Float32, dev);
  if (need_weight) out.weight = Tensor::empty(weight.shape(), DType::Float32, dev);
  if (need_bias) out.bias = Tensor::empty({D}, DType::Float32, dev);
  if (!need_x && !need_weight && !need_bias) return out;
  Tensor gz = Tensor::empty({B, D, L}, DType::Float32, dev);  // (B, D, L)
  if (total > 0) {
    causal_gz_kernel<<<blocks_for(total), kThreads>>>(view3(grad), view3(x), p, silu,
                                                      gz.data<float>(), D, L, K, total);
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (need_x && total > 0) {
    causal_gx_kernel<<<blocks_for(total), kThreads>>>(gz.data<float>(), p, out.x.data<float>(), D,
                                                      L, K, total);
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (!need_weight && !need_bias) return out;
  Tensor part_w = need_weight ? Tensor::empty({rows * K}, DType::Float64, dev) : Tensor();
  Tensor part_b = need_bias ? Tensor::empty({rows}, DType::Float64, dev) : Tensor();
  if (rows > 0) {
    causal_param_partials_kernel<<<row_blocks(rows), kThreads>>>(
        gz.data<float>(), view3(x), need_weight ? part_w.data<double>() : nullptr,
        need_bias ? part_b.data<double>() : nullptr, rows, D, L, K);
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (need_weight && D * K > 0) {
    batch_reduce_kernel<<<blocks_for(D * K), kThreads>>>(rows > 0 ? part_w.data<double>() : nullptr,
                                                         out.weight.data<float>(), B, D, K);
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (need_bias && D > 0) {
    batch_reduce_kernel<<<blocks_for(D), kThreads>>>(rows > 0 ? part_b.data<double>() : nullptr,
                                                     out.bias.data<float>(), B, D, 1);
    SSM_CUDA_CHECK_LAUNCH();
  }
  return out;
}

// conv_state[b, d, :] <- (conv_state[b, d, 1:], x_t[b, d]);
// y_t[b, d] = bias[d] + sum_k w[d, k] conv_state[b, d, k], silu'd when `silu`.
Tensor causal_conv1d_update(const Tensor& x_t, Tensor& conv_state, const Tensor& weight,
                            const Tensor& bias, bool silu) {
  const char* op = "causal_conv1d_update";
  SSM_CHECK(x_t.defined() && conv_state.defined(), op, "tensor is undefined");
  SSM_CHECK(x_t.dim() == 2, op, "x_t must be (B, D), got ", x_t.desc());
  const std::int64_t B = x_t.size(0), D = x_t.size(1);
  const std::int64_t K = depthwise_checks(op, x_t, D, weight, bias);
  check_same_device(op, x_t, conv_state);
  check_same_dtype(op, x_t, conv_state);
  SSM_CHECK(conv_state.shape() == Shape({B, D, K}), op, "conv_state must be (B, D, K) = (", B, ", ",
            D, ", ", K, ") for x_t ", x_t.desc(), " and weight ", weight.desc(), ", got ",
            conv_state.desc());
  require_cuda_float32(op, {&x_t, &conv_state, &weight, &bias});
  Tensor y = Tensor::empty({B, D}, DType::Float32, x_t.device());  // (B, D)
  const std::int64_t total = B * D;
  if (total == 0) return y;
  const Shape& ss = conv_state.strides();
  causal_update_kernel<<<blocks_for(total), kThreads>>>(
      x_t.data<float>(), x_t.strides()[0], x_t.strides()[1], conv_state.data<float>(), ss[0], ss[1],
      ss[2], dw_params(weight, bias), silu, y.data<float>(), D, K, total);
  SSM_CUDA_CHECK_LAUNCH();
  return y;
}

// ---------------------------------------------------------------- conv2d

// y[n] (O, P) = bias + W (O, R) cols[n] (R, P), R = C kh kw, P = Ho Wo:
// im2col of a chunk of images, then one strided-batched sgemm (W shared).
// A 1x1 kernel with stride 1 and no padding reads a contiguous x directly.
Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding) {
  const char* op = "conv2d";
  const Conv2dGeometry g = conv2d_geometry(x, weight, stride, padding);
  const std::int64_t N = x.size(0), O = weight.size(0);
  if (bias.defined()) {
    check_same_device(op, x, bias);
    check_same_dtype(op, x, bias);
    SSM_CHECK(bias.dim() == 1 && bias.size(0) == O, op, "bias must be ", shape_str({O}),
              " to match weight ", weight.desc(), ", got ", bias.desc());
  }
  require_cuda_float32(op, {&x, &weight, &bias});
  const Device dev = x.device();
  Tensor y = Tensor::empty({N, O, g.Ho, g.Wo}, DType::Float32, dev);  // (N, O, Ho, Wo)
  if (y.numel() == 0) return y;
  const std::int64_t P = g.cols(), R = g.rows();
  fill_bias_kernel<<<blocks_for(y.numel()), kThreads>>>(
      bias.defined() ? bias.data<float>() : nullptr, bias.defined() ? bias.strides()[0] : 0,
      y.data<float>(), O, P, y.numel());
  SSM_CUDA_CHECK_LAUNCH();
  if (R == 0) return y;                          // no input channels: y = bias
  const Tensor wc = contiguous_f32(weight, op);  // (O, R)
  const bool direct = g.pointwise() && x.is_contiguous();
  const std::int64_t chunk = direct ? std::min<std::int64_t>(N, 65535) : chunk_images(N, R * P);
  const Tensor cols = direct ? Tensor() : Tensor::empty({chunk * R * P}, DType::Float32, dev);
  for (std::int64_t n0 = 0; n0 < N; n0 += chunk) {
    const std::int64_t count = std::min(chunk, N - n0);
    const float* cn = nullptr;
    if (direct) {
      cn = x.data<float>() + n0 * R * P;
    } else {
      im2col_kernel<<<blocks_for(count * R * P), kThreads>>>(view4(x), g, n0, cols.data<float>(),
                                                             count * R * P);
      SSM_CUDA_CHECK_LAUNCH();
      cn = cols.data<float>();
    }
    // y[n] (O, P) += W (O, R) cols[n] (R, P)
    gemm_rm_batched(false, false, O, P, R, 1.0f, wc.data<float>(), R, 0, cn, P, R * P, 1.0f,
                    y.data<float>() + n0 * O * P, P, O * P, count);
  }
  return y;
}

// gb[o] = sum_{n, p} g[n, o, p] (one block per o);
// gw (O, R) = sum_n g[n] (O, P) cols[n]^T: per chunk a batched sgemm into
// per-image partials, added over the images in order;
// gx[n] = col2im(W^T (R, O) g[n] (O, P)) (a gather per element of gx).
Conv2dGrads conv2d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                            std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding,
                            bool need_x, bool need_weight, bool need_bias) {
  const char* op = "conv2d";
  const Conv2dGeometry g = conv2d_geometry(x, weight, stride, padding);
  const std::int64_t N = x.size(0), O = weight.size(0);
  SSM_CHECK(grad.shape() == Shape({N, O, g.Ho, g.Wo}), op, "gradient ", grad.desc(),
            " does not match the output (", N, ", ", O, ", ", g.Ho, ", ", g.Wo, ")");
  require_cuda_float32(op, {&grad, &x, &weight});
  const Device dev = x.device();
  const std::int64_t P = g.cols(), R = g.rows();
  Conv2dGrads out;
  if (!need_x && !need_weight && !need_bias) return out;
  const Tensor gc = contiguous_f32(grad, op);  // (N, O, P)
  if (need_bias) {
    out.bias = Tensor::empty({O}, DType::Float32, dev);
    if (O > 0) {
      conv2d_bias_grad_kernel<<<row_blocks(O), kThreads>>>(gc.data<float>(), out.bias.data<float>(),
                                                           N, O, P);
      SSM_CUDA_CHECK_LAUNCH();
    }
  }
  if (need_weight) out.weight = zeros_f32(weight.shape(), dev);  // (O, R)
  if (need_x) out.x = Tensor::empty(x.shape(), DType::Float32, dev);
  const bool weight_work = need_weight && O * R > 0 && N > 0;
  const bool x_work = need_x && out.x.numel() > 0;
  if (x_work && O == 0) {  // no output channels: nothing flows back
    out.x = zeros_f32(x.shape(), dev);
  }
  const bool x_gemm = x_work && O > 0;
  if (!weight_work && !x_gemm) return out;
  // R > 0 and N > 0 from here (x_work: C H W > 0 with N > 0; weight_work: R > 0, N > 0).
  const bool direct = g.pointwise() && x.is_contiguous();
  // Scratch per image: im2col columns / their gradient (R, P), weight partials (O, R).
  const std::int64_t per_image =
      (direct ? 0 : R * P) + (weight_work ? O * R : 0) + (x_gemm && !g.pointwise() ? R * P : 0);
  const std::int64_t chunk = chunk_images(N, per_image);
  const Tensor cols =
      weight_work && !direct ? Tensor::empty({chunk * R * P}, DType::Float32, dev) : Tensor();
  const Tensor partial =
      weight_work ? Tensor::empty({chunk * O * R}, DType::Float32, dev) : Tensor();
  const Tensor gcols =
      x_gemm && !g.pointwise() ? Tensor::empty({chunk * R * P}, DType::Float32, dev) : Tensor();
  const Tensor wc = x_gemm ? contiguous_f32(weight, op) : Tensor();  // (O, R)
  for (std::int64_t n0 = 0; n0 < N; n0 += chunk) {
    const std::int64_t count = std::min(chunk, N - n0);
    const float* gn = gc.data<float>() + n0 * O * P;  // (count, O, P)
    if (weight_work) {
      const float* cn = nullptr;
      if (direct) {
        cn = x.data<float>() + n0 * R * P;
      } else {
        im2col_kernel<<<blocks_for(count * R * P), kThreads>>>(view4(x), g, n0, cols.data<float>(),
                                                               count * R * P);
        SSM_CUDA_CHECK_LAUNCH();
        cn = cols.data<float>();
      }
      // partial[m] (O, R) = g[n0 + m] (O, P) cols[m]^T (P, R)
      gemm_rm_batched(false, true, O, R, P, 1.0f, gn, P, O * P, cn, P, R * P, 0.0f,
                      partial.data<float>(), R, O * R, count);
      accumulate_partials_kernel<<<blocks_for(O * R), kThreads>>>(
          partial.data<float>(), out.weight.data<float>(), count, O * R);
      SSM_CUDA_CHECK_LAUNCH();
    }
    if (x_gemm) {
      float* gxn = out.x.data<float>() + n0 * g.C * g.H * g.W;
      // gcols[m] (R, P) = W^T (R, O) g[n0 + m] (O, P); straight into gx for a 1x1 kernel.
      float* dst = g.pointwise() ? gxn : gcols.data<float>();
      gemm_rm_batched(true, false, R, P, O, 1.0f, wc.data<float>(), R, 0, gn, P, O * P, 0.0f, dst,
                      P, R * P, count);
      if (!g.pointwise()) {
        const std::int64_t n = count * g.C * g.H * g.W;
        col2im_kernel<<<blocks_for(n), kThreads>>>(gcols.data<float>(), g, gxn, n);
        SSM_CUDA_CHECK_LAUNCH();
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- glu

// x as (outer, 2, half): out[o, i] = a[o, i] sigmoid(b[o, i]).
Tensor glu_forward(const Tensor& x, std::int64_t dim_in) {
  const char* op = "glu";
  SSM_CHECK(x.defined(), op, "x is undefined");
  require_cuda_float32(op, {&x});
  SSM_CHECK(x.dim() >= 1, op, "x must have at least one dim, got ", x.desc());
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), op);
  const GluLayout l = glu_layout(x, dim);
  Shape shape = x.shape();
  shape[static_cast<std::size_t>(dim)] /= 2;
  Tensor out = Tensor::empty(shape, DType::Float32, x.device());
  const std::int64_t total = out.numel();
  if (total == 0) return out;
  const Indexer xi = make_indexer(x, op);
  glu_kernel<<<blocks_for(total), kThreads>>>(x.data<float>(), xi, out.data<float>(), l.half,
                                              total);
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

// gx[o, 0, i] = g sigmoid(b);  gx[o, 1, i] = g a sigmoid(b) (1 - sigmoid(b)).
Tensor glu_backward(const Tensor& grad, const Tensor& x, std::int64_t dim_in) {
  const char* op = "glu";
  require_cuda_float32(op, {&grad, &x});
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), op);
  const GluLayout l = glu_layout(x, dim);
  SSM_CHECK(grad.numel() == l.outer * l.half, op, "gradient ", grad.desc(),
            " does not match the output of x ", x.desc());
  Tensor gx = Tensor::empty(x.shape(), DType::Float32, x.device());
  const std::int64_t total = grad.numel();
  if (total == 0) return gx;
  const Indexer gi = make_indexer(grad, op), xi = make_indexer(x, op);
  glu_backward_kernel<<<blocks_for(total), kThreads>>>(grad.data<float>(), gi, x.data<float>(), xi,
                                                       gx.data<float>(), l.half, total);
  SSM_CUDA_CHECK_LAUNCH();
  return gx;
}

}  // namespace ssm::kernels::cuda
