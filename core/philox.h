#pragma once
// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
// 3", SC 2011): a counter-based generator. Block(counter, key) -> 4 uint32,
// no state besides the counter, so any thread on any device can draw element
// i of a stream directly. Header-only and usable from CUDA kernels, so the
// CPU and the GPU produce the same numbers.
#include <cstdint>

#if defined(__CUDACC__)
#define SSM_HOST_DEVICE __host__ __device__
#else
#define SSM_HOST_DEVICE
#endif

namespace ssm {

struct Philox4 {
  std::uint32_t v[4];
};

SSM_HOST_DEVICE inline void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi,
                                           std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}

// Ten rounds of Philox-4x32 on counter c with key k.
SSM_HOST_DEVICE inline Philox4 philox4x32(Philox4 c, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(M0, c.v[0], hi0, lo0);
    philox_mulhilo(M1, c.v[2], hi1, lo1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return c;
}

// Block `index` of the stream (seed, stream): counter = (index lo, index hi,
// stream, 0), key = seed.
SSM_HOST_DEVICE inline Philox4 philox_block(std::uint64_t seed, std::uint32_t stream,
                                            std::uint64_t index) {
  return philox4x32(Philox4{{static_cast<std::uint32_t>(index),
                             static_cast<std::uint32_t>(index >> 32), stream, 0u}},
                    static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// A uint32 to a float in [0, 1) with 24 random bits.
SSM_HOST_DEVICE inline float philox_to_unit(std::uint32_t x) {
  return static_cast<float>(x >> 8) * (1.0f / 16777216.0f);
}

}  // namespace ssm
