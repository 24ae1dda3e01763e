#pragma once
// Shape kernels: the copies that views cannot express (cat, constant pad) and
// the index-driven copies (index_select, gather, embedding) with their
// scatter-add backwards. Pure views (reshape, transpose, narrow, ...) need no
// kernel: they are Tensor methods of core/tensor.h. Raw compute; the
// differentiable ops live in autograd/ops/shape.h, which check shapes first.
// Dims may be negative. Index values are checked here (0 <= v < size, else
// "[op] index v is out of range for ..."), before any parallel loop.
#include <vector>

#include "core/tensor.h"

namespace ssm::kernels {

// out = the tensors joined along dim (they share dtype, device, and every
// size but dim's; checked by the caller).
Tensor cat_forward(const std::vector<Tensor>& xs, std::int64_t dim);

// Constant padding, PyTorch F.pad convention: pads = {left, right} for the
// last dim, then {top, bottom} for the one before, ...; negative pads crop.
Tensor pad_forward(const Tensor& x, const std::vector<std::int64_t>& pads, double value);
// The gradient of pad: grad cropped back (pad by -pads, filling 0).
Tensor pad_backward(const Tensor& grad, const std::vector<std::int64_t>& pads);

// out[..., j, ...] = x[..., index[j], ...] along dim (index 1-D, int32/int64).
Tensor index_select_forward(const Tensor& x, std::int64_t dim, const Tensor& index);
// gx[..., index[j], ...] += grad[..., j, ...]; repeated indices accumulate.
Tensor index_select_backward(const Tensor& grad, const Shape& x_shape, std::int64_t dim,
                             const Tensor& index);

// torch.gather: out[i][j][k] = x[i][index[i][j][k]][k] for dim = 1 (likewise
// for any dim); index has x's rank and index.size(d) <= x.size(d) for d != dim.
Tensor gather_forward(const Tensor& x, std::int64_t dim, const Tensor& index);
// gx[i][index[i][j][k]][k] += grad[i][j][k]; repeated indices accumulate.
Tensor gather_backward(const Tensor& grad, const Shape& x_shape, std::int64_t dim,
                       const Tensor& index);

// out[n, :] = weight[indices[n], :], shape (*indices.shape, D).
Tensor embedding_forward(const Tensor& indices, const Tensor& weight);
// gw[v, :] = sum_{n : indices[n] = v} grad[n, :], shape (num_embeddings, D);
// the row v == padding_idx stays 0 (padding_idx < 0: none). Deterministic:
// each row is owned by one thread and sums its contributions in order of n.
Tensor embedding_backward(const Tensor& grad, const Tensor& indices, std::int64_t num_embeddings,
                          std::int64_t padding_idx);

}  // namespace ssm::kernels
