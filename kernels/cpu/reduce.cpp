// CPU reductions. Each reduction is done over rows: the reduced dims are
// moved last (a copy only when they are not already trailing), so the inner
// loop runs over contiguous memory. A reduction over leading dims of a
// contiguous tensor (a bias gradient: (N, D) -> (D)) accumulates whole rows
// instead, which needs no copy.
#include "kernels/reduce.h"

#include <cmath>
#include <limits>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cuda/reduce.h"
#include "kernels/elementwise.h"

namespace ssm::kernels {

std::vector<std::int64_t> normalize_dims(const std::vector<std::int64_t>& dims, std::int64_t ndim,
                                         const char* op) {
  std::vector<std::int64_t> out;
  if (dims.empty()) {
    for (std::int64_t d = 0; d < ndim; ++d) out.push_back(d);
    return out;
  }
  std::vector<bool> seen(static_cast<std::size_t>(std::max<std::int64_t>(ndim, 1)), false);
  for (auto d : dims) {
    const std::int64_t w = wrap_dim(d, ndim, op);
    SSM_CHECK(!seen[w], op, "dim ", d, " appears twice in ", shape_str(dims));
    seen[w] = true;
  }
  for (std::int64_t d = 0; d < ndim; ++d) {
    if (seen[d]) out.push_back(d);
  }
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<std::int64_t>& dims, bool keepdim) {
  Shape out;
  std::size_t k = 0;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    const bool reduced = k < dims.size() && dims[k] == static_cast<std::int64_t>(d);
    if (reduced) ++k;
    if (!reduced)
      out.push_back(shape[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

namespace {

// x viewed as (outer, inner) rows with the reduced dims last and contiguous.
struct Rows {
  Tensor data;  // contiguous (outer * inner)
  std::int64_t outer = 1, inner = 1;
};

Rows to_rows(const Tensor& x, const std::vector<std::int64_t>& dims) {
  std::vector<std::int64_t> perm;
  std::vector<bool> reduced(x.shape().size(), false);
  for (auto d : dims) reduced[d] = true;
  Rows r;
  for (std::int64_t d = 0; d < x.dim(); ++d) {
    if (!reduced[d]) {
      perm.push_back(d);
      r.outer *= x.shape()[d];
    }
  }
  for (auto d : dims) {
    perm.push_back(d);
    r.inner *= x.shape()[d];
  }
  r.data = x.permute(perm).contiguous();
  return r;
}

// True when the reduced dims are exactly the leading dims of a contiguous x.
bool leading_block(const Tensor& x, const std::vector<std::int64_t>& dims) {
  if (!x.is_contiguous() || dims.empty() || dims.size() == x.shape().size()) return false;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] != static_cast<std::int64_t>(i)) return false;
  }
  return true;
}

// The inverse of to_rows for a tensor laid out as (kept dims..., reduced dims...).
Tensor from_rows(const Tensor& rows, const Shape& x_shape, const std::vector<std::int64_t>& dims) {
  std::vector<std::int64_t> perm;
  std::vector<bool> reduced(x_shape.size(), false);
  for (auto d : dims) reduced[d] = true;
  Shape permuted;
  for (std::size_t d = 0; d < x_shape.size(); ++d) {
    if (!reduced[d]) {
      perm.push_back(static_cast<std::int64_t>(d));
      permuted.push_back(x_shape[d]);
    }
  }
  for (auto d : dims) {
    perm.push_back(d);
    permuted.push_back(x_shape[d]);
  }
  std::vector<std::int64_t> inverse(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<std::int64_t>(i);
  return rows.reshape(permuted).permute(inverse).contiguous();
}

}  // namespace

// ---------------------------------------------------------------- sum

Tensor sum_forward(const Tensor& x, const std::vector<std::int64_t>& dims_in, bool keepdim) {
  SSM_CUDA_DISPATCH(x, cuda::sum_forward(x, dims_in, keepdim));
  require_cpu("sum", {&x});
  const auto dims = normalize_dims(dims_in, x.dim(), "sum");
  const Shape out_shape = reduced_shape(x.shape(), dims, keepdim);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  dispatch_float(x.dtype(), "sum", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = out.data<T>();
    if (leading_block(x, dims)) {
      // out[j] = sum_i x[i, j]: accumulate whole rows (vectorised over j).
      std::int64_t n = 1;
      for (auto d : dims) n *= x.shape()[d];
      const std::int64_t m = out.numel();  // product of the kept dims, even when n == 0
      const T* p = x.data<T>();
      constexpr std::int64_t kBlock = 1024;
#pragma omp parallel for schedule(static) if (n * m > 65536)
      for (std::int64_t j0 = 0; j0 < m; j0 += kBlock) {
        const std::int64_t j1 = std::min(m, j0 + kBlock);
        for (std::int64_t j = j0; j < j1; ++j) o[j] = T(0);
        for (std::int64_t i = 0; i < n; ++i) {
          const T* row = p + i * m;
          for (std::int64_t j = j0; j < j1; ++j) o[j] += row[j];
        }
      }
      return;
    }
    const Rows r = to_rows(x, dims);
    const T* p = r.data.data<T>();
#pragma omp parallel for schedule(static) if (r.outer * r.inner > 65536 && r.outer > 1)
    for (std::int64_t i = 0; i < r.outer; ++i) {
      const T* row = p + i * r.inner;
      // Accumulate in double: sums of long float rows stay accurate.
      double acc = 0.0;
      for (std::int64_t j = 0; j < r.inner; ++j) acc += static_cast<double>(row[j]);
      o[i] = static_cast<T>(acc);
    }
  });
  return out;
}

Tensor sum_backward(const Tensor& grad, const Shape& x_shape,
                    const std::vector<std::int64_t>& dims_in, bool keepdim) {
  SSM_CUDA_DISPATCH(grad, cuda::sum_backward(grad, x_shape, dims_in, keepdim));
  (void)keepdim;  // grad has the reduced shape either way; reshape restores the 1s
  const auto dims = normalize_dims(dims_in, static_cast<std::int64_t>(x_shape.size()), "sum");
  const Tensor g = grad.reshape(reduced_shape(x_shape, dims, true));
  return g.expand(x_shape).contiguous();
}

// ---------------------------------------------------------------- max

std::pair<Tensor, Tensor> max_forward(const Tensor& x, const std::vector<std::int64_t>& dims_in,
                                      bool keepdim) {
  SSM_CUDA_DISPATCH(x, cuda::max_forward(x, dims_in, keepdim));
  require_cpu("max", {&x});
  const auto dims = normalize_dims(dims_in, x.dim(), "max");
  SSM_CHECK(x.numel() > 0, "max", "cannot reduce an empty tensor ", x.desc());
  const Shape out_shape = reduced_shape(x.shape(), dims, keepdim);
  Tensor values = Tensor::empty(out_shape, x.dtype(), x.device());
  Tensor index = Tensor::empty(out_shape, DType::Int64, x.device());
  dispatch_float(x.dtype(), "max", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Rows r = to_rows(x, dims);
    const T* p = r.data.data<T>();
    T* v = values.data<T>();
    std::int64_t* ix = index.data<std::int64_t>();
#pragma omp parallel for schedule(static) if (r.outer * r.inner > 65536 && r.outer > 1)
    for (std::int64_t i = 0; i < r.outer; ++i) {
      const T* row = p + i * r.inner;
      std::int64_t best = 0;
      for (std::int64_t j = 1; j < r.inner; ++j) {
        // NaN propagates: a NaN is taken as the maximum.
        if (row[j] > row[best] || (std::isnan(row[j]) && !std::isnan(row[best]))) best = j;
      }
      v[i] = row[best];
      ix[i] = best;
    }
  });
  return {values, index};
}

Tensor max_backward(const Tensor& grad, const Tensor& argmax, const Shape& x_shape,
                    const std::vector<std::int64_t>& dims_in, bool keepdim) {
  SSM_CUDA_DISPATCH(grad, cuda::max_backward(grad, argmax, x_shape, dims_in, keepdim));
  (void)keepdim;
  const auto dims = normalize_dims(dims_in, static_cast<std::int64_t>(x_shape.size()), "max");
  std::int64_t inner = 1;
  for (auto d : dims) inner *= x_shape[d];
  const std::int64_t outer = grad.numel();
  Tensor rows = Tensor::zeros({outer, inner}, grad.dtype(), grad.device());
  const Tensor g = grad.contiguous();
  const Tensor ix = argmax.contiguous();
  dispatch_float(grad.dtype(), "max", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* out = rows.data<T>();
    const T* pg = g.data<T>();
    const std::int64_t* pi = ix.data<std::int64_t>();
    for (std::int64_t i = 0; i < outer; ++i) out[i * inner + pi[i]] = pg[i];
  });
  return from_rows(rows, x_shape, dims);
}

// ---------------------------------------------------------------- logsumexp

Tensor logsumexp_forward(const Tensor& x, const std::vector<std::int64_t>& dims_in, bool keepdim) {
  SSM_CUDA_DISPATCH(x, cuda::logsumexp_forward(x, dims_in, keepdim));
  require_cpu("logsumexp", {&x});
  const auto dims = normalize_dims(dims_in, x.dim(), "logsumexp");
  const Shape out_shape = reduced_shape(x.shape(), dims, keepdim);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  dispatch_float(x.dtype(), "logsumexp", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Rows r = to_rows(x, dims);
    const T* p = r.data.data<T>();
    T* o = out.data<T>();
#pragma omp parallel for schedule(static) if (r.outer * r.inner > 65536 && r.outer > 1)
    for (std::int64_t i = 0; i < r.outer; ++i) {
      const T* row = p + i * r.inner;
      T m = -std::numeric_limits<T>::infinity();
      for (std::int64_t j = 0; j < r.inner; ++j) m = row[j] > m ? row[j] : m;
      if (!std::isfinite(m)) {  // all -inf (or +inf / NaN present)
        o[i] = r.inner == 0 ? -std::numeric_limits<T>::infinity() : m;
        continue;
      }
      T s = T(0);
      for (std::int64_t j = 0; j < r.inner; ++j) s += std::exp(row[j] - m);
      o[i] = m + std::log(s);
    }
  });
  return out;
}

Tensor logsumexp_backward(const Tensor& grad, const Tensor& x, const Tensor& out,
                          const std::vector<std::int64_t>& dims_in, bool keepdim) {
  SSM_CUDA_DISPATCH(grad, cuda::logsumexp_backward(grad, x, out, dims_in, keepdim));
  (void)keepdim;
  const auto dims = normalize_dims(dims_in, x.dim(), "logsumexp");
  const Shape keep = reduced_shape(x.shape(), dims, true);
  const Tensor diff = binary_forward(BinaryOp::Sub, x, out.reshape(keep));
  const Tensor p = unary_forward(UnaryOp::Exp, diff);
  return binary_forward(BinaryOp::Mul, p, grad.reshape(keep));
}

}  // namespace ssm::kernels
