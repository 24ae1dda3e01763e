#include "core/storage.h"

#include <cstdlib>
#include <cstring>

#include "core/cpu_allocator.h"
#include "core/cuda/runtime.h"
#include "core/error.h"

namespace ssm {

Storage::Storage(std::size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (nbytes == 0) return;
  if (device.is_cpu()) {
    data_ = cpu::host_alloc(nbytes);
  } else {
    data_ = cuda::device_alloc(nbytes, device.index);
  }
}

Storage::~Storage() {
  if (!data_) return;
  if (device_.is_cpu()) {
    cpu::host_free(data_);
  } else {
    cuda::device_free(data_, device_.index);
  }
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
  } else {
    cuda::memcpy(dst, dst_device, src, src_device, nbytes);
  }
}

}  // namespace ssm
