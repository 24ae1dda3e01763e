#pragma once
// Sequential draws from one Philox stream (core/philox.h): 32-bit words are
// taken lane by lane from blocks 0, 1, 2, ... of Philox(seed, stream), so a
// (seed, stream) pair gives the same draws on every machine.
#include <cstdint>

#include "core/philox.h"

namespace ssm::data {

class PhiloxSampler {
 public:
  explicit PhiloxSampler(std::uint64_t seed, std::uint32_t stream = 0)
      : seed_(seed), stream_(stream) {}
  std::uint32_t next_u32() {
    if (lane_ == 4) {
      block_ = philox_block(seed_, stream_, index_++);
      lane_ = 0;
    }
    return block_.v[lane_++];
  }
  // Uniform in [0, 1) with 53 random bits (two words).
  double uniform() {
    const std::uint64_t hi = next_u32() >> 5, lo = next_u32() >> 6;  // 27 + 26 bits
    return static_cast<double>((hi << 26) | lo) * (1.0 / 9007199254740992.0);
  }
  // Uniform in 0..n-1 (n >= 1), unbiased by rejection.
  std::uint32_t below(std::uint32_t n) {
    const std::uint64_t range = std::uint64_t{1} << 32;
    const std::uint64_t limit = range - range % n;
    while (true) {
      const std::uint32_t x = next_u32();
      if (x < limit) return x % n;
    }
  }

 private:
  std::uint64_t seed_;
  std::uint32_t stream_;
  std::uint64_t index_ = 0;
  Philox4 block_{{0, 0, 0, 0}};
  int lane_ = 4;
};

}  // namespace ssm::data
