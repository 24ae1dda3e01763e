// CPU-versus-CUDA parity of the reductions (kernels/reduce.h): sum, mean,
// max (values, the int64 argmax, the gradient to the first maximum) and
// logsumexp, over single dims, dim sets, all dims, keepdim, negative dims,
// size-1 and empty dims, and transposed / flipped / broadcast views. The
// shapes reach every CUDA path: a warp per row (short rows), a block per row
// (long rows or few rows), the column kernel (kept dims innermost) with and
// without the split over j.
#include "tests/testing.h"

#include "tests/cuda/parity.h"

using namespace ssm;
using ssm::testing::ParityCase;
using ssm::testing::ParityInput;
using ssm::testing::run_parity_table;

namespace {

using Vec = std::vector<Tensor>;
using Dims = std::vector<std::int64_t>;

ParityInput in(const Shape& s, double lo = -1.0, double hi = 1.0) {
  return ParityInput{s, lo, hi, false, true};
}

// Long sums: the CPU adds a reduction over leading dims of a contiguous
// tensor in float (row by row), the GPU in double in another order; over
// thousands of terms the float rounding reaches ~1e-5 of the result, so
// sums get 1e-4.
constexpr double kSumTol = 1e-4;

// The reduction shapes every op runs over: (shape, dims, keepdim, label).
struct Geometry {
  Shape shape;
  Dims dims;
  bool keepdim;
};

std::vector<Geometry> geometries() {
  return {
      {{1000, 33}, {1}, false},        // short rows: a warp per row
      {{257, 1000}, {1}, false},       // few rows of 1000: a block per row
      {{3, 4097}, {-1}, true},         // long rows, keepdim, negative dim
      {{4097}, {}, false},             // everything: one row
      {{33, 257}, {0, 1}, true},       // every dim, keepdim
      {{4097, 33}, {0}, false},        // columns, split over j
      {{1000, 257}, {0}, true},        // columns, split over j, keepdim
      {{3, 1000}, {0}, false},         // columns, no split
      {{3, 257, 33}, {1}, false},      // middle dim: columns over 2 kept dims
      {{33, 3, 257}, {0, 2}, false},   // two dims, a kept dim between them
      {{3, 1, 257}, {1}, false},       // a size-1 reduced dim
      {{1, 1}, {1}, true},             // size 1 everywhere
      {{}, {}, false},                 // 0-d
      {{2, 3, 4, 5, 6}, {1, 3}, true}  // 5 dims, alternating
  };
}

std::string geometry_name(const std::string& op, const Geometry& g) {
  std::string s = op + " " + shape_str(g.shape) + " dims " + shape_str(g.dims);
  return g.keepdim ? s + " keepdim" : s;
}

void add_sum_cases(std::vector<ParityCase>& cases) {
  for (const Geometry& g : geometries()) {
    const Dims dims = g.dims;
    const bool keep = g.keepdim;
    cases.push_back({geometry_name("sum", g),
                     {in(g.shape)},
                     [dims, keep](const Vec& x) { return Vec{sum(x[0], dims, keep)}; },
                     kSumTol});
    cases.push_back({geometry_name("mean", g),
                     {in(g.shape)},
                     [dims, keep](const Vec& x) { return Vec{mean(x[0], dims, keep)}; },
                     kSumTol});
  }
  // strided views: transposed (the reduced dim strided), flipped, broadcast
  cases.push_back({"sum (257, 33)^T dims (1)",
                   {in({257, 33})},
                   [](const Vec& x) { return Vec{sum(transpose(x[0], 0, 1), {1})}; },
                   kSumTol});
  cases.push_back({"sum (257, 33)^T dims (0)",
                   {in({257, 33})},
                   [](const Vec& x) { return Vec{sum(transpose(x[0], 0, 1), {0})}; },
                   kSumTol});
  cases.push_back({"sum flipped (33, 1000) dims (1)",
                   {in({33, 1000})},
                   [](const Vec& x) { return Vec{sum(flip(x[0], {1}), {1})}; },
                   kSumTol});
  cases.push_back({"sum permuted (33, 3, 257) -> (257, 33, 3) dims (0, 2)",
                   {in({33, 3, 257})},
                   [](const Vec& x) {
                     return Vec{sum(permute(x[0], {2, 0, 1}), {0, 2})};
                   },
                   kSumTol});
  cases.push_back({"sum broadcast (33, 1) -> (33, 1000) dims (1)",
                   {in({33, 1})},
                   [](const Vec& x) {
                     return Vec{sum(expand(x[0], {33, 1000}), {1})};
                   },
                   kSumTol});
  // empty: a reduced dim of size 0 gives zeros; an empty kept dim, nothing
  cases.push_back(
      {"sum (3, 0) dims (1)", {in({3, 0})}, [](const Vec& x) { return Vec{sum(x[0], {1})}; }});
  cases.push_back({"sum (0, 33) dims (0) keepdim", {in({0, 33})}, [](const Vec& x) {
                     return Vec{sum(x[0], {0}, true)};
                   }});
  cases.push_back(
      {"sum (0, 33) dims (1)", {in({0, 33})}, [](const Vec& x) { return Vec{sum(x[0], {1})}; }});
  cases.push_back({"sum (0, 5) all", {in({0, 5})}, [](const Vec& x) { return Vec{sum(x[0])}; }});
}

void add_max_cases(std::vector<ParityCase>& cases) {
  for (const Geometry& g : geometries()) {
    const Dims dims = g.dims;
    const bool keep = g.keepdim;
    cases.push_back({geometry_name("max", g), {in(g.shape)}, [dims, keep](const Vec& x) {
                       return Vec{ssm::max(x[0], dims, keep)};
                     }});
  }
  // the int64 argmax as a second output
  for (const std::int64_t dim : {0, 1, -1}) {
    cases.push_back({"max_with_index (257, 33) dim " + std::to_string(dim),
                     {in({257, 33})},
                     [dim](const Vec& x) {
                       auto [v, i] = max_with_index(x[0], dim);
                       return Vec{v, i};
                     }});
  }
  cases.push_back(
      {"max_with_index (1000, 4097) dim 1 keepdim", {in({1000, 4097})}, [](const Vec& x) {
         auto [v, i] = max_with_index(x[0], 1, true);
         return Vec{v, i};
       }});
  // ties: relu maps most values to 0, rows of all zeros included; the first
  // maximum (and its gradient) must win on both devices
  cases.push_back({"max ties (1000, 33) dims (1)", {in({1000, 33}, -1, 0.05)}, [](const Vec& x) {
                     auto [v, i] = max_with_index(relu(x[0]), 1);
                     return Vec{v, i};
                   }});
  cases.push_back({"max ties (33, 4097) dims (1) (block per row)",
                   {in({33, 4097}, -1, 1e-4)},
                   [](const Vec& x) {
                     auto [v, i] = max_with_index(relu(x[0]), 1);
                     return Vec{v, i};
                   }});
  cases.push_back({"max ties all (257, 33)", {in({257, 33}, -1, 0.01)}, [](const Vec& x) {
                     return Vec{ssm::max(relu(x[0]))};
                   }});
  // strided views
  cases.push_back({"max (257, 33)^T dims (1)", {in({257, 33})}, [](const Vec& x) {
                     return Vec{ssm::max(transpose(x[0], 0, 1), {1})};
                   }});
  cases.push_back({"max flipped (3, 1000) dims (1)", {in({3, 1000})}, [](const Vec& x) {
                     auto [v, i] = max_with_index(flip(x[0], {1}), 1);
                     return Vec{v, i};
                   }});
  cases.push_back({"max permuted (33, 3, 257) dims (0, 1)", {in({33, 3, 257})}, [](const Vec& x) {
                     return Vec{ssm::max(permute(x[0], {1, 2, 0}), {0, 1})};
                   }});
  // a broadcast input: every element of a row ties, the first one wins
  cases.push_back({"max broadcast (33, 1) -> (33, 257) dims (1)", {in({33, 1})}, [](const Vec& x) {
                     return Vec{ssm::max(expand(x[0], {33, 257}), {1})};
                   }});
  // an empty kept dim with a nonempty reduced one is still an empty tensor:
  // both devices throw, so no case; a reduced size-1 dim over an empty kept
  // dim likewise.
}

void add_logsumexp_cases(std::vector<ParityCase>& cases) {
  for (const Geometry& g : geometries()) {
    const Dims dims = g.dims;
    const bool keep = g.keepdim;
    // exp/log: a few ulp apart on the two devices, summed over the row
    cases.push_back({geometry_name("logsumexp", g),
                     {in(g.shape, -5, 5)},
                     [dims, keep](const Vec& x) { return Vec{logsumexp(x[0], dims, keep)}; },
                     2e-5});
  }
  cases.push_back({"logsumexp (257, 33)^T dims (1)",
                   {in({257, 33}, -5, 5)},
                   [](const Vec& x) { return Vec{logsumexp(transpose(x[0], 0, 1), {1})}; },
                   2e-5});
  cases.push_back({"logsumexp broadcast (33, 1) -> (33, 1000) dims (1)",
                   {in({33, 1}, -5, 5)},
                   [](const Vec& x) {
                     return Vec{logsumexp(expand(x[0], {33, 1000}), {1})};
                   },
                   2e-5});
  cases.push_back({"logsumexp large values (3, 4097) dims (1)",
                   {in({3, 4097}, 50, 80)},
                   [](const Vec& x) { return Vec{logsumexp(x[0], {1})}; },
                   2e-5});
  // an empty reduced dim gives -inf (forward); the gradient is empty
  cases.push_back({"logsumexp (3, 0) dims (1)", {in({3, 0})}, [](const Vec& x) {
                     return Vec{logsumexp(x[0], {1})};
                   }});
  // rows of -inf (log 0) give -inf: forward only (log's gradient at 0 is inf)
  ParityCase neg_inf{"logsumexp of -inf rows (33, 257) dims (1)",
                     {in({33, 257}, -1, -0.5)},
                     [](const Vec& x) { return Vec{logsumexp(ssm::log(relu(x[0])), {1})}; }};
  neg_inf.backward = false;
  cases.push_back(neg_inf);
}

}  // namespace

TEST_CASE("reductions: CUDA matches the CPU", "[cuda][parity]") {
  std::vector<ParityCase> cases;
  add_sum_cases(cases);
  add_max_cases(cases);
  add_logsumexp_cases(cases);
  run_parity_table(cases);
}
