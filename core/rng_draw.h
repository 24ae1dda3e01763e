#pragma once
// The value of element i of a random fill, the one formula that the CPU fill
// (core/rng.cpp) and the CUDA fill kernel (core/cuda/rng_fill.cu) both call,
// so that a fill gives the same numbers on either device. The draw layout is
// described in core/rng.h.
#include <math.h>

#include <cstdint>

#include "core/philox.h"

namespace ssm {

enum class RngDist : int { Uniform, Normal, Bernoulli };

struct RngDraw {
  RngDist dist;
  std::uint64_t seed;
  std::uint32_t stream;
  std::uint64_t first;  // the first Philox block of this fill
  double a, b;          // uniform [a, b); normal mean a, std b; bernoulli p = a
};

// Philox blocks a fill of n elements consumes.
inline std::uint64_t rng_blocks(RngDist dist, std::uint64_t n) {
  const std::uint64_t per_block = dist == RngDist::Normal ? 2 : 4;
  return (n + per_block - 1) / per_block;
}

SSM_HOST_DEVICE inline double rng_draw(const RngDraw& d, std::uint64_t i) {
  if (d.dist == RngDist::Normal) {
    // Box-Muller, cosine branch; u1 in (0, 1] so that log(u1) is finite. The
    // standard normal is rounded to float first, so that the CPU's and the
    // GPU's last-bit differences in log and cos rarely reach the result.
    const Philox4 r = philox_block(d.seed, d.stream, d.first + i / 2);
    const int lane = static_cast<int>(i % 2) * 2;
    const double u1 = 1.0 - static_cast<double>(philox_to_unit(r.v[lane]));
    const double u2 = static_cast<double>(philox_to_unit(r.v[lane + 1]));
    const double z = ::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586 * u2);
    return d.a + d.b * static_cast<double>(static_cast<float>(z));
  }
  const Philox4 r = philox_block(d.seed, d.stream, d.first + i / 4);
  const float u = philox_to_unit(r.v[i % 4]);
  if (d.dist == RngDist::Bernoulli) return static_cast<double>(u) < d.a ? 1.0 : 0.0;
  return d.a + (d.b - d.a) * static_cast<double>(u);
}

}  // namespace ssm
