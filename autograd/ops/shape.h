#pragma once
// Differentiable shape ops. The views (reshape, transpose, slice, expand,
// flip, ...) share storage with their input, as the raw Tensor methods do;
// their backward maps the gradient back (reshape back, inverse permutation,
// zeros outside a slice, a sum over broadcast dims, flip again). cat, pad,
// index_select, gather and embedding copy (kernels/shape.h).
//
// Dims may be negative (counted from the end). Every op works on any dtype
// in the forward; gradients are float32/float64.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace ssm {

// ---------------------------------------------------------------- views

// x with a new shape of the same numel (one -1 is inferred): a view when the
// strides allow it, else a copy (Tensor::reshape).
Tensor reshape(const Tensor& x, const Shape& shape);
// Dims start_dim..end_dim merged into one; a 0-d x becomes (1).
Tensor flatten(const Tensor& x, std::int64_t start_dim = 0, std::int64_t end_dim = -1);
// A dim of size 1 inserted at dim (in [-(x.dim() + 1), x.dim()]).
Tensor unsqueeze(const Tensor& x, std::int64_t dim);
// Dim dim removed; it must have size 1 (throws otherwise, unlike PyTorch's
// silent no-op, so that a wrong shape is caught where it happens).
Tensor squeeze(const Tensor& x, std::int64_t dim);
Tensor transpose(const Tensor& x, std::int64_t d0, std::int64_t d1);
// out.shape[i] = x.shape[dims[i]].
Tensor permute(const Tensor& x, const std::vector<std::int64_t>& dims);
// x[..., start:end:step, ...] along dim, with Python's rules: negative
// start/end count from the end, both are clamped to [0, size], an empty
// range gives size 0. step must be positive.
Tensor slice(const Tensor& x, std::int64_t dim, std::int64_t start, std::int64_t end,
             std::int64_t step = 1);
// x[..., start:start + length, ...] along dim; the range must fit (negative
// start counts from the end).
Tensor narrow(const Tensor& x, std::int64_t dim, std::int64_t start, std::int64_t length);
// Broadcast to shape (dims of size 1 stretched, leading dims added; -1 keeps
// a size). The backward sums over the broadcast dims.
Tensor expand(const Tensor& x, const Shape& shape);
// x when already contiguous, else a contiguous copy (gradient: identity).
Tensor contiguous(const Tensor& x);
// x reversed along each of dims (a view with negative strides).
Tensor flip(const Tensor& x, const std::vector<std::int64_t>& dims);

// ---------------------------------------------------------------- joins and splits

// The tensors joined along dim; they share dtype, device, rank and every
// size but dim's.
Tensor cat(const std::vector<Tensor>& xs, std::int64_t dim = 0);
// The tensors (all of one shape) joined along a new dim, in [-(r + 1), r].
Tensor stack(const std::vector<Tensor>& xs, std::int64_t dim = 0);
// Views of consecutive pieces of split_size along dim (the last may be
// smaller), torch.split.
std::vector<Tensor> split(const Tensor& x, std::int64_t split_size, std::int64_t dim = 0);
// Views of pieces with the given sizes along dim; they must sum to the size.
std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes,
                          std::int64_t dim = 0);
// torch.chunk: pieces of ceil(size / chunks) along dim (the last may be
// smaller, and there may be fewer than chunks pieces).
std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, std::int64_t dim = 0);

// ---------------------------------------------------------------- copies

// Constant padding, PyTorch F.pad convention: pads holds pairs from the LAST
// dim backwards, {left, right, top, bottom, ...} (at most 2 per dim);
// negative pads crop.
Tensor pad(const Tensor& x, const std::vector<std::int64_t>& pads, double value = 0.0);
// out[..., j, ...] = x[..., index[j], ...] along dim; index is 1-D int32 or
// int64 with values in [0, x.size(dim)). Repeated indices accumulate in the
// gradient.
Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index);
// torch.gather: out has index's shape, out[i][j][k] = x[i][index[i][j][k]][k]
// for dim = 1. index (int32/int64) has x's rank and index.size(d) <=
// x.size(d) for d != dim.
Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index);
// The rows of weight (num_embeddings, D) picked by indices (int32/int64, any
// shape): out (*indices.shape, D). The row padding_idx receives no gradient
// (padding_idx < 0: none). An index outside [0, num_embeddings) throws.
Tensor embedding(const Tensor& indices, const Tensor& weight, std::int64_t padding_idx = -1);

}  // namespace ssm
