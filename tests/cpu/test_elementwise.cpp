// Elementwise ops: values against closed forms, broadcasting, gradchecks of
// every op, and error messages.
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {
Tensor vec(std::vector<double> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return Tensor::from_vector<double>(v, {n});
}
}  // namespace

TEST_CASE("binary ops compute closed-form values with broadcasting", "[cpu][elementwise]") {
  Tensor a = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<double>({10, 20, 30}, {3});
  require_close(add(a, b), Tensor::from_vector<double>({11, 22, 33, 14, 25, 36}, {2, 3}));
  require_close(sub(a, b), Tensor::from_vector<double>({-9, -18, -27, -6, -15, -24}, {2, 3}));
  require_close(mul(a, b), Tensor::from_vector<double>({10, 40, 90, 40, 100, 180}, {2, 3}));
  require_close(div(b, a), Tensor::from_vector<double>({10, 10, 10, 2.5, 4, 5}, {2, 3}));
  // (2, 1) with (1, 3) -> (2, 3); a 0-d tensor broadcasts everywhere.
  Tensor col = Tensor::from_vector<double>({1, 2}, {2, 1});
  Tensor row = Tensor::from_vector<double>({1, 10, 100}, {1, 3});
  require_close(mul(col, row), Tensor::from_vector<double>({1, 10, 100, 2, 20, 200}, {2, 3}));
  require_close(add(a, Tensor::scalar(1.0, DType::Float64)), add(a, 1.0));
  require_close(maximum(vec({1, 5, -2}), vec({3, 4, -2})), vec({3, 5, -2}));
  require_close(minimum(vec({1, 5, -2}), vec({3, 4, -2})), vec({1, 4, -2}));
  // Non-contiguous operands give the same result as their contiguous copies.
  Tensor m = random_tensor({4, 5}, 1, -1, 1, DType::Float64, false);
  Tensor n = random_tensor({5, 4}, 2, -1, 1, DType::Float64, false);
  require_close(add(m, n.transpose(0, 1)), add(m, n.transpose(0, 1).contiguous()));
}

TEST_CASE("scalar forms and operators", "[cpu][elementwise]") {
  Tensor x = vec({1, 2, 4});
  require_close(x + 1.0, vec({2, 3, 5}));
  require_close(x - 1.0, vec({0, 1, 3}));
  require_close(1.0 - x, vec({0, -1, -3}));
  require_close(x * 2.0, vec({2, 4, 8}));
  require_close(x / 2.0, vec({0.5, 1, 2}));
  require_close(2.0 / x, vec({2, 1, 0.5}));
  require_close(-x, vec({-1, -2, -4}));
  require_close(x * x - x / x, vec({0, 3, 15}));
}

TEST_CASE("unary ops match their closed forms", "[cpu][elementwise]") {
  Tensor x = vec({-2.0, -0.5, 0.0, 0.5, 3.0});
  auto map = [&](double (*f)(double)) {
    std::vector<double> v;
    for (double e : x.to_vector<double>()) v.push_back(f(e));
    return vec(v);
  };
  require_close(exp(x), map([](double v) { return std::exp(v); }), 1e-12, 1e-12);
  require_close(abs(x), map([](double v) { return std::abs(v); }));
  require_close(tanh(x), map([](double v) { return std::tanh(v); }), 1e-12, 1e-12);
  require_close(sigmoid(x), map([](double v) { return 1 / (1 + std::exp(-v)); }), 1e-12, 1e-12);
  require_close(relu(x), map([](double v) { return v > 0 ? v : 0.0; }));
  require_close(silu(x), map([](double v) { return v / (1 + std::exp(-v)); }), 1e-12, 1e-12);
  require_close(gelu(x), map([](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }),
                1e-12, 1e-12);
  require_close(gelu(x, "tanh"), map([](double v) {
                  return 0.5 * v *
                         (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
                }),
                1e-12, 1e-12);
  Tensor p = vec({0.25, 1.0, 4.0});
  require_close(log(p), vec({std::log(0.25), 0.0, std::log(4.0)}), 1e-12, 1e-12);
  require_close(sqrt(p), vec({0.5, 1.0, 2.0}), 1e-12, 1e-12);
  require_close(pow(p, 1.5), vec({0.125, 1.0, 8.0}), 1e-12, 1e-12);
  // GELU(1) = Phi(1) = 0.8413447460685429 (a table value).
  CHECK(gelu(vec({1.0})).item<double>() == Approx(0.8413447460685429).epsilon(1e-12));
}

TEST_CASE("softplus follows PyTorch's beta and threshold rule", "[cpu][elementwise]") {
  Tensor x = vec({-30.0, -1.0, 0.0, 1.0, 15.0, 25.0});
  std::vector<double> want;
  for (double v : x.to_vector<double>()) want.push_back(v > 20 ? v : std::log1p(std::exp(v)));
  require_close(softplus(x), vec(want), 1e-12, 1e-12);
  // beta = 2, threshold = 10: linear once 2x > 10.
  Tensor y = vec({1.0, 6.0});
  require_close(softplus(y, 2.0, 10.0), vec({std::log1p(std::exp(2.0)) / 2, 6.0}), 1e-12, 1e-12);
  // Large negative inputs give tiny positive values, not 0 or NaN.
  CHECK(softplus(vec({-100.0})).item<double>() > 0.0);
}

TEST_CASE("where and masked_fill select by a condition", "[cpu][elementwise]") {
  Tensor cond = Tensor::from_vector<std::int64_t>({1, 0, 1}, {3});
  require_close(where(cond, vec({1, 2, 3}), vec({-1, -2, -3})), vec({1, -2, 3}));
  Tensor mask = Tensor::from_vector<float>({0, 1}, {2, 1});
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4}, {2, 2});
  require_close(masked_fill(x, mask, -9), Tensor::from_vector<double>({1, 2, -9, -9}, {2, 2}));
}

TEST_CASE("gradcheck: binary ops with broadcasting", "[cpu][elementwise][grad]") {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{3, 1}, {1, 4}}, {{2, 3, 4}, {3, 1}}, {{}, {2, 2}}};
  for (const auto& [sa, sb] : shapes) {
    Tensor a = random_tensor(sa, 11, 0.5, 2.0);
    Tensor b = random_tensor(sb, 12, 0.5, 2.0);
    INFO("a " << shape_str(sa) << " b " << shape_str(sb));
    require_gradcheck([](const std::vector<Tensor>& x) { return add(x[0], x[1]); }, {a, b});
    require_gradcheck([](const std::vector<Tensor>& x) { return sub(x[0], x[1]); }, {a, b});
    require_gradcheck([](const std::vector<Tensor>& x) { return mul(x[0], x[1]); }, {a, b});
    require_gradcheck([](const std::vector<Tensor>& x) { return div(x[0], x[1]); }, {a, b});
    require_gradcheck([](const std::vector<Tensor>& x) { return maximum(x[0], x[1]); }, {a, b});
    require_gradcheck([](const std::vector<Tensor>& x) { return minimum(x[0], x[1]); }, {a, b});
  }
}

TEST_CASE("gradcheck: unary and scalar ops", "[cpu][elementwise][grad]") {
  Tensor x = random_tensor({3, 5}, 21, -2.0, 2.0);
  Tensor pos = random_tensor({3, 5}, 22, 0.3, 3.0);
  using F = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<std::string, F>> on_reals = {
      {"neg", [](const Tensor& t) { return neg(t); }},
      {"exp", [](const Tensor& t) { return exp(t); }},
      {"abs", [](const Tensor& t) { return abs(t); }},
      {"tanh", [](const Tensor& t) { return tanh(t); }},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t); }},
      {"relu", [](const Tensor& t) { return relu(t); }},
      {"gelu", [](const Tensor& t) { return gelu(t); }},
      {"gelu_tanh", [](const Tensor& t) { return gelu(t, "tanh"); }},
      {"silu", [](const Tensor& t) { return silu(t); }},
      {"softplus", [](const Tensor& t) { return softplus(t); }},
      {"softplus_beta", [](const Tensor& t) { return softplus(t, 3.0, 2.0); }},
      {"add_scalar", [](const Tensor& t) { return t + 2.0; }},
      {"sub_scalar", [](const Tensor& t) { return t - 2.0; }},
      {"rsub_scalar", [](const Tensor& t) { return 2.0 - t; }},
      {"mul_scalar", [](const Tensor& t) { return t * -3.0; }},
      {"div_scalar", [](const Tensor& t) { return t / 4.0; }},
      {"masked_fill",
       [](const Tensor& t) {
         return masked_fill(t, Tensor::from_vector<float>({1, 0, 0, 1, 0}, {5}), 7.0);
       }},
  };
  for (const auto& [name, f] : on_reals) {
    INFO(name);
    require_gradcheck([&](const std::vector<Tensor>& v) { return f(v[0]); }, {x});
  }
  const std::vector<std::pair<std::string, F>> on_positive = {
      {"log", [](const Tensor& t) { return log(t); }},
      {"sqrt", [](const Tensor& t) { return sqrt(t); }},
      {"pow", [](const Tensor& t) { return pow(t, 2.5); }},
      {"pow_neg", [](const Tensor& t) { return pow(t, -1.5); }},
      {"rdiv_scalar", [](const Tensor& t) { return 3.0 / t; }},
  };
  for (const auto& [name, f] : on_positive) {
    INFO(name);
    require_gradcheck([&](const std::vector<Tensor>& v) { return f(v[0]); }, {pos});
  }
}

TEST_CASE("gradcheck: where routes gradients to both branches", "[cpu][elementwise][grad]") {
  Tensor a = random_tensor({2, 3}, 31);
  Tensor b = random_tensor({3}, 32);
  Tensor cond = Tensor::from_vector<std::int64_t>({1, 0, 1, 0, 0, 1}, {2, 3});
  require_gradcheck([&](const std::vector<Tensor>& v) { return where(cond, v[0], v[1]); }, {a, b});
}

TEST_CASE("elementwise errors name the op, shapes, dtypes", "[cpu][elementwise]") {
  Tensor a = Tensor::zeros({2, 3});
  Tensor b = Tensor::zeros({4, 3});
  CHECK(error_message([&] { add(a, b); }) ==
        "[add] shapes (2, 3) and (4, 3) cannot be broadcast together (dim 0: 2 vs 4)");
  Tensor d = Tensor::zeros({2, 3}, DType::Float64);
  CHECK(error_message([&] { mul(a, d); })
            .find("[mul] dtypes differ: (2, 3) float32 cpu and (2, 3) "
                  "float64 cpu") == 0);
  CHECK(error_message([&] {
          exp(Tensor::zeros({2}, DType::Int64));
        }).find("[exp] expected a float32") == 0);
  CHECK(error_message([&] { gelu(a, "fast"); }).find("[gelu] approximate must be") == 0);
}
