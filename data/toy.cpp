#include "data/toy.h"

#include <cmath>
#include <vector>

namespace ssm::data {

ToyProblem make_xor_problem(std::int64_t n, std::uint64_t seed, double margin) {
  SSM_CHECK(n > 0, "make_xor_problem", "expected n > 0, got ", n);
  SSM_CHECK(margin >= 0.0 && margin < 1.0, "make_xor_problem", "margin must be in [0, 1), got ",
            margin);
  Generator gen(seed);
  std::vector<float> xs;
  std::vector<std::int64_t> ys;
  xs.reserve(static_cast<std::size_t>(2 * n));
  while (static_cast<std::int64_t>(ys.size()) < n) {
    const auto u = rand({256, 2}, DType::Float32, Device::cpu(), gen).to_vector<float>();
    for (std::size_t i = 0; i < u.size() && static_cast<std::int64_t>(ys.size()) < n; i += 2) {
      const float a = 2.0f * u[i] - 1.0f, b = 2.0f * u[i + 1] - 1.0f;
      if (std::abs(a) < margin || std::abs(b) < margin) continue;
      xs.push_back(a);
      xs.push_back(b);
      ys.push_back(a * b > 0.0f ? 1 : 0);
    }
  }
  return {Tensor::from_vector<float>(xs, {n, 2}), Tensor::from_vector<std::int64_t>(ys, {n}), 2};
}

}  // namespace ssm::data
