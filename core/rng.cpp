#include "core/rng.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/rng_draw.h"

namespace ssm {

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

namespace {

void fill(const char* op, const Tensor& t, RngDist dist, double a, double b, Generator& gen) {
  SSM_CHECK(t.defined() && is_floating(t.dtype()), op, "expected a floating tensor, got ",
            t.desc());
  const std::uint64_t n = static_cast<std::uint64_t>(t.numel());
  const std::uint64_t first = gen.advance(rng_blocks(dist, n));
  const GeneratorState s = gen.state();
  const RngDraw d{dist, s.seed, s.stream, first, a, b};
  // Drawn on the host for either device: a CUDA tensor receives the same
  // numbers by copy (a device kernel can call rng_draw when fills get hot).
  Tensor host = Tensor::empty(t.shape(), t.dtype());
  dispatch_all(t.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = host.data<T>();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); ++i) {
      p[i] = convert_element<T>(rng_draw(d, static_cast<std::uint64_t>(i)));
    }
  });
  t.copy_(host);
}

}  // namespace

void uniform_(const Tensor& t, double lo, double hi, Generator& gen) {
  fill("uniform_", t, RngDist::Uniform, lo, hi, gen);
}

void normal_(const Tensor& t, double mean, double std, Generator& gen) {
  fill("normal_", t, RngDist::Normal, mean, std, gen);
}

void bernoulli_(const Tensor& t, double p, Generator& gen) {
  SSM_CHECK(p >= 0.0 && p <= 1.0, "bernoulli_", "probability ", p, " outside [0, 1]");
  fill("bernoulli_", t, RngDist::Bernoulli, p, 0.0, gen);
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
