#include "core/rng.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/philox.h"

namespace ssm {

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

namespace {

enum class Dist { Uniform, Normal, Bernoulli };

// Element i of a draw whose first block is `first` (see rng.h for the layout).
double draw(Dist dist, const GeneratorState& s, std::uint64_t first, std::uint64_t i, double a,
            double b) {
  if (dist == Dist::Normal) {
    const Philox4 r = philox_block(s.seed, s.stream, first + i / 2);
    const int lane = static_cast<int>(i % 2) * 2;
    // u1 in (0, 1] so that log(u1) is finite.
    const double u1 = 1.0 - static_cast<double>(philox_to_unit(r.v[lane]));
    const double u2 = static_cast<double>(philox_to_unit(r.v[lane + 1]));
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    return a + b * static_cast<double>(static_cast<float>(z));
  }
  const Philox4 r = philox_block(s.seed, s.stream, first + i / 4);
  const float u = philox_to_unit(r.v[i % 4]);
  if (dist == Dist::Bernoulli) return static_cast<double>(u) < a ? 1.0 : 0.0;
  return a + (b - a) * static_cast<double>(u);
}

void fill(const char* op, const Tensor& t, Dist dist, double a, double b, Generator& gen) {
  SSM_CHECK(t.defined() && is_floating(t.dtype()), op, "expected a floating tensor, got ",
            t.desc());
  const std::uint64_t n = static_cast<std::uint64_t>(t.numel());
  const std::uint64_t per_block = dist == Dist::Normal ? 2 : 4;
  const std::uint64_t first = gen.advance((n + per_block - 1) / per_block);
  const GeneratorState s = gen.state();
  Tensor host = Tensor::empty(t.shape(), t.dtype());
  dispatch_all(t.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = host.data<T>();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); ++i) {
      p[i] = convert_element<T>(draw(dist, s, first, static_cast<std::uint64_t>(i), a, b));
    }
  });
  t.copy_(host);
}

}  // namespace

void uniform_(const Tensor& t, double lo, double hi, Generator& gen) {
  fill("uniform_", t, Dist::Uniform, lo, hi, gen);
}

void normal_(const Tensor& t, double mean, double std, Generator& gen) {
  fill("normal_", t, Dist::Normal, mean, std, gen);
}

void bernoulli_(const Tensor& t, double p, Generator& gen) {
  SSM_CHECK(p >= 0.0 && p <= 1.0, "bernoulli_", "probability ", p, " outside [0, 1]");
  fill("bernoulli_", t, Dist::Bernoulli, p, 0.0, gen);
}

Tensor rand(const Shape& shape, DType dtype, Device device, Generator& gen) {
  Tensor t = Tensor::empty(shape, dtype, device);
  uniform_(t, 0.0, 1.0, gen);
  return t;
}

Tensor randn(const Shape& shape, DType dtype, Device device, Generator& gen) {
  Tensor t = Tensor::empty(shape, dtype, device);
  normal_(t, 0.0, 1.0, gen);
  return t;
}

}  // namespace ssm
