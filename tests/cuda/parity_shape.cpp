// CPU-versus-CUDA parity of the shape kernels (kernels/cuda/shape.cu): cat,
// pad, index_select, gather, embedding, forward and backward, with shapes
// that are not multiples of the block size, size-1 and empty dims, transposed
// and broadcast views (built inside f, so that their gradients flow back
// through the view ops), int64 and int32 indices, and repeated indices (the
// deterministic scatter-add backwards). Skipped when no GPU is visible.
#include "tests/cuda/parity.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::ParityCase;
using ssm::testing::ParityInput;
using ssm::testing::run_parity_table;

namespace {

// A float input that gets a gradient, uniform in [-1, 1).
ParityInput in(const Shape& shape) {
  ParityInput p;
  p.shape = shape;
  return p;
}

// An int64 index input with values in [0, hi).
ParityInput idx(const Shape& shape, std::int64_t hi) {
  ParityInput p;
  p.shape = shape;
  p.lo = 0.0;
  p.hi = static_cast<double>(hi);
  p.index = true;
  p.grad = false;
  return p;
}

ParityCase make(std::string name, std::vector<ParityInput> inputs, ssm::testing::ParityFn f,
                double tol = 1e-5) {
  ParityCase c;
  c.name = std::move(name);
  c.inputs = std::move(inputs);
  c.f = std::move(f);
  c.tol = tol;
  return c;
}

Tensor i32(const Tensor& t) { return t.to(DType::Int32); }

std::vector<ParityCase> cat_cases() {
  std::vector<ParityCase> cs;
  cs.push_back(make("cat 1-D (1) (33) (1000) dim 0", {in({1}), in({33}), in({1000})},
                    [](const std::vector<Tensor>& x) { return std::vector<Tensor>{cat(x, 0)}; }));
  cs.push_back(make("cat (3, 257) (3, 1) (3, 4097) dim 1",
                    {in({3, 257}), in({3, 1}), in({3, 4097})},
                    [](const std::vector<Tensor>& x) { return std::vector<Tensor>{cat(x, 1)}; }));
  cs.push_back(make("cat (2, 33, 5) (7, 33, 5) dim -3", {in({2, 33, 5}), in({7, 33, 5})},
                    [](const std::vector<Tensor>& x) { return std::vector<Tensor>{cat(x, -3)}; }));
  cs.push_back(make("cat transposed (33, 3)^T with (3, 5) dim 1", {in({33, 3}), in({3, 5})},
                    [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{cat({transpose(x[0], 0, 1), x[1]}, 1)};
                    }));
  cs.push_back(make("cat broadcast (1, 17)->(4, 17) with (4, 3) dim 1", {in({1, 17}), in({4, 3})},
                    [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{cat({expand(x[0], {4, 17}), x[1]}, 1)};
                    }));
  cs.push_back(make("cat with an empty piece (3, 0) (3, 5) dim 1", {in({3, 0}), in({3, 5})},
                    [](const std::vector<Tensor>& x) { return std::vector<Tensor>{cat(x, 1)}; }));
  cs.push_back(make("cat all empty (0, 4) (0, 4) dim 0", {in({0, 4}), in({0, 4})},
                    [](const std::vector<Tensor>& x) { return std::vector<Tensor>{cat(x, 0)}; }));
  cs.push_back(make("stack 3 x (1, 65) dim 1", {in({1, 65}), in({1, 65}), in({1, 65})},
                    [](const std::vector<Tensor>& x) { return std::vector<Tensor>{stack(x, 1)}; }));
  return cs;
}

std::vector<ParityCase> pad_cases() {
  std::vector<ParityCase> cs;
  const auto p = [](std::vector<std::int64_t> pads, double value) {
    return [pads, value](const std::vector<Tensor>& x) {
      return std::vector<Tensor>{pad(x[0], pads, value)};
    };
  };
  cs.push_back(make("pad (3, 257) {1, 2} value 0.5", {in({3, 257})}, p({1, 2}, 0.5)));
  cs.push_back(make("pad (2, 3, 33) every dim", {in({2, 3, 33})}, p({1, 1, 2, 0, 1, 1}, 0.0)));
  cs.push_back(
      make("pad (4, 1000) with crops {-3, 2, 1, -1}", {in({4, 1000})}, p({-3, 2, 1, -1}, -1.0)));
  cs.push_back(make("pad 1-D (4097) {0, 3}", {in({4097})}, p({0, 3}, 0.0)));
  cs.push_back(make("pad rank 5 (2, 1, 3, 1, 4) every dim", {in({2, 1, 3, 1, 4})},
                    p({1, 0, 0, 1, 1, 1, 0, 0, 1, 1}, 2.0)));
  cs.push_back(
      make("pad transposed (33, 5)^T {2, 3}", {in({33, 5})}, [](const std::vector<Tensor>& x) {
        return std::vector<Tensor>{pad(transpose(x[0], 0, 1), {2, 3}, 0.0)};
      }));
  cs.push_back(make("pad broadcast (1, 7)->(6, 7) {0, 0, 1, 1} value -2", {in({1, 7})},
                    [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{pad(expand(x[0], {6, 7}), {0, 0, 1, 1}, -2.0)};
                    }));
  cs.push_back(make("pad empty rows (0, 5) {1, 1}", {in({0, 5})}, p({1, 1}, 1.0)));
  cs.push_back(make("pad empty input (3, 0) {2, 1} (all value)", {in({3, 0})}, p({2, 1}, 3.0)));
  cs.push_back(make("pad cropped to nothing (2, 5) {-5, 0}", {in({2, 5})}, p({-5, 0}, 0.0)));
  return cs;
}

std::vector<ParityCase> index_select_cases() {
  std::vector<ParityCase> cs;
  const auto sel = [](std::int64_t dim, bool int32) {
    return [dim, int32](const std::vector<Tensor>& x) {
      return std::vector<Tensor>{index_select(x[0], dim, int32 ? i32(x[1]) : x[1])};
    };
  };
  cs.push_back(make("index_select (257, 33) dim 0, 1000 repeated int64 indices",
                    {in({257, 33}), idx({1000}, 257)}, sel(0, false)));
  cs.push_back(make("index_select (3, 4097) dim 1, 33 int32 indices",
                    {in({3, 4097}), idx({33}, 4097)}, sel(1, true)));
  cs.push_back(make("index_select (5, 7, 9) dim -2, one index", {in({5, 7, 9}), idx({1}, 7)},
                    sel(-2, false)));
  cs.push_back(make("index_select (1000, 3) dim 0, 3 int32 indices",
                    {in({1000, 3}), idx({3}, 1000)}, sel(0, true)));
  cs.push_back(make("index_select transposed (33, 17)^T dim 1, 100 indices",
                    {in({33, 17}), idx({100}, 33)}, [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{index_select(transpose(x[0], 0, 1), 1, x[1])};
                    }));
  cs.push_back(make("index_select broadcast (1, 65)->(8, 65) dim 0, 20 int32 indices",
                    {in({1, 65}), idx({20}, 8)}, [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{index_select(expand(x[0], {8, 65}), 0, i32(x[1]))};
                    }));
  cs.push_back(make("index_select transposed index view", {in({40, 6}), idx({5, 2}, 40)},
                    [](const std::vector<Tensor>& x) {
                      // column 1 of a (5, 2) index: a strided 1-D view
                      return std::vector<Tensor>{index_select(x[0], 0, x[1].select(1, 1))};
                    }));
  cs.push_back(make("index_select (4, 20, 40) dim 1, 50 indices (row kernel, outer 4)",
                    {in({4, 20, 40}), idx({50}, 20)}, sel(1, false)));
  cs.push_back(make("index_select transposed (40, 9)^T dim 0, 30 indices (row kernel)",
                    {in({40, 9}), idx({30}, 9)}, [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{index_select(transpose(x[0], 0, 1), 0, x[1])};
                    }));
  cs.push_back(make("index_select empty index (0)", {in({6, 5}), idx({0}, 6)}, sel(0, false)));
  cs.push_back(
      make("index_select empty x rows (0, 5) dim 1", {in({0, 5}), idx({4}, 5)}, sel(1, false)));
  return cs;
}

std::vector<ParityCase> gather_cases() {
  std::vector<ParityCase> cs;
  const auto gat = [](std::int64_t dim, bool int32) {
    return [dim, int32](const std::vector<Tensor>& x) {
      return std::vector<Tensor>{gather(x[0], dim, int32 ? i32(x[1]) : x[1])};
    };
  };
  cs.push_back(make("gather (33, 257) dim 1, index (33, 100) int64",
                    {in({33, 257}), idx({33, 100}, 257)}, gat(1, false)));
  cs.push_back(make("gather (1000, 3) dim 0, index (4097, 3) int32 (many repeats)",
                    {in({1000, 3}), idx({4097, 3}, 1000)}, gat(0, true)));
  cs.push_back(make("gather (4, 5, 6) dim 1, smaller index (3, 9, 2)",
                    {in({4, 5, 6}), idx({3, 9, 2}, 5)}, gat(1, false)));
  cs.push_back(make("gather (2, 1) dim 0, index (4097, 1): long columns",
                    {in({2, 1}), idx({4097, 1}, 2)}, gat(0, false)));
  cs.push_back(make("gather 1-D (1000) dim 0, index (257) int32", {in({1000}), idx({257}, 1000)},
                    gat(0, true)));
  cs.push_back(make("gather transposed x (17, 9)^T dim 0, index (5, 17)",
                    {in({17, 9}), idx({5, 17}, 9)}, [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{gather(transpose(x[0], 0, 1), 0, x[1])};
                    }));
  cs.push_back(make("gather transposed index (7, 4)^T, x (4, 10) dim 1 int32",
                    {in({4, 10}), idx({7, 4}, 10)}, [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{gather(x[0], 1, i32(x[1]).transpose(0, 1))};
                    }));
  cs.push_back(make("gather broadcast (1, 50)->(6, 50) dim 1, index (6, 20)",
                    {in({1, 50}), idx({6, 20}, 50)}, [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{gather(expand(x[0], {6, 50}), 1, x[1])};
                    }));
  cs.push_back(
      make("gather empty index (3, 0) dim 1", {in({3, 5}), idx({3, 0}, 5)}, gat(1, false)));
  return cs;
}

std::vector<ParityCase> embedding_cases() {
  std::vector<ParityCase> cs;
  const auto emb = [](bool int32, std::int64_t padding_idx) {
    return [int32, padding_idx](const std::vector<Tensor>& x) {
      return std::vector<Tensor>{embedding(int32 ? i32(x[0]) : x[0], x[1], padding_idx)};
    };
  };
  cs.push_back(make("embedding (1000, 33), indices (4, 257) int64",
                    {idx({4, 257}, 1000), in({1000, 33})}, emb(false, -1)));
  cs.push_back(make("embedding (3, 4097), indices (33) int32 (heavy repeats)",
                    {idx({33}, 3), in({3, 4097})}, emb(true, -1)));
  cs.push_back(make("embedding (10, 7), indices (5, 20), padding_idx 3",
                    {idx({5, 20}, 10), in({10, 7})}, emb(false, 3)));
  cs.push_back(make("embedding (300, 64), indices (3, 333), padding_idx 0 (row kernel)",
                    {idx({3, 333}, 300), in({300, 64})}, emb(true, 0)));
  cs.push_back(make("embedding (1, 1), indices (1)", {idx({1}, 1), in({1, 1})}, emb(true, -1)));
  cs.push_back(make("embedding transposed weight (16, 50)^T, indices (100)",
                    {idx({100}, 50), in({16, 50})}, [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{embedding(x[0], transpose(x[1], 0, 1))};
                    }));
  cs.push_back(make("embedding transposed indices (8, 3)^T int32", {idx({8, 3}, 12), in({12, 5})},
                    [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{embedding(i32(x[0]).transpose(0, 1), x[1])};
                    }));
  cs.push_back(make("embedding empty indices (0)", {idx({0}, 6), in({6, 4})}, emb(false, -1)));
  return cs;
}

}  // namespace

TEST_CASE("cuda parity: cat", "[cuda][parity]") { run_parity_table(cat_cases()); }
TEST_CASE("cuda parity: pad", "[cuda][parity]") { run_parity_table(pad_cases()); }
TEST_CASE("cuda parity: index_select", "[cuda][parity]") { run_parity_table(index_select_cases()); }
TEST_CASE("cuda parity: gather", "[cuda][parity]") { run_parity_table(gather_cases()); }
TEST_CASE("cuda parity: embedding", "[cuda][parity]") { run_parity_table(embedding_cases()); }
