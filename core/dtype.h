#pragma once
// Element types of a Tensor. float64 exists for gradient checks; bfloat16 is
// declared for the mixed-precision work (storage only, no kernels yet).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ostream>

namespace ssm {

enum class DType : std::uint8_t { Float32, Float64, Int32, Int64, BFloat16 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
bool is_floating(DType dtype);
std::ostream& operator<<(std::ostream& os, DType dtype);

// bfloat16: the upper 16 bits of an IEEE float32, rounded to nearest even.
struct BFloat16 {
  std::uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a quiet NaN
      bits = static_cast<std::uint16_t>((u >> 16) | 0x40u);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<std::uint16_t>(u >> 16);
    }
  }
  explicit operator float() const {
    std::uint32_t u = static_cast<std::uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// The C++ type that stores one element of a dtype.
template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::Float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::Float64;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::Int32;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::Int64;
}
template <>
constexpr DType dtype_of<BFloat16>() {
  return DType::BFloat16;
}

}  // namespace ssm
