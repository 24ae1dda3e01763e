#include "core/cpu_allocator.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define SSM_HOST_CACHE_DEFAULT_ON 0
#else
#define SSM_HOST_CACHE_DEFAULT_ON 1
#endif

namespace ssm::cpu {
namespace {

constexpr std::size_t kAlign = 64;
constexpr std::size_t kCacheMin = 256u << 10;  // smaller blocks go straight to malloc
constexpr std::size_t kGranule = 64u << 10;    // size classes above kCacheMin

std::size_t round_size(std::size_t n) {
  if (n < kCacheMin) return std::max(kAlign, (n + kAlign - 1) / kAlign * kAlign);
  return (n + kGranule - 1) / kGranule * kGranule;
}

std::size_t default_limit() {
  if (!SSM_HOST_CACHE_DEFAULT_ON) return 0;
  std::size_t mb = 1024;
  if (const char* env = std::getenv("SSM_CPU_CACHE_MB")) {
    try {
      std::size_t used = 0;
      const std::string s(env);
      const unsigned long long v = std::stoull(s, &used);
      SSM_CHECK(used == s.size(), "SSM_CPU_CACHE_MB", "expected a number of MiB, got '", s, "'");
      mb = static_cast<std::size_t>(v);
    } catch (const std::logic_error&) {
      fail("SSM_CPU_CACHE_MB", "expected a number of MiB, got '", env, "'");
    }
  }
  return mb << 20;
}

struct HostAllocator {
  std::mutex mutex;
  std::multimap<std::size_t, void*> free_blocks;  // size -> block, for lower_bound
  std::unordered_map<void*, std::size_t> live;    // ptr -> rounded size
  HostAllocatorStats stats;

  HostAllocator() { stats.cache_limit = default_limit(); }

  void* alloc(std::size_t nbytes) {
    const std::size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mutex);
    ++stats.num_allocs;
    if (size >= kCacheMin) {
      // The smallest cached block that fits, if it wastes at most a quarter.
      auto it = free_blocks.lower_bound(size);
      if (it != free_blocks.end() && it->first <= size + size / 4) {
        void* ptr = it->second;
        const std::size_t got = it->first;
        free_blocks.erase(it);
        stats.cached_bytes -= got;
        ++stats.num_cache_hits;
        return track(ptr, got);
      }
    }
    void* ptr = std::aligned_alloc(kAlign, size);
    if (!ptr && stats.cached_bytes > 0) {
      release_locked();
      ptr = std::aligned_alloc(kAlign, size);
    }
    SSM_CHECK(ptr != nullptr, "host_alloc", "out of CPU memory allocating ", nbytes, " bytes (",
              stats.current_bytes, " bytes in live tensors)");
    return track(ptr, size);
  }

  void* track(void* ptr, std::size_t size) {
    live[ptr] = size;
    stats.current_bytes += size;
    stats.peak_bytes = std::max(stats.peak_bytes, stats.current_bytes);
    return ptr;
  }

  void free(void* ptr) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = live.find(ptr);
    if (it == live.end()) {
      std::free(ptr);  // not from host_alloc; never happens for Storage
      return;
    }
    const std::size_t size = it->second;
    live.erase(it);
    stats.current_bytes -= size;
    if (size >= kCacheMin && stats.cached_bytes + size <= stats.cache_limit) {
      free_blocks.emplace(size, ptr);
      stats.cached_bytes += size;
    } else {
      std::free(ptr);
    }
  }

  void release_locked() {
    for (auto& [size, ptr] : free_blocks) std::free(ptr);
    free_blocks.clear();
    stats.cached_bytes = 0;
  }
};

HostAllocator& allocator() {
  // Never destroyed: tensors held in static objects may be freed after main.
  static HostAllocator* instance = new HostAllocator();
  return *instance;
}

}  // namespace

void* host_alloc(std::size_t nbytes) { return allocator().alloc(nbytes); }

void host_free(void* ptr) {
  if (ptr) allocator().free(ptr);
}

HostAllocatorStats host_allocator_stats() {
  std::lock_guard<std::mutex> lock(allocator().mutex);
  return allocator().stats;
}

void reset_host_peak_stats() {
  std::lock_guard<std::mutex> lock(allocator().mutex);
  allocator().stats.peak_bytes = allocator().stats.current_bytes;
}

void empty_host_cache() {
  std::lock_guard<std::mutex> lock(allocator().mutex);
  allocator().release_locked();
}

void set_host_cache_limit(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(allocator().mutex);
  allocator().stats.cache_limit = bytes;
  if (allocator().stats.cached_bytes > bytes) allocator().release_locked();
}

}  // namespace ssm::cpu
