// Softmax, log-softmax and losses: values against naive loops written here
// (PyTorch's formulas and corner cases), gradchecks, and error messages.
#include <cmath>
#include <limits>

#include "kernels/softmax.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

// (outer, C, inner) around dim of a shape, computed directly.
struct Split {
  std::int64_t outer = 1, classes = 1, inner = 1;
};
Split split(const Shape& shape, std::int64_t dim) {
  Split s;
  for (std::int64_t d = 0; d < static_cast<std::int64_t>(shape.size()); ++d) {
    if (d < dim) s.outer *= shape[d];
    if (d == dim) s.classes = shape[d];
    if (d > dim) s.inner *= shape[d];
  }
  return s;
}

// softmax / log_softmax along dim by the textbook formula (no max trick:
// the test inputs are small).
Tensor naive_softmax(const Tensor& x, std::int64_t dim, bool log) {
  const auto v = x.contiguous().to_vector<double>();
  const Split s = split(x.shape(), dim);
  std::vector<double> out(v.size());
  for (std::int64_t o = 0; o < s.outer; ++o) {
    for (std::int64_t i = 0; i < s.inner; ++i) {
      auto at = [&](std::int64_t c) { return (o * s.classes + c) * s.inner + i; };
      double z = 0;
      for (std::int64_t c = 0; c < s.classes; ++c) z += std::exp(v[at(c)]);
      for (std::int64_t c = 0; c < s.classes; ++c) {
        out[at(c)] = log ? v[at(c)] - std::log(z) : std::exp(v[at(c)]) / z;
      }
    }
  }
  return Tensor::from_vector<double>(out, x.shape());
}

// PyTorch's cross-entropy with label smoothing, written as the documented
// sum: loss = -sum_c q_c log p_c, q_c = (1 - eps) [c == t] + eps / C, over the
// positions whose target is not ignored; mean divides by their number.
// logits (N, C, d...) float, target (N, d...) of any index dtype.
Tensor naive_cross_entropy(const Tensor& logits, const Tensor& target, std::int64_t ignore,
                           double eps, const std::string& reduction) {
  const auto x = logits.contiguous().to_vector<double>();
  const auto t = target.contiguous().to_vector<std::int64_t>();
  const Split s = split(logits.shape(), logits.dim() == 1 ? 0 : 1);
  std::vector<double> per(t.size(), 0.0);
  double total = 0, count = 0;
  for (std::int64_t n = 0; n < s.outer; ++n) {
    for (std::int64_t i = 0; i < s.inner; ++i) {
      const std::int64_t p = n * s.inner + i;
      if (t[p] == ignore) continue;
      auto at = [&](std::int64_t c) { return (n * s.classes + c) * s.inner + i; };
      double z = 0;
      for (std::int64_t c = 0; c < s.classes; ++c) z += std::exp(x[at(c)]);
      double loss = 0;
      for (std::int64_t c = 0; c < s.classes; ++c) {
        const double q = (1 - eps) * (c == t[p]) + eps / static_cast<double>(s.classes);
        loss -= q * (x[at(c)] - std::log(z));
      }
      per[p] = loss;
      total += loss;
      count += 1;
    }
  }
  if (reduction == "none") return Tensor::from_vector<double>(per, target.shape());
  return Tensor::scalar(reduction == "sum" ? total : total / count, DType::Float64);
}

// d loss_sum / d logits for rows (N, C): softmax - q, 0 on ignored rows.
Tensor naive_cross_entropy_grad(const Tensor& logits, const Tensor& target, std::int64_t ignore,
                                double eps) {
  const Tensor p = naive_softmax(logits.to(DType::Float64), 1, false);
  auto g = p.to_vector<double>();
  const auto t = target.to_vector<std::int64_t>();
  const std::int64_t n = logits.shape()[0], c = logits.shape()[1];
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t k = 0; k < c; ++k) {
      double& e = g[r * c + k];
      e = t[r] == ignore ? 0.0 : e - (1 - eps) * (k == t[r]) - eps / static_cast<double>(c);
    }
  }
  return Tensor::from_vector<double>(g, logits.shape());
}

Tensor targets(const std::vector<std::int64_t>& v, const Shape& shape, DType dtype = DType::Int64) {
  return Tensor::from_vector<std::int64_t>(v, shape, dtype);
}

// Random class indices in [0, classes), every `ignore_every`-th replaced by ignore.
Tensor random_targets(const Shape& shape, std::int64_t classes, std::uint64_t seed,
                      std::int64_t ignore_every = 0, std::int64_t ignore = -100) {
  const auto u = random_tensor(shape, seed, 0, 1, DType::Float64, false).to_vector<double>();
  std::vector<std::int64_t> v;
  for (std::size_t i = 0; i < u.size(); ++i) {
    const bool ignored = ignore_every > 0 && i % ignore_every == 1;
    v.push_back(ignored ? ignore : static_cast<std::int64_t>(u[i] * static_cast<double>(classes)));
  }
  return targets(v, shape);
}

}  // namespace

// ---------------------------------------------------------------- softmax

TEST_CASE("softmax and log_softmax match naive loops along every dim", "[cpu][loss]") {
  Tensor x = random_tensor({3, 4, 5}, 1, -3, 3, DType::Float64, false);
  for (std::int64_t dim : {0, 1, 2, -1, -3}) {
    INFO("dim " << dim);
    const std::int64_t d = dim < 0 ? dim + 3 : dim;
    require_close(softmax(x, dim), naive_softmax(x, d, false), 1e-14, 1e-13);
    require_close(log_softmax(x, dim), naive_softmax(x, d, true), 1e-13, 1e-13);
    // float32 against the float64 oracle
    Tensor xf = x.to(DType::Float32);
    CHECK(softmax(xf, dim).dtype() == DType::Float32);
    require_close(softmax(xf, dim).to(DType::Float64), naive_softmax(x, d, false), 1e-6, 1e-5);
    require_close(log_softmax(xf, dim).to(DType::Float64), naive_softmax(x, d, true), 1e-5, 1e-5);
  }
  // The three ways the kernels walk a tensor: long rows (more than 32
  // classes, dim last), tiles of short rows (here 130 rows: two full tiles
  // of 64 and a rest), and slabs of positions (dim not last; 130 positions).
  for (const auto& [shape, dim] :
       {std::pair<Shape, std::int64_t>{{3, 40}, 1}, {{130, 7}, 1}, {{2, 3, 130}, 1}}) {
    INFO("shape " << shape_str(shape) << " dim " << dim);
    Tensor w = random_tensor(shape, 2, -3, 3, DType::Float64, false);
    require_close(softmax(w, dim), naive_softmax(w, dim, false), 1e-14, 1e-13);
    require_close(log_softmax(w, dim), naive_softmax(w, dim, true), 1e-13, 1e-13);
  }
  // Non-contiguous input: same values as its contiguous copy.
  Tensor t = random_tensor({5, 4}, 3, -3, 3, DType::Float64, false).transpose(0, 1);
  REQUIRE_FALSE(t.is_contiguous());
  require_close(softmax(t, 1), naive_softmax(t.contiguous(), 1, false), 1e-14, 1e-13);
  require_close(log_softmax(t, 0), naive_softmax(t.contiguous(), 0, true), 1e-13, 1e-13);
  // A 0-d tensor is one class.
  CHECK(softmax(Tensor::scalar(3.0, DType::Float64)).item<double>() == 1.0);
  CHECK(log_softmax(Tensor::scalar(3.0, DType::Float64)).item<double>() == 0.0);
}

TEST_CASE("softmax is stable for large logits and keeps masks exact", "[cpu][loss]") {
  Tensor big = Tensor::from_vector<float>({1000.f, 1000.f, -1000.f}, {3});
  const auto p = softmax(big).to_vector<float>();
  CHECK(p[0] == Approx(0.5));
  CHECK(p[1] == Approx(0.5));
  CHECK(p[2] == 0.0f);
  CHECK(log_softmax(big).to_vector<float>()[0] == Approx(-std::log(2.0)));
  // -inf logits (masked) get probability exactly 0 and log-probability -inf.
  const float inf = std::numeric_limits<float>::infinity();
  Tensor masked = Tensor::from_vector<float>({0.f, -inf, 0.f, -inf}, {4});
  CHECK(softmax(masked).to_vector<float>() == std::vector<float>{0.5f, 0.f, 0.5f, 0.f});
  CHECK(log_softmax(masked).to_vector<float>()[1] == -inf);
  // A NaN anywhere in a row makes the row NaN (as in PyTorch); other rows are untouched.
  Tensor with_nan = Tensor::from_vector<double>({1, NAN, 2, 1, 2, 3}, {2, 3});
  const auto q = softmax(with_nan).to_vector<double>();
  CHECK(std::isnan(q[0]));
  CHECK(std::isnan(q[2]));
  CHECK(q[5] == Approx(std::exp(3) / (std::exp(1) + std::exp(2) + std::exp(3))));
}

TEST_CASE("exp_nonpositive agrees with std::exp", "[cpu][loss]") {
  double worst_f = 0, worst_d = 0;
  for (double x = -86.0; x <= 1.0; x += 0.0137) {
    const float xf = static_cast<float>(x);
    const double ef = std::exp(static_cast<double>(xf));
    worst_f = std::max(worst_f, std::abs(kernels::detail::exp_nonpositive(xf) - ef) / ef);
    worst_d = std::max(worst_d,
                       std::abs(kernels::detail::exp_nonpositive(x) - std::exp(x)) / std::exp(x));
  }
  for (double x = -708.0; x < -86.0; x += 1.37) {
    worst_d = std::max(worst_d,
                       std::abs(kernels::detail::exp_nonpositive(x) - std::exp(x)) / std::exp(x));
  }
  CHECK(worst_f < 2.5e-7);  // about 2 ulp
  CHECK(worst_d < 5e-16);
  CHECK(kernels::detail::exp_nonpositive(0.0) == 1.0);
  CHECK(kernels::detail::exp_nonpositive(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(kernels::detail::exp_nonpositive(-1e300) == 0.0);
  CHECK(std::isnan(kernels::detail::exp_nonpositive(std::numeric_limits<double>::quiet_NaN())));
}

TEST_CASE("gradcheck: softmax and log_softmax", "[cpu][loss][grad]") {
  Tensor x = random_tensor({3, 4, 5}, 11, -2, 2);
  for (std::int64_t dim : {0, 1, -1}) {
    INFO("dim " << dim);
    require_gradcheck([&](const std::vector<Tensor>& t) { return softmax(t[0], dim); }, {x});
    require_gradcheck([&](const std::vector<Tensor>& t) { return log_softmax(t[0], dim); }, {x});
  }
  // 1-D, long rows (40 classes), and more than one tile of short rows (70 rows)
  for (const Shape& shape : {Shape{6}, Shape{2, 40}, Shape{70, 3}}) {
    INFO("shape " << shape_str(shape));
    Tensor v = random_tensor(shape, 12, -2, 2);
    require_gradcheck([&](const std::vector<Tensor>& t) { return softmax(t[0]); }, {v});
    require_gradcheck([&](const std::vector<Tensor>& t) { return log_softmax(t[0]); }, {v});
  }
}

TEST_CASE("softmax gradients of a non-contiguous input equal the contiguous ones",
          "[cpu][loss][grad]") {
  // gradcheck clones its inputs (contiguous), so a transposed leaf is checked
  // against its contiguous copy, whose gradient the gradcheck above covers.
  Tensor base = random_tensor({5, 4}, 13, -2, 2, DType::Float64, false);
  Tensor r = random_tensor({4, 5}, 14, -1, 1, DType::Float64, false);  // projection
  for (bool log : {false, true}) {
    for (std::int64_t dim : {0, 1}) {
      INFO("log " << log << " dim " << dim);
      Tensor strided = base.transpose(0, 1);  // (4, 5), not contiguous
      strided.set_requires_grad(true);
      Tensor dense = base.transpose(0, 1).contiguous();
      dense.set_requires_grad(true);
      for (Tensor* t : {&strided, &dense}) {
        Tensor y = log ? log_softmax(*t, dim) : softmax(*t, dim);
        backward(sum(mul(y, r)));
      }
      require_close(strided.grad(), dense.grad(), 1e-14, 1e-13);
    }
  }
}

// ---------------------------------------------------------------- cross_entropy

TEST_CASE("cross_entropy matches the naive formula for each reduction", "[cpu][loss]") {
  Tensor x = random_tensor({6, 5}, 21, -3, 3, DType::Float64, false);
  Tensor t = targets({0, 4, -100, 2, 1, 4}, {6});
  for (const char* red : {"mean", "sum", "none"}) {
    for (double eps : {0.0, 0.25}) {
      INFO("reduction " << red << " label_smoothing " << eps);
      CrossEntropyOptions o;
      o.reduction = red;
      o.label_smoothing = eps;
      require_close(cross_entropy(x, t, o), naive_cross_entropy(x, t, -100, eps, red), 1e-13,
                    1e-13);
      // int32 targets and float32 logits
      require_close(cross_entropy(x.to(DType::Float32), t.to(DType::Int32), o).to(DType::Float64),
                    naive_cross_entropy(x, t, -100, eps, red), 1e-5, 1e-5);
    }
  }
  // The mean is over non-ignored targets only: 5 of 6 here.
  CrossEntropyOptions sum_o;
  sum_o.reduction = "sum";
  CHECK(cross_entropy(x, t).item<double>() ==
        Approx(cross_entropy(x, t, sum_o).item<double>() / 5).epsilon(1e-14));
  // A custom ignore_index; -100 is then an ordinary (out-of-range) value.
  CrossEntropyOptions o;
  o.ignore_index = 4;
  Tensor t4 = targets({0, 4, 3, 2, 1, 4}, {6});
  require_close(cross_entropy(x, t4, o), naive_cross_entropy(x, t4, 4, 0.0, "mean"), 1e-13, 1e-13);
  // One sample: (C) logits with a () target.
  Tensor x1 = random_tensor({5}, 22, -3, 3, DType::Float64, false);
  Tensor t1 = targets({3}, {});
  require_close(cross_entropy(x1, t1), naive_cross_entropy(x1, t1, -100, 0.0, "mean"), 1e-13,
                1e-13);
}

TEST_CASE("cross_entropy with label smoothing equals the hand-computed value", "[cpu][loss]") {
  // logits (1, 2, 3), target 2, eps 0.3:
  //   lse = log(e + e^2 + e^3); loss = 0.7 (lse - 3) + 0.3 (lse - 2)
  Tensor x = Tensor::from_vector<double>({1, 2, 3}, {1, 3});
  CrossEntropyOptions o;
  o.label_smoothing = 0.3;
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  CHECK(cross_entropy(x, targets({2}, {1}), o).item<double>() ==
        Approx(0.7 * (lse - 3) + 0.3 * (lse - 2)).epsilon(1e-14));
  CHECK(cross_entropy(x, targets({2}, {1}), o).item<double>() ==
        Approx(0.7076059644443801).epsilon(1e-14));
  // eps = 1: the loss no longer depends on the target.
  o.label_smoothing = 1.0;
  CHECK(cross_entropy(x, targets({0}, {1}), o).item<double>() ==
        Approx(cross_entropy(x, targets({2}, {1}), o).item<double>()).epsilon(1e-14));
}

TEST_CASE("cross_entropy with spatial dims puts classes on dim 1", "[cpu][loss]") {
  // (N, C, d1, d2) = (2, 4, 3, 5) and a wide (2, 3, 70) one (one block of 64 and a rest).
  for (const Shape& shape : {Shape{2, 4, 3, 5}, Shape{2, 3, 70}}) {
    INFO("logits " << shape_str(shape));
    Tensor x = random_tensor(shape, 31, -3, 3, DType::Float64, false);
    Shape tshape = shape;
    tshape.erase(tshape.begin() + 1);
    Tensor t = random_targets(tshape, shape[1], 32, 4);
    for (const char* red : {"mean", "sum", "none"}) {
      for (double eps : {0.0, 0.1}) {
        INFO("reduction " << red << " label_smoothing " << eps);
        CrossEntropyOptions o;
        o.reduction = red;
        o.label_smoothing = eps;
        Tensor loss = cross_entropy(x, t, o);
        require_close(loss, naive_cross_entropy(x, t, -100, eps, red), 1e-13, 1e-13);
      }
    }
  }
}

TEST_CASE("cross_entropy with every target ignored: mean is NaN, like PyTorch", "[cpu][loss]") {
  Tensor x = random_tensor({3, 4}, 41, -1, 1);
  Tensor t = targets({-100, -100, -100}, {3});
  Tensor loss = cross_entropy(x, t);
  CHECK(std::isnan(loss.item<double>()));
  backward(loss);
  require_close(x.grad(), Tensor::zeros({3, 4}, DType::Float64));  // no NaN leaks into grads
  CrossEntropyOptions o;
  o.reduction = "sum";
  CHECK(cross_entropy(x, t, o).item<double>() == 0.0);
  o.reduction = "none";
  require_close(cross_entropy(x, t, o), Tensor::zeros({3}, DType::Float64));
}

TEST_CASE("cross_entropy on a large float32 batch matches the naive loss and gradient",
          "[cpu][loss]") {
  // 512 x 100 logits: large enough for the multithreaded path.
  Tensor x = random_tensor({512, 100}, 51, -4, 4, DType::Float32);
  Tensor t = random_targets({512}, 100, 52, 7);
  CrossEntropyOptions o;
  o.label_smoothing = 0.1;
  o.reduction = "sum";
  Tensor x64 = x.detach().to(DType::Float64);
  Tensor loss = cross_entropy(x, t, o);
  CHECK(loss.item<double>() ==
        Approx(naive_cross_entropy(x64, t, -100, 0.1, "sum").item<double>()).epsilon(1e-5));
  backward(loss);
  require_close(x.grad().to(DType::Float64), naive_cross_entropy_grad(x64, t, -100, 0.1), 1e-6,
                1e-5);
}

TEST_CASE("cross_entropy on many short float32 rows matches the naive loss and gradient",
          "[cpu][loss]") {
  // 5000 x 10 logits: tiles of 64 rows (and a rest of 8), multithreaded.
  Tensor x = random_tensor({5000, 10}, 53, -4, 4, DType::Float32);
  Tensor t = random_targets({5000}, 10, 54, 9);
  Tensor x64 = x.detach().to(DType::Float64);
  Tensor loss = cross_entropy(x, t);
  CHECK(loss.item<double>() ==
        Approx(naive_cross_entropy(x64, t, -100, 0.0, "mean").item<double>()).epsilon(1e-5));
  backward(loss);
  double count = 0;  // non-ignored targets (positions 1, 10, 19, ... are ignored)
  for (std::int64_t v : t.to_vector<std::int64_t>()) count += v != -100;
  CHECK(count == 4444);
  require_close(x.grad().to(DType::Float64),
                mul(naive_cross_entropy_grad(x64, t, -100, 0.0), 1.0 / count), 1e-8, 1e-5);
}

TEST_CASE("gradcheck: cross_entropy", "[cpu][loss][grad]") {
  Tensor x = random_tensor({5, 4}, 61, -2, 2);
  Tensor t = targets({3, -100, 0, 1, 3}, {5});
  for (const char* red : {"mean", "sum", "none"}) {
    for (double eps : {0.0, 0.2}) {
      INFO("reduction " << red << " label_smoothing " << eps);
      CrossEntropyOptions o;
      o.reduction = red;
      o.label_smoothing = eps;
      require_gradcheck([&](const std::vector<Tensor>& v) { return cross_entropy(v[0], t, o); },
                        {x});
    }
  }
  // Long rows (40 classes) and more than one tile of short rows (70 rows).
  for (const Shape& shape : {Shape{3, 40}, Shape{70, 3}}) {
    INFO("logits " << shape_str(shape));
    Tensor xr = random_tensor(shape, 63, -2, 2);
    Tensor tr = random_targets({shape[0]}, shape[1], 64, 3);
    CrossEntropyOptions o;
    o.label_smoothing = 0.1;
    require_gradcheck([&](const std::vector<Tensor>& v) { return cross_entropy(v[0], tr, o); },
                      {xr});
  }
  // Spatial dims, and a custom ignore_index with int32 targets.
  Tensor xs = random_tensor({2, 3, 4}, 62, -2, 2);
  Tensor ts = targets({0, 2, 1, 2, 1, 7, 0, 7}, {2, 4}, DType::Int32);
  CrossEntropyOptions o;
  o.ignore_index = 7;
  o.label_smoothing = 0.1;
  for (const char* red : {"mean", "none"}) {
    o.reduction = red;
    require_gradcheck([&](const std::vector<Tensor>& v) { return cross_entropy(v[0], ts, o); },
                      {xs});
  }
}

TEST_CASE("cross_entropy of a non-contiguous input; the target gets no gradient",
          "[cpu][loss][grad]") {
  Tensor base = random_tensor({6, 4}, 71, -2, 2, DType::Float64, false);
  Tensor t = targets({5, 0, -100, 3}, {4});
  CrossEntropyOptions o;
  o.label_smoothing = 0.2;
  Tensor strided = base.transpose(0, 1);  // (4, 6), not contiguous
  strided.set_requires_grad(true);
  Tensor dense = base.transpose(0, 1).contiguous();
  dense.set_requires_grad(true);
  require_close(cross_entropy(strided, t, o), naive_cross_entropy(dense, t, -100, 0.2, "mean"),
                1e-13, 1e-13);
  backward(cross_entropy(strided, t, o));
  backward(cross_entropy(dense, t, o));
  require_close(strided.grad(), dense.grad(), 1e-15, 1e-14);
  // mean over the 3 non-ignored rows of (softmax - q)
  require_close(dense.grad(), mul(naive_cross_entropy_grad(dense, t, -100, 0.2), 1.0 / 3), 1e-14,
                1e-13);
  // Only the logits are differentiable: with logits that need no gradient,
  // nothing is recorded (an integer target never requires grad).
  const std::size_t before = tape_size();
  Tensor plain = cross_entropy(base, targets({0, 3, 1, 2, 0, 1}, {6}), o);
  CHECK_FALSE(plain.requires_grad());
  CHECK(tape_size() == before);
}

// ---------------------------------------------------------------- nll_loss

TEST_CASE("nll_loss matches naive loops and composes to cross_entropy", "[cpu][loss]") {
  Tensor lp = random_tensor({4, 3, 2}, 81, -3, 0, DType::Float64, false);  // (N, C, d)
  Tensor t = targets({0, 2, -100, 1, 2, 2, 0, -100}, {4, 2});
  const auto v = lp.to_vector<double>();
  const auto tv = t.to_vector<std::int64_t>();
  std::vector<double> per(8, 0.0);
  double total = 0;
  for (int n = 0; n < 4; ++n)
    for (int i = 0; i < 2; ++i) {
      const std::int64_t c = tv[n * 2 + i];
      if (c == -100) continue;
      per[n * 2 + i] = -v[(n * 3 + c) * 2 + i];
      total += per[n * 2 + i];
    }
  require_close(nll_loss(lp, t, -100, "none"), Tensor::from_vector<double>(per, {4, 2}));
  CHECK(nll_loss(lp, t, -100, "sum").item<double>() == Approx(total).epsilon(1e-14));
  CHECK(nll_loss(lp, t).item<double>() == Approx(total / 6).epsilon(1e-14));
  // nll_loss(log_softmax(x)) is cross_entropy(x), rows and spatial
  Tensor x = random_tensor({4, 3, 2}, 82, -3, 3, DType::Float64, false);
  for (const char* red : {"mean", "sum", "none"}) {
    CrossEntropyOptions o;
    o.reduction = red;
    require_close(nll_loss(log_softmax(x, 1), t, -100, red), cross_entropy(x, t, o), 1e-14, 1e-13);
  }
}

TEST_CASE("gradcheck: nll_loss", "[cpu][loss][grad]") {
  Tensor lp = random_tensor({4, 3}, 91, -3, 0);
  Tensor t = targets({2, -100, 0, 2}, {4});
  for (const char* red : {"mean", "sum", "none"}) {
    INFO("reduction " << red);
    require_gradcheck([&](const std::vector<Tensor>& v) { return nll_loss(v[0], t, -100, red); },
                      {lp});
  }
}

// ---------------------------------------------------------------- mse_loss

TEST_CASE("mse_loss matches naive loops for each reduction", "[cpu][loss]") {
  Tensor a = random_tensor({3, 4}, 101, -2, 2, DType::Float64, false);
  Tensor b = random_tensor({3, 4}, 102, -2, 2, DType::Float64, false);
  const auto av = a.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<double> sq;
  double total = 0;
  for (std::size_t i = 0; i < av.size(); ++i) {
    sq.push_back((av[i] - bv[i]) * (av[i] - bv[i]));
    total += sq.back();
  }
  require_close(mse_loss(a, b, "none"), Tensor::from_vector<double>(sq, {3, 4}), 1e-15, 1e-14);
  CHECK(mse_loss(a, b, "sum").item<double>() == Approx(total).epsilon(1e-14));
  CHECK(mse_loss(a, b).item<double>() == Approx(total / 12).epsilon(1e-14));
  CHECK(mse_loss(a.to(DType::Float32), b.to(DType::Float32)).item<float>() ==
        Approx(total / 12).epsilon(1e-6));
  // A non-contiguous operand gives the contiguous copy's result.
  Tensor c = random_tensor({4, 3}, 103, -2, 2, DType::Float64, false).transpose(0, 1);
  require_close(mse_loss(c, b, "none"), mse_loss(c.contiguous(), b, "none"));
  // The mean of no elements is NaN, as in PyTorch.
  CHECK(std::isnan(mse_loss(Tensor::zeros({0}), Tensor::zeros({0})).item<float>()));
}

TEST_CASE("gradcheck: mse_loss, input and target", "[cpu][loss][grad]") {
  Tensor a = random_tensor({3, 4}, 111, -2, 2);
  Tensor b = random_tensor({3, 4}, 112, -2, 2);
  Tensor fixed = random_tensor({3, 4}, 113, -2, 2, DType::Float64, false);
  for (const char* red : {"mean", "sum", "none"}) {
    INFO("reduction " << red);
    require_gradcheck([&](const std::vector<Tensor>& v) { return mse_loss(v[0], v[1], red); },
                      {a, b});
    // only the input requires grad
    require_gradcheck([&](const std::vector<Tensor>& v) { return mse_loss(v[0], fixed, red); },
                      {a});
  }
}

// ---------------------------------------------------------------- errors

TEST_CASE("loss errors name the op, the shapes and the bad value", "[cpu][loss]") {
  Tensor x = Tensor::zeros({3, 5});
  CHECK(error_message([&] {
          cross_entropy(x, targets({0, 1}, {2}));
        }) ==
        "[cross_entropy] target (2,) int64 cpu does not match input (3, 5) float32 cpu: expected "
        "target shape (3,)");
  CHECK(
      error_message([&] {
        cross_entropy(Tensor::zeros({2, 5, 4}), targets({0, 1}, {2}));
      })
          .find("[cross_entropy] target (2,) int64 cpu does not match input (2, 5, 4) float32 cpu: "
                "expected target shape (2, 4)") == 0);
  CHECK(error_message([&] {
          cross_entropy(x, targets({0, 7, 1}, {3}));
        }) ==
        "[cross_entropy] target 7 at position 1 is out of range for 5 classes (expected 0..4 or "
        "ignore_index -100)");
  CHECK(error_message([&] {
          cross_entropy(x, targets({0, -1, 1}, {3}));
        }).find("[cross_entropy] target -1 at position 1 is out of range for 5 classes") == 0);
  CHECK(error_message([&] {
          CrossEntropyOptions o;
          o.reduction = "avg";
          cross_entropy(x, targets({0, 1, 2}, {3}), o);
        }) == "[cross_entropy] reduction must be \"mean\", \"sum\" or \"none\", got \"avg\"");
  CHECK(error_message([&] {
          CrossEntropyOptions o;
          o.label_smoothing = 1.5;
          cross_entropy(x, targets({0, 1, 2}, {3}), o);
        }) == "[cross_entropy] label_smoothing must be in [0, 1], got 1.5");
  // A bad target in a large, multithreaded batch is found and named too.
  std::vector<std::int64_t> many(5000, 1);
  many[4321] = 10;
  CHECK(error_message([&] {
          cross_entropy(Tensor::zeros({5000, 10}), targets(many, {5000}));
        }).find("[cross_entropy] target 10 at position 4321 is out of range for 10 classes") == 0);
  CHECK(error_message([&] {
          cross_entropy(Tensor::zeros({2, 0}), targets({-100, -100}, {2}));
        }) == "[cross_entropy] expected at least one class, got scores (2, 0) float32 cpu");
  CHECK(error_message([&] {
          cross_entropy(x, Tensor::zeros({3}));
        }).find("[cross_entropy] expected an int32 or int64 target") == 0);
  CHECK(error_message([&] {
          nll_loss(x, targets({0, 9, 1}, {3}));
        }).find("[nll_loss] target 9 at position 1 is out of range for 5 classes") == 0);
  CHECK(error_message([&] {
          nll_loss(x, targets({0, 1, 2}, {3}), -100, "total");
        }).find("[nll_loss] reduction must be") == 0);
  CHECK(error_message([&] {
          mse_loss(x, Tensor::zeros({5, 3}));
        }) ==
        "[mse_loss] input and target must have the same shape (no broadcasting): input (3, 5) "
        "float32 cpu, target (5, 3) float32 cpu");
  CHECK(error_message([&] {
          mse_loss(x, Tensor::zeros({3, 5}, DType::Float64));
        }).find("[mse_loss] dtypes differ") == 0);
  CHECK(error_message([&] {
          mse_loss(x, x, "avg");
        }).find("[mse_loss] reduction must be \"mean\", \"sum\" or \"none\", got \"avg\"") == 0);
  CHECK(error_message([&] { softmax(x, 2); }).find("[softmax] dim 2 out of range") == 0);
  CHECK(error_message([&] {
          log_softmax(Tensor::zeros({2}, DType::Int64));
        }).find("[log_softmax] expected a float32 or float64 tensor") == 0);
}
