// CUDA runtime and caching allocator (compiled only in a CUDA build).
#include "core/cuda/runtime.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/cuda/check.h"

namespace ssm::cuda {

bool compiled() { return true; }

int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no device" error
      n = 0;
    }
    return n;
  }();
  return count;
}

namespace {

// Size classes: 512-byte granularity below 1 MiB, 2 MiB granularity above.
std::size_t round_size(std::size_t n) {
  constexpr std::size_t small = 512, large = 2u << 20;
  if (n < (1u << 20)) return std::max<std::size_t>(small, (n + small - 1) / small * small);
  return (n + large - 1) / large * large;
}

struct CachingAllocator {
  std::mutex mutex;
  // Free blocks per device, ordered by size so that lower_bound finds the
  // smallest block that fits.
  std::map<int, std::multimap<std::size_t, void*>> free_blocks;
  std::unordered_map<void*, std::size_t> live;  // ptr -> rounded size
  AllocatorStats stats;

  void* alloc(std::size_t nbytes, int device) {
    const std::size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mutex);
    ++stats.num_allocs;
    auto& pool = free_blocks[device];
    // Reuse a cached block of the same size class (at most 2x larger for big
    // blocks so that a small tensor does not pin a huge block).
    auto it = pool.lower_bound(size);
    if (it != pool.end() && it->first <= std::max(size, 2 * size)) {
      if (it->first == size || size >= (1u << 20)) {
        void* ptr = it->second;
        const std::size_t got = it->first;
        pool.erase(it);
        stats.cached_bytes -= got;
        return track(ptr, got);
      }
    }
    SSM_CUDA_CHECK(cudaSetDevice(device));
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cache_locked();
      err = cudaMalloc(&ptr, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      fail("cuda_alloc", "cudaMalloc of ", size, " bytes on cuda:", device,
           " failed: ", cudaGetErrorString(err), " (", stats.current_bytes,
           " bytes in live tensors)");
    }
    ++stats.num_cuda_mallocs;
    stats.reserved_bytes += size;
    return track(ptr, size);
  }

  void* track(void* ptr, std::size_t size) {
    live[ptr] = size;
    stats.current_bytes += size;
    stats.peak_bytes = std::max(stats.peak_bytes, stats.current_bytes);
    return ptr;
  }

  void free(void* ptr, int device) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = live.find(ptr);
    if (it == live.end()) return;  // not ours: never happens for Storage
    const std::size_t size = it->second;
    live.erase(it);
    stats.current_bytes -= size;
    stats.cached_bytes += size;
    free_blocks[device].emplace(size, ptr);
  }

  void release_cache_locked() {
    for (auto& [device, pool] : free_blocks) {
      cudaSetDevice(device);
      for (auto& [size, ptr] : pool) {
        cudaFree(ptr);
        stats.cached_bytes -= size;
        stats.reserved_bytes -= size;
      }
      pool.clear();
    }
  }
};

CachingAllocator& allocator() {
  // Never destroyed: tensors held in static objects may be freed after main.
  static CachingAllocator* instance = new CachingAllocator();
  return *instance;
}

}  // namespace

void* device_alloc(std::size_t nbytes, int device) {
  SSM_CHECK(device >= 0 && device < device_count(), "cuda_alloc", "cuda:", device,
            " is not a visible device (", device_count(), " visible)");
  return allocator().alloc(nbytes, device);
}

void device_free(void* ptr, int device) { allocator().free(ptr, device); }

AllocatorStats allocator_stats() {
  std::lock_guard<std::mutex> lock(allocator().mutex);
  return allocator().stats;
}

void reset_peak_stats() {
  std::lock_guard<std::mutex> lock(allocator().mutex);
  allocator().stats.peak_bytes = allocator().stats.current_bytes;
}

void empty_cache() {
  std::lock_guard<std::mutex> lock(allocator().mutex);
  allocator().release_cache_locked();
}

void memcpy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t nbytes) {
  cudaMemcpyKind kind = cudaMemcpyDefault;
  if (dst_device.is_cuda() && src_device.is_cpu()) kind = cudaMemcpyHostToDevice;
  if (dst_device.is_cpu() && src_device.is_cuda()) kind = cudaMemcpyDeviceToHost;
  if (dst_device.is_cuda() && src_device.is_cuda()) kind = cudaMemcpyDeviceToDevice;
  if (dst_device.is_cuda()) SSM_CUDA_CHECK(cudaSetDevice(dst_device.index));
  SSM_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, kind));
}

void synchronize() { SSM_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace ssm::cuda
