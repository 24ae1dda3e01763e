// Reductions: values against naive loops, keepdim, and gradchecks.
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

TEST_CASE("sum, mean, max and logsumexp over dims match naive loops", "[cpu][reduce]") {
  Tensor x = random_tensor({3, 4, 5}, 1, -2, 2, DType::Float64, false);
  const auto v = x.to_vector<double>();
  auto at = [&](int i, int j, int k) { return v[(i * 4 + j) * 5 + k]; };
  // sum over dim 1, keepdim
  std::vector<double> s1, m02, mx2, lse2;
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 5; ++k) {
      double s = 0;
      for (int j = 0; j < 4; ++j) s += at(i, j, k);
      s1.push_back(s);
    }
  require_close(sum(x, {1}, true), Tensor::from_vector<double>(s1, {3, 1, 5}), 1e-12, 1e-12);
  // mean over dims 0 and 2
  for (int j = 0; j < 4; ++j) {
    double s = 0;
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 5; ++k) s += at(i, j, k);
    m02.push_back(s / 15);
  }
  require_close(mean(x, {0, -1}), Tensor::from_vector<double>(m02, {4}), 1e-12, 1e-12);
  // max and logsumexp over the last dim
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      double m = -1e300, e = 0;
      for (int k = 0; k < 5; ++k) m = std::max(m, at(i, j, k));
      for (int k = 0; k < 5; ++k) e += std::exp(at(i, j, k));
      mx2.push_back(m);
      lse2.push_back(std::log(e));
    }
  require_close(max(x, {2}), Tensor::from_vector<double>(mx2, {3, 4}));
  require_close(logsumexp(x, {-1}), Tensor::from_vector<double>(lse2, {3, 4}), 1e-12, 1e-12);
  // full reductions
  double total = 0;
  for (double e : v) total += e;
  CHECK(sum(x).item<double>() == Approx(total).epsilon(1e-12));
  CHECK(sum(x).dim() == 0);
  // a leading-dims reduction (the bias-gradient path) equals the general one
  require_close(sum(x, {0, 1}), sum(x.permute({2, 0, 1}).contiguous(), {1, 2}), 1e-12, 1e-12);
}

TEST_CASE("logsumexp is stable for large inputs", "[cpu][reduce]") {
  Tensor x = Tensor::from_vector<float>({1000.f, 1000.f}, {2});
  CHECK(logsumexp(x).item<float>() == Approx(1000.0 + std::log(2.0)));
  Tensor ninf = Tensor::full({3}, -INFINITY);
  CHECK(logsumexp(ninf).item<float>() == -INFINITY);
}

TEST_CASE("sum over an empty dim is zero", "[cpu][reduce]") {
  // Leading reduced block of zero rows: every output must be exactly 0.
  Tensor x = Tensor::empty({0, 3, 2}, DType::Float32);
  Tensor s = sum(x, {0});
  REQUIRE(s.shape() == Shape{3, 2});
  for (float v : s.to_vector<float>()) REQUIRE(v == 0.0f);
  // A non-leading empty dim goes through the general path.
  Tensor y = Tensor::empty({2, 0}, DType::Float64);
  for (double v : sum(y, {1}).to_vector<double>()) REQUIRE(v == 0.0);
}

TEST_CASE("max_with_index returns the first maximum", "[cpu][reduce]") {
  Tensor x = Tensor::from_vector<float>({1, 5, 5, 2, 9, 0}, {2, 3});
  auto [v, i] = max_with_index(x, 1);
  CHECK(v.to_vector<float>() == std::vector<float>{5, 9});
  CHECK(i.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 1});
}

TEST_CASE("gradcheck: reductions", "[cpu][reduce][grad]") {
  Tensor x = random_tensor({3, 4, 5}, 7);
  const std::vector<std::vector<std::int64_t>> dim_sets = {{}, {0}, {1}, {2}, {0, 2}, {-1, 0}};
  for (const auto& dims : dim_sets) {
    for (bool keep : {false, true}) {
      INFO("dims " << shape_str(dims) << " keepdim " << keep);
      require_gradcheck([&](const std::vector<Tensor>& t) { return sum(t[0], dims, keep); }, {x});
      require_gradcheck([&](const std::vector<Tensor>& t) { return mean(t[0], dims, keep); }, {x});
      require_gradcheck([&](const std::vector<Tensor>& t) { return max(t[0], dims, keep); }, {x});
      require_gradcheck([&](const std::vector<Tensor>& t) { return logsumexp(t[0], dims, keep); },
                        {x});
    }
  }
}

TEST_CASE("reduction errors name the op", "[cpu][reduce]") {
  Tensor x = Tensor::zeros({2, 3});
  CHECK(error_message([&] { sum(x, {2}); }).find("[sum] dim 2 out of range") == 0);
  CHECK(error_message([&] { mean(x, {1, 1}); }).find("[mean] dim 1 appears twice") == 0);
  CHECK(error_message([&] { max(Tensor::zeros({0})); }).find("[max] cannot reduce an empty") == 0);
}
