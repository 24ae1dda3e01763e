// Shape ops: values against naive index loops, views sharing storage,
// gradients of the scatter-adds (repeated indices, padding_idx, parallel
// paths bit-equal to a sequential loop), gradchecks of every op on
// contiguous and non-contiguous inputs, and error messages.
#include "kernels/shape.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

using Index = std::vector<std::int64_t>;

// Row-major multi-index <-> flat index.
Index unravel(std::int64_t flat, const Shape& shape) {
  Index c(shape.size());
  for (std::int64_t d = static_cast<std::int64_t>(shape.size()) - 1; d >= 0; --d) {
    c[d] = flat % shape[d];
    flat /= shape[d];
  }
  return c;
}

std::int64_t ravel(const Index& c, const Shape& shape) {
  std::int64_t flat = 0;
  for (std::size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + c[d];
  return flat;
}

// out[c] = x[src(c)] for every multi-index c of out_shape; src returns false
// where out takes `fill` instead.
template <class F>
Tensor naive_map(const Tensor& x, const Shape& out_shape, F src, double fill = 0.0) {
  const auto xv = x.to_vector<double>();
  std::vector<double> out(static_cast<std::size_t>(shape_numel(out_shape)));
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(out.size()); ++i) {
    Index from;
    out[i] = src(unravel(i, out_shape), from) ? xv[ravel(from, x.shape())] : fill;
  }
  return Tensor::from_vector<double>(out, out_shape);
}

Tensor values(const Tensor& x) { return x.detach(); }

// A float64 tensor 0, 1, 2, ... of the given shape (no grad).
Tensor iota(const Shape& shape) {
  return Tensor::arange(shape_numel(shape), DType::Float64).reshape(shape);
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

}  // namespace

// ---------------------------------------------------------------- views: values

TEST_CASE("reshape, flatten, unsqueeze and squeeze keep row-major order", "[cpu][shape]") {
  Tensor x = iota({2, 3, 4});
  Tensor r = reshape(x, {4, -1});
  CHECK(r.shape() == Shape{4, 6});
  CHECK(r.storage() == x.storage());  // a view
  CHECK(r.to_vector<double>() == x.to_vector<double>());
  // A transposed input cannot be viewed: reshape copies, in the transposed order.
  Tensor t = transpose(x, 0, 2);  // (4, 3, 2)
  Tensor rt = reshape(t, {24});
  CHECK(rt.storage() != x.storage());
  CHECK(rt.to_vector<double>() == naive_map(x, {4, 3, 2}, [](const Index& c, Index& f) {
                                    f = {c[2], c[1], c[0]};
                                    return true;
                                  }).to_vector<double>());
  CHECK(flatten(x).shape() == Shape{24});
  CHECK(flatten(x, 1).shape() == Shape{2, 12});
  CHECK(flatten(x, 0, 1).shape() == Shape{6, 4});
  CHECK(flatten(x, -2, -1).shape() == Shape{2, 12});
  CHECK(flatten(Tensor::scalar(5.0, DType::Float64)).shape() == Shape{1});
  CHECK(unsqueeze(x, 1).shape() == Shape{2, 1, 3, 4});
  CHECK(unsqueeze(x, -1).shape() == Shape{2, 3, 4, 1});
  CHECK(squeeze(unsqueeze(x, 3), -1).shape() == Shape{2, 3, 4});
  CHECK(squeeze(unsqueeze(x, 0), 0).to_vector<double>() == x.to_vector<double>());
}

TEST_CASE("transpose and permute match index arithmetic", "[cpu][shape]") {
  Tensor x = iota({2, 3, 4});
  require_close(transpose(x, 0, -1), naive_map(x, {4, 3, 2}, [](const Index& c, Index& f) {
                  f = {c[2], c[1], c[0]};
                  return true;
                }));
  // out.shape[i] = x.shape[dims[i]]: out[a, b, c] = x[c, a, b] for dims (1, 2, 0).
  Tensor p = permute(x, {1, 2, 0});
  CHECK(p.shape() == Shape{3, 4, 2});
  CHECK(p.storage() == x.storage());
  require_close(p, naive_map(x, {3, 4, 2}, [](const Index& c, Index& f) {
                  f = {c[2], c[0], c[1]};
                  return true;
                }));
}

TEST_CASE("slice follows Python's slicing rules", "[cpu][shape]") {
  Tensor x = iota({3, 7});
  // Python oracle for range(7)[start:end:step], written out by hand.
  struct Case {
    std::int64_t start, end, step;
    std::vector<double> expect;
  };
  const std::vector<Case> cases = {
      {0, 7, 1, {0, 1, 2, 3, 4, 5, 6}},
      {2, 5, 1, {2, 3, 4}},
      {1, 7, 2, {1, 3, 5}},
      {0, 7, 3, {0, 3, 6}},
      {-3, 7, 1, {4, 5, 6}},
      {-100, 2, 1, {0, 1}},
      {5, 100, 1, {5, 6}},
      {4, 2, 1, {}},
      {0, -1, 2, {0, 2, 4}},
      {-2, -1, 1, {5}},
      {7, 9, 1, {}},
      {6, 7, 4, {6}},
  };
  for (const auto& k : cases) {
    INFO("start " << k.start << " end " << k.end << " step " << k.step);
    Tensor s = slice(x, 1, k.start, k.end, k.step);
    const auto n = static_cast<std::int64_t>(k.expect.size());
    REQUIRE(s.shape() == Shape{3, n});
    std::vector<double> expect;
    for (int row = 0; row < 3; ++row)
      for (double v : k.expect) expect.push_back(row * 7 + v);
    CHECK(s.to_vector<double>() == expect);
  }
  // Along dim 0, negative dim.
  require_close(slice(x, -2, 1, 3), naive_map(x, {2, 7}, [](const Index& c, Index& f) {
                  f = {c[0] + 1, c[1]};
                  return true;
                }));
  require_close(narrow(x, 1, 2, 3), slice(x, 1, 2, 5));
  require_close(narrow(x, 1, -3, 2), slice(x, 1, 4, 6));
  CHECK(narrow(x, 1, 2, 3).storage() == x.storage());
}

TEST_CASE("expand broadcasts with -1 and leading dims", "[cpu][shape]") {
  Tensor x = iota({3, 1});
  Tensor e = expand(x, {2, -1, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.storage() == x.storage());
  require_close(e, naive_map(x, {2, 3, 4}, [](const Index& c, Index& f) {
                  f = {c[1], 0};
                  return true;
                }));
}

TEST_CASE("contiguous copies only when needed; flip reverses several dims", "[cpu][shape]") {
  Tensor x = iota({2, 3, 4});
  CHECK(contiguous(x).impl() == x.impl());
  Tensor t = transpose(x, 1, 2);
  Tensor c = contiguous(t);
  CHECK(c.is_contiguous());
  require_close(c, t);
  require_close(flip(x, {0, -1}), naive_map(x, {2, 3, 4}, [](const Index& i, Index& f) {
                  f = {1 - i[0], i[1], 3 - i[2]};
                  return true;
                }));
  require_close(flip(x, {}), x);
  // flip of a non-contiguous view, then made contiguous.
  require_close(contiguous(flip(t, {1})), naive_map(x, {2, 4, 3}, [](const Index& i, Index& f) {
                  f = {i[0], i[2], 3 - i[1]};
                  return true;
                }));
}

// ---------------------------------------------------------------- joins and splits: values

TEST_CASE("cat and stack place each input at its offset", "[cpu][shape]") {
  Tensor a = iota({2, 3});
  Tensor b = add(iota({2, 1}), 100.0);
  Tensor c = add(iota({2, 2}), 200.0);
  Tensor ab = cat({a, b, c}, 1);  // (2, 6)
  CHECK(ab.to_vector<double>() ==
        std::vector<double>{0, 1, 2, 100, 200, 201, 3, 4, 5, 101, 202, 203});
  Tensor rows = cat({a, transpose(iota({3, 1}), 0, 1)}, 0);  // (3, 3), non-contiguous input
  CHECK(rows.to_vector<double>() == std::vector<double>{0, 1, 2, 3, 4, 5, 0, 1, 2});
  // Empty pieces and integer dtypes pass through.
  Tensor e = Tensor::empty({2, 0}, DType::Float64);
  CHECK(cat({e, a, e}, 1).to_vector<double>() == a.to_vector<double>());
  Tensor i = cat({Tensor::arange(2), Tensor::arange(3)}, 0);
  CHECK(i.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 0, 1, 2});
  // stack(xs, d)[.., k, ..] = xs[k].
  Tensor s = stack({a, add(a, 10.0)}, -1);  // (2, 3, 2)
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(s.to_vector<double>() == std::vector<double>{0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15});
  CHECK(stack({a, a}, 0).shape() == Shape{2, 2, 3});
}

TEST_CASE("split and chunk return views of consecutive pieces", "[cpu][shape]") {
  Tensor x = iota({2, 7});
  auto sizes_of = [](const std::vector<Tensor>& ps) {
    Shape s;
    for (const Tensor& p : ps) s.push_back(p.shape()[1]);
    return s;
  };
  const auto s3 = split(x, 3, 1);
  CHECK(sizes_of(s3) == Shape{3, 3, 1});
  CHECK(s3[2].to_vector<double>() == std::vector<double>{6, 13});
  CHECK(s3[1].storage() == x.storage());
  const auto sw = split(x, Shape{2, 0, 5}, -1);
  CHECK(sizes_of(sw) == Shape{2, 0, 5});
  CHECK(sw[2].to_vector<double>() == std::vector<double>{2, 3, 4, 5, 6, 9, 10, 11, 12, 13});
  CHECK(sizes_of(chunk(x, 3, 1)) == Shape{3, 3, 1});
  CHECK(sizes_of(chunk(x, 4, 1)) == Shape{2, 2, 2, 1});
  CHECK(sizes_of(chunk(x, 6, 1)) == Shape{2, 2, 2, 1});  // torch: fewer pieces than asked
  CHECK(sizes_of(chunk(x, 7, 1)) == Shape{1, 1, 1, 1, 1, 1, 1});
  CHECK(chunk(x, 2, 0)[1].to_vector<double>() == std::vector<double>{7, 8, 9, 10, 11, 12, 13});
  // The pieces of a split, joined again, are the input.
  require_close(cat(split(x, 2, 1), 1), x);
}

TEST_CASE("split records one tape entry for all of its pieces", "[cpu][shape]") {
  clear_tape();
  Tensor x = random_tensor({2, 6}, 1);
  const auto pieces = chunk(x, 3, 1);
  CHECK(tape_size() == 1);
  // Only one piece feeds the loss: the others' gradients are zero.
  backward(sum(mul(pieces[1], 3.0)));
  std::vector<double> expect = {0, 0, 3, 3, 0, 0, 0, 0, 3, 3, 0, 0};
  CHECK(x.grad().to_vector<double>() == expect);
  // Views of inputs that need no grad record nothing.
  Tensor y = iota({4, 4});
  reshape(transpose(slice(y, 0, 1, 3), 0, 1), {-1});
  split(y, 2, 0);
  CHECK(tape_size() == 0);
}

// ---------------------------------------------------------------- copies: values

TEST_CASE("pad matches a naive F.pad loop, cropping with negative pads", "[cpu][shape]") {
  Tensor x = iota({2, 3, 4});
  const std::vector<std::vector<std::int64_t>> pad_sets = {
      {1, 2},         {0, 0, 2, 1}, {1, 1, 1, 1, 1, 1},  {-1, 2},
      {2, -3, -1, 0}, {-2, -2},     {0, 0, 0, 0, -1, 1},
  };
  for (const auto& pads : pad_sets) {
    INFO("pads " << shape_str(pads));
    Shape lo = {0, 0, 0}, out_shape = x.shape();
    for (std::size_t k = 0; k < pads.size() / 2; ++k) {
      const std::size_t d = 2 - k;
      lo[d] = pads[2 * k];
      out_shape[d] += pads[2 * k] + pads[2 * k + 1];
    }
    const Tensor expect = naive_map(
        x, out_shape,
        [&](const Index& c, Index& f) {
          f = c;
          for (std::size_t d = 0; d < 3; ++d) {
            f[d] = c[d] - lo[d];
            if (f[d] < 0 || f[d] >= x.shape()[d]) return false;
          }
          return true;
        },
        -7.5);
    require_close(pad(x, pads, -7.5), expect);
    // Non-contiguous input: the same values.
    require_close(pad(transpose(transpose(x, 0, 2).contiguous(), 0, 2), pads, -7.5), expect);
  }
  // A pad larger than the crop on the other side: nothing of x survives.
  CHECK(pad(iota({3}), {-5, 4}).to_vector<double>() == std::vector<double>{0, 0});
}

TEST_CASE("index_select and gather match naive loops", "[cpu][shape]") {
  Tensor x = iota({3, 4, 5});
  for (DType it : {DType::Int32, DType::Int64}) {
    Tensor index = Tensor::from_vector<std::int64_t>({3, 0, 3, 1}, {4}, it);
    require_close(index_select(x, 1, index), naive_map(x, {3, 4, 5}, [](const Index& c, Index& f) {
                    const std::int64_t ix[] = {3, 0, 3, 1};
                    f = {c[0], ix[c[1]], c[2]};
                    return true;
                  }));
    require_close(index_select(x, -1, index), naive_map(x, {3, 4, 4}, [](const Index& c, Index& f) {
                    const std::int64_t ix[] = {3, 0, 3, 1};
                    f = {c[0], c[1], ix[c[2]]};
                    return true;
                  }));
    // Non-contiguous x.
    Tensor xt = transpose(x, 0, 2);  // (5, 4, 3)
    require_close(index_select(xt, 0, index), index_select(xt.contiguous(), 0, index));
  }
  // gather along dim 1 with an index smaller than x in the other dims.
  std::vector<std::int64_t> iv;
  for (int k = 0; k < 2 * 6 * 3; ++k) iv.push_back((k * 7 + 1) % 4);
  const Shape ishape = {2, 6, 3};
  for (DType it : {DType::Int32, DType::Int64}) {
    Tensor index = Tensor::from_vector<std::int64_t>(iv, ishape, it);
    const Tensor expect = naive_map(x, ishape, [&](const Index& c, Index& f) {
      f = {c[0], iv[ravel(c, ishape)], c[2]};
      return true;
    });
    require_close(gather(x, 1, index), expect);
    require_close(gather(contiguous(transpose(transpose(x, 0, 1), 0, 1)), -2, index), expect);
  }
  // gather along the last dim.
  Tensor index = Tensor::from_vector<std::int64_t>({4, 0, 0, 2, 1, 1}, {1, 2, 3});
  CHECK(gather(x, 2, index).to_vector<double>() == std::vector<double>{4, 0, 0, 7, 6, 6});
}

TEST_CASE("embedding picks rows for indices of any shape", "[cpu][shape]") {
  Tensor w = iota({5, 3});
  for (DType it : {DType::Int32, DType::Int64}) {
    Tensor idx = Tensor::from_vector<std::int64_t>({4, 0, 2, 2}, {2, 2}, it);
    Tensor e = embedding(idx, w);
    CHECK(e.shape() == Shape{2, 2, 3});
    CHECK(e.to_vector<double>() == std::vector<double>{12, 13, 14, 0, 1, 2, 6, 7, 8, 6, 7, 8});
  }
  // A 0-d index gives one row; a non-contiguous weight gives the same rows.
  CHECK(embedding(Tensor::scalar(3, DType::Int64), w).to_vector<double>() ==
        std::vector<double>{9, 10, 11});
  Tensor wt = transpose(iota({3, 5}), 0, 1);  // (5, 3), strided
  Tensor idx = Tensor::from_vector<std::int64_t>({1, 4}, {2});
  require_close(embedding(idx, wt), index_select(wt.contiguous(), 0, idx));
}

// ---------------------------------------------------------------- scatter-add gradients

TEST_CASE("scatter-add backwards accumulate repeated indices", "[cpu][shape]") {
  // index_select: d/dx sum(index_select(x, 0, [2, 0, 2, 2])) counts each row's uses.
  Tensor x = random_tensor({3, 2}, 1);
  backward(sum(index_select(x, 0, Tensor::from_vector<std::int64_t>({2, 0, 2, 2}, {4}))));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 1, 0, 0, 3, 3});
  // gather: the same count per (row, column) of x.
  Tensor y = random_tensor({2, 3}, 2);
  backward(sum(gather(y, 1, Tensor::from_vector<std::int64_t>({0, 0, 2, 1, 1, 1}, {2, 3}))));
  CHECK(y.grad().to_vector<double>() == std::vector<double>{2, 0, 1, 0, 3, 0});
  // embedding: repeated rows accumulate; padding_idx gets nothing even when used.
  Tensor w = random_tensor({4, 2}, 3);
  Tensor idx = Tensor::from_vector<std::int64_t>({1, 3, 1, 0, 1, 3}, {2, 3});
  backward(sum(embedding(idx, w, 3)));
  CHECK(w.grad().to_vector<double>() == std::vector<double>{1, 1, 3, 3, 0, 0, 0, 0});
  // The padding row still reads its values in the forward.
  require_close(embedding(Tensor::scalar(3, DType::Int64), w, 3), values(w).select(0, 3));
}

TEST_CASE("parallel scatter-adds equal a sequential loop bit for bit", "[cpu][shape]") {
  // Large enough for the OpenMP paths; float32 so that summation order shows.
  const std::int64_t n = 4096, v = 37, d = 24;
  std::vector<std::int64_t> iv;
  for (std::int64_t k = 0; k < n; ++k) iv.push_back((k * k + 3 * k) % v);
  Tensor idx = Tensor::from_vector<std::int64_t>(iv, {n});
  Tensor grad = random_tensor({n, d}, 4, -1, 1, DType::Float32, false);
  const auto gv = grad.to_vector<float>();
  std::vector<float> expect(static_cast<std::size_t>(v * d), 0.f);
  for (std::int64_t k = 0; k < n; ++k) {
    if (iv[k] == 5) continue;  // padding_idx
    for (std::int64_t i = 0; i < d; ++i) expect[iv[k] * d + i] += gv[k * d + i];
  }
  CHECK(kernels::embedding_backward(grad, idx, v, 5).to_vector<float>() == expect);
  // index_select along dim 0 is the same sum without a padding row.
  for (std::int64_t i = 0; i < d; ++i) {
    for (std::int64_t k = 0; k < n; ++k) {
      if (iv[k] == 5) expect[5 * d + i] += gv[k * d + i];
    }
  }
  CHECK(kernels::index_select_backward(grad, {v, d}, 0, idx).to_vector<float>() == expect);
  // Without a padding row, embedding's gradient is index_select's.
  CHECK(kernels::embedding_backward(grad, idx, v, -1).to_vector<float>() == expect);
  // gather along the last dim: many short rows (one task per outer row).
  const std::int64_t rows = 2048, cols = 16, picks = 32;
  std::vector<std::int64_t> gi;
  for (std::int64_t k = 0; k < rows * picks; ++k) gi.push_back((k * 11 + k / 7) % cols);
  Tensor gidx = Tensor::from_vector<std::int64_t>(gi, {rows, picks});
  Tensor ggrad = random_tensor({rows, picks}, 5, -1, 1, DType::Float32, false);
  const auto ggv = ggrad.to_vector<float>();
  std::vector<float> gexpect(static_cast<std::size_t>(rows * cols), 0.f);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < picks; ++j)
      gexpect[r * cols + gi[r * picks + j]] += ggv[r * picks + j];
  CHECK(kernels::gather_backward(ggrad, {rows, cols}, 1, gidx).to_vector<float>() == gexpect);
}

// ---------------------------------------------------------------- gradchecks

TEST_CASE("gradcheck: views", "[cpu][shape][grad]") {
  Tensor x = random_tensor({2, 3, 4}, 11);
  // Every view is checked on x and on a non-contiguous view of x.
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> inputs = {
      {"contiguous", [](const Tensor& t) { return t; }},
      {"transposed", [](const Tensor& t) { return transpose(t, 0, 2); }},  // (4, 3, 2)
      {"flipped", [](const Tensor& t) { return flip(t, {1}); }},
  };
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
      {"reshape",
       [](const Tensor& t) {
         return reshape(t, {-1, 6});
       }},
      {"reshape to 1-D", [](const Tensor& t) { return reshape(t, {24}); }},
      {"flatten", [](const Tensor& t) { return flatten(t, 1); }},
      {"unsqueeze", [](const Tensor& t) { return unsqueeze(t, -2); }},
      {"squeeze", [](const Tensor& t) { return squeeze(unsqueeze(t, 1), 1); }},
      {"transpose", [](const Tensor& t) { return transpose(t, 0, 1); }},
      {"permute",
       [](const Tensor& t) {
         return permute(t, {2, 0, 1});
       }},
      {"slice step 1", [](const Tensor& t) { return slice(t, 1, 1, 3); }},
      {"slice step 2", [](const Tensor& t) { return slice(t, -1, 0, 100, 2); }},
      {"slice negative", [](const Tensor& t) { return slice(t, 0, -1, 2); }},
      {"narrow", [](const Tensor& t) { return narrow(t, 2, 1, 1); }},
      {"expand",
       [](const Tensor& t) {
         return expand(unsqueeze(t, 1), {-1, 3, -1, -1});
       }},
      {"expand size 1",
       [](const Tensor& t) {
         return expand(slice(t, 1, 0, 1), {2, -1, 5, -1});
       }},
      {"contiguous", [](const Tensor& t) { return contiguous(t); }},
      {"flip",
       [](const Tensor& t) {
         return flip(t, {0, 2});
       }},
  };
  for (const auto& [in_name, make_input] : inputs) {
    for (const auto& [op_name, op] : ops) {
      INFO(op_name << " of a " << in_name << " input");
      require_gradcheck([&](const std::vector<Tensor>& t) { return op(make_input(t[0])); }, {x});
    }
  }
}

TEST_CASE("gradcheck: cat, stack, split and chunk", "[cpu][shape][grad]") {
  Tensor a = random_tensor({2, 3}, 12);
  Tensor b = random_tensor({2, 2}, 13);
  Tensor c = random_tensor({3, 2}, 14);  // used transposed: (2, 3), non-contiguous
  require_gradcheck(
      [](const std::vector<Tensor>& t) {
        return cat({t[0], t[1], transpose(t[2], 0, 1)}, 1);
      },
      {a, b, c});
  require_gradcheck(
      [](const std::vector<Tensor>& t) {
        return cat({t[0], transpose(t[1], 0, 1)}, 0);
      },
      {a, c});
  // An input that needs no gradient in the middle.
  Tensor fixed = random_tensor({2, 2}, 15, -1, 1, DType::Float64, false);
  require_gradcheck(
      [&](const std::vector<Tensor>& t) {
        return cat({t[0], fixed, t[1]}, -1);
      },
      {a, b});
  for (std::int64_t dim : {0, 1, 2, -1}) {
    INFO("stack dim " << dim);
    require_gradcheck(
        [&](const std::vector<Tensor>& t) {
          return stack({t[0], transpose(t[1], 0, 1)}, dim);
        },
        {a, c});
  }
  Tensor x = random_tensor({3, 7}, 16);
  // Pieces used unevenly (one unused, one twice), joined into one output.
  require_gradcheck(
      [](const std::vector<Tensor>& t) {
        const auto p = split(t[0], 3, 1);  // sizes 3, 3, 1
        return cat({mul(p[2], p[2]), exp(p[0])}, 1);
      },
      {x});
  require_gradcheck(
      [](const std::vector<Tensor>& t) {
        const auto p = split(transpose(t[0], 0, 1), Shape{4, 1, 2}, 0);  // non-contiguous
        return cat({p[2], mul(p[0], 2.0)}, 0);
      },
      {x});
  require_gradcheck(
      [](const std::vector<Tensor>& t) {
        const auto p = chunk(t[0], 2, -1);  // sizes 4, 3
        return mul(narrow(p[0], 1, 0, 3), p[1]);
      },
      {x});
}

TEST_CASE("gradcheck: pad", "[cpu][shape][grad]") {
  Tensor x = random_tensor({2, 3, 4}, 17);
  const std::vector<std::vector<std::int64_t>> pad_sets = {
      {1, 2}, {0, 1, 2, 0}, {1, 1, 1, 1, 1, 1}, {-1, 2}, {2, -3, -1, 1}, {-2, -2},
  };
  for (const auto& pads : pad_sets) {
    INFO("pads " << shape_str(pads));
    require_gradcheck([&](const std::vector<Tensor>& t) { return pad(t[0], pads, 0.5); }, {x});
    // Non-contiguous: pad a (3, 2, 4) transposed view.
    require_gradcheck(
        [&](const std::vector<Tensor>& t) { return pad(transpose(t[0], 0, 1), pads); }, {x});
  }
}

TEST_CASE("gradcheck: index_select, gather and embedding", "[cpu][shape][grad]") {
  Tensor x = random_tensor({3, 4, 2}, 18);
  for (DType it : {DType::Int32, DType::Int64}) {
    INFO("index dtype " << dtype_name(it));
    Tensor index = Tensor::from_vector<std::int64_t>({1, 3, 1, 0, 1}, {5}, it);
    require_gradcheck([&](const std::vector<Tensor>& t) { return index_select(t[0], 1, index); },
                      {x});
    require_gradcheck(
        [&](const std::vector<Tensor>& t) { return index_select(transpose(t[0], 0, 1), 0, index); },
        {x});
    Tensor small = Tensor::from_vector<std::int64_t>({2, 0, 2, 1, 1, 1, 0, 2}, {2, 4, 1}, it);
    require_gradcheck([&](const std::vector<Tensor>& t) { return gather(t[0], 0, small); }, {x});
    Tensor last = Tensor::from_vector<std::int64_t>({1, 1, 0, 1, 0, 0}, {3, 1, 2}, it);
    std::vector<std::int64_t> wv;
    for (int k = 0; k < 18; ++k) wv.push_back((k * 5 + 2) % 4);
    Tensor wide = Tensor::from_vector<std::int64_t>(wv, {2, 3, 3}, it);  // x^T is (2, 4, 3)
    require_gradcheck([&](const std::vector<Tensor>& t) { return gather(t[0], -1, last); }, {x});
    require_gradcheck(
        [&](const std::vector<Tensor>& t) { return gather(transpose(t[0], 0, 2), 1, wide); }, {x});
    Tensor w = random_tensor({5, 3}, 19);
    Tensor idx = Tensor::from_vector<std::int64_t>({4, 0, 2, 2, 4, 1}, {3, 2}, it);
    // Row 3 is never picked: as padding_idx it changes nothing. (A padding row
    // that is picked is still read by the forward, so finite differences see
    // it; its zero gradient is checked by value in the scatter-add test.)
    for (std::int64_t padding : {-1, 3}) {
      INFO("padding_idx " << padding);
      require_gradcheck([&](const std::vector<Tensor>& t) { return embedding(idx, t[0], padding); },
                        {w});
    }
    require_gradcheck(
        [&](const std::vector<Tensor>& t) { return embedding(idx, transpose(t[0], 0, 1)); },
        {random_tensor({3, 5}, 20)});
  }
}

// ---------------------------------------------------------------- errors

TEST_CASE("shape errors name the op, the dims and the shapes", "[cpu][shape]") {
  Tensor a = Tensor::zeros({2, 3});
  Tensor b = Tensor::zeros({3, 4});
  CHECK(error_message([&] {
          cat({a, b}, 1);
        }) ==
        "[cat] shapes differ outside dim 1: input 0 (2, 3) float32 cpu, input 1 (3, 4) float32 "
        "cpu");
  CHECK(error_message([&] {
          cat({a, Tensor::zeros({2})}, 0);
        }) ==
        "[cat] shapes differ outside dim 0: input 0 (2, 3) float32 cpu, input 1 (2,) float32 cpu");
  CHECK(starts_with(error_message([&] {
                      cat({a, Tensor::zeros({2, 3}, DType::Float64)}, 0);
                    }),
                    "[cat] dtypes or devices differ: input 0 (2, 3) float32 cpu, input 1 (2, 3) "
                    "float64 cpu"));
  CHECK(error_message([&] { cat({}, 0); }) == "[cat] expected at least one tensor");
  CHECK(starts_with(error_message([&] { cat({a, a}, 2); }), "[cat] dim 2 out of range"));
  CHECK(error_message([&] {
          stack({a, b}, 0);
        }) ==
        "[stack] expected tensors of one shape: input 0 (2, 3) float32 cpu, input 1 (3, 4) "
        "float32 cpu");
  // Bad indices name the index and the extent.
  Tensor x = Tensor::zeros({3, 4});
  CHECK(error_message([&] {
          index_select(x, 1, Tensor::from_vector<std::int64_t>({0, 4}, {2}));
        }) == "[index_select] index 4 is out of range for dim 1 of size 4 (input (3, 4))");
  CHECK(error_message([&] {
          index_select(x, 0, Tensor::from_vector<std::int64_t>({-1}, {1}, DType::Int32));
        }) == "[index_select] index -1 is out of range for dim 0 of size 3 (input (3, 4))");
  CHECK(starts_with(error_message([&] { index_select(x, 0, Tensor::zeros({1})); }),
                    "[index_select] expected an int32 or int64 index tensor, got float32"));
  CHECK(error_message([&] {
          index_select(x, 0, Tensor::zeros({1, 1}, DType::Int64));
        }) == "[index_select] index must be 1-D, got (1, 1) int64 cpu");
  CHECK(error_message([&] {
          gather(x, 0, Tensor::from_vector<std::int64_t>({3}, {1, 1}));
        }) == "[gather] index 3 is out of range for dim 0 of size 3 (input (3, 4))");
  CHECK(error_message([&] { gather(x, 0, Tensor::zeros({2}, DType::Int64)); }) ==
        "[gather] index (2,) int64 cpu must have the rank of x (3, 4) float32 cpu");
  CHECK(error_message([&] {
          gather(x, 0, Tensor::zeros({1, 5}, DType::Int64));
        }) ==
        "[gather] index (1, 5) int64 cpu is larger than x (3, 4) float32 cpu in dim 1 (only dim "
        "0 may differ)");
  Tensor w = Tensor::zeros({10, 4});
  CHECK(error_message([&] {
          embedding(Tensor::from_vector<std::int64_t>({1, 12, 3}, {3}), w);
        }) ==
        "[embedding] index 12 is out of range for an embedding table of 10 rows (weight "
        "(10, 4) float32 cpu)");
  CHECK(error_message([&] { embedding(Tensor::zeros({2}, DType::Int64), w, 10); }) ==
        "[embedding] padding_idx 10 is out of range for an embedding table of 10 rows (weight "
        "(10, 4) float32 cpu)");
  CHECK(error_message([&] { embedding(Tensor::zeros({2}, DType::Int64), Tensor::zeros({10})); }) ==
        "[embedding] weight must be (num_embeddings, dim), got (10,) float32 cpu");
  // Bad pads.
  CHECK(error_message([&] {
          pad(x, {1, 2, 3});
        }) ==
        "[pad] expected an even number of pads, at most 2 per dim (4 for (3, 4) float32 cpu), "
        "got 3: (1, 2, 3)");
  CHECK(error_message([&] {
          pad(x, {1, 1, 1, 1, 1, 1});
        }) ==
        "[pad] expected an even number of pads, at most 2 per dim (4 for (3, 4) float32 cpu), "
        "got 6: (1, 1, 1, 1, 1, 1)");
  CHECK(error_message([&] {
          pad(x, {-3, -2});
        }) == "[pad] pads (-3, -2) give dim 1 of (3, 4) float32 cpu the negative size -1");
  // Views.
  CHECK(error_message([&] { slice(x, 1, 0, 2, 0); }) == "[slice] step must be positive, got 0");
  CHECK(starts_with(error_message([&] { narrow(x, 1, 3, 2); }),
                    "[narrow] range [3, 5) out of bounds for dim 1 of (3, 4)"));
  CHECK(starts_with(error_message([&] {
                      reshape(x, {5, -1});
                    }),
                    "[reshape] cannot reshape (3, 4)"));
  CHECK(starts_with(error_message([&] { squeeze(x, 0); }),
                    "[squeeze] dim 0 of (3, 4) has size 3, expected 1"));
  CHECK(error_message([&] { flatten(x, 1, 0); }) ==
        "[flatten] start_dim 1 comes after end_dim 0 for (3, 4) float32 cpu");
  CHECK(starts_with(error_message([&] {
                      expand(x, {-1, 3, 4});
                    }),
                    "[expand] -1 is not allowed in the new leading dim 0 of (-1, 3, 4)"));
  CHECK(starts_with(error_message([&] { expand(x, {3, 5}); }), "[expand] cannot expand (3, 4)"));
  CHECK(starts_with(error_message([&] { flip(x, {1, -1}); }), "[flip] dim -1 appears twice"));
  CHECK(error_message([&] {
          split(x, Shape{1, 2}, 1);
        }) == "[split] sizes (1, 2) sum to 3, dim 1 of (3, 4) float32 cpu has size 4");
  CHECK(error_message([&] { split(x, 0, 1); }) ==
        "[split] split_size must be positive, got 0 for dim 1 of (3, 4) float32 cpu");
  CHECK(error_message([&] { chunk(x, 0, 1); }) == "[chunk] chunks must be positive, got 0");
}
