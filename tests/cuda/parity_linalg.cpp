// CPU-versus-CUDA parity of matmul (every broadcasting and 1-D case, views
// that cuBLAS reads transposed, views that need a copy) and linear.
#include "tests/cuda/parity.h"

using namespace ssm;
using ssm::testing::ParityCase;
using ssm::testing::run_parity_table;

namespace {

ParityCase mm(const std::string& name, Shape a, Shape b, bool transpose_a = false,
              bool transpose_b = false) {
  ParityCase c;
  c.name = "matmul " + name;
  c.inputs = {{a}, {b}};
  c.f = [=](const std::vector<Tensor>& x) {
    const Tensor ta = transpose_a ? x[0].transpose(-1, -2) : x[0];
    const Tensor tb = transpose_b ? x[1].transpose(-1, -2) : x[1];
    return std::vector<Tensor>{matmul(ta, tb)};
  };
  c.tol = 1e-5;
  return c;
}

ParityCase lin(const std::string& name, Shape x, std::int64_t out, bool bias) {
  ParityCase c;
  c.name = "linear " + name;
  c.inputs = {{x}, {{out, x.back()}}};
  if (bias) c.inputs.push_back({{out}});
  c.f = [bias](const std::vector<Tensor>& v) {
    return std::vector<Tensor>{linear(v[0], v[1], bias ? v[2] : Tensor())};
  };
  return c;
}

}  // namespace

TEST_CASE("parity: matmul and linear on CUDA equal the CPU", "[cuda][parity]") {
  std::vector<ParityCase> cases = {
      mm("(33, 17) @ (17, 5)", {33, 17}, {17, 5}),
      mm("(1, 1) @ (1, 1)", {1, 1}, {1, 1}),
      mm("vector @ vector", {257}, {257}),
      mm("vector @ matrix", {31}, {31, 7}),
      mm("matrix @ vector", {9, 31}, {31}),
      mm("batched (4, 3, 65, 33) @ (4, 3, 33, 129)", {4, 3, 65, 33}, {4, 3, 33, 129}),
      mm("broadcast (5, 1, 7, 8) @ (3, 8, 6)", {5, 1, 7, 8}, {3, 8, 6}),
      mm("broadcast a (7, 8) @ (6, 8, 3)", {7, 8}, {6, 8, 3}),
      mm("broadcast b (6, 7, 8) @ (8, 3)", {6, 7, 8}, {8, 3}),
      mm("transposed a", {2, 17, 33}, {2, 17, 5}, true, false),
      mm("transposed b", {2, 33, 17}, {2, 5, 17}, false, true),
      mm("both transposed", {17, 33}, {5, 17}, true, true),
      mm("K = 0", {4, 0}, {0, 3}),
      mm("M = 0", {0, 4}, {4, 3}),
      mm("large (300, 1000) @ (1000, 257)", {300, 1000}, {1000, 257}),
      lin("(4, 33, 65) -> 129 with bias", {4, 33, 65}, 129, true),
      lin("(1000, 3) -> 1 without bias", {1000, 3}, 1, false),
      lin("(1, 1) -> 1 with bias", {1, 1}, 1, true),
      lin("(0, 8) -> 4 with bias", {0, 8}, 4, true),
  };
  // Long contractions accumulate in a different order on the GPU.
  cases[14].tol = 1e-4;
  run_parity_table(cases);
}
