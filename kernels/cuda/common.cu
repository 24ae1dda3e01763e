#include "kernels/cuda/common.cuh"

namespace ssm::kernels::cuda {

Indexer make_indexer(const Tensor& t, const Shape& shape, const char* op) {
  const Tensor v = t.shape() == shape ? t : t.expand(shape);
  // Drop size-1 dims, then merge d into d+1 when stride[d] == stride[d+1] * size[d+1].
  std::int64_t sizes[64], strides[64];
  int n = 0;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (n > 0 && strides[n - 1] == v.strides()[d] * shape[d]) {
      sizes[n - 1] *= shape[d];
      strides[n - 1] = v.strides()[d];
      continue;
    }
    SSM_CHECK(n < 64, op, "too many dims");
    sizes[n] = shape[d];
    strides[n] = v.strides()[d];
    ++n;
  }
  SSM_CHECK(n <= kMaxDims, op, "the CUDA kernels index views of at most ", kMaxDims,
            " non-mergeable dims, got ", v.desc());
  Indexer ix;
  ix.ndim = n;
  for (int d = 0; d < n; ++d) {
    ix.sizes[d] = sizes[d];
    ix.strides[d] = strides[d];
  }
  return ix;
}

void require_cuda_float32(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    SSM_CHECK(t->device().is_cuda(), op, "expected every tensor on the same CUDA device, got ",
              t->desc());
    SSM_CHECK(t->dtype() == DType::Float32, op, "the CUDA kernels take float32 tensors, got ",
              t->desc());
    if (!first) first = t;
    SSM_CHECK(t->device() == first->device(), op, "tensors on different devices: ", first->desc(),
              " and ", t->desc());
  }
  if (first) set_device(*first);
}

void set_device(const Tensor& t) { SSM_CUDA_CHECK(cudaSetDevice(t.device().index)); }

}  // namespace ssm::kernels::cuda
