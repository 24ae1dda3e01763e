#include "core/device.h"

#include <cstdio>
#include <mutex>

#include "core/cuda/runtime.h"
#include "core/error.h"

namespace ssm {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5) {
    int index = 0;
    for (std::size_t i = 5; i < text.size(); ++i) {
      SSM_CHECK(text[i] >= '0' && text[i] <= '9', "Device", "cannot parse device '", text,
                "' (expected cpu, cuda or cuda:N)");
      index = index * 10 + (text[i] - '0');
    }
    return cuda(index);
  }
  fail("Device", "cannot parse device '", text, "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

std::ostream& operator<<(std::ostream& os, const Device& device) { return os << device.str(); }

int cuda_device_count() { return cuda::device_count(); }

bool cuda_available() {
  const bool available = cuda::device_count() > 0;
  if (cuda::compiled() && !available) {
    static std::once_flag once;
    std::call_once(once, [] {
      std::fprintf(stderr, "ssmkit: built with CUDA but no GPU is visible; running on CPU\n");
    });
  }
  return available;
}

Device default_device() { return cuda_available() ? Device::cuda(0) : Device::cpu(); }

}  // namespace ssm
