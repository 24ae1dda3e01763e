// CPU-versus-CUDA parity of the elementwise family (kernels/elementwise.h):
// every binary op (tensor and scalar forms), every unary map, where and
// masked_fill, forward and backward, over contiguous, broadcast, transposed,
// flipped, size-1, 0-d and empty inputs. Views are built inside f with the
// differentiable view ops, so the CUDA kernels see them as strided inputs.
#include "tests/testing.h"

#include "tests/cuda/parity.h"

using namespace ssm;
using ssm::testing::ParityCase;
using ssm::testing::ParityInput;
using ssm::testing::run_parity_table;

namespace {

using Vec = std::vector<Tensor>;

ParityInput in(const Shape& s, double lo = -1.0, double hi = 1.0) {
  return ParityInput{s, lo, hi, false, true};
}
// Integers in [lo, hi) (int64), no gradient.
ParityInput idx(const Shape& s, double lo, double hi) {
  return ParityInput{s, lo, hi, true, false};
}

// ---------------------------------------------------------------- unary

struct UnaryCase {
  std::string name;
  std::function<Tensor(const Tensor&)> f;
  double lo, hi;
  double tol;
};

std::vector<UnaryCase> unary_ops() {
  // Transcendental maps: CUDA's libdevice (expf, logf, tanhf, normcdff,
  // log1pf, powf) and the CPU's SIMD/libm forms differ by a few ulp, and the
  // backward compounds two of them: 1e-5 relative holds; pow's larger
  // results and softplus's log1p get 2e-5.
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, -2, 2, 1e-5},
      {"exp", [](const Tensor& x) { return ssm::exp(x); }, -3, 3, 1e-5},
      {"log", [](const Tensor& x) { return ssm::log(x); }, 0.1, 4, 1e-5},
      {"sqrt", [](const Tensor& x) { return ssm::sqrt(x); }, 0.1, 4, 1e-5},
      {"abs", [](const Tensor& x) { return ssm::abs(x); }, -2, 2, 1e-5},
      {"tanh", [](const Tensor& x) { return ssm::tanh(x); }, -4, 4, 1e-5},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, -20, 20, 1e-5},
      {"relu", [](const Tensor& x) { return relu(x); }, -2, 2, 1e-5},
      {"gelu", [](const Tensor& x) { return gelu(x); }, -6, 6, 1e-5},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, "tanh"); }, -6, 6, 1e-5},
      {"silu", [](const Tensor& x) { return silu(x); }, -20, 20, 1e-5},
      // beta x crosses the threshold 20 (the linear branch) and both signs
      {"softplus", [](const Tensor& x) { return softplus(x); }, -30, 30, 2e-5},
      {"softplus beta=2 threshold=5", [](const Tensor& x) { return softplus(x, 2.0, 5.0); }, -5, 5,
       2e-5},
      {"pow 2.5", [](const Tensor& x) { return ssm::pow(x, 2.5); }, 0.1, 3, 2e-5},
      {"pow 3 (negative x)", [](const Tensor& x) { return ssm::pow(x, 3.0); }, -2, 2, 2e-5},
      {"pow -1.5", [](const Tensor& x) { return ssm::pow(x, -1.5); }, 0.5, 3, 2e-5},
      {"add_scalar", [](const Tensor& x) { return add(x, 0.75); }, -2, 2, 1e-5},
      {"sub_scalar", [](const Tensor& x) { return sub(x, 1.5); }, -2, 2, 1e-5},
      {"mul_scalar", [](const Tensor& x) { return mul(x, -3.0); }, -2, 2, 1e-5},
      {"div_scalar", [](const Tensor& x) { return div(x, 7.0); }, -2, 2, 1e-5},
      {"rsub_scalar", [](const Tensor& x) { return rsub(2.0, x); }, -2, 2, 1e-5},
      {"rdiv_scalar", [](const Tensor& x) { return rdiv(3.0, x); }, 0.5, 2, 1e-5},
  };
}

void add_unary_cases(std::vector<ParityCase>& cases) {
  for (const UnaryCase& u : unary_ops()) {
    auto f = u.f;
    auto one = [f](const Vec& x) { return Vec{f(x[0])}; };
    cases.push_back({u.name + " (4097)", {in({4097}, u.lo, u.hi)}, one, u.tol});
    cases.push_back({u.name + " (33, 257)", {in({33, 257}, u.lo, u.hi)}, one, u.tol});
    cases.push_back({u.name + " (1, 1)", {in({1, 1}, u.lo, u.hi)}, one, u.tol});
    cases.push_back({u.name + " 0-d", {in({}, u.lo, u.hi)}, one, u.tol});
    cases.push_back({u.name + " empty (0, 3)", {in({0, 3}, u.lo, u.hi)}, one, u.tol});
    cases.push_back({u.name + " transposed (257, 33)^T",
                     {in({257, 33}, u.lo, u.hi)},
                     [f](const Vec& x) { return Vec{f(transpose(x[0], 0, 1))}; },
                     u.tol});
    cases.push_back({u.name + " flipped (3, 1000)",
                     {in({3, 1000}, u.lo, u.hi)},
                     [f](const Vec& x) { return Vec{f(flip(x[0], {1}))}; },
                     u.tol});
    cases.push_back({u.name + " broadcast (33, 1) -> (33, 257)",
                     {in({33, 1}, u.lo, u.hi)},
                     [f](const Vec& x) {
                       return Vec{f(expand(x[0], {33, 257}))};
                     },
                     u.tol});
  }
}

// ---------------------------------------------------------------- binary

struct BinaryOpCase {
  std::string name;
  std::function<Tensor(const Tensor&, const Tensor&)> f;
  double blo, bhi;  // range of b (div keeps it away from 0)
};

std::vector<BinaryOpCase> binary_ops() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, -1, 1},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, -1, 1},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, -1, 1},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, 0.5, 2},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, -1, 1},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, -1, 1},
  };
}

void add_binary_cases(std::vector<ParityCase>& cases) {
  for (const BinaryOpCase& op : binary_ops()) {
    auto f = op.f;
    auto two = [f](const Vec& x) { return Vec{f(x[0], x[1])}; };
    const double lo = op.blo, hi = op.bhi;
    cases.push_back(
        {op.name + " (33, 257) (33, 257)", {in({33, 257}), in({33, 257}, lo, hi)}, two});
    cases.push_back({op.name + " (4097) (4097)", {in({4097}), in({4097}, lo, hi)}, two});
    // broadcast both ways: (3, 1, 257) with (33, 1) -> (3, 33, 257); the
    // gradients are sums over the stretched dims (sum_to, CUDA reduction)
    cases.push_back({op.name + " broadcast (3, 1, 257) (33, 1)",
                     {in({3, 1, 257}), in({33, 1}, lo, hi)},
                     two,
                     1e-5});
    cases.push_back({op.name + " broadcast (1000, 33) (33)",
                     {in({1000, 33}), in({33}, lo, hi)},
                     two,
                     1e-4});  // 1000-term gradient sums (the CPU adds in float)
    cases.push_back({op.name + " (1, 1) (1)", {in({1, 1}), in({1}, lo, hi)}, two});
    cases.push_back({op.name + " 0-d b (3, 257) ()", {in({3, 257}), in({}, lo, hi)}, two, 1e-4});
    cases.push_back({op.name + " empty (0, 5) (5)", {in({0, 5}), in({5}, lo, hi)}, two});
    cases.push_back({op.name + " transposed (257, 33)^T (33, 257)",
                     {in({257, 33}), in({33, 257}, lo, hi)},
                     [f](const Vec& x) { return Vec{f(transpose(x[0], 0, 1), x[1])}; }});
    cases.push_back({op.name + " permuted + flipped b",
                     {in({3, 33, 257}), in({257, 3, 33}, lo, hi)},
                     [f](const Vec& x) {
                       return Vec{f(x[0], flip(permute(x[1], {1, 2, 0}), {2}))};
                     }});
  }
  // maximum / minimum ties: relu maps most values to 0, so a == b often and
  // the gradient must go to a, as on the CPU.
  cases.push_back({"maximum ties",
                   {in({33, 257}, -1, 0.2), in({33, 257}, -1, 0.2)},
                   [](const Vec& x) { return Vec{maximum(relu(x[0]), relu(x[1]))}; }});
  cases.push_back({"minimum ties broadcast",
                   {in({33, 257}, -1, 0.2), in({257}, -1, 0.2)},
                   [](const Vec& x) { return Vec{minimum(relu(x[0]), relu(x[1]))}; }});
  // a single-input gradient (b without requires_grad)
  cases.push_back({"mul b without gradient",
                   {in({33, 257}), ParityInput{{257}, -1, 1, false, false}},
                   [](const Vec& x) { return Vec{mul(x[0], x[1])}; }});
  cases.push_back({"div a without gradient",
                   {ParityInput{{33, 1}, -1, 1, false, false}, in({257}, 0.5, 2)},
                   [](const Vec& x) { return Vec{div(x[0], x[1])}; }});
}

// ---------------------------------------------------------------- where

void add_where_cases(std::vector<ParityCase>& cases) {
  // cond as int64 (the index input), int32, float32, float64 and bfloat16.
  const std::vector<std::pair<std::string, DType>> conds = {{"int64", DType::Int64},
                                                            {"int32", DType::Int32},
                                                            {"float32", DType::Float32},
                                                            {"float64", DType::Float64},
                                                            {"bfloat16", DType::BFloat16}};
  for (const auto& [cname, dt] : conds) {
    const DType d = dt;
    cases.push_back({"where cond " + cname + " (33, 257)",
                     {idx({33, 257}, 0, 2), in({33, 257}), in({33, 257})},
                     [d](const Vec& x) { return Vec{where(x[0].to(d), x[1], x[2])}; }});
    cases.push_back({"where cond " + cname + " broadcast (33, 1) (3, 33, 257) (257)",
                     {idx({33, 1}, 0, 2), in({3, 33, 257}), in({257})},
                     [d](const Vec& x) { return Vec{where(x[0].to(d), x[1], x[2])}; },
                     1e-4});  // b's gradient sums 99 terms
  }
  // cond with values in {-2, ..., 2}: nonzero negatives select a too
  cases.push_back({"where cond in [-2, 3) (4097)",
                   {idx({4097}, -2, 3), in({4097}), in({4097})},
                   [](const Vec& x) { return Vec{where(x[0], x[1], x[2])}; }});
  cases.push_back({"where transposed a, 0-d b",
                   {idx({33, 257}, 0, 2), in({257, 33}), in({})},
                   [](const Vec& x) { return Vec{where(x[0], transpose(x[1], 0, 1), x[2])}; },
                   1e-4});  // b's gradient sums up to 8481 terms
  cases.push_back({"where cond broadcast over a, b (1, 1) (1) ()",
                   {idx({1, 1}, 0, 2), in({1}), in({})},
                   [](const Vec& x) { return Vec{where(x[0], x[1], x[2])}; }});
  cases.push_back({"where empty (0, 5)",
                   {idx({0, 5}, 0, 2), in({0, 5}), in({5})},
                   [](const Vec& x) { return Vec{where(x[0], x[1], x[2])}; }});
  cases.push_back(
      {"masked_fill int32 mask (1000, 33)",
       {in({1000, 33}), idx({1000, 1}, 0, 2)},
       [](const Vec& x) { return Vec{masked_fill(x[0], x[1].to(DType::Int32), -5.0)}; }});
}

// sum_to on its own, through expand's backward (a broadcast view whose
// gradient is sum_to), including leading dims added by the broadcast.
void add_sum_to_cases(std::vector<ParityCase>& cases) {
  cases.push_back({"sum_to (257) <- (3, 33, 257)",
                   {in({257})},
                   [](const Vec& x) {
                     return Vec{mul(expand(x[0], {3, 33, 257}), 2.0)};
                   },
                   1e-4});
  cases.push_back({"sum_to (33, 1) <- (4097, 33, 3)",
                   {in({33, 1})},
                   [](const Vec& x) {
                     return Vec{mul(expand(x[0], {4097, 33, 3}), 2.0)};
                   },
                   1e-4});  // 12291-term sums
  cases.push_back({"sum_to (1, 1) <- (1000, 257)",
                   {in({1, 1})},
                   [](const Vec& x) {
                     return Vec{mul(expand(x[0], {1000, 257}), 2.0)};
                   },
                   1e-4});  // a 257000-term sum
}

std::vector<ParityCase> elementwise_cases() {
  std::vector<ParityCase> cases;
  add_unary_cases(cases);
  add_binary_cases(cases);
  add_where_cases(cases);
  add_sum_to_cases(cases);
  return cases;
}

}  // namespace

TEST_CASE("elementwise kernels: CUDA matches the CPU", "[cuda][parity]") {
  run_parity_table(elementwise_cases());
}
