// The tape: gradient accumulation, NoGradGuard, release after backward,
// shared subexpressions, and gradcheck itself catching a wrong gradient.
#include "autograd/tape.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;

TEST_CASE("backward computes d(sum(x*x + 3x))/dx = 2x + 3", "[cpu][autograd]") {
  Tensor x = Tensor::from_vector<double>({1, -2, 0.5}, {3});
  x.set_requires_grad(true);
  Tensor y = sum(x * x + 3.0 * x);
  CHECK(y.requires_grad());
  CHECK_FALSE(y.is_leaf());
  backward(y);
  require_close(x.grad(), Tensor::from_vector<double>({5, -1, 4}, {3}));
  CHECK(tape_size() == 0);
}

TEST_CASE("gradients accumulate across backward calls until zeroed", "[cpu][autograd]") {
  Tensor w = Tensor::from_vector<double>({2.0}, {1});
  w.set_requires_grad(true);
  backward(sum(w * 3.0));
  backward(sum(w * 4.0));
  CHECK(w.grad().item<double>() == 7.0);
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
  backward(sum(w * w));
  CHECK(w.grad().item<double>() == 4.0);
}

TEST_CASE("a tensor used twice gets the sum of both paths", "[cpu][autograd]") {
  Tensor x = Tensor::from_vector<double>({3.0}, {1});
  x.set_requires_grad(true);
  Tensor a = exp(x);
  Tensor y = sum(a * a + a);  // d/dx = 2 e^{2x} + e^x
  backward(y);
  CHECK(x.grad().item<double>() == Approx(2 * std::exp(6.0) + std::exp(3.0)));
}

TEST_CASE("NoGradGuard records nothing and outputs do not require grad", "[cpu][autograd]") {
  Tensor x = random_tensor({4}, 1);
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_enabled());
    Tensor y = exp(x) * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(tape_size() == 0);
  }
  CHECK(grad_enabled());
  Tensor z = exp(x);
  CHECK(tape_size() == 1);
  clear_tape();
  CHECK(tape_size() == 0);
}

TEST_CASE("ops on tensors that need no grad record nothing", "[cpu][autograd]") {
  Tensor x = random_tensor({4}, 2, -1, 1, DType::Float64, false);
  Tensor y = exp(x) + x;
  CHECK_FALSE(y.requires_grad());
  CHECK(tape_size() == 0);
}

TEST_CASE("backward releases saved tensors", "[cpu][autograd]") {
  Tensor x = random_tensor({1000}, 3);
  std::weak_ptr<Storage> saved;
  {
    Tensor e = exp(x);  // saves its output for backward
    saved = e.storage();
    Tensor loss = sum(e);
    backward(loss);
  }
  CHECK(saved.expired());
}

TEST_CASE("backward with an explicit output gradient", "[cpu][autograd]") {
  Tensor x = Tensor::from_vector<double>({1, 2}, {2});
  x.set_requires_grad(true);
  Tensor y = x * 5.0;
  backward(y, Tensor::from_vector<double>({1, -1}, {2}));
  require_close(x.grad(), Tensor::from_vector<double>({5, -5}, {2}));
}

TEST_CASE("backward errors are clear", "[cpu][autograd]") {
  Tensor x = random_tensor({3}, 4);
  CHECK(error_message([&] { backward(exp(x)); }).find("[backward] expected a one-element loss") ==
        0);
  clear_tape();
  Tensor c = random_tensor({3}, 5, -1, 1, DType::Float64, false);
  CHECK(error_message([&] { backward(sum(c)); }).find("does not require grad") !=
        std::string::npos);
}

TEST_CASE("gradcheck detects a wrong backward", "[cpu][autograd]") {
  // An op whose recorded gradient is deliberately 2x too large.
  auto bad_square = [](const Tensor& x) {
    Tensor out;
    {
      NoGradGuard g;
      out = x * x;
    }
    if (needs_grad({&x})) {
      const Tensor sx = x.detach();
      record("bad_square", {x}, {out}, [sx](const GradList& g) -> GradList {
        NoGradGuard ng;
        return {g[0] * sx * 4.0};
      });
    }
    return out;
  };
  Tensor x = random_tensor({5}, 6);
  const GradcheckResult r =
      gradcheck([&](const std::vector<Tensor>& v) { return bad_square(v[0]); }, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.message.find("analytic") != std::string::npos);
  const GradcheckResult good =
      gradcheck([&](const std::vector<Tensor>& v) { return v[0] * v[0]; }, {x});
  CHECK(good.ok);
}

TEST_CASE("a leaf's first gradient is kept without a copy only when nothing shares it",
          "[cpu][autograd]") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3}, {3});
  x.set_requires_grad(true);
  Tensor c = Tensor::from_vector<double>({10, 20, 30}, {3});
  // mul's backward makes a fresh gradient; add's passes on the one it received,
  // which is also the other input's gradient; x + x hands x the same tensor twice.
  backward(sum(mul(x, c)));
  Tensor g1 = x.grad();
  CHECK(g1.to_vector<double>() == std::vector<double>{10, 20, 30});
  x.zero_grad();
  Tensor y = Tensor::from_vector<double>({0, 0, 0}, {3});
  y.set_requires_grad(true);
  backward(sum(mul(add(x, y), c)));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{10, 20, 30});
  CHECK(y.grad().to_vector<double>() == std::vector<double>{10, 20, 30});
  CHECK(x.grad().storage() != y.grad().storage());
  x.zero_grad();
  backward(sum(mul(add(x, x), c)));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{20, 40, 60});
  // Each .grad is the sole owner of its memory: writing into one changes no other.
  CHECK(x.grad().storage().use_count() == 1);
  CHECK(y.grad().storage().use_count() == 1);
  CHECK(g1.to_vector<double>() == std::vector<double>{10, 20, 30});
}
