// Convolutions: causal depthwise conv1d (and its one-step update), conv2d and
// GLU against naive direct loops, gradchecks over the option combinations,
// non-contiguous inputs, thread-count independence, and error messages.
#include "kernels/common.h"
#include "kernels/conv.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

double silu_ref(double z) { return z / (1.0 + std::exp(-z)); }

// y[b, d, t] = bias[d] + sum_k w[d, k] x[b, d, t - (K-1) + k], straight from the definition.
Tensor naive_causal_conv1d(const Tensor& x, const Tensor& w, const Tensor& bias, bool silu) {
  const std::int64_t B = x.size(0), D = x.size(1), L = x.size(2), K = w.size(-1);
  const auto xv = x.to_vector<double>();
  const auto wv = w.to_vector<double>();  // (D, K) or (D, 1, K): same order
  const auto bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>(D, 0.0);
  std::vector<double> y(B * D * L);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t d = 0; d < D; ++d)
      for (std::int64_t t = 0; t < L; ++t) {
        double acc = bv[d];
        for (std::int64_t k = 0; k < K; ++k) {
          const std::int64_t s = t - (K - 1) + k;
          if (s >= 0) acc += wv[d * K + k] * xv[(b * D + d) * L + s];
        }
        y[(b * D + d) * L + t] = silu ? silu_ref(acc) : acc;
      }
  return Tensor::from_vector<double>(y, {B, D, L});
}

// PyTorch's conv2d, straight from the definition.
Tensor naive_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias,
                    std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> pad) {
  const std::int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const std::int64_t O = w.size(0), kh = w.size(2), kw = w.size(3);
  const std::int64_t Ho = (H + 2 * pad[0] - kh) / stride[0] + 1;
  const std::int64_t Wo = (W + 2 * pad[1] - kw) / stride[1] + 1;
  const auto xv = x.to_vector<double>();
  const auto wv = w.to_vector<double>();
  const auto bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>(O, 0.0);
  std::vector<double> y;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t o = 0; o < O; ++o)
      for (std::int64_t i = 0; i < Ho; ++i)
        for (std::int64_t j = 0; j < Wo; ++j) {
          double acc = bv[o];
          for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t p = 0; p < kh; ++p)
              for (std::int64_t q = 0; q < kw; ++q) {
                const std::int64_t h = i * stride[0] - pad[0] + p;
                const std::int64_t v = j * stride[1] - pad[1] + q;
                if (h < 0 || h >= H || v < 0 || v >= W) continue;
                acc += wv[((o * C + c) * kh + p) * kw + q] * xv[((n * C + c) * H + h) * W + v];
              }
          y.push_back(acc);
        }
  return Tensor::from_vector<double>(y, {N, O, Ho, Wo});
}

// glu over dim of a 3-d tensor: first half * sigmoid(second half).
Tensor naive_glu(const Tensor& x, std::int64_t dim) {
  Shape s = x.shape();
  s[dim] /= 2;
  const auto xv = x.to_vector<double>();
  const Shape st = contiguous_strides(x.shape());
  std::vector<double> y;
  for (std::int64_t i = 0; i < s[0]; ++i)
    for (std::int64_t j = 0; j < s[1]; ++j)
      for (std::int64_t k = 0; k < s[2]; ++k) {
        const std::int64_t at = i * st[0] + j * st[1] + k * st[2];
        const double a = xv[at], b = xv[at + s[dim] * st[dim]];
        y.push_back(a / (1.0 + std::exp(-b)));
      }
  return Tensor::from_vector<double>(y, s);
}

}  // namespace

// ---------------------------------------------------------------- causal_conv1d

TEST_CASE("causal_conv1d matches a direct loop for several K, bias and silu", "[cpu][conv]") {
  const std::int64_t B = 2, D = 3, L = 7;
  Tensor x = random_tensor({B, D, L}, 1, -2, 2, DType::Float64, false);
  Tensor bias = random_tensor({D}, 2, -1, 1, DType::Float64, false);
  for (std::int64_t K : {1, 2, 3, 4, 9}) {  // 9 > L: the kernel reaches before t = 0
    Tensor w = random_tensor({D, K}, 3 + K, -1, 1, DType::Float64, false);
    for (bool with_bias : {false, true}) {
      for (bool silu : {false, true}) {
        INFO("K " << K << " bias " << with_bias << " silu " << silu);
        const Tensor b = with_bias ? bias : Tensor();
        const Tensor want = naive_causal_conv1d(x, w, b, silu);
        require_close(causal_conv1d(x, w, b, silu), want, 1e-12, 1e-12);
        // nn.Conv1d's (D, 1, K) layout gives the same result.
        require_close(causal_conv1d(x, w.reshape({D, 1, K}), b, silu), want, 1e-12, 1e-12);
      }
    }
  }
  // A kernel of ones sums the last K inputs: y[t] = x[t-1] + x[t] for K = 2.
  Tensor ramp = Tensor::from_vector<double>({1, 2, 3, 4}, {1, 1, 4});
  require_close(causal_conv1d(ramp, Tensor::ones({1, 2}, DType::Float64)),
                Tensor::from_vector<double>({1, 3, 5, 7}, {1, 1, 4}));
}

TEST_CASE("causal_conv1d in float32 on a parallel-sized input, non-contiguous x", "[cpu][conv]") {
  // (B, L, D) transposed to (B, D, L), as Mamba's in_proj output arrives.
  const std::int64_t B = 2, D = 64, L = 300, K = 4;
  Tensor xt = random_tensor({B, L, D}, 5, -1, 1, DType::Float32, false);
  Tensor x = xt.transpose(1, 2);
  REQUIRE_FALSE(x.is_contiguous());
  Tensor w = random_tensor({D, 1, K}, 6, -1, 1, DType::Float32, false);
  Tensor bias = random_tensor({D}, 7, -1, 1, DType::Float32, false);
  Tensor y = causal_conv1d(x, w, bias, true);
  CHECK(y.dtype() == DType::Float32);
  require_close(y.to(DType::Float64), naive_causal_conv1d(x, w, bias, true), 1e-5, 1e-5);
}

TEST_CASE("causal_conv1d_update stepped through a sequence equals the full conv", "[cpu][conv]") {
  const std::int64_t B = 2, D = 3, L = 9, K = 4;
  Tensor x = random_tensor({B, D, L}, 11, -2, 2, DType::Float64, false);
  Tensor w = random_tensor({D, 1, K}, 12, -1, 1, DType::Float64, false);
  Tensor bias = random_tensor({D}, 13, -1, 1, DType::Float64, false);
  for (bool silu : {false, true}) {
    INFO("silu " << silu);
    const Tensor full = causal_conv1d(x, w, bias, silu);  // (B, D, L)
    Tensor state = Tensor::zeros({B, D, K}, DType::Float64);
    for (std::int64_t t = 0; t < L; ++t) {
      INFO("t " << t);
      // x[:, :, t] is a strided (B, D) view.
      const Tensor y_t = kernels::causal_conv1d_update(x.select(2, t), state, w, bias, silu);
      require_close(y_t, full.select(2, t).contiguous(), 1e-12, 1e-12);
    }
    // The state holds the last K inputs.
    require_close(state, x.narrow(2, L - K, K).contiguous());
  }
  // A non-contiguous state, (K, B, D) transposed, is updated through its strides.
  Tensor base = Tensor::zeros({K, B, D}, DType::Float64);
  Tensor state = base.permute({1, 2, 0});
  const Tensor full = causal_conv1d(x, w, Tensor(), false);
  for (std::int64_t t = 0; t < L; ++t) {
    const Tensor y_t = kernels::causal_conv1d_update(x.select(2, t), state, w, Tensor(), false);
    require_close(y_t, full.select(2, t).contiguous(), 1e-12, 1e-12);
  }
  require_close(base.permute({1, 2, 0}).contiguous(), x.narrow(2, L - K, K).contiguous());
}

TEST_CASE("gradcheck: causal_conv1d", "[cpu][conv][grad]") {
  const std::int64_t B = 2, D = 3, L = 5;
  Tensor x = random_tensor({B, D, L}, 21);
  Tensor bias = random_tensor({D}, 22);
  for (std::int64_t K : {2, 3, 4}) {
    for (bool three_d : {false, true}) {
      Tensor w = random_tensor(three_d ? Shape{D, 1, K} : Shape{D, K}, 23 + K);
      for (bool with_bias : {false, true}) {
        for (bool silu : {false, true}) {
          INFO("K " << K << " weight " << shape_str(w.shape()) << " bias " << with_bias << " silu "
                    << silu);
          if (with_bias) {
            require_gradcheck(
                [&](const std::vector<Tensor>& t) { return causal_conv1d(t[0], t[1], t[2], silu); },
                {x, w, bias});
          } else {
            require_gradcheck(
                [&](const std::vector<Tensor>& t) { return causal_conv1d(t[0], t[1], {}, silu); },
                {x, w});
          }
        }
      }
    }
  }
  // Only some inputs requiring grad: the others get none.
  Tensor w = random_tensor({D, 3}, 30);
  Tensor x_const = random_tensor({B, D, L}, 31, -1, 1, DType::Float64, false);
  require_gradcheck(
      [&](const std::vector<Tensor>& t) { return causal_conv1d(t[0], t[1], t[2], true); },
      {x_const, w, bias});
  Tensor w_const = random_tensor({D, 3}, 32, -1, 1, DType::Float64, false);
  require_gradcheck(
      [&](const std::vector<Tensor>& t) { return causal_conv1d(t[0], t[1], t[2], true); },
      {x, w_const, bias.detach()});
}

TEST_CASE("causal_conv1d gradients: non-contiguous inputs and any thread count agree",
          "[cpu][conv][grad]") {
  // Large enough for the parallel paths (B D L K > 65536).
  const std::int64_t B = 3, D = 32, L = 256, K = 4;
  Tensor xt = random_tensor({B, L, D}, 41, -1, 1, DType::Float32, false);
  Tensor w = random_tensor({D, K}, 42, -1, 1, DType::Float32, false);
  Tensor bias = random_tensor({D}, 43, -1, 1, DType::Float32, false);
  Tensor gt = random_tensor({B, L, D}, 44, -1, 1, DType::Float32, false);
  const Tensor x = xt.transpose(1, 2), grad = gt.transpose(1, 2);  // strided (B, D, L)
  const int threads = kernels::num_threads();
  kernels::set_num_threads(1);
  const auto one = kernels::causal_conv1d_backward(grad, x, w, bias, true, true, true, true);
  kernels::set_num_threads(std::max(2, threads));
  const auto many = kernels::causal_conv1d_backward(grad.contiguous(), x.contiguous(), w, bias,
                                                    true, true, true, true);
  kernels::set_num_threads(threads);
  // Bitwise equal: the parameter gradients are summed in a fixed order.
  CHECK(one.x.to_vector<float>() == many.x.to_vector<float>());
  CHECK(one.weight.to_vector<float>() == many.weight.to_vector<float>());
  CHECK(one.bias.to_vector<float>() == many.bias.to_vector<float>());
  // And they are the float64 gradients, rounded.
  const auto ref = kernels::causal_conv1d_backward(grad.to(DType::Float64), x.to(DType::Float64),
                                                   w.to(DType::Float64), bias.to(DType::Float64),
                                                   true, true, true, true);
  require_close(one.x.to(DType::Float64), ref.x, 1e-5, 1e-5);
  require_close(one.weight.to(DType::Float64), ref.weight, 1e-3, 1e-5);
  require_close(one.bias.to(DType::Float64), ref.bias, 1e-3, 1e-5);
}

// ---------------------------------------------------------------- conv2d

namespace {
struct Conv2dCase {
  Shape x, w;
  std::array<std::int64_t, 2> stride, padding;
};
const std::vector<Conv2dCase> kConv2dCases = {
    {{2, 3, 5, 5}, {4, 3, 3, 3}, {1, 1}, {0, 0}},  // stride 1, valid
    {{2, 3, 5, 5}, {4, 3, 3, 3}, {1, 1}, {1, 1}},  // "same"
    {{1, 2, 7, 6}, {3, 2, 3, 3}, {2, 2}, {1, 1}},  // stride 2 with padding
    {{2, 2, 5, 7}, {3, 2, 2, 3}, {2, 1}, {1, 0}},  // non-square everything
    {{1, 2, 4, 4}, {2, 2, 3, 2}, {1, 2}, {2, 2}},  // padding larger than needed
    {{2, 3, 8, 8}, {4, 3, 4, 4}, {4, 4}, {0, 0}},  // patch embedding: kernel = stride
    {{2, 3, 4, 5}, {5, 3, 1, 1}, {1, 1}, {0, 0}},  // 1x1: no im2col
    {{1, 1, 6, 6}, {1, 1, 3, 3}, {2, 2}, {0, 0}},  // stride that leaves a border unread
};
}  // namespace

TEST_CASE("conv2d matches a direct loop over stride, padding and kernel shapes", "[cpu][conv]") {
  std::uint64_t seed = 50;
  for (const auto& c : kConv2dCases) {
    Tensor x = random_tensor(c.x, ++seed, -1, 1, DType::Float64, false);
    Tensor w = random_tensor(c.w, ++seed, -1, 1, DType::Float64, false);
    Tensor bias = random_tensor({c.w[0]}, ++seed, -1, 1, DType::Float64, false);
    INFO("x " << shape_str(c.x) << " w " << shape_str(c.w) << " stride (" << c.stride[0] << ", "
              << c.stride[1] << ") padding (" << c.padding[0] << ", " << c.padding[1] << ")");
    require_close(conv2d(x, w, bias, c.stride, c.padding),
                  naive_conv2d(x, w, bias, c.stride, c.padding), 1e-12, 1e-12);
    require_close(conv2d(x, w, Tensor(), c.stride, c.padding),
                  naive_conv2d(x, w, Tensor(), c.stride, c.padding), 1e-12, 1e-12);
  }
  // The scalar stride/padding overload: a ViT patch embedding (16x16 patches of a 32x48 image).
  Tensor img = random_tensor({2, 3, 32, 48}, 70, -1, 1, DType::Float32, false);
  Tensor w = random_tensor({8, 3, 16, 16}, 71, -0.1, 0.1, DType::Float32, false);
  Tensor bias = random_tensor({8}, 72, -1, 1, DType::Float32, false);
  Tensor y = conv2d(img, w, bias, 16);
  CHECK(y.shape() == Shape{2, 8, 2, 3});
  CHECK(y.dtype() == DType::Float32);
  require_close(y.to(DType::Float64), naive_conv2d(img, w, bias, {16, 16}, {0, 0}), 1e-5, 1e-5);
  // A non-contiguous (channels-last, permuted) image gives the same result.
  Tensor nhwc = random_tensor({2, 6, 6, 3}, 73, -1, 1, DType::Float64, false);
  Tensor x = nhwc.permute({0, 3, 1, 2});
  Tensor k = random_tensor({2, 3, 3, 3}, 74, -1, 1, DType::Float64, false);
  require_close(conv2d(x, k, Tensor(), 2, 1), naive_conv2d(x, k, Tensor(), {2, 2}, {1, 1}), 1e-12,
                1e-12);
}

TEST_CASE("gradcheck: conv2d", "[cpu][conv][grad]") {
  std::uint64_t seed = 80;
  for (const auto& c : kConv2dCases) {
    Tensor x = random_tensor(c.x, ++seed);
    Tensor w = random_tensor(c.w, ++seed);
    Tensor bias = random_tensor({c.w[0]}, ++seed);
    INFO("x " << shape_str(c.x) << " w " << shape_str(c.w) << " stride (" << c.stride[0] << ", "
              << c.stride[1] << ") padding (" << c.padding[0] << ", " << c.padding[1] << ")");
    require_gradcheck(
        [&](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], t[2], c.stride, c.padding); },
        {x, w, bias});
  }
  // No bias; and a constant image (the first layer), only the weight learns.
  Tensor x = random_tensor({1, 2, 5, 4}, 99);
  Tensor w = random_tensor({2, 2, 2, 2}, 98);
  require_gradcheck([](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], {}, 2, 1); },
                    {x, w});
  require_gradcheck([](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], {}, 1, 0); },
                    {x.detach(), w});
}

TEST_CASE("conv2d gradients over a large batch: per-image sums, any thread count",
          "[cpu][conv][grad]") {
  // 37 images: the weight gradient is summed in fixed groups of images.
  Tensor x = random_tensor({37, 2, 5, 5}, 120, -1, 1, DType::Float64, false);
  Tensor w = random_tensor({3, 2, 3, 3}, 121, -1, 1, DType::Float64, false);
  Tensor g = random_tensor({37, 3, 5, 5}, 122, -1, 1, DType::Float64, false);
  auto grads = [&](const Tensor& xs) {
    Tensor xl = xs.detach(), wl = w.detach();
    xl.set_requires_grad(true);
    wl.set_requires_grad(true);
    backward(sum(mul(conv2d(xl, wl, Tensor(), 1, 1), g.narrow(0, 0, xs.size(0)))));
    return std::pair{xl.grad(), wl.grad()};
  };
  const auto [gx, gw] = grads(x);
  // Oracle: the weight gradient of each image alone, summed; the image gradients one by one.
  Tensor gw_sum = Tensor::zeros(w.shape(), DType::Float64);
  for (std::int64_t n = 0; n < 37; ++n) {
    Tensor xl = x.narrow(0, n, 1).detach(), wl = w.detach();
    xl.set_requires_grad(true);
    wl.set_requires_grad(true);
    backward(sum(mul(conv2d(xl, wl, Tensor(), 1, 1), g.narrow(0, n, 1))));
    gw_sum = add(gw_sum, wl.grad());
    require_close(gx.narrow(0, n, 1), xl.grad(), 1e-12, 1e-12);
  }
  require_close(gw, gw_sum, 1e-10, 1e-10);
  // Bitwise the same with one thread.
  const int threads = kernels::num_threads();
  kernels::set_num_threads(1);
  const auto [gx1, gw1] = grads(x);
  kernels::set_num_threads(threads);
  CHECK(gw1.to_vector<double>() == gw.to_vector<double>());
  CHECK(gx1.to_vector<double>() == gx.to_vector<double>());
}

// ---------------------------------------------------------------- glu

TEST_CASE("glu matches first half * sigmoid(second half) along any dim", "[cpu][conv]") {
  Tensor x = random_tensor({4, 6, 2}, 100, -3, 3, DType::Float64, false);
  for (std::int64_t dim : {0, 1, -1}) {
    INFO("dim " << dim);
    require_close(glu(x, dim), naive_glu(x, dim < 0 ? dim + 3 : dim), 1e-12, 1e-12);
  }
  // Non-contiguous input, and float32.
  Tensor xt = random_tensor({2, 6, 4}, 101, -3, 3, DType::Float32, false).transpose(1, 2);
  require_close(glu(xt, 2).to(DType::Float64), naive_glu(xt, 2), 1e-6, 1e-6);
  // glu([a, b]) with b = 0 halves a.
  require_close(glu(Tensor::from_vector<double>({4, -2, 0, 0}, {4})),
                Tensor::from_vector<double>({2, -1}, {2}));
}

TEST_CASE("gradcheck: glu", "[cpu][conv][grad]") {
  Tensor x = random_tensor({4, 6, 2}, 110, -2, 2);
  for (std::int64_t dim : {0, 1, 2, -1}) {
    INFO("dim " << dim);
    require_gradcheck([dim](const std::vector<Tensor>& t) { return glu(t[0], dim); }, {x});
  }
}

// ---------------------------------------------------------------- errors

TEST_CASE("conv errors name the op and the shapes", "[cpu][conv]") {
  Tensor x = Tensor::zeros({2, 4, 8});
  // Weight channels that do not match x name both shapes.
  CHECK(error_message([&] {
          causal_conv1d(x, Tensor::zeros({3, 4}));
        }) ==
        "[causal_conv1d] weight has 3 channels but x has 4: x (2, 4, 8) float32 cpu, weight "
        "(3, 4) float32 cpu");
  // Bad kernel shapes.
  CHECK(error_message([&] {
          causal_conv1d(x, Tensor::zeros({4, 2, 3}));
        }) ==
        "[causal_conv1d] weight must be (D, K) or (D, 1, K) with K >= 1, got (4, 2, 3) float32 "
        "cpu");
  CHECK(error_message([&] {
          causal_conv1d(x, Tensor::zeros({4, 0}));
        }).find("[causal_conv1d] weight must be (D, K) or (D, 1, K) with K >= 1") == 0);
  CHECK(error_message([&] {
          causal_conv1d(Tensor::zeros({4, 8}), Tensor::zeros({4, 3}));
        }) == "[causal_conv1d] x must be (B, D, L), got (4, 8) float32 cpu");
  CHECK(error_message([&] {
          causal_conv1d(x, Tensor::zeros({4, 3}), Tensor::zeros({3}));
        }) ==
        "[causal_conv1d] bias must be (4,) to match x (2, 4, 8) float32 cpu, got (3,) float32 cpu");
  CHECK(error_message([&] {
          causal_conv1d(x, Tensor::zeros({4, 3}, DType::Float64));
        }) == "[causal_conv1d] dtypes differ: (2, 4, 8) float32 cpu and (4, 3) float64 cpu");
  // The update checks its state against x_t and the weight.
  Tensor state = Tensor::zeros({2, 4, 3});
  CHECK(error_message([&] {
          kernels::causal_conv1d_update(Tensor::zeros({2, 4}), state, Tensor::zeros({4, 4}),
                                        Tensor(), false);
        }) ==
        "[causal_conv1d_update] conv_state must be (B, D, K) = (2, 4, 4) for x_t (2, 4) "
        "float32 cpu and weight (4, 4) float32 cpu, got (2, 4, 3) float32 cpu");

  Tensor img = Tensor::zeros({1, 3, 4, 4});
  CHECK(error_message([&] {
          conv2d(img, Tensor::zeros({8, 2, 3, 3}));
        }) ==
        "[conv2d] weight has 2 input channels but x has 3: x (1, 3, 4, 4) float32 cpu, weight "
        "(8, 2, 3, 3) float32 cpu");
  CHECK(error_message([&] {
          conv2d(img, Tensor::zeros({8, 3, 3}));
        }) == "[conv2d] weight must be (O, C, kh, kw) with kh, kw >= 1, got (8, 3, 3) float32 cpu");
  CHECK(error_message([&] {
          conv2d(img, Tensor::zeros({8, 3, 5, 3}));
        }) ==
        "[conv2d] kernel (5, 3) is larger than the padded input (4, 4): x (1, 3, 4, 4) float32 "
        "cpu, weight (8, 3, 5, 3) float32 cpu, padding (0, 0)");
  CHECK(conv2d(img, Tensor::zeros({8, 3, 5, 3}), Tensor(), 1, 1).shape() == Shape{1, 8, 2, 4});
  CHECK(error_message([&] {
          conv2d(img, Tensor::zeros({8, 3, 2, 2}), Tensor(), 0);
        }) == "[conv2d] stride must be positive, got (0, 0)");
  CHECK(
      error_message([&] {
        conv2d(img, Tensor::zeros({8, 3, 2, 2}), Tensor::zeros({4}));
      }) ==
      "[conv2d] bias must be (8,) to match weight (8, 3, 2, 2) float32 cpu, got (4,) float32 cpu");
  CHECK(error_message([&] {
          conv2d(Tensor::zeros({3, 4, 4}), Tensor::zeros({8, 3, 2, 2}));
        }) == "[conv2d] x must be (N, C, H, W), got (3, 4, 4) float32 cpu");

  CHECK(error_message([&] {
          glu(Tensor::zeros({2, 5}));
        }) ==
        "[glu] dim 1 of x (2, 5) float32 cpu has odd size 5; glu splits it into two equal halves");
  CHECK(error_message([&] {
          glu(Tensor::zeros({2, 5}), 2);
        }).find("[glu] dim 2 out of range") == 0);
  CHECK(error_message([&] { glu(Tensor::scalar(1.0)); }) ==
        "[glu] x must have at least one dim, got () float32 cpu");
}
