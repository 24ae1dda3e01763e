#pragma once
// cuBLAS for the CUDA kernels: one handle per device, created on first use,
// bound to the legacy default stream (the stream every kernel runs on), and
// a checker that names the call, the file and the line.
#include <cublas_v2.h>

#include "core/error.h"

namespace ssm::kernels::cuda {

// The handle of the current device (cudaGetDevice).
cublasHandle_t cublas_handle();

// TF32 tensor-core math for float32 GEMMs: off by default (exact float32
// products, as on the CPU); train.tf32 turns it on.
void set_allow_tf32(bool on);
bool allow_tf32();

const char* cublas_status_name(cublasStatus_t status);

}  // namespace ssm::kernels::cuda

#define SSM_CUBLAS_CHECK(stmt)                                                   \
  do {                                                                           \
    const cublasStatus_t ssm_st_ = (stmt);                                       \
    if (ssm_st_ != CUBLAS_STATUS_SUCCESS) {                                      \
      ::ssm::fail("cublas", #stmt, " failed at ", __FILE__, ":", __LINE__, ": ", \
                  ::ssm::kernels::cuda::cublas_status_name(ssm_st_));            \
    }                                                                            \
  } while (0)
