// Integration: a 2-layer MLP trained with SGD on the generated XOR problem
// (not linearly separable, separated by a margin) reaches 100% training
// accuracy, exercising linear, relu, cross_entropy, the tape and in-place
// parameter updates together.
#include "data/toy.h"
#include "tests/testing.h"
#include "train/mlp_demo.h"

using namespace ssm;

TEST_CASE("the XOR problem is labelled by quadrant parity with a margin", "[cpu][integration]") {
  const auto d = data::make_xor_problem(300, 3, 0.1);
  CHECK(d.x.shape() == Shape{300, 2});
  const auto x = d.x.to_vector<float>();
  const auto y = d.y.to_vector<std::int64_t>();
  std::int64_t ones = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    CHECK(std::abs(x[2 * i]) >= 0.1f);
    CHECK(std::abs(x[2 * i + 1]) >= 0.1f);
    CHECK(y[i] == (x[2 * i] * x[2 * i + 1] > 0 ? 1 : 0));
    ones += y[i];
  }
  CHECK(ones > 100);
  CHECK(ones < 200);
}

TEST_CASE("a 2-layer MLP trained with SGD reaches 100% training accuracy", "[cpu][integration]") {
  MlpDemoOptions o;
  const MlpDemoResult r = run_mlp_demo(o);
  INFO("loss " << r.initial_loss << " -> " << r.final_loss << ", accuracy " << r.accuracy);
  CHECK(r.initial_loss > 0.6);  // about log 2 at initialisation
  CHECK(r.final_loss < 0.1);
  CHECK(r.accuracy == 1.0);
  CHECK(tape_size() == 0);
}
