// CUDA storage: copies between host and device (contiguous and strided),
// fills, the caching allocator's reuse and statistics, and the RNG giving the
// same numbers on both devices. Skipped with a message when no GPU is visible.
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::cuda_or_skip;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;

TEST_CASE("host <-> device copies round-trip exactly", "[cuda][tensor]") {
  if (!cuda_or_skip()) return;
  Tensor h = random_tensor({37, 53}, 1, -5, 5, DType::Float32, false);
  Tensor d = h.to(Device::cuda());
  CHECK(d.device() == Device::cuda());
  CHECK(d.to(Device::cpu()).to_vector<float>() == h.to_vector<float>());
  // strided views in both directions
  Tensor dt = d.transpose(0, 1).contiguous();
  CHECK(dt.device().is_cuda());
  CHECK(dt.to(Device::cpu()).to_vector<float>() ==
        h.transpose(0, 1).contiguous().to_vector<float>());
  Tensor dst = Tensor::zeros({53, 37}, DType::Float32, Device::cuda());
  dst.narrow(0, 3, 10).copy_(h.transpose(0, 1).narrow(0, 3, 10));
  auto back = dst.to(Device::cpu());
  require_close(back.narrow(0, 3, 10), h.transpose(0, 1).narrow(0, 3, 10));
  CHECK(back.narrow(0, 0, 3).to_vector<float>() == std::vector<float>(3 * 37, 0.0f));
  // dtype conversion across devices
  CHECK(d.to(DType::Float64).to(Device::cpu()).to_vector<double>() ==
        h.to(DType::Float64).to_vector<double>());
}

TEST_CASE("device fills and printing", "[cuda][tensor]") {
  if (!cuda_or_skip()) return;
  Tensor t = Tensor::full({4, 5}, 2.5, DType::Float32, Device::cuda());
  CHECK(t.to(Device::cpu()).to_vector<float>() == std::vector<float>(20, 2.5f));
  t.narrow(1, 0, 2).fill_(-1.0);
  auto v = t.to(Device::cpu()).to_vector<float>();
  CHECK(v[0] == -1.0f);
  CHECK(v[2] == 2.5f);
  CHECK(t.str().find("cuda:0") != std::string::npos);
}

TEST_CASE("the caching allocator reuses freed blocks and tracks peak bytes", "[cuda][tensor]") {
  if (!cuda_or_skip()) return;
  cuda::empty_cache();
  cuda::reset_peak_stats();
  const auto before = cuda::allocator_stats();
  {
    Tensor a = Tensor::empty({1 << 20}, DType::Float32, Device::cuda());  // 4 MiB
    const auto during = cuda::allocator_stats();
    CHECK(during.current_bytes >= before.current_bytes + (4u << 20));
    CHECK(during.peak_bytes >= during.current_bytes);
  }
  const auto freed = cuda::allocator_stats();
  CHECK(freed.current_bytes == before.current_bytes);
  CHECK(freed.cached_bytes >= (4u << 20));
  const auto mallocs = freed.num_cuda_mallocs;
  {
    Tensor b = Tensor::empty({1 << 20}, DType::Float32, Device::cuda());
    CHECK(cuda::allocator_stats().num_cuda_mallocs == mallocs);  // served from the cache
  }
  cuda::empty_cache();
  CHECK(cuda::allocator_stats().cached_bytes == 0);
}

TEST_CASE("random fills give the same numbers on CPU and CUDA", "[cuda][rng]") {
  if (!cuda_or_skip()) return;
  // The CPU fill is the oracle; every element must agree bit for bit.
  Generator g1(99), g2(99);
  Tensor c = rand({100003}, DType::Float32, Device::cpu(), g1);
  Tensor d = rand({100003}, DType::Float32, Device::cuda(), g2);
  CHECK(d.to(Device::cpu()).to_vector<float>() == c.to_vector<float>());
  Tensor cb = Tensor::empty({5000}, DType::Float64), db = cb.to(Device::cuda());
  bernoulli_(cb, 0.3, g1);
  bernoulli_(db, 0.3, g2);
  CHECK(db.to(Device::cpu()).to_vector<double>() == cb.to_vector<double>());
  Tensor cn = randn({100001}, DType::Float32, Device::cpu(), g1);
  Tensor dn = randn({100001}, DType::Float32, Device::cuda(), g2);
  CHECK(dn.to(Device::cpu()).to_vector<float>() == cn.to_vector<float>());
  CHECK(g1.state() == g2.state());
  // A strided device view is filled in its own element order.
  Tensor ct = Tensor::zeros({40, 30}, DType::Float32);
  Tensor dt = Tensor::zeros({40, 30}, DType::Float32, Device::cuda());
  uniform_(ct.transpose(0, 1), -2.0, 3.0, g1);
  uniform_(dt.transpose(0, 1), -2.0, 3.0, g2);
  CHECK(dt.to(Device::cpu()).to_vector<float>() == ct.to_vector<float>());
}

TEST_CASE("ops without a CUDA kernel say so", "[cuda][tensor]") {
  if (!cuda_or_skip()) return;
  Tensor d = Tensor::ones({3}, DType::Float32, Device::cuda());
  // The S4 family's FFT convolution gets its CUDA kernel in a later issue.
  const Tensor u = Tensor::ones({1, 2, 8}, DType::Float32, Device::cuda());
  const Tensor k = Tensor::ones({1, 2, 8}, DType::Float32, Device::cuda());
  CHECK(error_message([&] { fft_conv(u, k); }).find("[fft_conv] has no CUDA implementation") ==
        0);
  Tensor h = Tensor::ones({3});
  CHECK(error_message([&] { add(d, h); }).find("[add] tensors on different devices") == 0);
}
