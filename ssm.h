#pragma once
// ssmkit: include this to get the tensor, the RNG, the autograd and every op.
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/cpu_allocator.h"
#include "core/cuda/runtime.h"
#include "core/rng.h"
#include "core/tensor.h"
