#pragma once
// Runs a generic lambda with the C++ element type of a runtime dtype:
//   dispatch_float(t.dtype(), "softmax", [&](auto tag) {
//     using T = typename decltype(tag)::type; ... });
#include "core/dtype.h"
#include "core/error.h"

namespace ssm {

template <class T>
struct TypeTag {
  using type = T;
};

// float32 and float64: what the CPU math kernels support.
template <class F>
decltype(auto) dispatch_float(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(TypeTag<float>{});
    case DType::Float64: return f(TypeTag<double>{});
    default: break;
  }
  fail(op, "expected a float32 or float64 tensor, got ", dtype_name(dtype));
}

// int32 and int64: index tensors.
template <class F>
decltype(auto) dispatch_index(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Int32: return f(TypeTag<std::int32_t>{});
    case DType::Int64: return f(TypeTag<std::int64_t>{});
    default: break;
  }
  fail(op, "expected an int32 or int64 index tensor, got ", dtype_name(dtype));
}

// Every dtype, bfloat16 included (copies and conversions).
template <class F>
decltype(auto) dispatch_all(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(TypeTag<float>{});
    case DType::Float64: return f(TypeTag<double>{});
    case DType::Int32: return f(TypeTag<std::int32_t>{});
    case DType::Int64: return f(TypeTag<std::int64_t>{});
    case DType::BFloat16: return f(TypeTag<BFloat16>{});
  }
  fail(op, "unknown dtype");
}

// Element conversion between any two element types (bfloat16 through float).
template <class D, class S>
inline D convert_element(S v) {
  if constexpr (std::is_same_v<S, BFloat16>) {
    return convert_element<D>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<D, BFloat16>) {
    return BFloat16(static_cast<float>(v));
  } else {
    return static_cast<D>(v);
  }
}

}  // namespace ssm
