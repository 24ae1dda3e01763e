#pragma once
// Matrix products through BLAS (OpenBLAS sgemm / dgemm on the CPU): matmul
// with torch.matmul semantics (batch broadcasting, 1-D operands) and linear
// (x W^T + b in PyTorch's weight layout). Raw compute; the differentiable ops
// live in autograd/ops/linalg.h.
//
// Operands may be any strided views: a matrix whose last two dims are
// row-major or column-major (a transposed view) goes to BLAS as it is, with
// CblasNoTrans / CblasTrans; anything else is copied to a contiguous tensor.
#include "core/tensor.h"

namespace ssm::kernels {

// ---------------------------------------------------------------- matmul

// out = a @ b (torch.matmul): a (..., M, K), b (..., K, N) -> (..., M, N) with
// the batch dims broadcast; a 1-D a (K) acts as (1, K) and a 1-D b (K) as
// (K, 1), and the added dim is removed from the result ((K) @ (K) -> ()).
// Throws "[matmul] ..." naming both operands on a shape or dtype mismatch.
Tensor matmul_forward(const Tensor& a, const Tensor& b);
// The gradients of out = a @ b given grad = dL/dout:
//   ga = grad @ b^T, summed over the batch dims that a was broadcast along;
//   gb = a^T @ grad, summed over the batch dims that b was broadcast along.
// Each needs only the other operand and the shape of its own.
Tensor matmul_backward_a(const Tensor& grad, const Tensor& b, const Shape& a_shape);
Tensor matmul_backward_b(const Tensor& grad, const Tensor& a, const Shape& b_shape);

// ---------------------------------------------------------------- linear

// y = x W^T + b (torch.nn.functional.linear): x (..., in), weight (out, in),
// bias (out) or undefined -> y (..., out). One GEMM over all rows of x
// (rows = prod of the leading dims); the bias is written into y first and
// the GEMM accumulates onto it (beta = 1).
Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias);
// gx = gy W: (..., out) @ (out, in) -> x_shape (one GEMM).
Tensor linear_backward_input(const Tensor& grad, const Tensor& weight, const Shape& x_shape);
// gW = gy^T x: (out, rows) @ (rows, in) -> (out, in) (one GEMM over all rows).
Tensor linear_backward_weight(const Tensor& grad, const Tensor& x);
// gb = sum of gy over all rows -> (out).
Tensor linear_backward_bias(const Tensor& grad);

}  // namespace ssm::kernels
