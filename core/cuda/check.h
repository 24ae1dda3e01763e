#pragma once
// SSM_CUDA_CHECK(stmt): runs a CUDA runtime call and throws ssm::Error naming
// the statement, the file and the line when it does not return cudaSuccess.
#include <cuda_runtime.h>

#include "core/error.h"

#define SSM_CUDA_CHECK(stmt)                                                   \
  do {                                                                         \
    const cudaError_t ssm_err_ = (stmt);                                       \
    if (ssm_err_ != cudaSuccess) {                                             \
      ::ssm::fail("cuda", #stmt, " failed at ", __FILE__, ":", __LINE__, ": ", \
                  cudaGetErrorString(ssm_err_));                               \
    }                                                                          \
  } while (0)

// After a kernel launch: catches launch-configuration errors.
#define SSM_CUDA_CHECK_LAUNCH() SSM_CUDA_CHECK(cudaGetLastError())
