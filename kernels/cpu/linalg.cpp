// CPU matrix products. Every product is one or more cblas_sgemm / cblas_dgemm
// calls on row-major data; a transposed view is passed as CblasTrans instead
// of being copied.
//
// Threading: one large GEMM is threaded by OpenBLAS itself. A batch of small
// GEMMs (each small enough that OpenBLAS runs it on one thread) is spread over
// OpenMP threads instead, one GEMM per batch index. The two are never nested.
//
// Gradient rule: backward kernels return fresh gradient tensors (=); the
// tape does the accumulation.
#include "kernels/linalg.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <initializer_list>
#include <type_traits>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cuda/linalg.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace ssm::kernels {

namespace {

// OpenBLAS runs a GEMM on a single thread when M * N * K is at most
// 65536 * GEMM_MULTITHREAD_THRESHOLD (interface/gemm.c).
#ifdef OPENBLAS_GEMM_MULTITHREAD_THRESHOLD
constexpr std::int64_t kSingleThreadGemm = 65536LL * OPENBLAS_GEMM_MULTITHREAD_THRESHOLD;
#else
constexpr std::int64_t kSingleThreadGemm = 65536LL * 4;
#endif
// Below this many multiply-adds in total a batch is not worth the threads.
constexpr std::int64_t kParallelWork = 1LL << 16;

// ---------------------------------------------------------------- BLAS layout

// How BLAS reads one matrix of a strided view: row-major (element (i, j) at
// i * ld + j, CblasNoTrans) or column-major (at i + j * ld, CblasTrans).
struct BlasMat {
  bool ok = false;
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  std::int64_t ld = 1;
};

// The layout of a (rows, cols) matrix with strides (rs, cs), if BLAS can read
// it as it is. The stride of a dim of size 1 is never used, so it is free.
BlasMat blas_layout(std::int64_t rows, std::int64_t cols, std::int64_t rs, std::int64_t cs) {
  const std::int64_t min_row_ld = std::max<std::int64_t>(cols, 1);
  const std::int64_t min_col_ld = std::max<std::int64_t>(rows, 1);
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= min_row_ld)) {
    return {true, CblasNoTrans, rows == 1 ? min_row_ld : rs};
  }
  if ((rows == 1 || rs == 1) && (cols == 1 || cs >= min_col_ld)) {
    return {true, CblasTrans, cols == 1 ? min_col_ld : cs};
  }
  return {};
}

// The layout of the matrices in the last two dims of t.
BlasMat matrix_layout(const Tensor& t) {
  const std::size_t n = t.shape().size();
  return blas_layout(t.shape()[n - 2], t.shape()[n - 1], t.strides()[n - 2], t.strides()[n - 1]);
}

// C (M, N), row-major with ldc = N: C = op(A) op(B) + beta C.
void gemm(const BlasMat& la, const BlasMat& lb, int m, int n, int k, const float* a, const float* b,
          float beta, float* c) {
  cblas_sgemm(CblasRowMajor, la.trans, lb.trans, m, n, k, 1.0f, a, static_cast<int>(la.ld), b,
              static_cast<int>(lb.ld), beta, c, n);
}

void gemm(const BlasMat& la, const BlasMat& lb, int m, int n, int k, const double* a,
          const double* b, double beta, double* c) {
  cblas_dgemm(CblasRowMajor, la.trans, lb.trans, m, n, k, 1.0, a, static_cast<int>(la.ld), b,
              static_cast<int>(lb.ld), beta, c, n);
}

// CPU tensors of any float dtype, or (in a CUDA build) CUDA float32 tensors:
// the products below run on either device, through BLAS or cuBLAS.
void require_blas_device(const char* op, std::initializer_list<const Tensor*> tensors) {
#if defined(SSM_WITH_CUDA)
  bool cuda = false;
  for (const Tensor* t : tensors) cuda = cuda || (t && t->defined() && t->device().is_cuda());
  if (cuda) {
    for (const Tensor* t : tensors) {
      if (!t || !t->defined()) continue;
      SSM_CHECK(t->device().is_cuda() && t->dtype() == DType::Float32, op,
                "on the GPU every operand is a float32 CUDA tensor, got ", t->desc());
    }
    return;
  }
#endif
  require_cpu(op, tensors);
}

// ---------------------------------------------------------------- operands

// Number of matrices in t (..., R, C): the product of its batch dims.
std::int64_t batch_numel(const Tensor& t) {
  std::int64_t n = 1;
  for (std::int64_t d = 0; d + 2 < t.dim(); ++d) n *= t.shape()[d];
  return n;
}

// The element offset (from t's first element) of the matrix that each index
// of `batch` (row-major) reads, t's batch dims broadcast to `batch`.
std::vector<std::int64_t> batch_offsets(const Tensor& t, const Shape& batch) {
  const std::size_t nd = batch.size();
  const std::size_t tb = t.shape().size() - 2;  // t's batch dims, aligned right
  Shape stride(nd, 0);
  for (std::size_t i = 0; i < tb; ++i) {
    stride[nd - tb + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  }
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(shape_numel(batch)));
  Shape index(nd, 0);
  std::int64_t cur = 0;
  for (auto& off : offsets) {
    off = cur;
    for (std::size_t d = nd; d-- > 0;) {  // odometer step
      cur += stride[d];
      if (++index[d] < batch[d]) break;
      cur -= stride[d] * batch[d];
      index[d] = 0;
    }
  }
  return offsets;
}

// One side of a batched product: a view whose matrices BLAS reads as they are
// (a contiguous copy only when the view has no BLAS layout), and the offset of
// the matrix for each batch index.
struct Operand {
  Tensor t;
  BlasMat layout;
  std::vector<std::int64_t> offsets;
};

Operand prepare(const Tensor& t, const Shape& batch) {
  Operand op{t, matrix_layout(t), {}};
  if (!op.layout.ok) {
    op.t = t.contiguous();
    op.layout = matrix_layout(op.t);
  }
  SSM_CHECK(op.layout.ok, "matmul", "internal error: no BLAS layout for ", op.t.desc(),
            " with strides ", shape_str(op.t.strides()));
  op.offsets = batch_offsets(op.t, batch);
  return op;
}

// t (d0, ..., R, C) viewed as one (d0 * ... * R, C) matrix without a copy, when
// its rows are evenly spaced (a contiguous tensor, a slice of rows of one, a
// 1-D vector); undefined otherwise.
Tensor fold_rows(const Tensor& t) {
  const std::int64_t nd = t.dim();
  const std::int64_t cols = t.shape()[nd - 1];
  std::int64_t rows = 1;
  for (std::int64_t d = 0; d + 1 < nd; ++d) rows *= t.shape()[d];
  std::int64_t step = std::max<std::int64_t>(cols, 1), span = 0;  // span: rows covered so far
  if (rows > 0) {
    for (std::int64_t d = nd - 2; d >= 0; --d) {
      const std::int64_t n = t.shape()[d];
      if (n == 1) continue;
      if (span == 0) {
        step = t.strides()[d];
        span = n;
        continue;
      }
      if (t.strides()[d] != step * span) return Tensor();
      span *= n;
    }
  }
  return make_view(t, {rows, cols}, {step, t.strides()[nd - 1]}, t.offset());
}

// The single matrix of a tensor whose batch dims all have size 1.
Tensor single_matrix(const Tensor& t) {
  const std::size_t n = t.shape().size();
  return make_view(t, {t.shape()[n - 2], t.shape()[n - 1]},
                   {t.strides()[n - 2], t.strides()[n - 1]}, t.offset());
}

void check_blas_int(const char* op, std::int64_t v, const Tensor& a, const Tensor& b) {
  SSM_CHECK(v <= INT_MAX, op, "matrix too large for 32-bit BLAS: a ", a.desc(), ", b ", b.desc());
}

// ---------------------------------------------------------------- batched GEMM

enum class BatchMode {
  Each,  // out (batch..., M, N): one product per batch index
  Sum,   // out (M, N): the sum of the products over the batch
};

// out (batch..., M, N) contiguous = a (..., M, K) @ b (..., K, N) for every
// index of `batch` (a's and b's batch dims broadcast to it), or in Sum mode
// out (M, N) = sum over the batch. beta = 1 adds onto out (Each mode).
template <class T>
void gemm_batched(const Tensor& out, const Tensor& a, const Tensor& b, const Shape& batch,
                  BatchMode mode, T beta = T(0)) {
  const std::int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const std::int64_t nb = shape_numel(batch);
  if (m == 0 || n == 0) return;
  if (k == 0 || nb == 0) {  // empty sums
    if (beta == T(0)) out.zero_();
    return;
  }
  const Operand pa = prepare(a, batch), pb = prepare(b, batch);
  for (std::int64_t v : {m, n, k, pa.layout.ld, pb.layout.ld}) check_blas_int("matmul", v, a, b);
  const T* ap = pa.t.data<T>();
  const T* bp = pb.t.data<T>();
  T* cp = out.data<T>();
#if defined(SSM_WITH_CUDA)
  if constexpr (std::is_same_v<T, float>) {
    if (out.device().is_cuda()) {
      cuda::gemm_batched(pa.layout.trans == CblasTrans, pa.layout.ld, pb.layout.trans == CblasTrans,
                         pb.layout.ld, static_cast<int>(m), static_cast<int>(n),
                         static_cast<int>(k), ap, pa.offsets, bp, pb.offsets, beta, cp,
                         mode == BatchMode::Sum);
      return;
    }
  }
#endif
  const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
  if (mode == BatchMode::Sum) {
    // Sequential: every GEMM adds onto the same output (OpenBLAS threads each).
    for (std::int64_t i = 0; i < nb; ++i) {
      gemm(pa.layout, pb.layout, mi, ni, ki, ap + pa.offsets[i], bp + pb.offsets[i],
           i == 0 ? beta : T(1), cp);
    }
    return;
  }
  // Small matrices, several of them: one single-threaded GEMM per OpenMP thread.
  const bool parallel = nb > 1 && m * n * k <= kSingleThreadGemm && nb * m * n * k >= kParallelWork;
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t i = 0; i < nb; ++i) {
    gemm(pa.layout, pb.layout, mi, ni, ki, ap + pa.offsets[i], bp + pb.offsets[i], beta,
         cp + i * m * n);
  }
}

// out (batch..., M, N) contiguous = a (..., M, K) @ b (..., K, N), batch dims
// broadcast. When b holds one matrix and a's rows fold into one matrix, the
// whole batch is one GEMM: (batch * M, K) @ (K, N).
template <class T>
void product(const Tensor& out, const Tensor& a, const Tensor& b, const Shape& batch) {
  if (shape_numel(batch) > 1 && batch_numel(b) == 1) {
    const Tensor af = fold_rows(a);
    if (af.defined()) {
      gemm_batched<T>(out.view({af.size(0), out.size(-1)}), af, single_matrix(b), {},
                      BatchMode::Each);
      return;
    }
  }
  gemm_batched<T>(out, a, b, batch, BatchMode::Each);
}

// sum over the batch of x_i @ y_i: x (..., P, R), y (..., R, Q) -> (P, Q).
// When both fold (x_i side by side, y_i stacked) this is one GEMM with the
// batch in the contraction dim: (P, batch * R) @ (batch * R, Q).
template <class T>
Tensor product_summed(const Tensor& x, const Tensor& y, const Shape& batch) {
  const std::int64_t nb = shape_numel(batch);
  const std::int64_t p = x.size(-2), r = x.size(-1), q = y.size(-1);
  Tensor out = Tensor::empty({p, q}, x.dtype(), x.device());
  if (batch_numel(x) == nb && batch_numel(y) == nb) {
    const Tensor xf = fold_rows(x.transpose(-1, -2)), yf = fold_rows(y);
    if (xf.defined() && yf.defined()) {
      gemm_batched<T>(out, xf.transpose(0, 1), yf, {}, BatchMode::Each);
      return out;
    }
  }
  if (p * q * r > kSingleThreadGemm) {
    gemm_batched<T>(out, x, y, batch, BatchMode::Sum);
    return out;
  }
  // Small matrices: all products in parallel, then one reduction.
  Shape full = batch;
  full.push_back(p);
  full.push_back(q);
  Tensor each = Tensor::empty(full, x.dtype(), x.device());
  gemm_batched<T>(each, x, y, batch, BatchMode::Each);
  return sum_forward(each.view({nb, p, q}), {0}, false);
}

// x @ y (batch broadcast) reduced to `target`, the shape of the operand the
// gradient is for (its batch dims broadcast to `batch`).
template <class T>
Tensor grad_product(const Tensor& x, const Tensor& y, const Shape& batch, const Shape& target) {
  const std::int64_t p = x.size(-2), q = y.size(-1);
  Shape target_batch(target.begin(), target.end() - 2);
  if (shape_numel(batch) > 1 && shape_numel(target_batch) == 1) {
    return product_summed<T>(x, y, batch).reshape(target);
  }
  Shape full = batch;
  full.push_back(p);
  full.push_back(q);
  Tensor out = Tensor::empty(full, x.dtype(), x.device());
  product<T>(out, x, y, batch);
  return sum_to(out, target);
}

// ---------------------------------------------------------------- matmul shapes

// The shapes of a product with 1-D operands promoted to matrices.
struct MatmulDims {
  Shape a2, b2;  // (..., M, K), (..., K, N)
  Shape batch;   // the broadcast batch dims
  std::int64_t m = 0, k = 0, n = 0;
  Shape out;      // the result: batch, then M unless a is 1-D, N unless b is 1-D
  Shape out_mat;  // the result with both matrix dims: (batch..., M, N)
};

MatmulDims matmul_dims(const Shape& as, const Shape& bs) {
  MatmulDims d;
  d.a2 = as.size() == 1 ? Shape{1, as[0]} : as;
  d.b2 = bs.size() == 1 ? Shape{bs[0], 1} : bs;
  d.m = d.a2[d.a2.size() - 2];
  d.k = d.a2.back();
  d.n = d.b2.back();
  d.batch = broadcast_shapes(Shape(d.a2.begin(), d.a2.end() - 2),
                             Shape(d.b2.begin(), d.b2.end() - 2), "matmul");
  d.out = d.batch;
  if (as.size() > 1) d.out.push_back(d.m);
  if (bs.size() > 1) d.out.push_back(d.n);
  d.out_mat = d.batch;
  d.out_mat.push_back(d.m);
  d.out_mat.push_back(d.n);
  return d;
}

// A 1-D a (K) as the matrix (1, K), a 1-D b (K) as (K, 1); views, no copies.
Tensor promote_a(const Tensor& a) { return a.dim() == 1 ? a.unsqueeze(0) : a; }
Tensor promote_b(const Tensor& b) { return b.dim() == 1 ? b.unsqueeze(1) : b; }

void check_matmul(const Tensor& a, const Tensor& b) {
  SSM_CHECK(a.defined() && b.defined(), "matmul", "tensor is undefined");
  check_same_device("matmul", a, b);
  check_same_dtype("matmul", a, b);
  require_blas_device("matmul", {&a, &b});
  SSM_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul", "both operands need at least 1 dim, got a ",
            a.desc(), ", b ", b.desc());
  const std::int64_t ka = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  SSM_CHECK(ka == kb, "matmul", "inner dimensions differ: a ", a.desc(), ", b ", b.desc());
  // Batch dims (all but the last two) broadcast, aligned from the right.
  const std::int64_t ba = std::max<std::int64_t>(a.dim() - 2, 0);
  const std::int64_t bb = std::max<std::int64_t>(b.dim() - 2, 0);
  for (std::int64_t i = 1; i <= std::min(ba, bb); ++i) {
    const std::int64_t sa = a.shape()[ba - i], sb = b.shape()[bb - i];
    SSM_CHECK(sa == sb || sa == 1 || sb == 1, "matmul",
              "batch dimensions cannot be broadcast together: a ", a.desc(), ", b ", b.desc());
  }
}

// ---------------------------------------------------------------- linear shapes

// t (..., F) as (rows, F) with rows = the product of the leading dims: a view
// when the rows are evenly spaced, else a contiguous copy.
Tensor as_rows(const Tensor& t) {
  const Tensor f = fold_rows(t);
  return f.defined() ? f : fold_rows(t.contiguous());
}

void check_linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  SSM_CHECK(x.defined() && w.defined(), "linear", "tensor is undefined");
  check_same_device("linear", x, w);
  check_same_dtype("linear", x, w);
  require_blas_device("linear", {&x, &w, &bias});
  SSM_CHECK(w.dim() == 2, "linear", "weight must be 2-D (out_features, in_features), got weight ",
            w.desc());
  SSM_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear", "x ", x.desc(),
            " does not end in in_features = ", w.size(1), " of weight ", w.desc(),
            " (weight is (out_features, in_features))");
  if (bias.defined()) {
    check_same_device("linear", x, bias);
    check_same_dtype("linear", x, bias);
    SSM_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), "linear", "bias ", bias.desc(),
              " does not match weight ", w.desc(), ": expected bias (", w.size(0), ",)");
  }
}

}  // namespace

// ---------------------------------------------------------------- matmul

// out[..., i, j] = sum_k a[..., i, k] b[..., k, j]   (torch.matmul)
Tensor matmul_forward(const Tensor& a, const Tensor& b) {
  check_matmul(a, b);
  const MatmulDims d = matmul_dims(a.shape(), b.shape());
  Tensor out = Tensor::empty(d.out, a.dtype(), a.device());
  dispatch_float(a.dtype(), "matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    product<T>(out.view(d.out_mat), promote_a(a), promote_b(b), d.batch);
  });
  return out;
}

// ga[..., i, k] = sum_j grad[..., i, j] b[..., k, j], summed over a's broadcast dims
Tensor matmul_backward_a(const Tensor& grad, const Tensor& b, const Shape& a_shape) {
  require_blas_device("matmul", {&grad, &b});
  const MatmulDims d = matmul_dims(a_shape, b.shape());
  const Tensor g = grad.reshape(d.out_mat);          // (batch..., M, N)
  const Tensor bt = promote_b(b).transpose(-1, -2);  // (..., N, K), a view
  return dispatch_float(grad.dtype(), "matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    return grad_product<T>(g, bt, d.batch, d.a2).reshape(a_shape);
  });
}

// gb[..., k, j] = sum_i a[..., i, k] grad[..., i, j], summed over b's broadcast dims
Tensor matmul_backward_b(const Tensor& grad, const Tensor& a, const Shape& b_shape) {
  require_blas_device("matmul", {&grad, &a});
  const MatmulDims d = matmul_dims(a.shape(), b_shape);
  const Tensor g = grad.reshape(d.out_mat);          // (batch..., M, N)
  const Tensor at = promote_a(a).transpose(-1, -2);  // (..., K, M), a view
  return dispatch_float(grad.dtype(), "matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    return grad_product<T>(at, g, d.batch, d.b2).reshape(b_shape);
  });
}

// ---------------------------------------------------------------- linear

// y[r, o] = sum_i x[r, i] W[o, i] + b[o]   (torch.nn.functional.linear)
Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_linear(x, weight, bias);
  const std::int64_t out_features = weight.size(0);
  Shape y_shape = x.shape();
  y_shape.back() = out_features;
  Tensor y = Tensor::empty(y_shape, x.dtype(), x.device());
  const Tensor xr = as_rows(x);  // (rows, in)
  const std::int64_t rows = xr.size(0);
  const Tensor yr = y.view({rows, out_features});  // (rows, out)
  dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T beta = T(0);
    if (bias.defined() && rows > 0) {
      // Every row of y starts as the bias; the GEMM adds x W^T onto it.
      const Tensor bc = bias.contiguous();
      const T* bp = bc.data<T>();  // (out)
      T* yp = yr.data<T>();        // (rows, out)
      beta = T(1);
#if defined(SSM_WITH_CUDA)
      if constexpr (std::is_same_v<T, float>) {
        if (y.device().is_cuda()) {
          cuda::fill_rows(yp, bp, rows, out_features);
          gemm_batched<T>(yr, xr, weight.transpose(0, 1), {}, BatchMode::Each, beta);
          return;
        }
      }
#endif
#pragma omp parallel for schedule(static) if (rows * out_features > 65536)
      for (std::int64_t r = 0; r < rows; ++r) {
        std::copy(bp, bp + out_features, yp + r * out_features);
      }
    }
    gemm_batched<T>(yr, xr, weight.transpose(0, 1), {}, BatchMode::Each, beta);
  });
  return y;
}

// gx[r, i] = sum_o gy[r, o] W[o, i]
Tensor linear_backward_input(const Tensor& grad, const Tensor& weight, const Shape& x_shape) {
  require_blas_device("linear", {&grad, &weight});
  Tensor gx = Tensor::empty(x_shape, grad.dtype(), grad.device());
  const Tensor gr = as_rows(grad);  // (rows, out)
  dispatch_float(grad.dtype(), "linear", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gemm_batched<T>(gx.view({gr.size(0), weight.size(1)}), gr, weight, {}, BatchMode::Each);
  });
  return gx;
}

// gW[o, i] = sum_r gy[r, o] x[r, i]
Tensor linear_backward_weight(const Tensor& grad, const Tensor& x) {
  require_blas_device("linear", {&grad, &x});
  const Tensor gr = as_rows(grad);  // (rows, out)
  const Tensor xr = as_rows(x);     // (rows, in)
  Tensor gw = Tensor::empty({gr.size(1), xr.size(1)}, grad.dtype(), grad.device());
  dispatch_float(grad.dtype(), "linear", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gemm_batched<T>(gw, gr.transpose(0, 1), xr, {}, BatchMode::Each);
  });
  return gw;
}

// gb[o] = sum_r gy[r, o]
Tensor linear_backward_bias(const Tensor& grad) {
  require_blas_device("linear", {&grad});
  const Tensor gr = as_rows(grad);  // (rows, out)
  if (gr.size(0) == 0) return Tensor::zeros({gr.size(1)}, grad.dtype(), grad.device());
  return sum_forward(gr, {0}, false);
}

}  // namespace ssm::kernels
