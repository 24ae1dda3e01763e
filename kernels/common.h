#pragma once
// Helpers shared by the kernel entry points: device checks and the message
// for an op that has no CUDA implementation yet.
#include <initializer_list>

#include "core/tensor.h"

// SSM_CUDA_DISPATCH(t, expr): in a CUDA build, `return expr;` when t is a
// CUDA tensor (expr calls the kernels/cuda/ implementation, declared in
// kernels/cuda/<family>.h); in a CPU-only build nothing, so that the
// require_cpu that follows names the op.
#if defined(SSM_WITH_CUDA)
#define SSM_CUDA_DISPATCH(t, ...)                   \
  do {                                              \
    if ((t).device().is_cuda()) return __VA_ARGS__; \
  } while (0)
#else
#define SSM_CUDA_DISPATCH(t, ...) \
  do {                            \
  } while (0)
#endif

namespace ssm::kernels {

// Throws "[op] has no CUDA implementation" when any tensor is not on the CPU.
// The CUDA backend replaces these checks with a dispatch to kernels/cuda/.
void require_cpu(const char* op, std::initializer_list<const Tensor*> tensors);

// Number of OpenMP threads the CPU kernels use (1 without OpenMP).
int num_threads();
void set_num_threads(int n);

}  // namespace ssm::kernels
