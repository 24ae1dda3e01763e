#pragma once
// The CUDA runtime as the core sees it: device memory through the caching
// allocator, copies, and device queries. In a build without CUDA these
// functions throw ssm::Error (cuda::compiled() says which build this is).
#include <cstddef>
#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"

namespace ssm::cuda {

bool compiled();     // true in a CUDA build
int device_count();  // 0 when no GPU is visible (or no CUDA build)

// Caching allocator: freed blocks are kept, keyed by their rounded size, and
// handed out again to a request of the same size class. cudaMalloc is called
// only on a miss; when it fails, the cache is released and the call retried.
void* device_alloc(std::size_t nbytes, int device);
void device_free(void* ptr, int device);

struct AllocatorStats {
  std::size_t current_bytes = 0;       // bytes in live tensors
  std::size_t peak_bytes = 0;          // high-water mark of current_bytes
  std::size_t cached_bytes = 0;        // bytes held in the free lists
  std::size_t reserved_bytes = 0;      // bytes obtained from cudaMalloc, live or cached
  std::uint64_t num_allocs = 0;        // device_alloc calls
  std::uint64_t num_cuda_mallocs = 0;  // of which went to cudaMalloc
};
AllocatorStats allocator_stats();
void reset_peak_stats();
void empty_cache();  // returns all cached blocks with cudaFree

// Synchronous copy between any two of host and device memory.
void memcpy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t nbytes);
void synchronize();

// On one device: dst view (shape, dst_strides, in elements from dst) = src
// view (shape, src_strides), converting the dtype as convert_element does.
// Pointers point at element 0 of each view. Runs on the default stream.
void strided_copy(void* dst, DType dst_dtype, const Shape& shape, const Shape& dst_strides,
                  const void* src, DType src_dtype, const Shape& src_strides, int device);
// Every element of the view = *value (one element of dtype, in host memory).
void strided_fill(void* dst, DType dtype, const Shape& shape, const Shape& strides,
                  const void* value, int device);

}  // namespace ssm::cuda
