#pragma once
// Generator: the project's one random number source. Its whole state is
// (seed, stream, offset): a checkpoint stores the three integers and a resumed
// run draws exactly the numbers the uninterrupted run would have.
//
// Draw layout (the same on every device): a fill of n elements consumes
// blocks offset, offset+1, ... of Philox(seed, stream):
//   uniform / bernoulli: element i uses lane i % 4 of block offset + i / 4
//   normal:              element i uses lanes 2(i%2), 2(i%2)+1 of block
//                        offset + i / 2 (Box-Muller, cosine branch)
// and advances offset past the blocks it used.
#include <cstdint>

#include "core/tensor.h"

namespace ssm {

struct GeneratorState {
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
  std::uint64_t offset = 0;
  bool operator==(const GeneratorState&) const = default;
};

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0, std::uint32_t stream = 0) {
    state_.seed = seed;
    state_.stream = stream;
  }
  const GeneratorState& state() const { return state_; }
  void set_state(const GeneratorState& state) { state_ = state; }
  void manual_seed(std::uint64_t seed) { state_ = {seed, state_.stream, 0}; }
  // Reserves `blocks` Philox blocks and returns the first index.
  std::uint64_t advance(std::uint64_t blocks) {
    const std::uint64_t first = state_.offset;
    state_.offset += blocks;
    return first;
  }

 private:
  GeneratorState state_;
};

// The process-wide default generator (seed 0 until manual_seed).
Generator& default_generator();
void manual_seed(std::uint64_t seed);

// In-place fills of a floating tensor (any device, any layout).
void uniform_(const Tensor& t, double lo = 0.0, double hi = 1.0,
              Generator& gen = default_generator());
void normal_(const Tensor& t, double mean = 0.0, double std = 1.0,
             Generator& gen = default_generator());
// 1 with probability p, else 0.
void bernoulli_(const Tensor& t, double p, Generator& gen = default_generator());

Tensor rand(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu(),
            Generator& gen = default_generator());
Tensor randn(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu(),
             Generator& gen = default_generator());

}  // namespace ssm
