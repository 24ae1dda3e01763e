#pragma once
// Where a tensor's storage lives: the CPU, or CUDA device n.
#include <cstdint>
#include <ostream>
#include <string>

namespace ssm {

enum class DeviceType : std::uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  // Parses "cpu", "cuda" or "cuda:N"; throws ssm::Error otherwise.
  static Device parse(const std::string& text);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Device& device);

// True when this build has the CUDA backend and a GPU is visible. The first
// call on a CUDA build without a GPU prints, once, that everything runs on CPU.
bool cuda_available();
int cuda_device_count();
// Device::cuda() when cuda_available(), else Device::cpu().
Device default_device();

}  // namespace ssm
