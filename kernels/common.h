#pragma once
// Helpers shared by the kernel entry points: device checks and the message
// for an op that has no CUDA implementation yet.
#include <initializer_list>

#include "core/tensor.h"

namespace ssm::kernels {

// Throws "[op] has no CUDA implementation" when any tensor is not on the CPU.
// The CUDA backend replaces these checks with a dispatch to kernels/cuda/.
void require_cpu(const char* op, std::initializer_list<const Tensor*> tensors);

// Number of OpenMP threads the CPU kernels use (1 without OpenMP).
int num_threads();
void set_num_threads(int n);

}  // namespace ssm::kernels
