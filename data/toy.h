#pragma once
// Generated toy classification problems for demos and integration tests.
#include <cstdint>

#include "core/rng.h"
#include "core/tensor.h"

namespace ssm::data {

struct ToyProblem {
  Tensor x;  // (N, 2) float32 features
  Tensor y;  // (N) int64 labels
  std::int64_t num_classes = 0;
};

// Points uniform in [-1, 1]^2 labelled by quadrant parity (XOR of the signs):
// class 1 where x0 * x1 > 0. No linear classifier separates the classes; a
// one-hidden-layer MLP does. Points within `margin` of either axis are
// redrawn, so the classes are separated by a gap of 2 * margin.
ToyProblem make_xor_problem(std::int64_t n, std::uint64_t seed, double margin = 0.1);

}  // namespace ssm::data
