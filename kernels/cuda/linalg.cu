// cuBLAS GEMMs in the row-major terms of kernels/cpu/linalg.cpp.
//
// cuBLAS is column-major. A row-major (R, C) matrix with leading dimension ld
// is, read column-major, its transpose (C, R) with the same ld. So the
// row-major product C = op(A) op(B) (M, N) is computed as the column-major
// product C^T = op(B)^T op(A)^T (N, M): cuBLAS gets B first and A second,
// each with its own transpose flag, m = N, n = M, k = K, ldc = N.
#include "kernels/cuda/blas.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/linalg.h"

namespace ssm::kernels::cuda {

namespace {

// The common spacing of offsets (offsets[i] = offsets[0] + i * step), or -1.
std::int64_t uniform_step(const std::vector<std::int64_t>& offsets) {
  if (offsets.size() < 2) return 0;
  const std::int64_t step = offsets[1] - offsets[0];
  for (std::size_t i = 2; i < offsets.size(); ++i) {
    if (offsets[i] - offsets[i - 1] != step) return -1;
  }
  return step;
}

__global__ void fill_rows_kernel(float* y, const float* bias, std::int64_t rows,
                                 std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    y[i] = bias[i % cols];
  }
}

// The callers pass raw pointers, so no tensor names the device: make the one
// that holds p current, so that cublas_handle() and the launches run there
// (allocating the output does not set it when the caching allocator reuses
// a block).
void use_device_of(const void* p) {
  cudaPointerAttributes attr{};
  SSM_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
  SSM_CUDA_CHECK(cudaSetDevice(attr.device));
}

}  // namespace

void gemm_batched(bool a_trans, std::int64_t lda, bool b_trans, std::int64_t ldb, int m, int n,
                  int k, const float* a, const std::vector<std::int64_t>& a_offsets, const float* b,
                  const std::vector<std::int64_t>& b_offsets, float beta, float* c, bool sum) {
  const std::size_t nb = a_offsets.size();
  if (nb == 0 || m == 0 || n == 0) return;
  use_device_of(c);
  cublasHandle_t h = cublas_handle();
  const cublasOperation_t op_a = a_trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = b_trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const float one = 1.0f;
  const int ia = static_cast<int>(lda), ib = static_cast<int>(ldb);
  const std::int64_t sa = uniform_step(a_offsets), sb = uniform_step(b_offsets);
  if (!sum && nb > 1 && sa >= 0 && sb >= 0) {
    SSM_CUBLAS_CHECK(cublasSgemmStridedBatched(
        h, op_b, op_a, n, m, k, &one, b + b_offsets[0], ib, sb, a + a_offsets[0], ia, sa, &beta, c,
        n, static_cast<long long>(m) * n, static_cast<int>(nb)));
    return;
  }
  for (std::size_t i = 0; i < nb; ++i) {
    const float bi = sum ? (i == 0 ? beta : 1.0f) : beta;
    float* ci = sum ? c : c + static_cast<std::int64_t>(i) * m * n;
    SSM_CUBLAS_CHECK(cublasSgemm(h, op_b, op_a, n, m, k, &one, b + b_offsets[i], ib,
                                 a + a_offsets[i], ia, &bi, ci, n));
  }
}

void fill_rows(float* y, const float* bias, std::int64_t rows, std::int64_t cols) {
  if (rows * cols == 0) return;
  use_device_of(y);
  fill_rows_kernel<<<blocks_for(rows * cols), kThreads>>>(y, bias, rows, cols);
  SSM_CUDA_CHECK_LAUNCH();
}

}  // namespace ssm::kernels::cuda
