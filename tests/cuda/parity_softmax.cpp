// CPU-versus-CUDA parity of the softmax family (kernels/softmax.h): softmax
// and log_softmax, forward and backward, along the last dim (rows of one warp
// and of one block), along inner dims (the per-position walk), over size-1,
// 0-d and empty inputs, and over transposed, flipped and broadcast views
// (built inside f with the differentiable view ops).
#include "tests/testing.h"

#include "tests/cuda/parity.h"

using namespace ssm;
using ssm::testing::ParityCase;
using ssm::testing::ParityInput;
using ssm::testing::run_parity_table;

namespace {

using Vec = std::vector<Tensor>;
using ViewFn = std::function<Tensor(const Tensor&)>;

Tensor apply(bool log, const Tensor& x, std::int64_t dim) {
  return log ? log_softmax(x, dim) : softmax(x, dim);
}

// The op along dim of x (shape `shape`, values in [lo, hi)), seen through
// `view` (identity when empty).
ParityCase sm(bool log, const std::string& what, const Shape& shape, std::int64_t dim,
              ViewFn view = nullptr, double lo = -4.0, double hi = 4.0, double tol = 1e-5) {
  ParityCase c;
  c.name = std::string(log ? "log_softmax " : "softmax ") + what + " dim " + std::to_string(dim);
  c.inputs = {ParityInput{shape, lo, hi, false, true}};
  c.f = [=](const Vec& x) { return Vec{apply(log, view ? view(x[0]) : x[0], dim)}; };
  c.tol = tol;
  return c;
}

std::vector<ParityCase> softmax_cases() {
  std::vector<ParityCase> cases;
  for (bool log : {false, true}) {
    // Rows over the last dim: one warp per row (C <= 1024) ...
    cases.push_back(sm(log, "(1, 1)", {1, 1}, -1));
    cases.push_back(sm(log, "(3, 33)", {3, 33}, -1));
    cases.push_back(sm(log, "(1000, 3)", {1000, 3}, 1));
    cases.push_back(sm(log, "(257, 1000)", {257, 1000}, -1));
    // ... and one block per row. 4097 classes summed in float in a different
    // order than the CPU's vector lanes: a few ulp of the sum, 2e-5.
    cases.push_back(sm(log, "(3, 4097)", {3, 4097}, -1, nullptr, -4.0, 4.0, 2e-5));
    cases.push_back(sm(log, "(2, 3, 1025)", {2, 3, 1025}, 2));
    // Inner dims: one thread per position.
    cases.push_back(sm(log, "(33, 257)", {33, 257}, 0));
    cases.push_back(sm(log, "(4, 33, 7)", {4, 33, 7}, 1));
    cases.push_back(sm(log, "(2, 3, 5)", {2, 3, 5}, -3));
    cases.push_back(sm(log, "(4097, 2)", {4097, 2}, 0, nullptr, -4.0, 4.0, 2e-5));
    // Size-1 dims, 0-d and empty.
    cases.push_back(sm(log, "(7, 1)", {7, 1}, -1));
    cases.push_back(sm(log, "(1, 5, 1)", {1, 5, 1}, 1));
    cases.push_back(sm(log, "()", {}, 0));
    cases.push_back(sm(log, "(0, 5)", {0, 5}, -1));
    cases.push_back(sm(log, "(4, 0)", {4, 0}, 1));
    cases.push_back(sm(log, "(4, 0, 3)", {4, 0, 3}, 2));
    // Views: transposed (rows and inner walks), flipped, broadcast.
    cases.push_back(sm(log, "transpose of (257, 33)", {257, 33}, -1,
                       [](const Tensor& x) { return transpose(x, 0, 1); }));
    cases.push_back(sm(log, "transpose of (33, 1000)", {33, 1000}, 0,
                       [](const Tensor& x) { return transpose(x, 0, 1); }));
    cases.push_back(sm(log, "permute of (5, 6, 7)", {5, 6, 7}, 1, [](const Tensor& x) {
      return permute(x, {2, 0, 1});
    }));
    cases.push_back(
        sm(log, "flip of (9, 40)", {9, 40}, -1, [](const Tensor& x) { return flip(x, {1}); }));
    cases.push_back(sm(log, "expand (1, 33) -> (5, 33)", {1, 33}, -1, [](const Tensor& x) {
      return expand(x, {5, 33});
    }));
    cases.push_back(sm(log, "expand (6, 1) -> (6, 40)", {6, 1}, -1, [](const Tensor& x) {
      return expand(x, {6, 40});
    }));
    // Large logits: the max subtraction keeps exp finite.
    cases.push_back(sm(log, "(17, 65) in [-80, 80)", {17, 65}, -1, nullptr, -80.0, 80.0));
  }
  return cases;
}

}  // namespace

TEST_CASE("parity: softmax and log_softmax on CUDA equal the CPU", "[cuda][parity]") {
  run_parity_table(softmax_cases());
}
