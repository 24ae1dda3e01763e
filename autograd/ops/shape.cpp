// Differentiable shape ops: raw Tensor views or kernels/shape.h copies in the
// forward, and a recorded backward that maps the gradient back.
#include "autograd/ops/shape.h"

#include <algorithm>

#include "autograd/tape.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "kernels/shape.h"

namespace ssm {

namespace {

// Records a one-input view op whose backward is `back(grad)`.
template <class F>
Tensor record_view(const char* name, const Tensor& x, Tensor out, F back) {
  if (needs_grad({&x})) {
    record(name, {x}, {out}, [back](const GradList& g) -> GradList { return {back(g[0])}; });
  }
  return out;
}

// The strided window x[..., start::step, ...] of `length` elements along dim.
Tensor strided_window(const Tensor& x, std::int64_t dim, std::int64_t start, std::int64_t length,
                      std::int64_t step) {
  Shape shape = x.shape(), strides = x.strides();
  shape[dim] = length;
  const std::int64_t offset = x.offset() + (length > 0 ? start * strides[dim] : 0);
  strides[dim] *= step;
  return make_view(x, shape, strides, offset);
}

// The gradient of a window: grad placed at its window in zeros of x's shape.
Tensor window_backward(const Tensor& grad, const Shape& x_shape, std::int64_t dim,
                       std::int64_t start, std::int64_t step) {
  Tensor gx = Tensor::zeros(x_shape, grad.dtype(), grad.device());
  strided_window(gx, dim, start, grad.shape()[dim], step).copy_(grad);
  return gx;
}

// Views of x along dim with the given sizes, recorded as one op with one
// output per piece; its backward joins the pieces' gradients.
std::vector<Tensor> split_views(const char* name, const Tensor& x, std::int64_t dim,
                                const std::vector<std::int64_t>& sizes) {
  std::vector<Tensor> pieces;
  std::int64_t start = 0;
  for (const std::int64_t s : sizes) {
    pieces.push_back(strided_window(x, dim, start, s, 1));
    start += s;
  }
  if (needs_grad({&x})) {
    record(name, {x}, pieces,
           [dim](const GradList& g) -> GradList { return {kernels::cat_forward(g, dim)}; });
  }
  return pieces;
}

void check_defined(const char* op, const Tensor& x) {
  SSM_CHECK(x.defined(), op, "tensor is undefined");
}

}  // namespace

// ---------------------------------------------------------------- views

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined("reshape", x);
  const Shape x_shape = x.shape();
  return record_view("reshape", x, x.reshape(shape),
                     [x_shape](const Tensor& g) { return g.reshape(x_shape); });
}

Tensor flatten(const Tensor& x, std::int64_t start_dim, std::int64_t end_dim) {
  check_defined("flatten", x);
  if (x.dim() == 0) return reshape(x, {1});
  const std::int64_t s = wrap_dim(start_dim, x.dim(), "flatten");
  const std::int64_t e = wrap_dim(end_dim, x.dim(), "flatten");
  SSM_CHECK(s <= e, "flatten", "start_dim ", start_dim, " comes after end_dim ", end_dim, " for ",
            x.desc());
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  std::int64_t merged = 1;
  for (std::int64_t d = s; d <= e; ++d) merged *= x.shape()[d];
  shape.push_back(merged);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor unsqueeze(const Tensor& x, std::int64_t dim) {
  check_defined("unsqueeze", x);
  const Shape x_shape = x.shape();
  return record_view("unsqueeze", x, x.unsqueeze(dim),
                     [x_shape](const Tensor& g) { return g.reshape(x_shape); });
}

Tensor squeeze(const Tensor& x, std::int64_t dim) {
  check_defined("squeeze", x);
  const Shape x_shape = x.shape();
  return record_view("squeeze", x, x.squeeze(dim),
                     [x_shape](const Tensor& g) { return g.reshape(x_shape); });
}

Tensor transpose(const Tensor& x, std::int64_t d0, std::int64_t d1) {
  check_defined("transpose", x);
  return record_view("transpose", x, x.transpose(d0, d1),
                     [d0, d1](const Tensor& g) { return g.transpose(d0, d1); });
}

Tensor permute(const Tensor& x, const std::vector<std::int64_t>& dims) {
  check_defined("permute", x);
  Tensor out = x.permute(dims);  // validates dims
  // inverse[dims[i]] = i: the permutation that puts every dim back.
  std::vector<std::int64_t> inverse(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) {
    inverse[wrap_dim(dims[i], x.dim(), "permute")] = static_cast<std::int64_t>(i);
  }
  return record_view("permute", x, out, [inverse](const Tensor& g) { return g.permute(inverse); });
}

Tensor slice(const Tensor& x, std::int64_t dim, std::int64_t start, std::int64_t end,
             std::int64_t step) {
  check_defined("slice", x);
  dim = wrap_dim(dim, x.dim(), "slice");
  SSM_CHECK(step > 0, "slice", "step must be positive, got ", step);
  const std::int64_t n = x.shape()[dim];
  auto clamp = [n](std::int64_t i) { return std::clamp<std::int64_t>(i < 0 ? i + n : i, 0, n); };
  start = clamp(start);
  end = clamp(end);
  const std::int64_t length = end > start ? (end - start + step - 1) / step : 0;
  const Shape x_shape = x.shape();
  return record_view("slice", x, strided_window(x, dim, start, length, step), [=](const Tensor& g) {
    return window_backward(g, x_shape, dim, start, step);
  });
}

Tensor narrow(const Tensor& x, std::int64_t dim, std::int64_t start, std::int64_t length) {
  check_defined("narrow", x);
  Tensor out = x.narrow(dim, start, length);  // validates the range
  dim = wrap_dim(dim, x.dim(), "narrow");
  if (start < 0) start += x.shape()[dim];
  const Shape x_shape = x.shape();
  return record_view("narrow", x, out,
                     [=](const Tensor& g) { return window_backward(g, x_shape, dim, start, 1); });
}

Tensor expand(const Tensor& x, const Shape& shape) {
  check_defined("expand", x);
  // -1 keeps the size of the matching dim of x (not allowed in new leading dims).
  Shape target = shape;
  const std::int64_t lead = static_cast<std::int64_t>(shape.size()) - x.dim();
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(target.size()); ++i) {
    if (target[i] != -1) continue;
    SSM_CHECK(i >= lead, "expand", "-1 is not allowed in the new leading dim ", i, " of ",
              shape_str(shape), " (input ", x.desc(), ")");
    target[i] = x.shape()[i - lead];
  }
  const Shape x_shape = x.shape();
  return record_view("expand", x, x.expand(target),
                     [x_shape](const Tensor& g) { return kernels::sum_to(g, x_shape); });
}

Tensor contiguous(const Tensor& x) {
  check_defined("contiguous", x);
  if (x.is_contiguous()) return x;
  return record_view("contiguous", x, x.contiguous(), [](const Tensor& g) { return g; });
}

Tensor flip(const Tensor& x, const std::vector<std::int64_t>& dims) {
  check_defined("flip", x);
  // An empty list flips nothing (normalize_dims would read it as "all dims").
  const std::vector<std::int64_t> d =
      dims.empty() ? dims : kernels::normalize_dims(dims, x.dim(), "flip");
  auto flip_all = [d](const Tensor& t) {
    Tensor out = t;
    for (const std::int64_t k : d) out = out.flip(k);
    return out;
  };
  return record_view("flip", x, flip_all(x), flip_all);
}

// ---------------------------------------------------------------- joins and splits

Tensor cat(const std::vector<Tensor>& xs, std::int64_t dim) {
  SSM_CHECK(!xs.empty(), "cat", "expected at least one tensor");
  for (const Tensor& x : xs) check_defined("cat", x);
  const Tensor& x0 = xs[0];
  SSM_CHECK(x0.dim() > 0, "cat", "cannot concatenate zero-dimensional tensors, got ", x0.desc());
  dim = wrap_dim(dim, x0.dim(), "cat");
  for (std::size_t k = 1; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    SSM_CHECK(x.dtype() == x0.dtype() && x.device() == x0.device(), "cat",
              "dtypes or devices differ: input 0 ", x0.desc(), ", input ", k, " ", x.desc());
    bool same = x.dim() == x0.dim();
    for (std::int64_t d = 0; same && d < x0.dim(); ++d) {
      same = d == dim || x.shape()[d] == x0.shape()[d];
    }
    SSM_CHECK(same, "cat", "shapes differ outside dim ", dim, ": input 0 ", x0.desc(), ", input ",
              k, " ", x.desc());
  }
  Tensor out = kernels::cat_forward(xs, dim);
  if (needs_grad(xs)) {
    std::vector<std::int64_t> sizes;
    std::vector<bool> need;
    for (const Tensor& x : xs) {
      sizes.push_back(x.shape()[dim]);
      need.push_back(x.requires_grad());
    }
    record("cat", xs, {out}, [=](const GradList& g) -> GradList {
      // Each input's gradient is its window of the output gradient (a view).
      GradList gx;
      std::int64_t start = 0;
      for (std::size_t k = 0; k < sizes.size(); ++k) {
        gx.push_back(need[k] ? g[0].narrow(dim, start, sizes[k]) : Tensor());
        start += sizes[k];
      }
      return gx;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, std::int64_t dim) {
  SSM_CHECK(!xs.empty(), "stack", "expected at least one tensor");
  for (const Tensor& x : xs) check_defined("stack", x);
  for (std::size_t k = 1; k < xs.size(); ++k) {
    SSM_CHECK(xs[k].shape() == xs[0].shape(), "stack", "expected tensors of one shape: input 0 ",
              xs[0].desc(), ", input ", k, " ", xs[k].desc());
  }
  dim = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (const Tensor& x : xs) parts.push_back(unsqueeze(x, dim));
  return cat(parts, dim);
}

std::vector<Tensor> split(const Tensor& x, std::int64_t split_size, std::int64_t dim) {
  check_defined("split", x);
  dim = wrap_dim(dim, x.dim(), "split");
  const std::int64_t n = x.shape()[dim];
  SSM_CHECK(split_size > 0 || (split_size == 0 && n == 0), "split",
            "split_size must be positive, got ", split_size, " for dim ", dim, " of ", x.desc());
  std::vector<std::int64_t> sizes;
  for (std::int64_t s = 0; s < n; s += split_size) sizes.push_back(std::min(split_size, n - s));
  if (sizes.empty()) sizes.push_back(0);  // torch.split of an empty dim: one empty piece
  return split_views("split", x, dim, sizes);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes,
                          std::int64_t dim) {
  check_defined("split", x);
  dim = wrap_dim(dim, x.dim(), "split");
  std::int64_t total = 0;
  for (const std::int64_t s : sizes) {
    SSM_CHECK(s >= 0, "split", "negative size in ", shape_str(sizes));
    total += s;
  }
  SSM_CHECK(total == x.shape()[dim], "split", "sizes ", shape_str(sizes), " sum to ", total,
            ", dim ", dim, " of ", x.desc(), " has size ", x.shape()[dim]);
  return split_views("split", x, dim, sizes);
}

std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, std::int64_t dim) {
  check_defined("chunk", x);
  SSM_CHECK(chunks > 0, "chunk", "chunks must be positive, got ", chunks);
  dim = wrap_dim(dim, x.dim(), "chunk");
  const std::int64_t n = x.shape()[dim];
  if (n == 0) {  // torch.chunk of an empty dim: `chunks` empty pieces
    return split_views("chunk", x, dim,
                       std::vector<std::int64_t>(static_cast<std::size_t>(chunks), 0));
  }
  const std::int64_t size = (n + chunks - 1) / chunks;
  std::vector<std::int64_t> sizes;
  for (std::int64_t s = 0; s < n; s += size) sizes.push_back(std::min(size, n - s));
  return split_views("chunk", x, dim, sizes);
}

// ---------------------------------------------------------------- copies

Tensor pad(const Tensor& x, const std::vector<std::int64_t>& pads, double value) {
  check_defined("pad", x);
  Tensor out = kernels::pad_forward(x, pads, value);  // validates pads
  if (needs_grad({&x})) {
    record("pad", {x}, {out},
           [pads](const GradList& g) -> GradList { return {kernels::pad_backward(g[0], pads)}; });
  }
  return out;
}

Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index) {
  check_defined("index_select", x);
  check_defined("index_select", index);
  SSM_CHECK(x.dim() > 0, "index_select", "expected a tensor with at least one dim, got ", x.desc());
  SSM_CHECK(index.dim() == 1, "index_select", "index must be 1-D, got ", index.desc());
  check_same_device("index_select", x, index);
  dim = wrap_dim(dim, x.dim(), "index_select");
  Tensor out = kernels::index_select_forward(x, dim, index);
  if (needs_grad({&x})) {
    const Shape x_shape = x.shape();
    const Tensor ix = index.detach();
    record("index_select", {x}, {out}, [=](const GradList& g) -> GradList {
      return {kernels::index_select_backward(g[0], x_shape, dim, ix)};
    });
  }
  return out;
}

Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index) {
  check_defined("gather", x);
  check_defined("gather", index);
  SSM_CHECK(index.dim() == x.dim(), "gather", "index ", index.desc(), " must have the rank of x ",
            x.desc());
  SSM_CHECK(x.dim() > 0, "gather", "expected a tensor with at least one dim, got ", x.desc());
  check_same_device("gather", x, index);
  dim = wrap_dim(dim, x.dim(), "gather");
  for (std::int64_t d = 0; d < x.dim(); ++d) {
    SSM_CHECK(d == dim || index.shape()[d] <= x.shape()[d], "gather", "index ", index.desc(),
              " is larger than x ", x.desc(), " in dim ", d, " (only dim ", dim, " may differ)");
  }
  Tensor out = kernels::gather_forward(x, dim, index);
  if (needs_grad({&x})) {
    const Shape x_shape = x.shape();
    const Tensor ix = index.detach();
    record("gather", {x}, {out}, [=](const GradList& g) -> GradList {
      return {kernels::gather_backward(g[0], x_shape, dim, ix)};
    });
  }
  return out;
}

Tensor embedding(const Tensor& indices, const Tensor& weight, std::int64_t padding_idx) {
  check_defined("embedding", indices);
  check_defined("embedding", weight);
  SSM_CHECK(weight.dim() == 2, "embedding", "weight must be (num_embeddings, dim), got ",
            weight.desc());
  check_same_device("embedding", indices, weight);
  const std::int64_t rows = weight.shape()[0];
  SSM_CHECK(padding_idx < rows, "embedding", "padding_idx ", padding_idx,
            " is out of range for an embedding table of ", rows, " rows (weight ", weight.desc(),
            ")");
  Tensor out = kernels::embedding_forward(indices, weight);
  if (needs_grad({&weight})) {
    const Tensor ix = indices.detach();
    record("embedding", {weight}, {out}, [=](const GradList& g) -> GradList {
      return {kernels::embedding_backward(g[0], ix, rows, padding_idx)};
    });
  }
  return out;
}

}  // namespace ssm
