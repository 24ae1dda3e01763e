// The CPU-versus-CUDA parity harness (tests/cuda/parity.h) checked on the
// CPU alone: with the CPU as the "other" device every comparison must pass
// exactly, every float input that asks for one gets a gradient, index inputs
// are integers in their range, and the error measure catches a difference
// and a NaN where the oracle has a number.
#include "tests/cuda/parity.h"

using namespace ssm;
using ssm::testing::check_parity;
using ssm::testing::make_parity_inputs;
using ssm::testing::parity_error;
using ssm::testing::ParityCase;

TEST_CASE("parity harness: a CPU-against-CPU run passes and compares every gradient",
          "[cpu][parity]") {
  ParityCase c;
  c.name = "matmul + embedding";
  c.inputs = {{{5, 7}}, {{7, 3}}, {{4}, 0, 6, true}, {{6, 3}}};
  c.f = [](const std::vector<Tensor>& x) {
    return std::vector<Tensor>{matmul(x[0], x[1]), embedding(x[2], x[3])};
  };
  const auto inputs = make_parity_inputs(c, 1234);
  REQUIRE(inputs[2].dtype() == DType::Int64);
  for (auto v : inputs[2].to_vector<std::int64_t>()) CHECK((v >= 0 && v < 6));
  CHECK(inputs[0].dtype() == DType::Float32);
  // 2 outputs + 3 float inputs' gradients.
  CHECK(check_parity(c, 1234, Device::cpu()) == 5);
}

TEST_CASE("parity harness: the error is relative to max(1, max |oracle|) and sees NaNs",
          "[cpu][parity]") {
  const Tensor ref = Tensor::from_vector<float>({1, -200, 3}, {3});
  CHECK(parity_error(ref, ref) == 0.0);
  CHECK(parity_error(Tensor::from_vector<float>({1, -202, 3}, {3}), ref) == Approx(0.01));
  const Tensor small = Tensor::from_vector<float>({0.1f, 0.2f}, {2});
  CHECK(parity_error(Tensor::from_vector<float>({0.1f, 0.25f}, {2}), small) ==
        Approx(0.05).epsilon(1e-5));
  CHECK(std::isinf(parity_error(Tensor::from_vector<float>({NAN, 0.2f}, {2}), small)));
}
