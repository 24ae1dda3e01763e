// Multi-tensor Adam(W) and the gradient-norm helpers. See kernels/cuda/optim.h.
#include <cstring>
#include <vector>

#include "core/cuda/runtime.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/optim.h"

namespace ssm::kernels::cuda {

namespace {

constexpr std::int64_t kChunk = std::int64_t{1} << 16;

struct Chunk {
  int tensor;
  std::int64_t begin;
};

// Block b updates chunk b: elements [begin, min(begin + kChunk, n)) of its
// tensor. The arithmetic is the CPU kernel's, element for element (explicit
// fmaf where the CPU fuses, IEEE division and square root).
__global__ void adam_kernel(const AdamTensor* tensors, const Chunk* chunks, float beta1, float omb1,
                            float beta2, float omb2, float eps) {
  const Chunk c = chunks[blockIdx.x];
  const AdamTensor t = tensors[c.tensor];
  const std::int64_t end = c.begin + kChunk < t.n ? c.begin + kChunk : t.n;
  for (std::int64_t i = c.begin + threadIdx.x; i < end; i += blockDim.x) {
    const float g = t.l2 != 0.0f ? __fmaf_rn(t.l2, t.param[i], t.grad[i]) : t.grad[i];
    const float pd = __fmul_rn(t.param[i], t.decay);
    const float mi = __fmaf_rn(omb1, g, __fmul_rn(t.exp_avg[i], beta1));
    const float vi = __fmaf_rn(__fmul_rn(omb2, g), g, __fmul_rn(t.exp_avg_sq[i], beta2));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), t.bc2_sqrt), eps);
    t.exp_avg[i] = mi;
    t.exp_avg_sq[i] = vi;
    t.param[i] = __fadd_rn(pd, __fdiv_rn(__fmul_rn(t.neg_step_size, mi), denom));
  }
}

constexpr int kNormBlocks = 1024;

// Block b sums the squares of elements b, b + B, b + 2B, ... (B threads in
// all, strided by thread) in double; the block's total goes to partial[b].
__global__ void sum_squares_kernel(const float* x, std::int64_t n, double* partial) {
  __shared__ double shared[32];
  double s = 0.0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += stride) {
    const double v = static_cast<double>(x[i]);
    s += v * v;
  }
  s = block_sum(s, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void scale_kernel(float* x, std::int64_t n, float f) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    x[i] *= f;
  }
}

// A device buffer for one call's small tables, from the caching allocator.
// Freed at scope end: a later kernel that gets the block again runs after the
// one that reads it (one stream).
struct DeviceBuffer {
  void* ptr = nullptr;
  int device = 0;
  explicit DeviceBuffer(std::size_t bytes) {
    SSM_CUDA_CHECK(cudaGetDevice(&device));
    ptr = ssm::cuda::device_alloc(bytes, device);
  }
  ~DeviceBuffer() { ssm::cuda::device_free(ptr, device); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

}  // namespace

void use_device(int index) { SSM_CUDA_CHECK(cudaSetDevice(index)); }

void adam_multi_tensor(const std::vector<AdamTensor>& tensors, float beta1, float one_minus_beta1,
                       float beta2, float one_minus_beta2, float eps) {
  std::vector<Chunk> chunks;
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    for (std::int64_t b = 0; b < tensors[t].n; b += kChunk) {
      chunks.push_back({static_cast<int>(t), b});
    }
  }
  if (chunks.empty()) return;
  const std::size_t tbytes = tensors.size() * sizeof(AdamTensor);
  const std::size_t cbytes = chunks.size() * sizeof(Chunk);
  // One upload: the tensor table, then the chunk table (8-byte aligned).
  const std::size_t coff = (tbytes + 15) / 16 * 16;
  std::vector<unsigned char> host(coff + cbytes);
  std::memcpy(host.data(), tensors.data(), tbytes);
  std::memcpy(host.data() + coff, chunks.data(), cbytes);
  DeviceBuffer dev(host.size());
  SSM_CUDA_CHECK(cudaMemcpy(dev.ptr, host.data(), host.size(), cudaMemcpyHostToDevice));
  const auto* dt = static_cast<const AdamTensor*>(dev.ptr);
  const auto* dc = reinterpret_cast<const Chunk*>(static_cast<unsigned char*>(dev.ptr) + coff);
  adam_kernel<<<static_cast<unsigned>(chunks.size()), 512>>>(dt, dc, beta1, one_minus_beta1, beta2,
                                                             one_minus_beta2, eps);
  SSM_CUDA_CHECK_LAUNCH();
}

double sum_squares(const float* x, std::int64_t n) {
  if (n == 0) return 0.0;
  DeviceBuffer partial(kNormBlocks * sizeof(double));
  sum_squares_kernel<<<kNormBlocks, kThreads>>>(x, n, static_cast<double*>(partial.ptr));
  SSM_CUDA_CHECK_LAUNCH();
  std::vector<double> host(kNormBlocks);
  SSM_CUDA_CHECK(
      cudaMemcpy(host.data(), partial.ptr, kNormBlocks * sizeof(double), cudaMemcpyDeviceToHost));
  double total = 0.0;
  for (double s : host) total += s;
  return total;
}

void scale(float* x, std::int64_t n, float f) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n), kThreads>>>(x, n, f);
  SSM_CUDA_CHECK_LAUNCH();
}

}  // namespace ssm::kernels::cuda
