#pragma once
// Differentiable matrix products: matmul (torch.matmul semantics), bmm
// (strict batches) and linear (x W^T + b, PyTorch's weight layout). Operands
// share dtype (float32 or float64) and device; transposed views are read in
// place, without a copy.
#include "core/tensor.h"

namespace ssm {

// a (..., M, K) @ b (..., K, N) -> (..., M, N), batch dims broadcast (NumPy
// rules). A 1-D a (K) acts as (1, K) and a 1-D b (K) as (K, 1); the added dim
// is dropped from the result: (K) @ (K, N) -> (N), (M, K) @ (K) -> (M),
// (K) @ (K) -> ().
Tensor matmul(const Tensor& a, const Tensor& b);

// a (B, M, K) @ b (B, K, N) -> (B, M, N); no broadcasting, no 1-D operands.
Tensor bmm(const Tensor& a, const Tensor& b);

// x (..., in) W^T + bias: weight (out, in), bias (out) or undefined (no bias)
// -> (..., out). One GEMM over all leading dims of x.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace ssm
