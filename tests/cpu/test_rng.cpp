// Philox-4x32 and the Generator: known-answer vectors, determinism, state
// save/restore, and the statistics of uniform, normal and bernoulli fills.
#include "core/philox.h"
#include "tests/testing.h"

using namespace ssm;

TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors", "[cpu][rng]") {
  // kat_vectors of Random123 (philox4x32_10).
  Philox4 r = philox4x32(Philox4{{0, 0, 0, 0}}, 0, 0);
  CHECK(r.v[0] == 0x6627e8d5u);
  CHECK(r.v[1] == 0xe169c58du);
  CHECK(r.v[2] == 0xbc57ac4cu);
  CHECK(r.v[3] == 0x9b00dbd8u);
  r = philox4x32(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu,
                 0xffffffffu);
  CHECK(r.v[0] == 0x408f276du);
  CHECK(r.v[1] == 0x41c83b0eu);
  CHECK(r.v[2] == 0xa20bc7c6u);
  CHECK(r.v[3] == 0x6d5451fdu);
  r = philox4x32(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u,
                 0x299f31d0u);
  CHECK(r.v[0] == 0xd16cfe09u);
  CHECK(r.v[1] == 0x94fdccebu);
  CHECK(r.v[2] == 0x5001e420u);
  CHECK(r.v[3] == 0x24126ea1u);
}

TEST_CASE("the generator is deterministic and its state restores the stream", "[cpu][rng]") {
  Generator a(42), b(42);
  CHECK(rand({100}, DType::Float32, Device::cpu(), a).to_vector<float>() ==
        rand({100}, DType::Float32, Device::cpu(), b).to_vector<float>());
  const GeneratorState saved = a.state();
  const auto next = randn({37}, DType::Float32, Device::cpu(), a).to_vector<float>();
  Generator c(7);
  c.set_state(saved);
  CHECK(randn({37}, DType::Float32, Device::cpu(), c).to_vector<float>() == next);
  // Two draws of 4 and 4 elements equal one draw of 8 (block-aligned layout).
  Generator d(5), e(5);
  auto first = rand({4}, DType::Float32, Device::cpu(), d).to_vector<float>();
  auto second = rand({4}, DType::Float32, Device::cpu(), d).to_vector<float>();
  auto both = rand({8}, DType::Float32, Device::cpu(), e).to_vector<float>();
  first.insert(first.end(), second.begin(), second.end());
  CHECK(first == both);
  // Different seeds or streams give different numbers.
  Generator f(42, 1);
  CHECK(rand({16}, DType::Float32, Device::cpu(), f).to_vector<float>() !=
        rand({16}, DType::Float32, Device::cpu(), b).to_vector<float>());
}

TEST_CASE("uniform, normal and bernoulli fills have the right moments", "[cpu][rng]") {
  Generator gen(123);
  const std::int64_t n = 200000;
  auto u = rand({n}, DType::Float64, Device::cpu(), gen).to_vector<double>();
  double mu = 0, m2 = 0, lo = 1, hi = 0;
  for (double v : u) {
    mu += v;
    m2 += v * v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  mu /= n;
  m2 /= n;
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  CHECK(std::abs(mu - 0.5) < 0.005);
  CHECK(std::abs(m2 - mu * mu - 1.0 / 12) < 0.002);

  Tensor z = Tensor::empty({n}, DType::Float64);
  normal_(z, 2.0, 3.0, gen);
  auto zv = z.to_vector<double>();
  double zm = 0, zs = 0;
  for (double v : zv) zm += v;
  zm /= n;
  for (double v : zv) zs += (v - zm) * (v - zm);
  zs = std::sqrt(zs / n);
  CHECK(std::abs(zm - 2.0) < 0.03);
  CHECK(std::abs(zs - 3.0) < 0.03);

  Tensor b = Tensor::empty({n}, DType::Float32);
  bernoulli_(b, 0.3, gen);
  double ones = 0;
  for (float v : b.to_vector<float>()) {
    CHECK((v == 0.0f || v == 1.0f));
    ones += v;
  }
  CHECK(std::abs(ones / n - 0.3) < 0.005);
}
