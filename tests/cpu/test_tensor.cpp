// Tensor: factories, metadata, views sharing storage, copies, dtype
// conversion, printing and error messages.
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::require_close;

TEST_CASE("tensor factories fill shape, dtype and values", "[cpu][tensor]") {
  Tensor z = Tensor::zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.strides() == Shape{3, 1});
  CHECK(z.dtype() == DType::Float32);
  CHECK(z.device() == Device::cpu());
  CHECK(z.numel() == 6);
  CHECK(z.is_contiguous());
  for (float v : z.to_vector<float>()) CHECK(v == 0.0f);
  Tensor f = Tensor::full({4}, 2.5, DType::Float64);
  for (double v : f.to_vector<double>()) CHECK(v == 2.5);
  Tensor a = Tensor::arange(5);
  CHECK(a.dtype() == DType::Int64);
  CHECK(a.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  CHECK(Tensor::scalar(3.0).item<float>() == 3.0f);
  CHECK(Tensor::scalar(3.0).dim() == 0);
}

TEST_CASE("dtype sizes and names", "[cpu][tensor]") {
  CHECK(dtype_size(DType::Float32) == 4);
  CHECK(dtype_size(DType::Float64) == 8);
  CHECK(dtype_size(DType::Int32) == 4);
  CHECK(dtype_size(DType::Int64) == 8);
  CHECK(dtype_size(DType::BFloat16) == 2);
  CHECK(std::string(dtype_name(DType::BFloat16)) == "bfloat16");
}

TEST_CASE("bfloat16 rounds to nearest even and round-trips exact values", "[cpu][tensor]") {
  CHECK(static_cast<float>(BFloat16(1.0f)) == 1.0f);
  CHECK(static_cast<float>(BFloat16(-2.5f)) == -2.5f);
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even one (1).
  CHECK(static_cast<float>(BFloat16(1.0f + 1.0f / 256)) == 1.0f);
  CHECK(static_cast<float>(BFloat16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
  Tensor t = Tensor::from_vector<float>({0.5f, 3.0f, -7.0f}, {3}).to(DType::BFloat16);
  CHECK(t.to(DType::Float32).to_vector<float>() == std::vector<float>{0.5f, 3.0f, -7.0f});
}

TEST_CASE("views share storage and have the right geometry", "[cpu][tensor]") {
  Tensor t = Tensor::arange(24, DType::Float32).reshape({2, 3, 4});
  CHECK(t.shape() == Shape{2, 3, 4});
  Tensor tt = t.transpose(0, 2);
  CHECK(tt.shape() == Shape{4, 3, 2});
  CHECK(tt.storage() == t.storage());
  CHECK_FALSE(tt.is_contiguous());
  // element (i, j, k) of t is 12 i + 4 j + k; of tt (k, j, i) the same.
  auto v = tt.contiguous().to_vector<float>();
  CHECK(v[(3 * 3 + 1) * 2 + 1] == 12 * 1 + 4 * 1 + 3);

  Tensor p = t.permute({1, 2, 0});
  CHECK(p.shape() == Shape{3, 4, 2});
  CHECK(p.contiguous().to_vector<float>()[0 * 8 + 1 * 2 + 1] == 12 + 1);

  Tensor n = t.narrow(2, 1, 2);
  CHECK(n.shape() == Shape{2, 3, 2});
  CHECK(n.contiguous().to_vector<float>() ==
        std::vector<float>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22});

  Tensor s = t.select(1, 2);
  CHECK(s.shape() == Shape{2, 4});
  CHECK(s.contiguous().to_vector<float>() == std::vector<float>{8, 9, 10, 11, 20, 21, 22, 23});

  Tensor f = Tensor::arange(4, DType::Float32).flip(0);
  CHECK(f.contiguous().to_vector<float>() == std::vector<float>{3, 2, 1, 0});

  Tensor e = Tensor::arange(3, DType::Float32).reshape({3, 1}).expand({3, 2});
  CHECK(e.strides() == Shape{1, 0});
  CHECK(e.contiguous().to_vector<float>() == std::vector<float>{0, 0, 1, 1, 2, 2});

  Tensor u = Tensor::arange(3, DType::Float32).unsqueeze(0);
  CHECK(u.shape() == Shape{1, 3});
  CHECK(u.squeeze(0).shape() == Shape{3});
}

TEST_CASE("reshape infers -1, views when it can and copies when it must", "[cpu][tensor]") {
  Tensor t = Tensor::arange(12, DType::Float32).reshape({3, -1});
  CHECK(t.shape() == Shape{3, 4});
  CHECK(t.view({2, 6}).storage() == t.storage());
  Tensor tt = t.transpose(0, 1);  // (4, 3), not viewable as (12,)
  CHECK(error_message([&] { tt.view({12}); }).find("[view]") == 0);
  Tensor flat = tt.reshape({12});
  CHECK(flat.is_contiguous());
  CHECK(flat.to_vector<float>() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  CHECK(error_message([&] {
          t.reshape({5, -1});
        }).find("cannot reshape (3, 4)") != std::string::npos);
}

TEST_CASE("copies convert dtypes and respect strides", "[cpu][tensor]") {
  Tensor t = Tensor::arange(6, DType::Int64).reshape({2, 3});
  Tensor d = t.to(DType::Float64);
  CHECK(d.to_vector<double>() == std::vector<double>{0, 1, 2, 3, 4, 5});
  Tensor c = t.transpose(0, 1).clone();
  CHECK(c.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 3, 1, 4, 2, 5});
  // copy_ into a strided destination writes only the view's elements.
  Tensor dst = Tensor::zeros({2, 4});
  dst.narrow(1, 1, 2).copy_(Tensor::ones({2, 2}));
  CHECK(dst.to_vector<float>() == std::vector<float>{0, 1, 1, 0, 0, 1, 1, 0});
  Tensor big = Tensor::empty({300, 200}, DType::Float32);
  big.fill_(1.5);
  Tensor bt = big.transpose(0, 1).contiguous();
  CHECK(bt.shape() == Shape{200, 300});
  double total = 0;
  for (float v : bt.to_vector<float>()) total += v;
  CHECK(total == 1.5 * 60000);
}

TEST_CASE("printing names shape, dtype and device", "[cpu][tensor]") {
  Tensor t = Tensor::from_vector<float>({1, 2, 3}, {3});
  const std::string s = t.str();
  CHECK(s.find("shape=(3,)") != std::string::npos);
  CHECK(s.find("float32") != std::string::npos);
  CHECK(s.find("cpu") != std::string::npos);
  CHECK(s.find("[1, 2, 3]") != std::string::npos);
  CHECK(Tensor().str() == "Tensor(undefined)");
}

TEST_CASE("bad tensor use throws ssm::Error naming the op", "[cpu][tensor]") {
  Tensor t = Tensor::zeros({2, 3});
  CHECK(error_message([&] { t.data<double>(); }).find("[Tensor::data]") == 0);
  CHECK(error_message([&] { t.transpose(0, 5); }).find("[transpose] dim 5 out of range") == 0);
  CHECK(error_message([&] { t.expand({4, 3}); }).find("[expand] cannot expand (2, 3)") == 0);
  CHECK(error_message([&] { t.narrow(1, 2, 2); }).find("[narrow]") == 0);
  CHECK(error_message([&] { Tensor::empty({-1}); }).find("[Tensor::empty]") == 0);
  CHECK(error_message([&] {
          Tensor::arange(3).set_requires_grad(true);
        }).find("only floating-point") != std::string::npos);
  CHECK(error_message([&] { Device::parse("gpu"); }).find("cannot parse device 'gpu'") !=
        std::string::npos);
  CHECK(Device::parse("cuda:1") == Device::cuda(1));
}

TEST_CASE("broadcast_shapes follows NumPy and names both shapes on error", "[cpu][tensor]") {
  CHECK(broadcast_shapes({3, 1}, {1, 4}, "t") == Shape{3, 4});
  CHECK(broadcast_shapes({5, 3, 1}, {4}, "t") == Shape{5, 3, 4});
  CHECK(broadcast_shapes({}, {2, 2}, "t") == Shape{2, 2});
  const auto msg = error_message([] { broadcast_shapes({2, 3}, {4, 3}, "add"); });
  CHECK(msg.find("[add] shapes (2, 3) and (4, 3) cannot be broadcast") == 0);
}

TEST_CASE("a CUDA build without a GPU says so and keeps working on CPU", "[cpu][tensor]") {
  if (cuda::compiled() && cuda_device_count() == 0) {
    CHECK_FALSE(cuda_available());
    CHECK(default_device() == Device::cpu());
    CHECK(error_message([] {
            Tensor::zeros({2}, DType::Float32, Device::cuda());
          }).find("not a visible device") != std::string::npos);
  }
  if (!cuda::compiled()) {
    CHECK(error_message([] {
            Tensor::zeros({2}, DType::Float32, Device::cuda());
          }).find("built without CUDA") != std::string::npos);
  }
}

TEST_CASE("the host allocator caches large blocks within its limit", "[cpu][tensor]") {
  const auto before = cpu::host_allocator_stats();
  cpu::set_host_cache_limit(64u << 20);
  cpu::empty_host_cache();
  void* first = nullptr;
  {
    Tensor t = Tensor::zeros({1 << 20}, DType::Float32);  // 4 MiB
    first = t.data<float>();
    REQUIRE(reinterpret_cast<std::uintptr_t>(first) % 64 == 0);
    REQUIRE(cpu::host_allocator_stats().current_bytes >= before.current_bytes + (4u << 20));
  }
  REQUIRE(cpu::host_allocator_stats().cached_bytes == (4u << 20));
  {
    // Same size class: the freed block comes back, and zeros() still zeroes it.
    Tensor t = Tensor::full({1 << 20}, 3.0, DType::Float32);
    REQUIRE(t.data<float>() == first);
    Tensor u = Tensor::zeros({1 << 20}, DType::Float32);
    for (float v : u.to_vector<float>()) REQUIRE(v == 0.0f);
  }
  const auto after = cpu::host_allocator_stats();
  REQUIRE(after.num_cache_hits >= before.num_cache_hits + 1);
  REQUIRE(after.peak_bytes >= (8u << 20));
  // A block larger than the limit is returned to the system, not cached.
  cpu::set_host_cache_limit(1u << 20);
  REQUIRE(cpu::host_allocator_stats().cached_bytes == 0);
  { Tensor big = Tensor::empty({1 << 20}, DType::Float32); }
  REQUIRE(cpu::host_allocator_stats().cached_bytes == 0);
  cpu::set_host_cache_limit(before.cache_limit);
}
