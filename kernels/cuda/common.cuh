#pragma once
// Shared by the CUDA kernels (kernels/cuda/*.cu): strided indexing of a
// tensor view, launch sizes, the device checks every entry point makes, and
// warp/block reductions.
//
// Streams: every kernel and cuBLAS call runs on the legacy default stream, so
// work is ordered as it is issued and a block the caching allocator hands out
// again is never still in use by an earlier kernel.
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "core/cuda/check.h"
#include "core/error.h"
#include "core/tensor.h"

namespace ssm::kernels::cuda {

constexpr int kMaxDims = 8;
constexpr int kThreads = 256;

// Offsets of a (possibly broadcast, negative-stride, non-contiguous) view,
// element i of its row-major order -> its element offset from data<T>().
struct Indexer {
  int ndim = 0;
  std::int64_t sizes[kMaxDims] = {};
  std::int64_t strides[kMaxDims] = {};

  __host__ __device__ std::int64_t operator()(std::int64_t i) const {
    std::int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const std::int64_t s = sizes[d];
      off += (i % s) * strides[d];
      i /= s;
    }
    return off;
  }
};

// The indexer of t viewed with `shape` (t must broadcast to it). Size-1 dims
// are dropped and adjacent mergeable dims merged, so that most views need one
// or two dims; more than kMaxDims after merging throws.
Indexer make_indexer(const Tensor& t, const Shape& shape, const char* op);
inline Indexer make_indexer(const Tensor& t, const char* op) {
  return make_indexer(t, t.shape(), op);
}

// Blocks for n threads' worth of work with kThreads per block (grid-stride
// loops cover the rest past the cap).
inline unsigned blocks_for(std::int64_t n, int threads = kThreads) {
  const std::int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

// Every tensor defined is on the same CUDA device and float32 (the dtype the
// CUDA kernels implement; bfloat16 arrives with mixed precision).
void require_cuda_float32(const char* op, std::initializer_list<const Tensor*> tensors);

// t.contiguous() for a defined tensor; an undefined (optional) one stays undefined.
inline Tensor contiguous_if_defined(const Tensor& t) { return t.defined() ? t.contiguous() : t; }

// Makes the tensors' device current for the launches that follow.
void set_device(const Tensor& t);

// This thread's index in a 1-D grid, and the threads in the grid (the
// stride of a grid-stride loop).
__device__ inline std::int64_t thread_index() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t thread_count() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

template <class T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class T>
__device__ inline T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result. `shared` holds 32 values. Fixed order: the result
// does not depend on timing.
template <class T>
__device__ inline T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int nwarps = (blockDim.x + 31) >> 5;
  v = lane < nwarps ? shared[lane] : T(0);
  return warp_sum(v);
}
template <class T>
__device__ inline T block_max(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int nwarps = (blockDim.x + 31) >> 5;
  v = lane < nwarps ? shared[lane] : T(-INFINITY);
  return warp_max(v);
}

// The threads that share one row of a rows kernel: a warp (PerBlock false,
// rows first + k * step over the grid's warps) or the whole block (one row
// per block). Every thread of a group sees the same rows, so the reductions
// (and the __syncthreads inside block_sum / block_max) are reached uniformly.
template <bool PerBlock>
struct RowGroup {
  std::int64_t first = 0, step = 0;  // the group's first row and the stride between its rows
  int lane = 0, width = 0;           // this thread's lane, the group's size

  __device__ RowGroup() {
    if constexpr (PerBlock) {
      first = blockIdx.x;
      step = gridDim.x;
      lane = static_cast<int>(threadIdx.x);
      width = static_cast<int>(blockDim.x);
    } else {
      const int warps = static_cast<int>(blockDim.x) / 32;
      first = static_cast<std::int64_t>(blockIdx.x) * warps + threadIdx.x / 32;
      step = static_cast<std::int64_t>(gridDim.x) * warps;
      lane = static_cast<int>(threadIdx.x & 31);
      width = 32;
    }
  }
  template <class T>
  __device__ T sum(T v, T* shared) const {
    if constexpr (PerBlock) {
      return block_sum(v, shared);
    } else {
      return warp_sum(v);
    }
  }
  template <class T>
  __device__ T max(T v, T* shared) const {
    if constexpr (PerBlock) {
      return block_max(v, shared);
    } else {
      return warp_max(v);
    }
  }
};

}  // namespace ssm::kernels::cuda
