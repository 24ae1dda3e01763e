// The CUDA runtime entry points of a build without CUDA: every device call
// throws, so a CUDA tensor can never be made by accident.
#ifndef SSM_WITH_CUDA
#include "core/cuda/runtime.h"
#include "core/error.h"

namespace ssm::cuda {

namespace {
[[noreturn]] void no_cuda(const char* op) {
  fail(op, "this ssmkit was built without CUDA (configure with -DSSM_CUDA=ON)");
}
}  // namespace

bool compiled() { return false; }
int device_count() { return 0; }
void* device_alloc(std::size_t, int) { no_cuda("cuda_alloc"); }
void device_free(void*, int) {}
AllocatorStats allocator_stats() { return {}; }
void reset_peak_stats() {}
void empty_cache() {}
void memcpy(void*, Device, const void*, Device, std::size_t) { no_cuda("cuda_memcpy"); }
void synchronize() {}
void strided_copy(void*, DType, const Shape&, const Shape&, const void*, DType, const Shape&, int) {
  no_cuda("cuda_copy");
}
void strided_fill(void*, DType, const Shape&, const Shape&, const void*, int) {
  no_cuda("cuda_fill");
}

}  // namespace ssm::cuda
#endif
