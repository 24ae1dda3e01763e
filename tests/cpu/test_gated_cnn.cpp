// MambaOut's Gated CNN block (1-D and 2-D) and its "same" depthwise convs:
// the convs against direct loops and finite differences (gradcheck), thread
// count independence; the blocks against an independent implementation
// written from the definition (explicit loops for LayerNorm, the linears, the
// depthwise conv, GELU and the gate) in float64; padded sequences against
// each sequence run alone; gradients of the blocks by finite differences;
// the causal block's step mode against its forward; parameter names, shapes,
// tags and init ranges against the reference's nn.Module.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops/dwconv.h"
#include "kernels/common.h"
#include "kernels/dwconv.h"
#include "layers/ssm/gated_cnn.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

// ---------------------------------------------------------------- oracles

// y[b, c, t] = bias[c] + sum_k w[c, k] x[b, c, t - K/2 + k], straight from the definition.
Tensor naive_dwconv1d(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const std::int64_t B = x.size(0), C = x.size(1), L = x.size(2), K = w.size(-1);
  const auto xv = x.to_vector<double>();
  const auto wv = w.to_vector<double>();  // (C, K) or (C, 1, K): same order
  const auto bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>(C, 0.0);
  std::vector<double> y(static_cast<std::size_t>(B * C * L));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t t = 0; t < L; ++t) {
        double acc = bv[c];
        for (std::int64_t k = 0; k < K; ++k) {
          const std::int64_t s = t - K / 2 + k;
          if (s >= 0 && s < L) acc += wv[c * K + k] * xv[(b * C + c) * L + s];
        }
        y[(b * C + c) * L + t] = acc;
      }
  return Tensor::from_vector<double>(y, {B, C, L});
}

// PyTorch's conv2d(x, w, bias, padding=(kh//2, kw//2), groups=C), straight from the definition.
Tensor naive_dwconv2d(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const std::int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const std::int64_t kh = w.size(2), kw = w.size(3);
  const auto xv = x.to_vector<double>();
  const auto wv = w.to_vector<double>();
  const auto bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>(C, 0.0);
  std::vector<double> y;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t i = 0; i < H; ++i)
        for (std::int64_t j = 0; j < W; ++j) {
          double acc = bv[c];
          for (std::int64_t p = 0; p < kh; ++p)
            for (std::int64_t q = 0; q < kw; ++q) {
              const std::int64_t h = i - kh / 2 + p, v = j - kw / 2 + q;
              if (h < 0 || h >= H || v < 0 || v >= W) continue;
              acc += wv[(c * kh + p) * kw + q] * xv[((b * C + c) * H + h) * W + v];
            }
          y.push_back(acc);
        }
  return Tensor::from_vector<double>(y, {B, C, H, W});
}

double gelu_ref(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

std::vector<double> param_values(const Module& m, const std::string& name) {
  for (const auto& p : m.named_parameters()) {
    if (p.name == name) return p.tensor.to_vector<double>();
  }
  FAIL("no parameter " << name);
  return {};
}

// The Gated CNN block from its definition, on x laid out as (N, S, dim)
// (S = L positions of a sequence, or H W pixels of an image). conv maps the
// conv channels c (N, S, Cc) to (N, S, Cc).
struct NaiveGatedCNN {
  std::int64_t dim, hidden, cc;
  bool residual_and_norm;
  std::vector<double> nw, nb, w1, b1, cw, cb, w2, b2;

  NaiveGatedCNN(const Module& m, std::int64_t dim_, std::int64_t hidden_, std::int64_t cc_,
                bool residual_and_norm_)
      : dim(dim_), hidden(hidden_), cc(cc_), residual_and_norm(residual_and_norm_) {
    if (residual_and_norm) {
      nw = param_values(m, "norm.weight");
      nb = param_values(m, "norm.bias");
    }
    w1 = param_values(m, "fc1.weight");  // (2 hidden, dim)
    b1 = param_values(m, "fc1.bias");
    cw = param_values(m, "conv.weight");  // (Cc, 1, k[, k])
    cb = param_values(m, "conv.bias");
    w2 = param_values(m, "fc2.weight");  // (dim, hidden)
    b2 = param_values(m, "fc2.bias");
  }

  template <class Conv>
  std::vector<double> run(const std::vector<double>& x, std::int64_t N, std::int64_t S,
                          Conv&& conv) const {
    const std::int64_t ni = hidden - cc;
    std::vector<double> g(N * S * hidden), ip(N * S * ni), c(N * S * cc);
    for (std::int64_t r = 0; r < N * S; ++r) {
      const double* xr = &x[r * dim];
      std::vector<double> h(xr, xr + dim);
      if (residual_and_norm) {  // LayerNorm, biased variance, eps 1e-6
        double mean = 0.0, var = 0.0;
        for (double v : h) mean += v;
        mean /= static_cast<double>(dim);
        for (double v : h) var += (v - mean) * (v - mean);
        var /= static_cast<double>(dim);
        for (std::int64_t d = 0; d < dim; ++d) {
          h[d] = (xr[d] - mean) / std::sqrt(var + 1e-6) * nw[d] + nb[d];
        }
      }
      for (std::int64_t o = 0; o < 2 * hidden; ++o) {
        double z = b1[o];
        for (std::int64_t d = 0; d < dim; ++d) z += w1[o * dim + d] * h[d];
        if (o < hidden) {
          g[r * hidden + o] = z;
        } else if (o < hidden + ni) {
          ip[r * ni + (o - hidden)] = z;
        } else {
          c[r * cc + (o - hidden - ni)] = z;
        }
      }
    }
    const std::vector<double> cout = conv(c);  // (N, S, Cc)
    std::vector<double> y(N * S * dim);
    for (std::int64_t r = 0; r < N * S; ++r) {
      std::vector<double> u(hidden);
      for (std::int64_t j = 0; j < hidden; ++j) {
        const double other = j < ni ? ip[r * ni + j] : cout[r * cc + (j - ni)];
        u[j] = gelu_ref(g[r * hidden + j]) * other;
      }
      for (std::int64_t d = 0; d < dim; ++d) {
        double acc = b2[d];
        for (std::int64_t j = 0; j < hidden; ++j) acc += w2[d * hidden + j] * u[j];
        y[r * dim + d] = acc + (residual_and_norm ? x[r * dim + d] : 0.0);
      }
    }
    return y;
  }

  // 1-D: x (N, L, dim); the conv reads t - pad .. t - pad + K - 1 with pad = K/2
  // (centred) or K - 1 (causal), zeros outside [0, L).
  Tensor forward1d(const Tensor& x, std::int64_t K, bool causal) const {
    const std::int64_t N = x.size(0), L = x.size(1);
    const std::int64_t pad = causal ? K - 1 : K / 2;
    const auto y = run(x.to_vector<double>(), N, L, [&](const std::vector<double>& cin) {
      std::vector<double> out(cin.size());
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t t = 0; t < L; ++t)
          for (std::int64_t ch = 0; ch < cc; ++ch) {
            double acc = cb[ch];
            for (std::int64_t k = 0; k < K; ++k) {
              const std::int64_t s = t - pad + k;
              if (s >= 0 && s < L) acc += cw[ch * K + k] * cin[(n * L + s) * cc + ch];
            }
            out[(n * L + t) * cc + ch] = acc;
          }
      return out;
    });
    return Tensor::from_vector<double>(y, x.shape());
  }

  // 2-D: x (N, H, W, dim); a k x k conv with padding k/2, zeros outside the image.
  Tensor forward2d(const Tensor& x, std::int64_t k) const {
    const std::int64_t N = x.size(0), H = x.size(1), W = x.size(2);
    const auto y = run(x.to_vector<double>(), N, H * W, [&](const std::vector<double>& cin) {
      std::vector<double> out(cin.size());
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t i = 0; i < H; ++i)
          for (std::int64_t j = 0; j < W; ++j)
            for (std::int64_t ch = 0; ch < cc; ++ch) {
              double acc = cb[ch];
              for (std::int64_t p = 0; p < k; ++p)
                for (std::int64_t q = 0; q < k; ++q) {
                  const std::int64_t h = i - k / 2 + p, v = j - k / 2 + q;
                  if (h < 0 || h >= H || v < 0 || v >= W) continue;
                  acc += cw[(ch * k + p) * k + q] * cin[((n * H + h) * W + v) * cc + ch];
                }
              out[((n * H + i) * W + j) * cc + ch] = acc;
            }
      return out;
    });
    return Tensor::from_vector<double>(y, x.shape());
  }
};

// Overwrites every parameter with seeded random values (norm weights around
// 1), so that the comparison with the oracle sees every parameter's role.
void randomize(const Module& m, std::uint64_t seed) {
  for (const auto& p : m.named_parameters()) {
    const bool norm_weight = p.name.find("norm.weight") != std::string::npos;
    p.tensor.copy_(random_tensor(p.tensor.shape(), seed++, norm_weight ? 0.5 : -0.6,
                                 norm_weight ? 1.5 : 0.6, p.tensor.dtype(), false));
  }
}

// Central differences of s(params) = sum(f() * R) against backward, for every
// element of every parameter of m (float64, small modules only).
void require_param_grads(const Module& m, const std::function<Tensor()>& f, const Tensor& R) {
  for (const auto& p : m.named_parameters()) p.tensor.zero_grad();
  backward(sum(mul(f(), R)));
  const double eps = 1e-6;
  for (const auto& p : m.named_parameters()) {
    INFO("parameter " << p.name);
    REQUIRE(p.tensor.grad().defined());
    const auto analytic = p.tensor.grad().to_vector<double>();
    double* v = p.tensor.data<double>();
    NoGradGuard no_grad;
    for (std::int64_t k = 0; k < p.tensor.numel(); ++k) {
      const double keep = v[k];
      v[k] = keep + eps;
      const double up = sum(mul(f(), R)).to_vector<double>()[0];
      v[k] = keep - eps;
      const double down = sum(mul(f(), R)).to_vector<double>()[0];
      v[k] = keep;
      const double numeric = (up - down) / (2 * eps);
      INFO("index " << k << ": analytic " << analytic[k] << ", numeric " << numeric);
      REQUIRE(std::abs(analytic[k] - numeric) <= 1e-6 + 1e-5 * std::abs(numeric));
    }
  }
}

struct NamedShape {
  std::string name;
  Shape shape;
};
void require_parameters(const Module& m, const std::vector<NamedShape>& want) {
  const auto params = m.named_parameters();
  REQUIRE(params.size() == want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    INFO("parameter " << k);
    CHECK(params[k].name == want[k].name);
    CHECK(params[k].tensor.shape() == want[k].shape);
    const bool no_decay =
        params[k].name.find("bias") != std::string::npos || params[k].name.rfind("norm.", 0) == 0;
    CHECK(params[k].has_tag("no_decay") == no_decay);
  }
}

}  // namespace

// ---------------------------------------------------------------- dwconv1d / dwconv2d

TEST_CASE("dwconv1d matches a direct loop: kernel sizes, bias, weight layouts", "[cpu][gcnn]") {
  const std::int64_t B = 2, C = 3, L = 6;
  Tensor x = random_tensor({B, C, L}, 1, -2, 2, DType::Float64, false);
  Tensor bias = random_tensor({C}, 2, -1, 1, DType::Float64, false);
  for (std::int64_t K : {1, 3, 5, 7, 15}) {  // 7 and 15 > L: taps reach past both ends
    Tensor w = random_tensor({C, K}, 3 + K, -1, 1, DType::Float64, false);
    for (bool with_bias : {false, true}) {
      INFO("K " << K << " bias " << with_bias);
      const Tensor b = with_bias ? bias : Tensor();
      const Tensor want = naive_dwconv1d(x, w, b);
      require_close(dwconv1d(x, w, b), want, 1e-12, 1e-12);
      require_close(dwconv1d(x, w.reshape({C, 1, K}), b), want, 1e-12, 1e-12);
    }
  }
  // A kernel (1, 1, 1) sums each position with its neighbours.
  Tensor ramp = Tensor::from_vector<double>({1, 2, 3, 4}, {1, 1, 4});
  require_close(dwconv1d(ramp, Tensor::ones({1, 3}, DType::Float64)),
                Tensor::from_vector<double>({3, 6, 9, 7}, {1, 1, 4}));
  // A non-contiguous (B, L, C) -> (B, C, L) input, as the block passes it.
  Tensor xt = random_tensor({B, L, C}, 20, -1, 1, DType::Float64, false);
  Tensor w = random_tensor({C, 1, 5}, 21, -1, 1, DType::Float64, false);
  require_close(dwconv1d(xt.transpose(1, 2), w, bias), naive_dwconv1d(xt.transpose(1, 2), w, bias),
                1e-12, 1e-12);
}

TEST_CASE("dwconv2d matches a direct loop: 7x7 and other odd kernels", "[cpu][gcnn]") {
  Tensor bias = random_tensor({3}, 30, -1, 1, DType::Float64, false);
  struct Case {
    Shape x;
    std::int64_t kh, kw;
  };
  for (const Case& c : {Case{{2, 3, 9, 8}, 7, 7}, Case{{1, 3, 4, 5}, 7, 7},  // kernel > image
                        Case{{2, 3, 5, 6}, 3, 5}, Case{{1, 3, 3, 4}, 1, 1}}) {
    Tensor x = random_tensor(c.x, 31 + c.kh, -2, 2, DType::Float64, false);
    Tensor w = random_tensor({3, 1, c.kh, c.kw}, 32 + c.kw, -1, 1, DType::Float64, false);
    INFO("x " << shape_str(c.x) << " kernel (" << c.kh << ", " << c.kw << ")");
    require_close(dwconv2d(x, w, bias), naive_dwconv2d(x, w, bias), 1e-12, 1e-12);
    require_close(dwconv2d(x, w), naive_dwconv2d(x, w, Tensor()), 1e-12, 1e-12);
  }
  // Channels last, permuted to (B, C, H, W) as the 2-D block passes it.
  Tensor nhwc = random_tensor({2, 6, 5, 3}, 40, -1, 1, DType::Float64, false);
  Tensor w = random_tensor({3, 1, 7, 7}, 41, -1, 1, DType::Float64, false);
  const Tensor x = nhwc.permute({0, 3, 1, 2});
  require_close(dwconv2d(x, w, bias), naive_dwconv2d(x, w, bias), 1e-12, 1e-12);
}

TEST_CASE("gradcheck: dwconv1d and dwconv2d w.r.t. input, weight and bias", "[cpu][gcnn][grad]") {
  Tensor x1 = random_tensor({2, 3, 5}, 50);
  Tensor b = random_tensor({3}, 51);
  for (std::int64_t K : {1, 3, 7}) {
    INFO("dwconv1d K " << K);
    Tensor w = random_tensor({3, 1, K}, 52 + K);
    require_gradcheck([](const std::vector<Tensor>& t) { return dwconv1d(t[0], t[1], t[2]); },
                      {x1, w, b});
    require_gradcheck([](const std::vector<Tensor>& t) { return dwconv1d(t[0], t[1]); },
                      {x1, w.reshape({3, K}).detach().set_requires_grad(true)});
  }
  Tensor x2 = random_tensor({2, 2, 4, 5}, 60);
  Tensor b2 = random_tensor({2}, 61);
  for (std::int64_t k : {3, 7}) {
    INFO("dwconv2d k " << k);
    Tensor w = random_tensor({2, 1, k, k}, 62 + k);
    require_gradcheck([](const std::vector<Tensor>& t) { return dwconv2d(t[0], t[1], t[2]); },
                      {x2, w, b2});
  }
  Tensor w35 = random_tensor({2, 1, 3, 5}, 70);
  require_gradcheck([](const std::vector<Tensor>& t) { return dwconv2d(t[0], t[1], t[2]); },
                    {x2, w35, b2});
  // Only some inputs requiring grad: the others get none.
  require_gradcheck([](const std::vector<Tensor>& t) { return dwconv2d(t[0], t[1], t[2]); },
                    {x2.detach(), w35, b2});
  require_gradcheck([](const std::vector<Tensor>& t) { return dwconv2d(t[0], t[1], t[2]); },
                    {x2, w35.detach(), b2.detach()});
}

TEST_CASE("dwconv float32 on parallel-sized inputs: any thread count, bitwise", "[cpu][gcnn]") {
  // Work B C H W k k > 65536: the planes and channels run in parallel.
  struct Case {
    Shape x, w;
  };
  for (const Case& c : {Case{{3, 16, 2000}, {16, 1, 7}}, Case{{2, 8, 24, 20}, {8, 1, 7, 7}}}) {
    const bool two_d = c.x.size() == 4;
    INFO("x " << shape_str(c.x));
    Tensor x = random_tensor(c.x, 80, -1, 1, DType::Float32, false);
    Tensor w = random_tensor(c.w, 81, -1, 1, DType::Float32, false);
    Tensor bias = random_tensor({c.w[0]}, 82, -1, 1, DType::Float32, false);
    Tensor g = random_tensor(c.x, 83, -1, 1, DType::Float32, false);
    auto fwd = [&](const Tensor& xx, const Tensor& ww, const Tensor& bb) {
      return two_d ? kernels::dwconv2d_forward(xx, ww, bb) : kernels::dwconv1d_forward(xx, ww, bb);
    };
    auto bwd = [&](const Tensor& gg, const Tensor& xx, const Tensor& ww) {
      return two_d ? kernels::dwconv2d_backward(gg, xx, ww, true, true, true)
                   : kernels::dwconv1d_backward(gg, xx, ww, true, true, true);
    };
    const int threads = kernels::num_threads();
    kernels::set_num_threads(1);
    const Tensor y1 = fwd(x, w, bias);
    const auto g1 = bwd(g, x, w);
    kernels::set_num_threads(std::max(2, threads));
    const Tensor yn = fwd(x, w, bias);
    const auto gn = bwd(g, x, w);
    kernels::set_num_threads(threads);
    CHECK(y1.dtype() == DType::Float32);
    CHECK(y1.to_vector<float>() == yn.to_vector<float>());
    CHECK(g1.x.to_vector<float>() == gn.x.to_vector<float>());
    CHECK(g1.weight.to_vector<float>() == gn.weight.to_vector<float>());
    CHECK(g1.bias.to_vector<float>() == gn.bias.to_vector<float>());
    // And they are the float64 results, rounded.
    const Tensor xd = x.to(DType::Float64), wd = w.to(DType::Float64);
    const Tensor bd = bias.to(DType::Float64), gd = g.to(DType::Float64);
    require_close(y1.to(DType::Float64),
                  two_d ? naive_dwconv2d(xd, wd, bd) : naive_dwconv1d(xd, wd, bd), 1e-5, 1e-5);
    const auto ref = bwd(gd, xd, wd);
    require_close(g1.x.to(DType::Float64), ref.x, 1e-5, 1e-5);
    require_close(g1.weight.to(DType::Float64), ref.weight, 1e-3, 1e-5);
    require_close(g1.bias.to(DType::Float64), ref.bias, 1e-3, 1e-5);
  }
}

TEST_CASE("dwconv errors name the op and the shapes", "[cpu][gcnn]") {
  Tensor x = Tensor::zeros({2, 4, 8});
  CHECK(error_message([&] {
          dwconv1d(x, Tensor::zeros({4, 1, 4}));
        }) ==
        "[dwconv1d] kernel sizes must be odd for same padding (k / 2 on each side), got (4, 1, 4) "
        "float32 cpu");
  CHECK(error_message([&] {
          dwconv1d(x, Tensor::zeros({3, 5}));
        }) ==
        "[dwconv1d] weight has 3 channels but x has 4: x (2, 4, 8) float32 cpu, weight (3, 5) "
        "float32 cpu");
  CHECK(error_message([&] {
          dwconv1d(x, Tensor::zeros({4, 2, 3}));
        }) ==
        "[dwconv1d] weight must be (C, K) or (C, 1, K) with K >= 1, got (4, 2, 3) float32 cpu");
  CHECK(error_message([&] {
          dwconv1d(Tensor::zeros({4, 8}), Tensor::zeros({4, 3}));
        }) == "[dwconv1d] x must be (B, C, L), got (4, 8) float32 cpu");
  CHECK(error_message([&] {
          dwconv1d(x, Tensor::zeros({4, 3}), Tensor::zeros({3}));
        }) ==
        "[dwconv1d] bias must be (4,) to match x (2, 4, 8) float32 cpu, got (3,) float32 cpu");
  CHECK(error_message([&] {
          dwconv1d(x, Tensor::zeros({4, 3}, DType::Float64));
        }) == "[dwconv1d] dtypes differ: (2, 4, 8) float32 cpu and (4, 3) float64 cpu");
  Tensor img = Tensor::zeros({1, 3, 5, 5});
  CHECK(error_message([&] {
          dwconv2d(img, Tensor::zeros({3, 7, 7}));
        }) ==
        "[dwconv2d] weight must be (C, 1, kh, kw) with kh, kw >= 1, got (3, 7, 7) float32 cpu");
  CHECK(error_message([&] {
          dwconv2d(img, Tensor::zeros({3, 1, 3, 2}));
        }) ==
        "[dwconv2d] kernel sizes must be odd for same padding (k / 2 on each side), got (3, 1, 3, "
        "2) float32 cpu");
  CHECK(error_message([&] {
          dwconv2d(Tensor::zeros({3, 5, 5}), Tensor::zeros({3, 1, 3, 3}));
        }) == "[dwconv2d] x must be (B, C, H, W), got (3, 5, 5) float32 cpu");
  CHECK(error_message([&] {
          kernels::dwconv2d_backward(Tensor::zeros({1, 3, 5, 4}), img, Tensor::zeros({3, 1, 3, 3}),
                                     true, true, true);
        }) ==
        "[dwconv2d] gradient (1, 3, 5, 4) float32 cpu does not match x (1, 3, 5, 5) float32 "
        "cpu");
}

// ---------------------------------------------------------------- the blocks

TEST_CASE("GatedCNNBlock1d equals the block written from its definition", "[cpu][gcnn]") {
  const std::int64_t B = 2, L = 9, dim = 6;
  Tensor x = random_tensor({B, L, dim}, 100, -2, 2, DType::Float64, false);
  struct Case {
    double conv_ratio;
    std::int64_t k;
    bool causal, residual_and_norm;
  };
  for (const Case& c :
       {Case{1.0, 7, false, true}, Case{0.5, 3, false, true}, Case{1.0, 11, false, true},  // 11 > L
        Case{1.0, 4, true, true}, Case{0.5, 7, true, true}, Case{1.0, 5, false, false},
        Case{0.5, 4, true, false}}) {
    INFO("conv_ratio " << c.conv_ratio << " k " << c.k << " causal " << c.causal
                       << " residual_and_norm " << c.residual_and_norm);
    Generator gen(7);
    GatedCNNBlock1dOptions o;
    o.conv_ratio = c.conv_ratio;
    o.kernel_size = c.k;
    o.causal = c.causal;
    o.residual_and_norm = c.residual_and_norm;
    GatedCNNBlock1d block(dim, o, gen, DType::Float64);
    randomize(block, 200);
    CHECK(block.hidden() == 16);  // int(8/3 * 6)
    CHECK(block.conv_channels() == (c.conv_ratio == 1.0 ? 6 : 3));
    const NaiveGatedCNN ref(block, dim, block.hidden(), block.conv_channels(), c.residual_and_norm);
    require_close(block.forward(x), ref.forward1d(x, c.k, c.causal), 1e-12, 1e-12);
  }
  // GatedCNNMixer1d is the block without norm and residual, whatever the options say.
  Generator gen(8);
  GatedCNNMixer1d mixer(dim, GatedCNNBlock1dOptions{}, gen, DType::Float64);
  randomize(mixer, 300);
  CHECK(mixer.norm() == nullptr);
  CHECK_FALSE(mixer.options().residual_and_norm);
  const NaiveGatedCNN ref(mixer, dim, 16, 6, false);
  require_close(mixer.forward(x), ref.forward1d(x, 7, false), 1e-12, 1e-12);
}

TEST_CASE("GatedCNNBlock1d in float32 matches float64", "[cpu][gcnn]") {
  Generator gen(9);
  GatedCNNBlock1d block(16, {}, gen, DType::Float32);
  Generator gen64(9);
  GatedCNNBlock1d block64(16, {}, gen64, DType::Float64);
  Tensor x = random_tensor({2, 40, 16}, 110, -2, 2, DType::Float32, false);
  const Tensor y = block.forward(x);
  CHECK(y.dtype() == DType::Float32);
  require_close(y.to(DType::Float64), block64.forward(x.to(DType::Float64)), 1e-5, 1e-5);
}

TEST_CASE("GatedCNNBlock2d equals the block written from its definition", "[cpu][gcnn]") {
  const std::int64_t dim = 6;
  Tensor x = random_tensor({2, 5, 9, dim}, 120, -2, 2, DType::Float64, false);
  struct Case {
    double conv_ratio;
    std::int64_t k;
  };
  for (const Case& c : {Case{1.0, 7}, Case{0.5, 3}, Case{1.0, 11}}) {
    INFO("conv_ratio " << c.conv_ratio << " k " << c.k);
    Generator gen(10);
    GatedCNNBlock2dOptions o;
    o.conv_ratio = c.conv_ratio;
    o.kernel_size = c.k;
    GatedCNNBlock2d block(dim, o, gen, DType::Float64);
    randomize(block, 400);
    const NaiveGatedCNN ref(block, dim, block.hidden(), block.conv_channels(), true);
    require_close(block.forward(x), ref.forward2d(x, c.k), 1e-12, 1e-12);
  }
  // A non-contiguous (channels-first, permuted) input gives the same result.
  Generator gen(11);
  GatedCNNBlock2d block(dim, {}, gen, DType::Float64);
  Tensor nchw = random_tensor({2, dim, 4, 5}, 121, -2, 2, DType::Float64, false);
  const Tensor xp = nchw.permute({0, 2, 3, 1});
  require_close(block.forward(xp), block.forward(xp.contiguous()), 1e-12, 1e-12);
}

TEST_CASE("padded sequences: real positions equal each sequence run alone", "[cpu][gcnn]") {
  const std::int64_t B = 3, L = 10, dim = 6;
  const std::vector<std::int64_t> len = {10, 4, 7};
  Tensor x = random_tensor({B, L, dim}, 130, -2, 2, DType::Float64, false);
  const Tensor lengths = Tensor::from_vector<std::int64_t>(len, {B});
  // x2: the same real positions, other values at the padding; x3: NaN there.
  Tensor x2 = x.clone(), x3 = x.clone();
  {
    const Tensor noise = random_tensor({B, L, dim}, 131, -50, 50, DType::Float64, false);
    double* p2 = x2.data<double>();
    double* p3 = x3.data<double>();
    const auto nv = noise.to_vector<double>();
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t t = len[b]; t < L; ++t)
        for (std::int64_t d = 0; d < dim; ++d) {
          p2[(b * L + t) * dim + d] = nv[(b * L + t) * dim + d];
          p3[(b * L + t) * dim + d] = std::numeric_limits<double>::quiet_NaN();
        }
  }
  for (bool causal : {false, true}) {
    for (bool mixer : {false, true}) {
      INFO("causal " << causal << " mixer " << mixer);
      Generator gen(12);
      GatedCNNBlock1dOptions o;
      o.causal = causal;
      o.kernel_size = causal ? 4 : 7;
      o.residual_and_norm = !mixer;
      GatedCNNBlock1d block(dim, o, gen, DType::Float64);
      randomize(block, 500);
      const Tensor y = block.forward_padded(x, lengths);
      const Tensor y2 = block.forward_padded(x2, lengths);
      const Tensor y3 =
          block.forward_padded(x3, Tensor::from_vector<std::int64_t>(len, {B}, DType::Int32));
      for (std::int64_t b = 0; b < B; ++b) {
        INFO("sequence " << b << " length " << len[b]);
        const Tensor alone = block.forward(x.narrow(0, b, 1).narrow(1, 0, len[b]));
        require_close(y.narrow(0, b, 1).narrow(1, 0, len[b]), alone, 1e-12, 1e-12);
        require_close(y2.narrow(0, b, 1).narrow(1, 0, len[b]), alone, 1e-12, 1e-12);
        require_close(y3.narrow(0, b, 1).narrow(1, 0, len[b]), alone, 1e-12, 1e-12);
      }
      // The control: without lengths the centred conv lets the padding in at
      // the last real positions of a short sequence.
      const Tensor leaky = block.forward(x2).narrow(0, 1, 1).narrow(1, len[1] - 1, 1);
      const Tensor want = y.narrow(0, 1, 1).narrow(1, len[1] - 1, 1);
      const auto lv = leaky.to_vector<double>(), wv = want.to_vector<double>();
      double diff = 0.0;
      for (std::size_t k = 0; k < lv.size(); ++k) diff = std::max(diff, std::abs(lv[k] - wv[k]));
      if (causal) {
        CHECK(diff <= 1e-12);
      } else {
        CHECK(diff > 1e-3);
      }
    }
  }
}

TEST_CASE("GatedCNNMixer1d in the backbone's residual block honours lengths", "[cpu][gcnn]") {
  const std::int64_t B = 2, L = 8, dim = 4;
  Generator gen(13);
  auto mixer =
      std::make_shared<GatedCNNMixer1d>(dim, GatedCNNBlock1dOptions{}, gen, DType::Float64);
  randomize(*mixer, 600);
  ResidualBlock block(make_norm("layer", dim, 1e-5, DType::Float64), mixer, 0.0, nullptr, true);
  Tensor x = random_tensor({B, L, dim}, 140, -2, 2, DType::Float64, false);
  const std::vector<std::int64_t> len = {8, 3};
  const Tensor y = block.forward(x, Tensor::from_vector<std::int64_t>(len, {B}));
  for (std::int64_t b = 0; b < B; ++b) {
    INFO("sequence " << b);
    require_close(y.narrow(0, b, 1).narrow(1, 0, len[b]),
                  block.forward(x.narrow(0, b, 1).narrow(1, 0, len[b])), 1e-12, 1e-12);
  }
  // The residual block's parameter names hold the mixer's.
  std::vector<std::string> names;
  for (const auto& p : block.named_parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"norm.weight", "norm.bias", "mixer.fc1.weight",
                                          "mixer.fc1.bias", "mixer.conv.weight", "mixer.conv.bias",
                                          "mixer.fc2.weight", "mixer.fc2.bias"});
}

TEST_CASE("gradcheck: the Gated CNN blocks w.r.t. input and parameters", "[cpu][gcnn][grad]") {
  const std::int64_t dim = 4;  // hidden int(8/3 * 4) = 10, Cc 4
  Tensor x = random_tensor({2, 5, dim}, 150);
  Tensor R1 = random_tensor({2, 5, dim}, 151, -1, 1, DType::Float64, false);
  const Tensor lengths = Tensor::from_vector<std::int64_t>({5, 3}, {2});
  for (bool causal : {false, true}) {
    INFO("1-D causal " << causal);
    Generator gen(14);
    GatedCNNBlock1dOptions o;
    o.causal = causal;
    o.kernel_size = causal ? 4 : 7;
    GatedCNNBlock1d block(dim, o, gen, DType::Float64);
    randomize(block, 700);
    require_gradcheck([&](const std::vector<Tensor>& t) { return block.forward(t[0]); }, {x});
    require_gradcheck(
        [&](const std::vector<Tensor>& t) { return block.forward_padded(t[0], lengths); }, {x});
    const Tensor xc = x.detach();
    require_param_grads(
        block, [&] { return block.forward(xc); }, R1);
  }
  Generator gen(15);
  GatedCNNBlock2dOptions o2;
  o2.conv_ratio = 0.5;  // Cc 2: the identity part i is 8 wide
  GatedCNNBlock2d block2(dim, o2, gen, DType::Float64);
  randomize(block2, 800);
  Tensor x2 = random_tensor({1, 4, 5, dim}, 160);
  require_gradcheck([&](const std::vector<Tensor>& t) { return block2.forward(t[0]); }, {x2});
  const Tensor R2 = random_tensor({1, 4, 5, dim}, 161, -1, 1, DType::Float64, false);
  const Tensor x2c = x2.detach();
  require_param_grads(
      block2, [&] { return block2.forward(x2c); }, R2);
}

TEST_CASE("causal GatedCNNBlock1d: stepping equals forward", "[cpu][gcnn]") {
  const std::int64_t B = 2, L = 8, dim = 6;
  Tensor x = random_tensor({B, L, dim}, 170, -2, 2, DType::Float64, false);
  for (bool residual_and_norm : {true, false}) {
    INFO("residual_and_norm " << residual_and_norm);
    Generator gen(16);
    GatedCNNBlock1dOptions o;
    o.causal = true;
    o.kernel_size = 4;
    o.conv_ratio = 0.5;
    o.residual_and_norm = residual_and_norm;
    GatedCNNBlock1d block(dim, o, gen, DType::Float64);
    randomize(block, 900);
    const Tensor full = block.forward(x);
    Tensor state = block.default_state(B);
    CHECK(state.shape() == Shape{B, 3, 4});
    for (std::int64_t t = 0; t < L; ++t) {
      INFO("t " << t);
      require_close(block.step(x.select(1, t), state), full.select(1, t).contiguous(), 1e-12,
                    1e-12);
    }
  }
  Generator gen(17);
  GatedCNNBlock1d centred(dim, {}, gen, DType::Float64);
  Tensor state = centred.default_state(B);
  CHECK(error_message([&] { centred.step(x.select(1, 0), state); }) ==
        "[GatedCNNBlock1d::step] a centred conv reads later positions and has no step mode; "
        "build the block with causal = true");
}

// ---------------------------------------------------------------- parameters

TEST_CASE("Gated CNN parameter names, shapes, tags and inits follow the reference", "[cpu][gcnn]") {
  // MambaOut-Femto's first stage: dim 48, hidden int(8/3 * 48) = 128, Cc 48, 7x7.
  Generator gen(18);
  GatedCNNBlock2d b2(48, {}, gen);
  CHECK(b2.hidden() == 128);
  require_parameters(b2, {{"norm.weight", {48}},
                          {"norm.bias", {48}},
                          {"fc1.weight", {256, 48}},
                          {"fc1.bias", {256}},
                          {"conv.weight", {48, 1, 7, 7}},
                          {"conv.bias", {48}},
                          {"fc2.weight", {48, 128}},
                          {"fc2.bias", {48}}});
  // dim 8: hidden int(21.33) = 21; conv_ratio 0.5: Cc 4.
  GatedCNNBlock1dOptions o;
  o.conv_ratio = 0.5;
  GatedCNNBlock1d b1(8, o, gen);
  CHECK(b1.hidden() == 21);
  require_parameters(b1, {{"norm.weight", {8}},
                          {"norm.bias", {8}},
                          {"fc1.weight", {42, 8}},
                          {"fc1.bias", {42}},
                          {"conv.weight", {4, 1, 7}},
                          {"conv.bias", {4}},
                          {"fc2.weight", {8, 21}},
                          {"fc2.bias", {8}}});
  GatedCNNMixer1d mixer(8, o, gen);
  require_parameters(mixer, {{"fc1.weight", {42, 8}},
                             {"fc1.bias", {42}},
                             {"conv.weight", {4, 1, 7}},
                             {"conv.bias", {4}},
                             {"fc2.weight", {8, 21}},
                             {"fc2.bias", {8}}});
  // Inits: LayerNorm ones / zeros; U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
  // fan_in = in features (linears), k (1-D conv), k k (2-D conv).
  auto require_uniform = [](const Module& m, const std::string& name, double bound) {
    INFO(name << " bound " << bound);
    const auto v = param_values(m, name);
    double lo = 0.0, hi = 0.0;
    for (double e : v) {
      lo = std::min(lo, e);
      hi = std::max(hi, e);
    }
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    if (v.size() >= 100) {  // large enough to fill the range
      CHECK(lo < -0.8 * bound);
      CHECK(hi > 0.8 * bound);
    }
  };
  require_uniform(b2, "fc1.weight", 1 / std::sqrt(48.0));
  require_uniform(b2, "fc1.bias", 1 / std::sqrt(48.0));
  require_uniform(b2, "conv.weight", 1 / 7.0);
  require_uniform(b2, "conv.bias", 1 / 7.0);
  require_uniform(b2, "fc2.weight", 1 / std::sqrt(128.0));
  require_uniform(b2, "fc2.bias", 1 / std::sqrt(128.0));
  require_uniform(b1, "conv.weight", 1 / std::sqrt(7.0));
  require_uniform(b1, "conv.bias", 1 / std::sqrt(7.0));
  require_close(b2.norm().weight(), Tensor::ones({48}));
  require_close(b2.norm().bias(), Tensor::zeros({48}));
  CHECK(b1.norm() != nullptr);
}

TEST_CASE("Gated CNN blocks check their options and inputs", "[cpu][gcnn]") {
  Generator gen(19);
  GatedCNNBlock1dOptions even;
  even.kernel_size = 4;
  CHECK(error_message([&] { GatedCNNBlock1d(6, even, gen); }) ==
        "[GatedCNNBlock1d] kernel_size must be odd for the centred conv (padding k / 2 on each "
        "side), got 4");
  even.causal = true;
  CHECK(GatedCNNBlock1d(6, even, gen).conv().kernel_size() == 4);
  GatedCNNBlock1dOptions wide;
  wide.conv_ratio = 3.0;  // Cc 18 > hidden 16
  CHECK(error_message([&] { GatedCNNBlock1d(6, wide, gen); }) ==
        "[GatedCNNBlock1d] conv channels = int(conv_ratio 3 * dim 6) = 18 must lie in [1, hidden "
        "= 16]");
  GatedCNNBlock2dOptions o2;
  o2.kernel_size = 6;
  CHECK(error_message([&] { GatedCNNBlock2d(6, o2, gen); }) ==
        "[GatedCNNBlock2d] kernel_size must be odd for the centred conv (padding k / 2 on each "
        "side), got 6");
  GatedCNNBlock1d block(6, {}, gen);
  CHECK(error_message([&] {
          block.forward(Tensor::zeros({2, 5, 4}));
        }) == "[GatedCNNBlock1d] expected x (B, L, 6), got (2, 5, 4) float32 cpu");
  const Tensor x = Tensor::zeros({2, 5, 6});
  CHECK(error_message([&] {
          block.forward_padded(x, Tensor::from_vector<std::int64_t>({5, 6}, {2}));
        }) == "[GatedCNNBlock1d::forward_padded] lengths[1] = 6 lies outside [1, 5]");
  CHECK(error_message([&] { block.forward_padded(x, Tensor::zeros({2})); }) ==
        "[GatedCNNBlock1d::forward_padded] expected lengths (2) int64 or int32 for x (2, 5, 6) "
        "float32 cpu, got (2,) float32 cpu");
  GatedCNNBlock2d block2(6, {}, gen);
  CHECK(error_message([&] { block2.forward(x); }) ==
        "[GatedCNNBlock2d] expected x (B, H, W, 6), got (2, 5, 6) float32 cpu");
}
