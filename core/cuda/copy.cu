// Device-side strided copies (with dtype conversion) and fills: what
// Tensor::copy_, contiguous(), to(DType) and fill_ run for CUDA tensors.
#include <cuda_runtime.h>

#include <cstring>

#include "core/cuda/check.h"
#include "core/cuda/runtime.h"
#include "core/shape.h"

namespace ssm::cuda {

namespace {

constexpr int kMaxDims = 16;
constexpr int kThreads = 256;

// Element i (row-major over `sizes`) -> its offset in a view with `strides`.
struct View {
  int ndim = 0;
  std::int64_t sizes[kMaxDims] = {};
  std::int64_t strides[kMaxDims] = {};
  __device__ std::int64_t offset(std::int64_t i) const {
    std::int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      off += (i % sizes[d]) * strides[d];
      i /= sizes[d];
    }
    return off;
  }
};

View make_view_desc(const Shape& shape, const Shape& strides) {
  SSM_CHECK(shape.size() <= static_cast<std::size_t>(kMaxDims), "cuda_copy", "at most ", kMaxDims,
            " dims, got ", shape.size());
  View v;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // never indexed
    v.sizes[v.ndim] = shape[d];
    v.strides[v.ndim] = strides[d];
    ++v.ndim;
  }
  return v;
}

// bfloat16 <-> float with the host's rounding (nearest even, NaN kept quiet).
struct Bf16 {
  std::uint16_t bits;
};
__device__ inline float load(const Bf16* p) {
  return __uint_as_float(std::uint32_t(p->bits) << 16);
}
template <class T>
__device__ inline T load(const T* p) {
  return *p;
}
template <class T>
__device__ inline void store(T* p, double v) {
  *p = static_cast<T>(v);
}
template <class T>
__device__ inline void store_from(T* p, float v) {
  *p = static_cast<T>(v);
}
__device__ inline void to_bf16(Bf16* p, float f) {
  std::uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    p->bits = static_cast<std::uint16_t>((u >> 16) | 0x40u);
  } else {
    u += 0x7fffu + ((u >> 16) & 1u);
    p->bits = static_cast<std::uint16_t>(u >> 16);
  }
}

// Conversions follow static_cast (the host's convert_element) except through
// bfloat16, which converts via float.
template <class D, class S>
__device__ inline void convert(D* d, const S* s) {
  if constexpr (std::is_same_v<S, Bf16> && std::is_same_v<D, Bf16>) {
    *d = *s;
  } else if constexpr (std::is_same_v<S, Bf16>) {
    *d = static_cast<D>(load(s));
  } else if constexpr (std::is_same_v<D, Bf16>) {
    to_bf16(d, static_cast<float>(*s));
  } else {
    *d = static_cast<D>(*s);
  }
}

template <class D, class S>
__global__ void copy_kernel(D* dst, View dv, const S* src, View sv, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    convert(dst + dv.offset(i), src + sv.offset(i));
  }
}

template <class T>
__global__ void fill_kernel(T* dst, View dv, T value, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    dst[dv.offset(i)] = value;
  }
}

unsigned blocks(std::int64_t n) {
  const std::int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b > 65535 * 8 ? 65535 * 8 : (b < 1 ? 1 : b));
}

template <class F>
void with_type(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: f(static_cast<float*>(nullptr)); return;
    case DType::Float64: f(static_cast<double*>(nullptr)); return;
    case DType::Int32: f(static_cast<std::int32_t*>(nullptr)); return;
    case DType::Int64: f(static_cast<std::int64_t*>(nullptr)); return;
    case DType::BFloat16: f(static_cast<Bf16*>(nullptr)); return;
  }
  fail("cuda_copy", "unknown dtype");
}

}  // namespace

void strided_copy(void* dst, DType dst_dtype, const Shape& shape, const Shape& dst_strides,
                  const void* src, DType src_dtype, const Shape& src_strides, int device) {
  const std::int64_t n = shape_numel(shape);
  if (n == 0) return;
  SSM_CUDA_CHECK(cudaSetDevice(device));
  const View dv = make_view_desc(shape, dst_strides), sv = make_view_desc(shape, src_strides);
  with_type(dst_dtype, [&](auto* dtag) {
    using D = std::remove_pointer_t<decltype(dtag)>;
    with_type(src_dtype, [&](auto* stag) {
      using S = std::remove_pointer_t<decltype(stag)>;
      copy_kernel<D, S>
          <<<blocks(n), kThreads>>>(static_cast<D*>(dst), dv, static_cast<const S*>(src), sv, n);
      SSM_CUDA_CHECK_LAUNCH();
    });
  });
}

void strided_fill(void* dst, DType dtype, const Shape& shape, const Shape& strides,
                  const void* value, int device) {
  const std::int64_t n = shape_numel(shape);
  if (n == 0) return;
  SSM_CUDA_CHECK(cudaSetDevice(device));
  const View dv = make_view_desc(shape, strides);
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T v;
    std::memcpy(&v, value, sizeof(T));
    fill_kernel<T><<<blocks(n), kThreads>>>(static_cast<T*>(dst), dv, v, n);
    SSM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ssm::cuda
