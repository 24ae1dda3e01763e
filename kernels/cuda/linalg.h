#pragma once
// cuBLAS GEMMs for kernels/cpu/linalg.cpp, which shapes every product (batch
// broadcasting, transposed views, folding) the same way on both devices and
// calls this for the multiply itself when the operands live on the GPU.
#include <cstdint>
#include <vector>

namespace ssm::kernels::cuda {

// For every batch index i: C_i (M, N) = op(A_i) op(B_i) + beta C_i, all
// row-major in BLAS terms: A_i at a + a_offsets[i] with leading dimension lda,
// read transposed when a_trans (likewise B); C_i at c + i * M * N with ldc = N.
// sum: every product adds onto the same C (C_0), in batch order, the first
// with `beta` and the rest with 1, so the result does not depend on timing.
// Uniformly spaced offsets use one cublasSgemmStridedBatched call.
void gemm_batched(bool a_trans, std::int64_t lda, bool b_trans, std::int64_t ldb, int m, int n,
                  int k, const float* a, const std::vector<std::int64_t>& a_offsets, const float* b,
                  const std::vector<std::int64_t>& b_offsets, float beta, float* c, bool sum);

// y (rows, cols) contiguous: every row = bias (cols).
void fill_rows(float* y, const float* bias, std::int64_t rows, std::int64_t cols);

}  // namespace ssm::kernels::cuda
