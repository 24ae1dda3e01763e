#pragma once
// Storage: one allocation of bytes on one device, shared by all tensors that
// view it. CPU memory is 64-byte aligned and comes from the host caching
// allocator (core/cpu_allocator.h); CUDA memory comes from the device caching
// allocator (core/cuda/runtime.h), never from managed memory.
#include <cstddef>
#include <memory>

#include "core/device.h"

namespace ssm {

class Storage {
 public:
  Storage(std::size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t nbytes_ = 0;
  Device device_;
};

// Copies nbytes between two (possibly different) devices; synchronous.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t nbytes);

}  // namespace ssm
