// Normalization ops and dropout: values against naive loops, PyTorch's
// batch-norm running-statistics rule, gradchecks of every option
// combination, determinism, and error messages.
#include <cmath>
#include <functional>
#include <vector>

#include "kernels/common.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

// Two-pass mean and biased variance of v[begin, begin + n) in double.
std::pair<double, double> naive_moments(const std::vector<double>& v, std::size_t begin,
                                        std::size_t n) {
  double mean = 0.0;
  for (std::size_t j = 0; j < n; ++j) mean += v[begin + j];
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (std::size_t j = 0; j < n; ++j) var += (v[begin + j] - mean) * (v[begin + j] - mean);
  return {mean, var / static_cast<double>(n)};
}

// Layer norm over rows of n elements; w and b may be empty (1 and 0).
std::vector<double> naive_layer_norm(const std::vector<double>& x, std::size_t n,
                                     const std::vector<double>& w, const std::vector<double>& b,
                                     double eps) {
  std::vector<double> y(x.size());
  for (std::size_t r = 0; r < x.size() / n; ++r) {
    const auto [mean, var] = naive_moments(x, r * n, n);
    for (std::size_t j = 0; j < n; ++j) {
      double v = (x[r * n + j] - mean) / std::sqrt(var + eps);
      if (!w.empty()) v *= w[j];
      if (!b.empty()) v += b[j];
      y[r * n + j] = v;
    }
  }
  return y;
}

std::vector<double> naive_rms_norm(const std::vector<double>& x, std::size_t n,
                                   const std::vector<double>& w, double eps) {
  std::vector<double> y(x.size());
  for (std::size_t r = 0; r < x.size() / n; ++r) {
    double ms = 0.0;
    for (std::size_t j = 0; j < n; ++j) ms += x[r * n + j] * x[r * n + j];
    const double rstd = 1.0 / std::sqrt(ms / static_cast<double>(n) + eps);
    for (std::size_t j = 0; j < n; ++j) y[r * n + j] = x[r * n + j] * rstd * (w.empty() ? 1 : w[j]);
  }
  return y;
}

// Per-channel values of x (N, C, L) gathered into one vector per channel.
std::vector<std::vector<double>> by_channel(const Tensor& x) {
  const auto v = x.contiguous().to_vector<double>();
  const std::int64_t N = x.shape()[0], C = x.shape()[1], L = x.numel() / (N * C);
  std::vector<std::vector<double>> out(C);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t l = 0; l < L; ++l) out[c].push_back(v[(n * C + c) * L + l]);
  return out;
}

// y of batch norm given per-channel mean and var (what either mode normalizes with).
std::vector<double> naive_batch_norm(const Tensor& x, const std::vector<double>& mean,
                                     const std::vector<double>& var, const std::vector<double>& w,
                                     const std::vector<double>& b, double eps) {
  const auto v = x.contiguous().to_vector<double>();
  const std::int64_t N = x.shape()[0], C = x.shape()[1], L = x.numel() / (N * C);
  std::vector<double> y(v.size());
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t l = 0; l < L; ++l) {
        const std::size_t i = static_cast<std::size_t>((n * C + c) * L + l);
        y[i] = (v[i] - mean[c]) / std::sqrt(var[c] + eps) * w[c] + b[c];
      }
  return y;
}

Tensor from(const std::vector<double>& v, const Shape& shape, DType dtype = DType::Float64) {
  return Tensor::from_vector<double>(v, shape, dtype);
}

}  // namespace

// ================================================================ layer_norm

TEST_CASE("layer_norm matches a naive loop", "[cpu][norm]") {
  const double eps = 1e-5;
  for (DType dt : {DType::Float64, DType::Float32}) {
    const double tol = dt == DType::Float64 ? 1e-12 : 2e-5;
    INFO("dtype " << dtype_name(dt));
    Tensor x = random_tensor({3, 4, 5}, 1, -2, 3, dt, false);
    Tensor w = random_tensor({4, 5}, 2, 0.5, 1.5, dt, false);
    Tensor b = random_tensor({4, 5}, 3, -1, 1, dt, false);
    const auto xv = x.to_vector<double>();
    // normalized over the last dim, no affine
    require_close(layer_norm(x, {5}), from(naive_layer_norm(xv, 5, {}, {}, eps), {3, 4, 5}), tol,
                  tol);
    // over the last two dims, with weight and bias
    const auto wv = w.to_vector<double>(), bv = b.to_vector<double>();
    require_close(layer_norm(x, {4, 5}, w, b),
                  from(naive_layer_norm(xv, 20, wv, bv, eps), {3, 4, 5}), tol, tol);
    // over every dim
    require_close(layer_norm(x, {3, 4, 5}), from(naive_layer_norm(xv, 60, {}, {}, eps), {3, 4, 5}),
                  tol, tol);
  }
  // A non-contiguous input gives what its contiguous copy gives.
  Tensor x = random_tensor({6, 4}, 4, -1, 1, DType::Float64, false);
  require_close(layer_norm(x.transpose(0, 1), {6}), layer_norm(x.transpose(0, 1).contiguous(), {6}),
                0, 0);
  // eps enters inside the square root: a constant row normalizes to 0, and
  // a row (-1, 1) has var 1 and gives -1/sqrt(1 + eps), 1/sqrt(1 + eps).
  Tensor c = Tensor::from_vector<double>({7, 7, -1, 1, 3, 3}, {3, 2});
  const double s = 1.0 / std::sqrt(1.0 + 0.25);
  require_close(layer_norm(c, {2}, Tensor(), Tensor(), 0.25), from({0, 0, -s, s, 0, 0}, {3, 2}),
                1e-15, 0);
}

TEST_CASE("layer_norm in float32 stays accurate for rows with a large mean", "[cpu][norm]") {
  // Rows 1e4 + U(-1, 1): a naive sum of squares in float would lose every digit.
  Tensor x = random_tensor({4, 512}, 5, -1, 1, DType::Float64, false);
  x = add(x, 1e4);
  const Tensor x32 = x.to(DType::Float32);
  const auto want = naive_layer_norm(x32.to_vector<double>(), 512, {}, {}, 1e-5);
  // y = (x - mean) rstd has absolute error ~ eps_f32 |x| / std = 1e-7 * 1e4 / 0.58
  require_close(layer_norm(x32, {512}), from(want, {4, 512}, DType::Float32), 5e-3, 0);
}

TEST_CASE("gradcheck: layer_norm", "[cpu][norm][grad]") {
  const std::vector<Shape> normalized = {{5}, {4, 5}, {3, 4, 5}};
  Tensor x = random_tensor({3, 4, 5}, 11);
  for (const Shape& ns : normalized) {
    Tensor w = random_tensor(ns, 12, 0.5, 1.5);
    Tensor b = random_tensor(ns, 13);
    for (int affine = 0; affine < 4; ++affine) {
      const bool use_w = affine & 1, use_b = affine & 2;
      INFO("normalized_shape " << shape_str(ns) << " weight " << use_w << " bias " << use_b);
      // Inputs: x, then the parameters in use.
      std::vector<Tensor> in = {x};
      if (use_w) in.push_back(w);
      if (use_b) in.push_back(b);
      require_gradcheck(
          [&](const std::vector<Tensor>& t) {
            return layer_norm(t[0], ns, use_w ? t[1] : Tensor(), use_b ? t.back() : Tensor());
          },
          in);
    }
  }
  // A weight that needs no gradient.
  Tensor xt = random_tensor({3, 6}, 14);
  Tensor w = random_tensor({6}, 15, 0.5, 1.5, DType::Float64, false);
  Tensor b = random_tensor({6}, 16);
  require_gradcheck([&](const std::vector<Tensor>& t) { return layer_norm(t[0], {6}, w, t[1]); },
                    {xt, b});
  // Only the parameters require grad.
  Tensor xc = random_tensor({3, 6}, 17, -1, 1, DType::Float64, false);
  Tensor w2 = random_tensor({6}, 18, 0.5, 1.5);
  require_gradcheck([&](const std::vector<Tensor>& t) { return layer_norm(xc, {6}, t[0], t[1]); },
                    {w2, b});
}

TEST_CASE("layer_norm float32 backward matches float64", "[cpu][norm]") {
  // Large enough to take the threaded path, with uneven rows per chunk.
  Tensor x = random_tensor({301, 129}, 21, -2, 2);
  Tensor w = random_tensor({129}, 22, 0.5, 1.5);
  Tensor b = random_tensor({129}, 23);
  Tensor g = random_tensor({301, 129}, 24, -1, 1, DType::Float64, false);
  backward(layer_norm(x, {129}, w, b), g);
  Tensor x32 = x.detach().to(DType::Float32).set_requires_grad(true);
  Tensor w32 = w.detach().to(DType::Float32).set_requires_grad(true);
  Tensor b32 = b.detach().to(DType::Float32).set_requires_grad(true);
  backward(layer_norm(x32, {129}, w32, b32), g.to(DType::Float32));
  require_close(x32.grad(), x.grad().to(DType::Float32), 1e-5, 1e-4);
  require_close(w32.grad(), w.grad().to(DType::Float32), 1e-4, 1e-4);
  require_close(b32.grad(), b.grad().to(DType::Float32), 1e-4, 1e-4);
}

TEST_CASE("norm gradients do not depend on the thread count", "[cpu][norm]") {
  // float64, so that a different summation order would show in the last bits.
  Tensor x = random_tensor({500, 300}, 31, -2, 2, DType::Float64);
  Tensor w = random_tensor({300}, 32, 0.5, 1.5, DType::Float64);
  Tensor b = random_tensor({300}, 33, -1, 1, DType::Float64);
  Tensor g = random_tensor({500, 300}, 34, -1, 1, DType::Float64, false);
  const int threads = kernels::num_threads();
  std::vector<std::vector<double>> runs;
  for (int n : {1, 3}) {
    kernels::set_num_threads(n);
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
    Tensor y = add(layer_norm(x, {300}, w, b), rms_norm(x, {300}, w));
    backward(add(y, batch_norm(x, Tensor(), Tensor(), w, b, true)), g);
    std::vector<double> all = x.grad().to_vector<double>();
    for (const Tensor& t : {w.grad(), b.grad()}) {
      const auto v = t.to_vector<double>();
      all.insert(all.end(), v.begin(), v.end());
    }
    runs.push_back(all);
  }
  kernels::set_num_threads(threads);
  REQUIRE(runs[0].size() == runs[1].size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < runs[0].size(); ++i) differ += runs[0][i] != runs[1][i];
  CHECK(differ == 0);  // bitwise equal
}

// ================================================================ rms_norm

TEST_CASE("rms_norm matches a naive loop", "[cpu][norm]") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    const double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    INFO("dtype " << dtype_name(dt));
    Tensor x = random_tensor({3, 4, 5}, 41, -2, 3, dt, false);
    Tensor w = random_tensor({4, 5}, 42, 0.5, 1.5, dt, false);
    const auto xv = x.to_vector<double>();
    require_close(rms_norm(x, {5}), from(naive_rms_norm(xv, 5, {}, 1e-6), {3, 4, 5}), tol, tol);
    require_close(rms_norm(x, {4, 5}, w, 1e-3),
                  from(naive_rms_norm(xv, 20, w.to_vector<double>(), 1e-3), {3, 4, 5}), tol, tol);
  }
  // The default eps is 1e-6: a row of zeros stays 0, the row (3, 4) has
  // mean square 12.5, so y = (3, 4) / sqrt(12.5 + 1e-6).
  Tensor x = Tensor::from_vector<double>({0, 0, 3, 4}, {2, 2});
  const double r = 1.0 / std::sqrt(12.5 + 1e-6);
  require_close(rms_norm(x, {2}), from({0, 0, 3 * r, 4 * r}, {2, 2}), 1e-15, 0);
}

TEST_CASE("gradcheck: rms_norm", "[cpu][norm][grad]") {
  Tensor x = random_tensor({3, 4, 5}, 51);
  for (const Shape& ns : std::vector<Shape>{{5}, {4, 5}, {3, 4, 5}}) {
    Tensor w = random_tensor(ns, 52, 0.5, 1.5);
    INFO("normalized_shape " << shape_str(ns));
    require_gradcheck([&](const std::vector<Tensor>& t) { return rms_norm(t[0], ns); }, {x});
    require_gradcheck([&](const std::vector<Tensor>& t) { return rms_norm(t[0], ns, t[1]); },
                      {x, w});
  }
  Tensor xt = random_tensor({3, 6}, 53);  // another eps
  Tensor w = random_tensor({6}, 54, 0.5, 1.5);
  require_gradcheck([&](const std::vector<Tensor>& t) { return rms_norm(t[0], {6}, t[1], 1e-3); },
                    {xt, w});
}

// ================================================================ batch_norm

TEST_CASE("batch_norm training uses batch statistics and updates running stats like PyTorch",
          "[cpu][norm]") {
  const double eps = 1e-5, momentum = 0.1;
  for (const Shape& shape : std::vector<Shape>{{4, 3, 5}, {6, 3}, {2, 3, 2, 3}}) {
    INFO("x " << shape_str(shape));
    Tensor x = random_tensor(shape, 61, -2, 3, DType::Float64, false);
    Tensor w = random_tensor({3}, 62, 0.5, 1.5, DType::Float64, false);
    Tensor b = random_tensor({3}, 63, -1, 1, DType::Float64, false);
    const std::vector<double> rm0 = {0.1, -0.2, 0.3}, rv0 = {1.0, 2.0, 0.5};
    Tensor rm = from(rm0, {3}), rv = from(rv0, {3});
    Tensor y = batch_norm(x, rm, rv, w, b, true, momentum, eps);
    // By hand: batch mean, biased var for y, unbiased var for the running var.
    std::vector<double> mean, var, want_rm, want_rv;
    const auto ch = by_channel(x);
    for (std::size_t c = 0; c < 3; ++c) {
      const auto [m, v] = naive_moments(ch[c], 0, ch[c].size());
      const double n = static_cast<double>(ch[c].size());
      mean.push_back(m);
      var.push_back(v);
      want_rm.push_back((1 - momentum) * rm0[c] + momentum * m);
      want_rv.push_back((1 - momentum) * rv0[c] + momentum * v * n / (n - 1));
    }
    require_close(
        y,
        from(naive_batch_norm(x, mean, var, w.to_vector<double>(), b.to_vector<double>(), eps),
             shape),
        1e-12, 1e-12);
    require_close(rm, from(want_rm, {3}), 1e-13, 1e-13);
    require_close(rv, from(want_rv, {3}), 1e-13, 1e-13);
    const Tensor rm_trained = rm.clone(), rv_trained = rv.clone();
    // Eval mode normalizes with the (updated) running statistics and leaves them alone.
    Tensor ye = batch_norm(x, rm, rv, w, b, false, momentum, eps);
    require_close(ye,
                  from(naive_batch_norm(x, want_rm, want_rv, w.to_vector<double>(),
                                        b.to_vector<double>(), eps),
                       shape),
                  1e-12, 1e-12);
    require_close(rm, rm_trained, 0, 0);
    require_close(rv, rv_trained, 0, 0);
  }
  // Without running statistics (no tracking) training still normalizes; no
  // weight and bias means 1 and 0.
  Tensor x = random_tensor({5, 2}, 64, -1, 1, DType::Float32, false);
  std::vector<double> mean, var;
  for (const auto& c : by_channel(x)) {
    const auto [m, v] = naive_moments(c, 0, c.size());
    mean.push_back(m);
    var.push_back(v);
  }
  require_close(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true),
                from(naive_batch_norm(x, mean, var, {1, 1}, {0, 0}, 1e-5), {5, 2}, DType::Float32),
                1e-5, 1e-5);
}

TEST_CASE("batch_norm running stats are updated without touching the tape", "[cpu][norm]") {
  Tensor x = random_tensor({4, 3}, 65);
  Tensor rm = Tensor::zeros({3}, DType::Float64), rv = Tensor::ones({3}, DType::Float64);
  clear_tape();
  Tensor y = batch_norm(x, rm, rv, Tensor(), Tensor(), true);
  CHECK(tape_size() == 1);  // the batch_norm entry only
  CHECK_FALSE(rm.requires_grad());
  CHECK_FALSE(rv.requires_grad());
  clear_tape();
}

TEST_CASE("gradcheck: batch_norm", "[cpu][norm][grad]") {
  for (const Shape& shape : std::vector<Shape>{{5, 3}, {3, 3, 4}, {2, 3, 2, 2}}) {
    Tensor x = random_tensor(shape, 71, -2, 2);
    Tensor w = random_tensor({3}, 72, 0.5, 1.5);
    Tensor b = random_tensor({3}, 73);
    Tensor rm = random_tensor({3}, 74, -0.5, 0.5, DType::Float64, false);
    Tensor rv = random_tensor({3}, 75, 0.5, 2.0, DType::Float64, false);
    for (bool training : {true, false}) {
      for (int affine = 0; affine < 4; ++affine) {
        const bool use_w = affine & 1, use_b = affine & 2;
        INFO("x " << shape_str(shape) << " training " << training << " weight " << use_w << " bias "
                  << use_b);
        std::vector<Tensor> in = {x};
        if (use_w) in.push_back(w);
        if (use_b) in.push_back(b);
        require_gradcheck(
            [&](const std::vector<Tensor>& t) {
              return batch_norm(t[0], rm, rv, use_w ? t[1] : Tensor(), use_b ? t.back() : Tensor(),
                                training);
            },
            in);
      }
    }
  }
  // Training without running statistics.
  Tensor xp = random_tensor({3, 2, 4}, 76);
  Tensor w = random_tensor({2}, 77, 0.5, 1.5);
  Tensor b = random_tensor({2}, 78);
  require_gradcheck(
      [&](const std::vector<Tensor>& t) {
        return batch_norm(t[0], Tensor(), Tensor(), t[1], t[2], true);
      },
      {xp, w, b});
}

// ================================================================ layouts

TEST_CASE("non-contiguous inputs and gradients give the results of contiguous copies",
          "[cpu][norm]") {
  // Runs op(x, w, b) and backward with gradient g twice: on the given
  // (non-contiguous) tensors and on contiguous copies; outputs and every
  // gradient must agree exactly. (gradcheck clones its inputs contiguous, so
  // this is where strided inputs are covered.)
  auto same_as_contiguous = [](const std::function<Tensor(Tensor, Tensor, Tensor)>& op,
                               const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& g) {
    REQUIRE_FALSE(x.is_contiguous());
    std::vector<Tensor> strided = {x.detach(), w.detach(), b.detach()};
    std::vector<Tensor> packed = {x.detach().contiguous().clone(), w.detach().contiguous().clone(),
                                  b.detach().contiguous().clone()};
    for (auto* set : {&strided, &packed}) {
      for (Tensor& t : *set) t.set_requires_grad(true);
    }
    const Tensor ys = op(strided[0], strided[1], strided[2]);
    backward(ys, g);
    const Tensor yp = op(packed[0], packed[1], packed[2]);
    backward(yp, g.contiguous());
    require_close(ys, yp, 0, 0);
    for (std::size_t k = 0; k < 3; ++k) require_close(strided[k].grad(), packed[k].grad(), 0, 0);
  };
  // layer_norm / rms_norm over a transposed (3, 6) x, a stride-2 weight and bias.
  Tensor x = random_tensor({6, 3}, 101, -1, 1, DType::Float64, false).transpose(0, 1);
  Tensor w = random_tensor({6, 2}, 102, 0.5, 1.5, DType::Float64, false).select(1, 0);
  Tensor b = random_tensor({6, 2}, 103, -1, 1, DType::Float64, false).select(1, 1);
  Tensor g = random_tensor({6, 3}, 104, -1, 1, DType::Float64, false).transpose(0, 1);
  same_as_contiguous([](Tensor x, Tensor w, Tensor b) { return layer_norm(x, {6}, w, b); }, x, w, b,
                     g);
  same_as_contiguous(
      [](Tensor x, Tensor w, Tensor b) { return add(rms_norm(x, {6}, w), mul(b, 0.0)); }, x, w, b,
      g);
  // dropout with the same mask on both runs.
  Generator gen(3);
  same_as_contiguous(
      [&](Tensor x, Tensor w, Tensor b) {
        gen.manual_seed(3);
        return add(dropout(x, 0.5, true, gen), mul(add(w, b), 0.0));
      },
      x, w, b, g);
  // batch_norm over (N, C, L) = (3, 2, 4) permuted from (L, N, C), in both modes.
  Tensor xb = random_tensor({4, 3, 2}, 105, -1, 1, DType::Float64, false).permute({1, 2, 0});
  Tensor wb = random_tensor({2, 2}, 106, 0.5, 1.5, DType::Float64, false).select(0, 1);
  Tensor bb = random_tensor({2, 2}, 107, -1, 1, DType::Float64, false).select(1, 0);
  Tensor gb = random_tensor({4, 3, 2}, 108, -1, 1, DType::Float64, false).permute({1, 2, 0});
  for (bool training : {true, false}) {
    Tensor rm = Tensor::zeros({2}, DType::Float64), rv = Tensor::ones({2}, DType::Float64);
    same_as_contiguous(
        [&](Tensor x, Tensor w, Tensor b) { return batch_norm(x, rm, rv, w, b, training); }, xb, wb,
        bb, gb);
  }
}

// ================================================================ dropout

TEST_CASE("dropout drops a fraction p and scales the rest by 1 / (1 - p)", "[cpu][norm]") {
  const double p = 0.3;
  Tensor x = random_tensor({400, 500}, 81, 1, 2, DType::Float32, false);  // no zeros in x
  Generator gen(7);
  const auto xv = x.to_vector<float>();
  const auto yv = dropout(x, p, true, gen).to_vector<float>();
  std::size_t zeros = 0;
  double worst = 0.0;
  for (std::size_t i = 0; i < yv.size(); ++i) {
    if (yv[i] == 0.0f) {
      ++zeros;
    } else {
      worst = std::max(worst, std::abs(yv[i] - xv[i] / (1 - p)) / (xv[i] / (1 - p)));
    }
  }
  // 200000 draws: the standard deviation of the fraction is 0.001.
  CHECK(static_cast<double>(zeros) / static_cast<double>(yv.size()) == Approx(p).margin(0.006));
  CHECK(worst < 1e-6);
  // Float64 too.
  Tensor x64 = random_tensor({1000}, 82, 1, 2, DType::Float64, false);
  const auto y64 = dropout(x64, 0.5, true, gen).to_vector<double>();
  const auto x64v = x64.to_vector<double>();
  for (std::size_t i = 0; i < y64.size(); ++i) {
    if (y64[i] != 0.0) REQUIRE(y64[i] == x64v[i] * 2.0);
  }
}

TEST_CASE("dropout masks come from the generator state", "[cpu][norm]") {
  Tensor x = Tensor::ones({1000}, DType::Float32);
  Generator a(3), b(3);
  const Tensor ya = dropout(x, 0.5, true, a);
  const Tensor yb = dropout(x, 0.5, true, b);
  CHECK(ya.to_vector<float>() == yb.to_vector<float>());  // same state, same mask
  CHECK(a.state() == b.state());
  const Tensor ya2 = dropout(x, 0.5, true, a);  // the state moved on: another mask
  CHECK(ya2.to_vector<float>() != ya.to_vector<float>());
  // The mask is bernoulli_(1 - p) on a tensor of x's shape, drawn from the same state.
  Generator c(3);
  Tensor keep = Tensor::empty({1000}, DType::Float32);
  bernoulli_(keep, 0.5, c);
  require_close(ya, mul(keep, 2.0), 0, 0);
}

TEST_CASE("dropout is the identity in eval mode and for p = 0; p = 1 gives zeros", "[cpu][norm]") {
  Tensor x = random_tensor({3, 4}, 83);
  Generator gen(1);
  const GeneratorState before = gen.state();
  require_close(dropout(x, 0.5, false, gen), x, 0, 0);
  require_close(dropout(x, 0.0, true, gen), x, 0, 0);
  CHECK(gen.state() == before);  // nothing drawn
  // Gradients: 1 through the identity, 0 through p = 1.
  backward(sum(dropout(x, 0.5, false, gen)));
  require_close(x.grad(), Tensor::ones({3, 4}, DType::Float64), 0, 0);
  x.zero_grad();
  Tensor y = dropout(x, 1.0, true, gen);
  require_close(y, Tensor::zeros({3, 4}, DType::Float64), 0, 0);
  CHECK(gen.state() == before);
  backward(sum(y));
  require_close(x.grad(), Tensor::zeros({3, 4}, DType::Float64), 0, 0);
}

TEST_CASE("gradcheck: dropout", "[cpu][norm][grad]") {
  Tensor x = random_tensor({4, 6}, 91);
  Generator gen(5);
  for (double p : {0.2, 0.5}) {
    INFO("p " << p);
    // Re-seed inside f so that every evaluation draws the same mask.
    require_gradcheck(
        [&](const std::vector<Tensor>& t) {
          gen.manual_seed(5);
          return dropout(t[0], p, true, gen);
        },
        {x});
  }
  // The gradient is the saved scaled mask: grad 1 gives y / x.
  Tensor xs = random_tensor({50}, 92, 1, 2);
  gen.manual_seed(9);
  Tensor y = dropout(xs, 0.4, true, gen);
  backward(sum(y));
  require_close(xs.grad(), div(y, xs).detach(), 1e-15, 1e-15);
  // Eval mode: the identity.
  require_gradcheck([&](const std::vector<Tensor>& t) { return dropout(t[0], 0.5, false, gen); },
                    {x});
}

// ================================================================ errors

TEST_CASE("norm and dropout errors name the op and the shapes", "[cpu][norm]") {
  Tensor x = Tensor::zeros({2, 3, 5}, DType::Float64);
  CHECK(error_message([&] {
          layer_norm(x, {4, 5});
        }) ==
        "[layer_norm] normalized_shape (4, 5) does not match the trailing dims of x (2, 3, 5) "
        "float64 cpu");
  CHECK(error_message([&] {
          layer_norm(x, {2, 2, 3, 5});
        }).find("normalized_shape (2, 2, 3, 5)") != std::string::npos);
  CHECK(error_message([&] { layer_norm(x, {}); }) ==
        "[layer_norm] normalized_shape must have at least one dim, got ()");
  CHECK(error_message([&] { layer_norm(x, {5}, Tensor::ones({3}, DType::Float64)); }) ==
        "[layer_norm] weight (3,) float64 cpu does not match normalized_shape (5,)");
  CHECK(error_message([&] { layer_norm(x, {5}, Tensor(), Tensor::ones({5})); }) ==
        "[layer_norm] bias (5,) float32 cpu must have the dtype and device of x (2, 3, 5) float64 "
        "cpu");
  CHECK(error_message([&] { rms_norm(x, {3}); }) ==
        "[rms_norm] normalized_shape (3,) does not match the trailing dims of x (2, 3, 5) float64 "
        "cpu");
  CHECK(error_message([&] {
          rms_norm(x, {3, 5}, Tensor::ones({5}, DType::Float64));
        }) == "[rms_norm] weight (5,) float64 cpu does not match normalized_shape (3, 5)");
  CHECK(error_message([&] {
          layer_norm(Tensor::zeros({2, 5}, DType::Int64), {5});
        }) == "[layer_norm] expected a float32 or float64 x, got (2, 5) int64 cpu");

  Tensor rm = Tensor::zeros({4}, DType::Float64), rv = Tensor::ones({4}, DType::Float64);
  CHECK(error_message([&] { batch_norm(x, rm, rv, Tensor(), Tensor(), true); }) ==
        "[batch_norm] running_mean (4,) float64 cpu does not match the 3 channels of x (2, 3, 5) "
        "float64 cpu");
  CHECK(error_message([&] {
          batch_norm(x, Tensor(), Tensor(), Tensor::ones({5}, DType::Float64), Tensor(), true);
        }) ==
        "[batch_norm] weight (5,) float64 cpu does not match the 3 channels of x (2, 3, 5) "
        "float64 cpu");
  CHECK(error_message([&] { batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); }) ==
        "[batch_norm] eval mode (training = false) needs running_mean and running_var");
  CHECK(error_message([&] { batch_norm(x, rm, Tensor(), Tensor(), Tensor(), true); })
            .find("[batch_norm] running_mean ((4,) float64 cpu) and running_var (undefined) must "
                  "both be given") == 0);
  CHECK(error_message([&] {
          batch_norm(Tensor::zeros({5}, DType::Float64), Tensor(), Tensor(), Tensor(), Tensor(),
                     true);
        }) == "[batch_norm] expected x of shape (N, C) or (N, C, L...), got (5,) float64 cpu");
  CHECK(error_message([&] {
          batch_norm(Tensor::zeros({1, 3}, DType::Float64), Tensor(), Tensor(), Tensor(), Tensor(),
                     true);
        }) ==
        "[batch_norm] expected more than 1 value per channel when training, got x (1, 3) "
        "float64 cpu");

  CHECK(error_message([&] { dropout(x, 1.5, true); }) ==
        "[dropout] probability p = 1.5 outside [0, 1]");
  CHECK(error_message([&] { dropout(x, -0.1, false); }) ==
        "[dropout] probability p = -0.1 outside [0, 1]");
}
