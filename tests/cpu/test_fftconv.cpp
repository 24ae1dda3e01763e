// FFT convolution (S4's long convolution): forward against the direct
// O(L^2) sums (causal, bidirectional, with and without D, C = 1 and 3, odd
// and long L, float64 and float32), backward against the direct gradient
// sums and finite differences, non-contiguous inputs, thread-count
// independence, and error messages.
#include "autograd/ops/fftconv.h"
#include "kernels/common.h"
#include "kernels/fftconv.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::max_abs;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

// y[b, c, h, t] = sum_{s<=t} k[c, h, s] u[b, h, t-s] + sum_{s<=L-1-t} k_rev[c, h, s] u[b, h, t+s]
//               + D[c, h] u[b, h, t], straight from the definition, in double.
Tensor naive_fft_conv(const Tensor& u, const Tensor& k, const Tensor& D, const Tensor& k_rev) {
  const std::int64_t B = u.size(0), H = u.size(1), L = u.size(2), C = k.size(0);
  const auto uv = u.to_vector<double>();
  const auto kv = k.to_vector<double>();
  const auto Dv = D.defined() ? D.to_vector<double>() : std::vector<double>(C * H, 0.0);
  const auto rv = k_rev.defined() ? k_rev.to_vector<double>() : std::vector<double>(C * H * L, 0.0);
  std::vector<double> y(B * C * H * L);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t h = 0; h < H; ++h) {
        const double* x = uv.data() + (b * H + h) * L;
        const double* kk = kv.data() + (c * H + h) * L;
        const double* kr = rv.data() + (c * H + h) * L;
        for (std::int64_t t = 0; t < L; ++t) {
          double acc = Dv[c * H + h] * x[t];
          for (std::int64_t s = 0; s <= t; ++s) acc += kk[s] * x[t - s];
          for (std::int64_t s = 0; s <= L - 1 - t; ++s) acc += kr[s] * x[t + s];
          y[((b * C + c) * H + h) * L + t] = acc;
        }
      }
  return Tensor::from_vector<double>(y, {B, C, H, L});
}

// The gradients of sum(y * g), straight from the definition, in double:
// grad_u[b, h, j] = sum_c (sum_{t>=j} g[t] k[t-j] + sum_{t<=j} g[t] k_rev[j-t] + D g[j]);
// grad_k[c, h, s] = sum_{b, t>=s} g[t] u[t-s]; grad_k_rev[c, h, s] = sum_{b, t+s<L} g[t] u[t+s];
// grad_D[c, h] = sum_{b, t} g[t] u[t].
kernels::FftConvGrads naive_grads(const Tensor& g, const Tensor& u, const Tensor& k,
                                  const Tensor& D, const Tensor& k_rev) {
  const std::int64_t B = u.size(0), H = u.size(1), L = u.size(2), C = k.size(0);
  const auto gv = g.to_vector<double>();
  const auto uv = u.to_vector<double>();
  const auto kv = k.to_vector<double>();
  const auto Dv = D.defined() ? D.to_vector<double>() : std::vector<double>(C * H, 0.0);
  const auto rv = k_rev.defined() ? k_rev.to_vector<double>() : std::vector<double>(C * H * L, 0.0);
  std::vector<double> gu(B * H * L, 0.0), gk(C * H * L, 0.0), gr(C * H * L, 0.0), gD(C * H, 0.0);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t h = 0; h < H; ++h) {
        const double* gg = gv.data() + ((b * C + c) * H + h) * L;
        const double* x = uv.data() + (b * H + h) * L;
        const double* kk = kv.data() + (c * H + h) * L;
        const double* kr = rv.data() + (c * H + h) * L;
        const std::int64_t ch = c * H + h;
        for (std::int64_t j = 0; j < L; ++j) {
          double acc = Dv[ch] * gg[j];
          for (std::int64_t t = j; t < L; ++t) acc += gg[t] * kk[t - j];
          for (std::int64_t t = 0; t <= j; ++t) acc += gg[t] * kr[j - t];
          gu[(b * H + h) * L + j] += acc;
        }
        for (std::int64_t s = 0; s < L; ++s) {
          double ak = 0.0, ar = 0.0;
          for (std::int64_t t = s; t < L; ++t) ak += gg[t] * x[t - s];
          for (std::int64_t t = 0; t + s < L; ++t) ar += gg[t] * x[t + s];
          gk[ch * L + s] += ak;
          gr[ch * L + s] += ar;
        }
        for (std::int64_t t = 0; t < L; ++t) gD[ch] += gg[t] * x[t];
      }
  kernels::FftConvGrads out;
  out.u = Tensor::from_vector<double>(gu, {B, H, L});
  out.k = Tensor::from_vector<double>(gk, {C, H, L});
  out.D = Tensor::from_vector<double>(gD, {C, H});
  out.k_rev = Tensor::from_vector<double>(gr, {C, H, L});
  return out;
}

// float32 results within 1e-4 of the float64 reference, relative to its scale.
void require_close_f32(const Tensor& a, const Tensor& ref) {
  CHECK(a.dtype() == DType::Float32);
  require_close(a.to(DType::Float64), ref, 1e-4 * max_abs(ref), 1e-4);
}

}  // namespace

// ---------------------------------------------------------------- forward

TEST_CASE("fft_conv equals the direct convolution: causal and bidirectional, D, C, L",
          "[cpu][fftconv]") {
  const std::int64_t B = 2, H = 2;
  std::uint64_t seed = 10;
  for (std::int64_t L : {1, 2, 37, 1024}) {
    Tensor u = random_tensor({B, H, L}, ++seed, -1, 1, DType::Float64, false);
    for (std::int64_t C : {1, 3}) {
      Tensor k = random_tensor({C, H, L}, ++seed, -1, 1, DType::Float64, false);
      Tensor k_rev = random_tensor({C, H, L}, ++seed, -1, 1, DType::Float64, false);
      Tensor D = random_tensor({C, H}, ++seed, -1, 1, DType::Float64, false);
      for (bool with_D : {false, true}) {
        for (bool bidirectional : {false, true}) {
          INFO("L " << L << " C " << C << " D " << with_D << " bidirectional " << bidirectional);
          const Tensor d = with_D ? D : Tensor();
          const Tensor kr = bidirectional ? k_rev : Tensor();
          const Tensor want = naive_fft_conv(u, k, d, kr);
          const Tensor y = fft_conv(u, k, d, kr);
          CHECK(y.dtype() == DType::Float64);
          require_close(y, want, 1e-12 * std::max(1.0, max_abs(want)), 1e-12);
          // float32 inputs: the same within float32 accuracy.
          const auto f32 = [](const Tensor& t) {
            return t.defined() ? t.to(DType::Float32) : Tensor();
          };
          require_close_f32(fft_conv(f32(u), f32(k), f32(d), f32(kr)), want);
        }
      }
    }
  }
}

TEST_CASE("fft_conv: shifts by one step forwards and backwards in time", "[cpu][fftconv]") {
  // k = delta_1 gives y[t] = u[t-1]; k_rev = delta_1 gives y[t] = u[t+1] (0 past the end).
  Tensor u = Tensor::from_vector<double>({1, 2, 3, 4, 5}, {1, 1, 5});
  Tensor delta = Tensor::from_vector<double>({0, 1, 0, 0, 0}, {1, 1, 5});
  Tensor zero = Tensor::zeros({1, 1, 5}, DType::Float64);
  require_close(fft_conv(u, delta), Tensor::from_vector<double>({0, 1, 2, 3, 4}, {1, 1, 1, 5}),
                1e-14, 0);
  require_close(fft_conv(u, zero, Tensor(), delta),
                Tensor::from_vector<double>({2, 3, 4, 5, 0}, {1, 1, 1, 5}), 1e-14, 0);
  // D alone scales u.
  require_close(fft_conv(u, zero, Tensor::from_vector<double>({2}, {1, 1})),
                Tensor::from_vector<double>({2, 4, 6, 8, 10}, {1, 1, 1, 5}), 1e-14, 0);
}

TEST_CASE("fft_conv on non-contiguous inputs and on a parallel-sized batch", "[cpu][fftconv]") {
  const std::int64_t B = 4, C = 2, H = 16, L = 100;
  // u as the (B, L, H) activations of a layer, transposed; k from a (H, C, L) buffer; D as the
  // transpose of (H, C); k_rev a flipped view.
  Tensor u = random_tensor({B, L, H}, 40, -1, 1, DType::Float32, false).transpose(1, 2);
  Tensor k = random_tensor({H, C, L}, 41, -1, 1, DType::Float32, false).transpose(0, 1);
  Tensor D = random_tensor({H, C}, 42, -1, 1, DType::Float32, false).transpose(0, 1);
  Tensor k_rev = random_tensor({C, H, L}, 43, -1, 1, DType::Float32, false).flip(2);
  REQUIRE_FALSE(u.is_contiguous());
  REQUIRE_FALSE(k.is_contiguous());
  REQUIRE_FALSE(D.is_contiguous());
  REQUIRE_FALSE(k_rev.is_contiguous());
  const Tensor y = fft_conv(u, k, D, k_rev);
  CHECK(y.shape() == Shape{B, C, H, L});
  require_close_f32(y, naive_fft_conv(u, k, D, k_rev));
  // Bitwise the same as on contiguous copies, and with one thread.
  CHECK(y.to_vector<float>() ==
        fft_conv(u.contiguous(), k.contiguous(), D.contiguous(), k_rev.contiguous())
            .to_vector<float>());
  const int threads = kernels::num_threads();
  kernels::set_num_threads(1);
  const Tensor y1 = fft_conv(u, k, D, k_rev);
  kernels::set_num_threads(threads);
  CHECK(y1.to_vector<float>() == y.to_vector<float>());
}

TEST_CASE("fft_conv of an empty batch is empty", "[cpu][fftconv]") {
  Tensor y = fft_conv(Tensor::zeros({0, 3, 8}), Tensor::zeros({2, 3, 8}), Tensor::zeros({2, 3}));
  CHECK(y.shape() == Shape{0, 2, 3, 8});
  const auto g = kernels::fft_conv_backward(Tensor::zeros({0, 2, 3, 8}), Tensor::zeros({0, 3, 8}),
                                            Tensor::zeros({2, 3, 8}), Tensor::zeros({2, 3}),
                                            Tensor(), true, true, true, false);
  CHECK(g.u.shape() == Shape{0, 3, 8});
  require_close(g.k, Tensor::zeros({2, 3, 8}), 0, 0);
  require_close(g.D, Tensor::zeros({2, 3}), 0, 0);
  CHECK_FALSE(g.k_rev.defined());
}

// ---------------------------------------------------------------- backward

TEST_CASE("gradcheck: fft_conv with and without D and k_rev", "[cpu][fftconv][grad]") {
  const std::int64_t B = 2, C = 2, H = 3, L = 9;
  Tensor u = random_tensor({B, H, L}, 60);
  Tensor k = random_tensor({C, H, L}, 61);
  Tensor D = random_tensor({C, H}, 62);
  Tensor k_rev = random_tensor({C, H, L}, 63);
  const auto f = [](const std::vector<Tensor>& t) { return fft_conv(t[0], t[1], t[2], t[3]); };
  SECTION("all four") { require_gradcheck(f, {u, k, D, k_rev}); }
  SECTION("causal: u, k") {
    require_gradcheck([](const std::vector<Tensor>& t) { return fft_conv(t[0], t[1]); }, {u, k});
  }
  SECTION("causal with D") {
    require_gradcheck([](const std::vector<Tensor>& t) { return fft_conv(t[0], t[1], t[2]); },
                      {u, k, D});
  }
  SECTION("bidirectional without D") {
    require_gradcheck(
        [](const std::vector<Tensor>& t) { return fft_conv(t[0], t[1], Tensor(), t[2]); },
        {u, k, k_rev});
  }
  SECTION("only some inputs require grad") {
    // A constant input (the first layer's u): only the kernels and D learn.
    require_gradcheck(f, {u.detach(), k, D, k_rev});
    // Only u (and D): the kernels are constants.
    require_gradcheck(f, {u, k.detach(), D, k_rev.detach()});
    // Only k_rev.
    require_gradcheck(f, {u.detach(), k.detach(), D.detach(), k_rev});
  }
  SECTION("C = 1, odd L") {
    Tensor u1 = random_tensor({2, 2, 7}, 64);
    Tensor k1 = random_tensor({1, 2, 7}, 65);
    Tensor D1 = random_tensor({1, 2}, 66);
    Tensor r1 = random_tensor({1, 2, 7}, 67);
    require_gradcheck(f, {u1, k1, D1, r1});
    // L = 1: every term is a product at t = 0.
    require_gradcheck(f, {random_tensor({2, 2, 1}, 68), random_tensor({1, 2, 1}, 69),
                          random_tensor({1, 2}, 70), random_tensor({1, 2, 1}, 71)});
  }
}

TEST_CASE("fft_conv_backward equals the direct gradient sums, L up to 1024",
          "[cpu][fftconv][grad]") {
  const std::int64_t B = 3, C = 2, H = 2;
  std::uint64_t seed = 70;
  const auto tight = [](const Tensor& a, const Tensor& ref) {
    require_close(a, ref, 1e-12 * std::max(1.0, max_abs(ref)), 1e-12);
  };
  for (std::int64_t L : {1, 2, 37, 1024}) {
    INFO("L " << L);
    Tensor u = random_tensor({B, H, L}, ++seed, -1, 1, DType::Float64, false);
    Tensor k = random_tensor({C, H, L}, ++seed, -1, 1, DType::Float64, false);
    Tensor D = random_tensor({C, H}, ++seed, -1, 1, DType::Float64, false);
    Tensor k_rev = random_tensor({C, H, L}, ++seed, -1, 1, DType::Float64, false);
    Tensor g = random_tensor({B, C, H, L}, ++seed, -1, 1, DType::Float64, false);
    const auto want = naive_grads(g, u, k, D, k_rev);
    const auto got = kernels::fft_conv_backward(g, u, k, D, k_rev, true, true, true, true);
    tight(got.u, want.u);
    tight(got.k, want.k);
    tight(got.D, want.D);
    tight(got.k_rev, want.k_rev);
    // Causal without D: grad_u has no k_rev / D terms.
    const auto want_causal = naive_grads(g, u, k, Tensor(), Tensor());
    const auto causal =
        kernels::fft_conv_backward(g, u, k, Tensor(), Tensor(), true, true, false, false);
    tight(causal.u, want_causal.u);
    tight(causal.k, want_causal.k);
    CHECK_FALSE(causal.D.defined());
    CHECK_FALSE(causal.k_rev.defined());
    // float32.
    const auto f = [](const Tensor& t) { return t.to(DType::Float32); };
    const auto got32 =
        kernels::fft_conv_backward(f(g), f(u), f(k), f(D), f(k_rev), true, true, true, true);
    require_close_f32(got32.u, want.u);
    require_close_f32(got32.k, want.k);
    require_close_f32(got32.D, want.D);
    require_close_f32(got32.k_rev, want.k_rev);
    // Subsets give the same values as the full call.
    const auto only_k = kernels::fft_conv_backward(g, u, k, D, k_rev, false, true, false, false);
    CHECK_FALSE(only_k.u.defined());
    CHECK(only_k.k.to_vector<double>() == got.k.to_vector<double>());
    const auto only_D = kernels::fft_conv_backward(g, u, k, D, k_rev, false, false, true, false);
    CHECK(only_D.D.to_vector<double>() == got.D.to_vector<double>());
    CHECK_FALSE(only_D.k.defined());
  }
}

TEST_CASE("fft_conv gradients: any thread count, batch groups, non-contiguous grad",
          "[cpu][fftconv][grad]") {
  // H = 8 < 64: the kernel gradients are summed over 7 groups of 3 (and one of 2) batch elements.
  const std::int64_t B = 20, C = 2, H = 8, L = 200;
  Tensor u = random_tensor({B, L, H}, 80, -1, 1, DType::Float32, false).transpose(1, 2);
  Tensor k = random_tensor({C, H, L}, 81, -1, 1, DType::Float32, false);
  Tensor D = random_tensor({C, H}, 82, -1, 1, DType::Float32, false);
  Tensor k_rev = random_tensor({C, H, L}, 83, -1, 1, DType::Float32, false);
  Tensor g = random_tensor({B, C, L, H}, 84, -1, 1, DType::Float32, false).transpose(2, 3);
  const int threads = kernels::num_threads();
  kernels::set_num_threads(1);
  const auto one = kernels::fft_conv_backward(g, u, k, D, k_rev, true, true, true, true);
  kernels::set_num_threads(std::max(2, threads));
  const auto many = kernels::fft_conv_backward(g.contiguous(), u.contiguous(), k, D, k_rev, true,
                                               true, true, true);
  kernels::set_num_threads(threads);
  // Bitwise equal: the batch sums run in an order fixed by the shapes.
  CHECK(one.u.to_vector<float>() == many.u.to_vector<float>());
  CHECK(one.k.to_vector<float>() == many.k.to_vector<float>());
  CHECK(one.D.to_vector<float>() == many.D.to_vector<float>());
  CHECK(one.k_rev.to_vector<float>() == many.k_rev.to_vector<float>());
  // And they are the direct sums, within float32 accuracy.
  const auto want = naive_grads(g, u, k, D, k_rev);
  require_close_f32(one.u, want.u);
  require_close_f32(one.k, want.k);
  require_close_f32(one.D, want.D);
  require_close_f32(one.k_rev, want.k_rev);
}

TEST_CASE("fft_conv backward through the tape accumulates into the leaves",
          "[cpu][fftconv][grad]") {
  // y = fft_conv(u, k, D) used twice: the leaves get twice the gradient of one use.
  const std::int64_t B = 2, C = 1, H = 3, L = 16;
  Tensor u = random_tensor({B, H, L}, 90);
  Tensor k = random_tensor({C, H, L}, 91);
  Tensor D = random_tensor({C, H}, 92);
  Tensor g = random_tensor({B, C, H, L}, 93, -1, 1, DType::Float64, false);
  const Tensor y = fft_conv(u, k, D);
  backward(add(sum(mul(y, g)), sum(mul(y, g))));
  const auto want = naive_grads(g, u, k, D, Tensor());
  require_close(u.grad(), mul(want.u, 2.0), 1e-12, 1e-12);
  require_close(k.grad(), mul(want.k, 2.0), 1e-12, 1e-12);
  require_close(D.grad(), mul(want.D, 2.0), 1e-12, 1e-12);
}

// ---------------------------------------------------------------- errors

TEST_CASE("fft_conv errors name the op and the shapes", "[cpu][fftconv]") {
  Tensor u = Tensor::zeros({2, 3, 8});
  Tensor k = Tensor::zeros({1, 3, 8});
  CHECK(error_message([&] {
          fft_conv(Tensor::zeros({3, 8}), k);
        }) == "[fft_conv] u must be (B, H, L), got (3, 8) float32 cpu");
  CHECK(error_message([&] {
          fft_conv(u, Tensor::zeros({1, 4, 8}));
        }) ==
        "[fft_conv] k must be (C, H, L) with (H, L) = (3, 8) of u (2, 3, 8) float32 cpu, got "
        "(1, 4, 8) float32 cpu");
  CHECK(error_message([&] {
          fft_conv(u, Tensor::zeros({1, 3, 7}));
        }) ==
        "[fft_conv] k must be (C, H, L) with (H, L) = (3, 8) of u (2, 3, 8) float32 cpu, got "
        "(1, 3, 7) float32 cpu");
  CHECK(error_message([&] {
          fft_conv(u, Tensor::zeros({3, 8}));
        }).find("[fft_conv] k must be") == 0);
  CHECK(error_message([&] { fft_conv(u, k, Tensor::zeros({3})); }) ==
        "[fft_conv] D must be (C, H) = (1, 3) for k (1, 3, 8) float32 cpu, got (3,) float32 cpu");
  CHECK(error_message([&] {
          fft_conv(u, k, Tensor(), Tensor::zeros({2, 3, 8}));
        }) == "[fft_conv] k_rev must be k's shape (1, 3, 8), got (2, 3, 8) float32 cpu");
  CHECK(error_message([&] {
          fft_conv(u, Tensor::zeros({1, 3, 8}, DType::Float64));
        }) == "[fft_conv] dtypes differ: (2, 3, 8) float32 cpu and (1, 3, 8) float64 cpu");
  CHECK(error_message([&] {
          fft_conv(u, k, Tensor::zeros({1, 3}, DType::Float64));
        }) == "[fft_conv] dtypes differ: (2, 3, 8) float32 cpu and (1, 3) float64 cpu");
  CHECK(error_message([&] {
          fft_conv(u, k, Tensor(), Tensor::zeros({1, 3, 8}, DType::Float64));
        }).find("[fft_conv] dtypes differ") == 0);
  CHECK(error_message([&] {
          fft_conv(Tensor::zeros({2, 3, 8}, DType::Int64), Tensor::zeros({1, 3, 8}, DType::Int64));
        }) == "[fft_conv] expected float32 or float64 tensors, got u (2, 3, 8) int64 cpu");
  CHECK(error_message([&] { fft_conv(Tensor(), k); }) == "[fft_conv] u is undefined");
  // Backward checks grad_y against the output shape and the requested gradients.
  CHECK(error_message([&] {
          kernels::fft_conv_backward(Tensor::zeros({2, 3, 8}), u, k, Tensor(), Tensor(), true, true,
                                     false, false);
        }) ==
        "[fft_conv] grad_y must be (B, C, H, L) = (2, 1, 3, 8) for u (2, 3, 8) float32 cpu and k "
        "(1, 3, 8) float32 cpu, got (2, 3, 8) float32 cpu");
  CHECK(error_message([&] {
          kernels::fft_conv_backward(Tensor::zeros({2, 1, 3, 8}), u, k, Tensor(), Tensor(), false,
                                     false, true, false);
        }) == "[fft_conv] the gradient of D was requested but D is undefined");
}
