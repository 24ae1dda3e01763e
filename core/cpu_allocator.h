#pragma once
// Host memory for tensors. Every block is 64-byte aligned. Large blocks
// (>= 256 KiB) are cached after they are freed and handed out again to a
// request of the same size class, so that a training step does not pay the
// kernel's page faults for fresh memory on every activation. The cache is
// bounded: SSM_CPU_CACHE_MB (default 1024; 0 turns caching off) caps the bytes
// held in the free lists, and a block that would exceed it is returned to the
// system at once. Address-sanitizer builds never cache, so use-after-free is
// still caught.
#include <cstddef>
#include <cstdint>

namespace ssm::cpu {

void* host_alloc(std::size_t nbytes);  // throws ssm::Error when out of memory
void host_free(void* ptr);

struct HostAllocatorStats {
  std::size_t current_bytes = 0;     // bytes in live tensors (rounded sizes)
  std::size_t peak_bytes = 0;        // high-water mark of current_bytes
  std::size_t cached_bytes = 0;      // bytes held in the free lists
  std::size_t cache_limit = 0;       // the cap on cached_bytes
  std::uint64_t num_allocs = 0;      // host_alloc calls
  std::uint64_t num_cache_hits = 0;  // of which were served from the cache
};
HostAllocatorStats host_allocator_stats();
void reset_host_peak_stats();
void empty_host_cache();  // returns all cached blocks to the system
// Overrides SSM_CPU_CACHE_MB; 0 disables caching (and empties the cache).
void set_host_cache_limit(std::size_t bytes);

}  // namespace ssm::cpu
