// Matrix products: matmul, bmm and linear against naive triple loops (batch
// broadcasting, 1-D operands, transposed and other strided views, float32),
// gradchecks, backward against naive gradient loops on the larger paths, and
// error messages.
#include "kernels/elementwise.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

// torch.matmul by its definition, in double: 1-D operands promoted to
// (1, K) / (K, 1), batch dims broadcast, one triple loop per matrix.
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  Shape as = a.shape(), bs = b.shape();
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as = {1, as[0]};
  if (b_vec) bs = {bs[0], 1};
  const std::int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  const Shape ba(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  const Shape batch = broadcast_shapes(ba, bb, "naive_matmul");
  const std::int64_t nd = static_cast<std::int64_t>(batch.size());
  // Which matrix of an operand with batch dims tb batch index i reads.
  auto matrix_of = [&](const Shape& tb, std::int64_t i) {
    const std::int64_t lead = nd - static_cast<std::int64_t>(tb.size());
    std::int64_t index = 0, scale = 1;
    for (std::int64_t d = nd - 1; d >= 0; --d) {
      const std::int64_t coord = i % batch[d];
      i /= batch[d];
      if (d < lead) continue;
      const std::int64_t size = tb[d - lead];
      index += (size == 1 ? 0 : coord) * scale;
      scale *= size;
    }
    return index;
  };
  const auto av = a.to_vector<double>(), bv = b.to_vector<double>();
  const std::int64_t nb = shape_numel(batch);
  std::vector<double> out(static_cast<std::size_t>(nb * m * n));
  for (std::int64_t i = 0; i < nb; ++i) {
    const std::int64_t ia = matrix_of(ba, i), ib = matrix_of(bb, i);
    for (std::int64_t r = 0; r < m; ++r) {
      for (std::int64_t c = 0; c < n; ++c) {
        double s = 0.0;
        for (std::int64_t j = 0; j < k; ++j) {
          s += av[static_cast<std::size_t>((ia * m + r) * k + j)] *
               bv[static_cast<std::size_t>((ib * k + j) * n + c)];
        }
        out[static_cast<std::size_t>((i * m + r) * n + c)] = s;
      }
    }
  }
  Shape os = batch;
  if (!a_vec) os.push_back(m);
  if (!b_vec) os.push_back(n);
  return Tensor::from_vector<double>(out, os);
}

// y[r, o] = sum_i x[r, i] w[o, i] + bias[o], in double.
Tensor naive_linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor()) {
  const std::int64_t out_f = w.size(0), in_f = w.size(1), rows = x.numel() / in_f;
  const auto xv = x.to_vector<double>(), wv = w.to_vector<double>();
  const auto bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>(out_f, 0.0);
  std::vector<double> y(static_cast<std::size_t>(rows * out_f));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t o = 0; o < out_f; ++o) {
      double s = bv[static_cast<std::size_t>(o)];
      for (std::int64_t i = 0; i < in_f; ++i) {
        s +=
            xv[static_cast<std::size_t>(r * in_f + i)] * wv[static_cast<std::size_t>(o * in_f + i)];
      }
      y[static_cast<std::size_t>(r * out_f + o)] = s;
    }
  }
  Shape ys = x.shape();
  ys.back() = out_f;
  return Tensor::from_vector<double>(y, ys);
}

// A differentiable transpose of the last two dims that stays a view (strides
// swapped, no copy), so that the products see transposed operands.
Tensor transposed(const Tensor& x) {
  Tensor y = x.transpose(-1, -2);
  if (needs_grad({&x})) {
    record("transposed", {x}, {y},
           [](const GradList& g) -> GradList { return {g[0].transpose(-1, -2).contiguous()}; });
  }
  return y;
}

Tensor constant(const Shape& shape, std::uint64_t seed, DType dtype = DType::Float64) {
  return random_tensor(shape, seed, -1.0, 1.0, dtype, false);
}

}  // namespace

// ---------------------------------------------------------------- forward

TEST_CASE("matmul matches a naive triple loop", "[cpu][linalg]") {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {4, 5}},            // plain matrices
      {{2, 3, 4}, {2, 4, 5}},      // equal batches
      {{2, 1, 3, 4}, {5, 4, 2}},   // batch broadcasting on both sides -> (2, 5, 3, 2)
      {{2, 3, 4}, {4, 5}},         // shared b: the batch folds into one GEMM
      {{3, 4}, {2, 4, 5}},         // shared a
      {{1, 3, 4}, {2, 4, 5}},      // a batch dim of size 1
      {{4}, {4, 3}},               // 1-D a
      {{3, 4}, {4}},               // 1-D b
      {{4}, {4}},                  // dot product -> 0-d
      {{2, 3, 4}, {4}},            // batched matrix-vector
      {{4}, {2, 4, 3}},            // vector-batched matrix
      {{128, 8, 8}, {128, 8, 8}},  // many small matrices: OpenMP over the batch
      {{70, 80}, {80, 90}},        // one GEMM large enough for OpenBLAS threads
      {{3, 0}, {0, 2}},            // K = 0: zeros
      {{0, 4}, {4, 2}},            // M = 0: empty
  };
  for (const auto& [sa, sb] : shapes) {
    INFO("a " << shape_str(sa) << " b " << shape_str(sb));
    const Tensor a = constant(sa, 1), b = constant(sb, 2);
    const Tensor out = matmul(a, b);
    require_close(out, naive_matmul(a, b), 1e-12, 1e-12);
  }
  CHECK(matmul(constant({2, 1, 3, 4}, 1), constant({5, 4, 2}, 2)).shape() == Shape{2, 5, 3, 2});
  CHECK(matmul(constant({4}, 1), constant({4}, 2)).dim() == 0);
  CHECK(matmul(constant({3, 0}, 1), constant({0, 2}, 2)).to_vector<double>() ==
        std::vector<double>(6, 0.0));
}

TEST_CASE("matmul reads transposed and strided views like their copies", "[cpu][linalg]") {
  const Tensor a = constant({3, 4}, 3), b = constant({4, 5}, 4);
  struct Case {
    std::string name;
    Tensor a, b;
  };
  const Tensor big = constant({6, 10}, 5);
  const std::vector<Case> cases = {
      // (4, 3)^T: strides (1, 3), read with CblasTrans
      {"transposed a", constant({4, 3}, 6).transpose(0, 1), b},
      {"transposed b", a, constant({5, 4}, 7).transpose(0, 1)},
      {"both transposed", constant({4, 3}, 6).transpose(0, 1), constant({5, 4}, 7).transpose(0, 1)},
      {"batched transposed", constant({2, 4, 3}, 8).transpose(1, 2),
       constant({2, 5, 4}, 9).transpose(1, 2)},
      // row stride larger than the row: a leading dimension of 10
      {"column slice", big.narrow(1, 2, 4), b},
      {"transposed slice", a, big.narrow(0, 1, 4).narrow(1, 3, 5)},
      // rows of the batch interleaved: (4, 2, 3) permuted to (2, 4, 3)
      {"permuted batch", constant({4, 2, 3}, 10).permute({1, 0, 2}), constant({3, 2}, 11)},
      // a batch of rows that does not fold into one matrix
      {"sliced batch rows", constant({2, 5, 4}, 12).narrow(1, 1, 3), b},
      {"sliced batch", constant({5, 3, 4}, 13).narrow(0, 2, 2), b},
      // no BLAS layout: copied
      {"flipped", a.flip(1), b.flip(0)},
      {"expanded rows", constant({1, 4}, 14).expand({3, 4}), b},
      {"expanded batch", constant({1, 3, 4}, 15).expand({5, 3, 4}), constant({5, 4, 2}, 16)},
      {"strided vector", constant({4, 2}, 17).select(1, 1), b},
      {"strided vector b", a, constant({4, 3}, 18).select(1, 0)},
  };
  for (const auto& c : cases) {
    INFO(c.name << ": a " << c.a.desc() << " strides " << shape_str(c.a.strides()) << ", b "
                << c.b.desc() << " strides " << shape_str(c.b.strides()));
    require_close(matmul(c.a, c.b), naive_matmul(c.a, c.b), 1e-12, 1e-12);
    require_close(matmul(c.a, c.b), matmul(c.a.contiguous(), c.b.contiguous()), 1e-12, 1e-12);
  }
}

TEST_CASE("matmul in float32 matches the float64 loop", "[cpu][linalg]") {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {4, 5}}, {{2, 1, 3, 4}, {5, 4, 2}}, {{6}, {6, 3}}, {{33, 40}, {40, 17}}};
  for (const auto& [sa, sb] : shapes) {
    INFO("a " << shape_str(sa) << " b " << shape_str(sb));
    const Tensor a = constant(sa, 21, DType::Float32), b = constant(sb, 22, DType::Float32);
    const Tensor out = matmul(a, b);
    CHECK(out.dtype() == DType::Float32);
    require_close(out, naive_matmul(a, b), 1e-5, 1e-5);
  }
  const Tensor at = constant({5, 3}, 23, DType::Float32).transpose(0, 1);
  const Tensor b = constant({5, 2}, 24, DType::Float32);
  require_close(matmul(at, b), naive_matmul(at, b), 1e-5, 1e-5);
}

TEST_CASE("bmm matches a naive triple loop", "[cpu][linalg]") {
  const Tensor a = constant({3, 2, 4}, 31), b = constant({3, 4, 5}, 32);
  require_close(bmm(a, b), naive_matmul(a, b), 1e-12, 1e-12);
  const Tensor bt = constant({3, 5, 4}, 33).transpose(1, 2);
  require_close(bmm(a, bt), naive_matmul(a, bt), 1e-12, 1e-12);
  const Tensor af = constant({3, 2, 4}, 34, DType::Float32);
  const Tensor bf = constant({3, 4, 5}, 35, DType::Float32);
  require_close(bmm(af, bf), naive_matmul(af, bf), 1e-5, 1e-5);
}

TEST_CASE("linear matches x W^T + b", "[cpu][linalg]") {
  const Tensor w = constant({5, 4}, 41), bias = constant({5}, 42);
  const std::vector<Shape> x_shapes = {{3, 4}, {2, 3, 4}, {4}, {2, 1, 3, 4}, {0, 4}};
  for (const Shape& sx : x_shapes) {
    INFO("x " << shape_str(sx));
    const Tensor x = constant(sx, 43);
    require_close(linear(x, w, bias), naive_linear(x, w, bias), 1e-12, 1e-12);
    require_close(linear(x, w), naive_linear(x, w), 1e-12, 1e-12);
  }
  // Strided inputs: a row slice (read in place), a transposed x, a transposed
  // weight (stored (in, out)), a batch transpose (copied).
  const Tensor xs = constant({3, 9}, 44).narrow(1, 2, 4);
  require_close(linear(xs, w, bias), naive_linear(xs, w, bias), 1e-12, 1e-12);
  const Tensor xt = constant({4, 3}, 45).transpose(0, 1);
  require_close(linear(xt, w, bias), naive_linear(xt, w, bias), 1e-12, 1e-12);
  const Tensor wt = constant({4, 5}, 46).transpose(0, 1);
  require_close(linear(xs, wt, bias), naive_linear(xs, wt, bias), 1e-12, 1e-12);
  const Tensor xb = constant({3, 2, 4}, 47).transpose(0, 1);
  require_close(linear(xb, w, bias), naive_linear(xb, w, bias), 1e-12, 1e-12);
  // in_features = 0: y is the bias on every row
  const Tensor x0 = constant({3, 0}, 48), w0 = constant({5, 0}, 49);
  require_close(linear(x0, w0, bias), bias.expand({3, 5}).contiguous(), 0, 0);
  // float32, large enough for a threaded GEMM and a parallel bias fill
  const Tensor xf = constant({2, 300, 64}, 50, DType::Float32);
  const Tensor wf = constant({120, 64}, 51, DType::Float32);
  const Tensor bf = constant({120}, 52, DType::Float32);
  const Tensor yf = linear(xf, wf, bf);
  CHECK(yf.dtype() == DType::Float32);
  CHECK(yf.shape() == Shape{2, 300, 120});
  require_close(yf, naive_linear(xf, wf, bf), 1e-5, 1e-5);
}

// ---------------------------------------------------------------- gradients

TEST_CASE("gradcheck: matmul with broadcasting and 1-D operands", "[cpu][linalg][grad]") {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {4, 2}},    {{2, 3, 4}, {2, 4, 2}}, {{2, 1, 3, 4}, {5, 4, 2}},
      {{2, 3, 4}, {4, 2}}, {{3, 4}, {2, 4, 2}},    {{1, 3, 2}, {2, 1, 2, 3}},
      {{4}, {4, 3}},       {{3, 4}, {4}},          {{4}, {4}},
      {{2, 3, 4}, {4}},    {{4}, {2, 4, 3}},
  };
  for (const auto& [sa, sb] : shapes) {
    INFO("a " << shape_str(sa) << " b " << shape_str(sb));
    const Tensor a = random_tensor(sa, 61), b = random_tensor(sb, 62);
    require_gradcheck([](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); }, {a, b});
  }
}

TEST_CASE("gradcheck: matmul of transposed views", "[cpu][linalg][grad]") {
  const Tensor a = random_tensor({4, 3}, 63), b = random_tensor({2, 4}, 64);
  // a^T (3, 4) @ b^T (4, 2), each a strided view
  require_gradcheck(
      [](const std::vector<Tensor>& x) { return matmul(transposed(x[0]), transposed(x[1])); },
      {a, b});
  // batched, broadcast: (2, 1, 4, 3)^T @ (5, 4, 2) and (2, 3, 4) @ (2, 4)^T (shared)
  const Tensor ab = random_tensor({2, 1, 4, 3}, 65), bb = random_tensor({5, 4, 2}, 66);
  require_gradcheck([](const std::vector<Tensor>& x) { return matmul(transposed(x[0]), x[1]); },
                    {ab, bb});
  const Tensor a3 = random_tensor({2, 3, 4}, 67);
  require_gradcheck([](const std::vector<Tensor>& x) { return matmul(x[0], transposed(x[1])); },
                    {a3, b});
}

TEST_CASE("gradcheck: bmm", "[cpu][linalg][grad]") {
  const Tensor a = random_tensor({3, 2, 4}, 71), b = random_tensor({3, 4, 2}, 72);
  require_gradcheck([](const std::vector<Tensor>& x) { return bmm(x[0], x[1]); }, {a, b});
  const Tensor bt = random_tensor({3, 2, 4}, 73);
  require_gradcheck([](const std::vector<Tensor>& x) { return bmm(x[0], transposed(x[1])); },
                    {a, bt});
}

TEST_CASE("gradcheck: linear with and without bias", "[cpu][linalg][grad]") {
  const Tensor w = random_tensor({3, 4}, 81), bias = random_tensor({3}, 82);
  for (const Shape& sx : std::vector<Shape>{{5, 4}, {2, 3, 4}, {4}}) {
    INFO("x " << shape_str(sx));
    const Tensor x = random_tensor(sx, 83);
    require_gradcheck([](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); },
                      {x, w, bias});
    require_gradcheck([](const std::vector<Tensor>& v) { return linear(v[0], v[1]); }, {x, w});
  }
  // transposed x and weight views: x (4, 5)^T, weight stored as (in, out)
  const Tensor xt = random_tensor({4, 5}, 84), wt = random_tensor({4, 3}, 85);
  require_gradcheck(
      [](const std::vector<Tensor>& v) { return linear(transposed(v[0]), transposed(v[1]), v[2]); },
      {xt, wt, bias});
}

TEST_CASE("matmul and linear backward match naive gradients on the larger paths",
          "[cpu][linalg][grad]") {
  // ga = g b^T and gb = a^T g, computed with the naive product, summed over
  // the broadcast batch by hand. The shapes reach the GEMM paths that
  // gradcheck's small shapes do not: one GEMM per batch summed in place
  // (large shared a), many small GEMMs then a sum (small shared a), and the
  // batch folded into one GEMM (shared b).
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{70, 80}, {2, 80, 60}}, {{4, 5}, {64, 5, 6}}, {{3, 20, 16}, {16, 12}}};
  for (const auto& [sa, sb] : shapes) {
    INFO("a " << shape_str(sa) << " b " << shape_str(sb));
    Tensor a = random_tensor(sa, 91), b = random_tensor(sb, 92);
    const Tensor out = matmul(a, b);
    const Tensor g = constant(out.shape(), 93);
    backward(out, g);
    // The naive gradients, per batch, then summed to the operand's shape.
    const Tensor ga_full = naive_matmul(g, b.detach().transpose(-1, -2));
    const Tensor gb_full = naive_matmul(a.detach().transpose(-1, -2), g);
    require_close(a.grad(), kernels::sum_to(ga_full, sa), 1e-10, 1e-10);
    require_close(b.grad(), kernels::sum_to(gb_full, sb), 1e-10, 1e-10);
  }
  // linear in float32 against the float64 gradients: gx = g W, gW = g^T x, gb = sum g
  Tensor x = random_tensor({2, 50, 24}, 94, -1, 1, DType::Float32);
  Tensor w = random_tensor({16, 24}, 95, -1, 1, DType::Float32);
  Tensor bias = random_tensor({16}, 96, -1, 1, DType::Float32);
  const Tensor g = constant({2, 50, 16}, 97);
  backward(linear(x, w, bias), g.to(DType::Float32));
  const Tensor x64 = x.detach().to(DType::Float64), w64 = w.detach().to(DType::Float64);
  const Tensor g2 = g.reshape({100, 16});
  require_close(x.grad(), naive_matmul(g, w64), 1e-5, 1e-5);
  require_close(w.grad(), naive_matmul(g2.transpose(0, 1), x64.reshape({100, 24})), 1e-4, 1e-5);
  require_close(bias.grad(), kernels::sum_to(g2, {16}), 1e-5, 1e-5);
}

TEST_CASE("gradients go only to inputs that require them", "[cpu][linalg][grad]") {
  Tensor a = random_tensor({3, 4}, 101);
  const Tensor b = constant({4, 2}, 102);
  backward(sum(matmul(a, b)));
  CHECK(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  // d sum(a b) / da = 1 b^T: every row of ga is the row sums of b
  const Tensor row = sum(b, {1});  // (4)
  require_close(a.grad(), row.expand({3, 4}).contiguous(), 1e-12, 1e-12);

  const Tensor x = constant({5, 4}, 103);
  Tensor w = random_tensor({3, 4}, 104);
  const Tensor bias = constant({3}, 105);
  backward(sum(linear(x, w, bias)));
  CHECK(w.grad().defined());
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(bias.grad().defined());
  {
    NoGradGuard no_grad;
    CHECK_FALSE(linear(x, w, bias).requires_grad());
  }
  CHECK(tape_size() == 0);
}

// ---------------------------------------------------------------- errors

TEST_CASE("linalg errors name the op and both shapes", "[cpu][linalg]") {
  const Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  CHECK(error_message([&] { matmul(a, b); }) ==
        "[matmul] inner dimensions differ: a (2, 3) float32 cpu, b (4, 5) float32 cpu");
  CHECK(error_message([&] { matmul(Tensor::zeros({3}), Tensor::zeros({4})); }) ==
        "[matmul] inner dimensions differ: a (3,) float32 cpu, b (4,) float32 cpu");
  CHECK(error_message([&] {
          matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4}));
        }) ==
        "[matmul] batch dimensions cannot be broadcast together: a (2, 2, 3) float32 cpu, "
        "b (3, 3, 4) float32 cpu");
  CHECK(error_message([&] { matmul(Tensor::scalar(1.0), a); }) ==
        "[matmul] both operands need at least 1 dim, got a () float32 cpu, b (2, 3) float32 cpu");
  CHECK(error_message([&] {
          matmul(a, Tensor::zeros({3, 2}, DType::Float64));
        }) == "[matmul] dtypes differ: (2, 3) float32 cpu and (3, 2) float64 cpu");
  CHECK(error_message([&] {
          matmul(Tensor::zeros({2, 3}, DType::Int64), Tensor::zeros({3, 2}, DType::Int64));
        }) == "[matmul] expected a float32 or float64 tensor, got int64");

  CHECK(error_message([&] {
          bmm(a, Tensor::zeros({3, 2}));
        }) ==
        "[bmm] expected 3-D tensors a (B, M, K) and b (B, K, N), got a (2, 3) float32 cpu, "
        "b (3, 2) float32 cpu");
  CHECK(error_message([&] {
          bmm(Tensor::zeros({2, 2, 3}), Tensor::zeros({1, 3, 4}));
        }) ==
        "[bmm] batch sizes differ: a (2, 2, 3) float32 cpu, b (1, 3, 4) float32 cpu (bmm does "
        "not broadcast; use matmul)");
  CHECK(error_message([&] {
          bmm(Tensor::zeros({2, 2, 3}), Tensor::zeros({2, 4, 4}));
        }) == "[bmm] inner dimensions differ: a (2, 2, 3) float32 cpu, b (2, 4, 4) float32 cpu");
  CHECK(error_message([&] {
          bmm(Tensor::zeros({2, 2, 3}), Tensor::zeros({2, 3, 4}, DType::Float64));
        }) == "[bmm] dtypes differ: (2, 2, 3) float32 cpu and (2, 3, 4) float64 cpu");

  const Tensor x = Tensor::zeros({2, 4}), w = Tensor::zeros({3, 4});
  CHECK(error_message([&] {
          linear(x, Tensor::zeros({4, 3}));
        }) ==
        "[linear] x (2, 4) float32 cpu does not end in in_features = 3 of weight (4, 3) float32 "
        "cpu (weight is (out_features, in_features))");
  CHECK(error_message([&] { linear(x, Tensor::zeros({4})); }) ==
        "[linear] weight must be 2-D (out_features, in_features), got weight (4,) float32 cpu");
  CHECK(error_message([&] { linear(x, w, Tensor::zeros({4})); }) ==
        "[linear] bias (4,) float32 cpu does not match weight (3, 4) float32 cpu: expected bias "
        "(3,)");
  CHECK(error_message([&] {
          linear(x, w, Tensor::zeros({1, 3}));
        }).find("[linear] bias (1, 3)") == 0);
  CHECK(error_message([&] {
          linear(x, Tensor::zeros({3, 4}, DType::Float64));
        }) == "[linear] dtypes differ: (2, 4) float32 cpu and (3, 4) float64 cpu");
  CHECK(error_message([&] { linear(x, w, Tensor::zeros({3}, DType::Float64)); }) ==
        "[linear] dtypes differ: (2, 4) float32 cpu and (3,) float64 cpu");
}
