// RTF: the FFT transfer-function kernel against the companion-form state
// space system (C = b̃ (I - A^L)^{-1} solved here with Eigen), the state space
// numerator and the companion step, gradchecks, error messages, and the
// RTFKernel module (convolution view = recurrent view, names, tags).
#include <Eigen/Dense>

#include "autograd/ops/rtf.h"
#include "kernels/common.h"
#include "kernels/rtf.h"
#include "layers/ssm/rtf.h"
#include "tests/ssm_testing.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::conv_vs_recurrent;
using ssm::testing::error_message;
using ssm::testing::max_abs;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

using Mat = Eigen::MatrixXd;
using RowVec = Eigen::RowVectorXd;

// Random denominators a (H, n) with sum_i |a_i| = l1 < 1 per row: by Rouché's
// theorem every pole lies inside the unit circle (the reference code's
// l1_montel constraint), and |1 + a_1 z^-1 + ...| >= 1 - l1 on it.
Tensor stable_a(std::int64_t H, std::int64_t n, std::uint64_t seed, double l1) {
  auto v = random_tensor({H, n}, seed, -1, 1, DType::Float64, false).to_vector<double>();
  for (std::int64_t h = 0; h < H; ++h) {
    double s = 0.0;
    for (std::int64_t i = 0; i < n; ++i) s += std::abs(v[h * n + i]);
    for (std::int64_t i = 0; i < n; ++i) v[h * n + i] *= l1 / s;
  }
  return Tensor::from_vector<double>(v, {H, n});
}

// The companion matrix of a[h]: first row -a, ones on the subdiagonal.
Mat companion(const std::vector<double>& a, std::int64_t h, std::int64_t n) {
  Mat A = Mat::Zero(n, n);
  for (std::int64_t j = 0; j < n; ++j) A(0, j) = -a[h * n + j];
  for (std::int64_t j = 1; j < n; ++j) A(j, j - 1) = 1.0;
  return A;
}

Mat matrix_power(const Mat& A, std::int64_t e) {
  Mat R = Mat::Identity(A.rows(), A.cols()), P = A;
  for (; e > 0; e >>= 1) {
    if (e & 1) R = R * P;
    P = P * P;
  }
  return R;
}

// C[c, h] = b̃[c, h] (I - A_h^L)^{-1}, in double with Eigen.
std::vector<RowVec> numerators(const Tensor& a, const Tensor& b, std::int64_t L) {
  const std::int64_t Cc = b.size(0), H = b.size(1), n = b.size(2);
  const auto av = a.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<RowVec> C(Cc * H);
  for (std::int64_t h = 0; h < H; ++h) {
    const Mat M = Mat::Identity(n, n) - matrix_power(companion(av, h, n), L);
    const Eigen::PartialPivLU<Mat> lu(M.transpose());
    for (std::int64_t c = 0; c < Cc; ++c) {
      Eigen::VectorXd bt(n);
      for (std::int64_t i = 0; i < n; ++i) bt(i) = bv[(c * H + h) * n + i];
      C[c * H + h] = lu.solve(bt).transpose();
    }
  }
  return C;
}

// The L-point kernel of the companion system: K[l] = C A^{l-1} e_1 (1 <= l < L) and
// K[0] = h0 + C A^{L-1} e_1 (the L-th term wraps around on the L-point grid).
Tensor naive_rtf_kernel(const Tensor& a, const Tensor& b, const Tensor& h0, std::int64_t L) {
  const std::int64_t Cc = b.size(0), H = b.size(1), n = b.size(2);
  const auto av = a.to_vector<double>(), hv = h0.to_vector<double>();
  const std::vector<RowVec> C = numerators(a, b, L);
  std::vector<double> K(Cc * H * L);
  for (std::int64_t h = 0; h < H; ++h) {
    const Mat A = companion(av, h, n);
    Eigen::VectorXd x = Eigen::VectorXd::Zero(n);
    x(0) = 1.0;  // A^{l-1} e_1
    for (std::int64_t l = 1; l <= L; ++l) {
      for (std::int64_t c = 0; c < Cc; ++c) K[(c * H + h) * L + l % L] += C[c * H + h].dot(x);
      x = A * x;
    }
    for (std::int64_t c = 0; c < Cc; ++c) K[(c * H + h) * L] += hv[c * H + h];
  }
  return Tensor::from_vector<double>(K, {Cc, H, L});
}

}  // namespace

// ================================================================ rtf_kernel

TEST_CASE("rtf_kernel equals the companion-form system with C = b(I - A^L)^-1", "[cpu][rtf]") {
  struct Case {
    std::int64_t n, L;
  };
  for (const Case cs : {Case{1, 2}, Case{3, 7}, Case{4, 64}, Case{16, 1000}, Case{64, 4096}}) {
    INFO("n " << cs.n << ", L " << cs.L);
    const std::int64_t H = 2, Cc = 2;
    const Tensor a = stable_a(H, cs.n, 1, 0.6);
    const Tensor b = random_tensor({Cc, H, cs.n}, 2, -1, 1, DType::Float64, false);
    const Tensor h0 = random_tensor({Cc, H}, 3, -1, 1, DType::Float64, false);
    const Tensor ref = naive_rtf_kernel(a, b, h0, cs.L);
    const double scale = max_abs(ref);
    require_close(rtf_kernel(a, b, h0, cs.L), ref, 1e-12 * scale, 1e-10);
    const Tensor K32 =
        rtf_kernel(a.to(DType::Float32), b.to(DType::Float32), h0.to(DType::Float32), cs.L);
    REQUIRE(K32.dtype() == DType::Float32);
    require_close(K32, ref, 1e-4 * scale, 1e-4);
  }
}

TEST_CASE("rtf_kernel with a = 0 is the FIR filter h0, b_1, ..., b_n", "[cpu][rtf]") {
  // All poles at the origin ("zero init"): A is nilpotent, A^L = 0 and b̃ = C.
  const std::int64_t H = 3, n = 5, L = 12;
  const Tensor a = Tensor::zeros({H, n}, DType::Float64);
  const Tensor b = random_tensor({1, H, n}, 11, -1, 1, DType::Float64, false);
  const Tensor h0 = random_tensor({1, H}, 12, -1, 1, DType::Float64, false);
  const auto bv = b.to_vector<double>(), hv = h0.to_vector<double>();
  std::vector<double> K(H * L, 0.0);
  for (std::int64_t h = 0; h < H; ++h) {
    K[h * L] = hv[h];
    for (std::int64_t i = 0; i < n; ++i) K[h * L + 1 + i] = bv[h * n + i];
  }
  require_close(rtf_kernel(a, b, h0, L), Tensor::from_vector<double>(K, {1, H, L}), 1e-14, 1e-12);
}

TEST_CASE("rtf_kernel gradcheck", "[cpu][rtf]") {
  for (std::int64_t L : {8, 7, 4}) {
    INFO("L " << L);
    Tensor a = stable_a(2, 3, 21, 0.7).set_requires_grad(true);
    Tensor b = random_tensor({2, 2, 3}, 22);
    Tensor h0 = random_tensor({2, 2}, 23);
    require_gradcheck([L](const std::vector<Tensor>& x) { return rtf_kernel(x[0], x[1], x[2], L); },
                      {a, b, h0});
  }
  SECTION("only b requires grad") {
    const Tensor a = stable_a(1, 2, 24, 0.5);
    Tensor b = random_tensor({1, 1, 2}, 25);
    const Tensor h0 = random_tensor({1, 1}, 26, -1, 1, DType::Float64, false);
    require_gradcheck([](const std::vector<Tensor>& x) { return rtf_kernel(x[0], x[1], x[2], 16); },
                      {a, b, h0});
  }
}

TEST_CASE("rtf_kernel gradients do not depend on the thread count", "[cpu][rtf]") {
  const std::int64_t H = 6, n = 8, L = 256, Cc = 2;
  Tensor a = stable_a(H, n, 31, 0.8).set_requires_grad(true);
  Tensor b = random_tensor({Cc, H, n}, 32);
  Tensor h0 = random_tensor({Cc, H}, 33);
  const Tensor g = random_tensor({Cc, H, L}, 34, -1, 1, DType::Float64, false);
  const int threads = kernels::num_threads();
  std::vector<std::vector<double>> runs;
  for (int t : {1, 3}) {
    kernels::set_num_threads(t);
    for (Tensor* p : {&a, &b, &h0}) p->zero_grad();
    const Tensor K = rtf_kernel(a, b, h0, L);
    backward(K, g);
    std::vector<double> all = K.to_vector<double>();
    for (const Tensor* p : {&a, &b, &h0}) {
      const auto v = p->grad().to_vector<double>();
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

// ================================================================ state space form and step

TEST_CASE("rtf_state_space_C equals b(I - A^L)^-1 and rtf_step walks the companion form",
          "[cpu][rtf]") {
  const std::int64_t H = 3, n = 6, Cc = 2, Bsz = 2, L = 50;
  const Tensor a = stable_a(H, n, 41, 0.9);
  const Tensor b = random_tensor({Cc, H, n}, 42, -1, 1, DType::Float64, false);
  const Tensor h0 = random_tensor({Cc, H}, 43, -1, 1, DType::Float64, false);
  const Tensor C = kernels::rtf_state_space_C(a, b, L);
  const std::vector<RowVec> ref = numerators(a, b, L);
  std::vector<double> rv;
  for (const RowVec& r : ref)
    for (std::int64_t i = 0; i < n; ++i) rv.push_back(r(i));
  require_close(C, Tensor::from_vector<double>(rv, {Cc, H, n}), 1e-13, 1e-12);
  // float32 in: computed in float64, returned as float32.
  REQUIRE(kernels::rtf_state_space_C(a.to(DType::Float32), b.to(DType::Float32), L).dtype() ==
          DType::Float32);

  // From a zero state, y_t = sum_{l<=t} Ktrue[l] u_{t-l} with Ktrue[0] = h0,
  // Ktrue[l] = C A^{l-1} e_1: the L-point kernel without its wrapped-around term.
  Tensor Kt = naive_rtf_kernel(a, b, h0, L);
  {
    const auto av = a.to_vector<double>(), hv = h0.to_vector<double>();
    auto kv = Kt.to_vector<double>();
    for (std::int64_t c = 0; c < Cc; ++c)
      for (std::int64_t h = 0; h < H; ++h) kv[(c * H + h) * L] = hv[c * H + h];
    Kt = Tensor::from_vector<double>(kv, {Cc, H, L});
  }
  const auto K = Kt.to_vector<double>();
  const Tensor u = random_tensor({L, Bsz, H}, 44, -1, 1, DType::Float64, false);
  const auto uv = u.to_vector<double>();
  Tensor big = Tensor::zeros({Bsz, H, n + 3}, DType::Float64);
  Tensor state = big.narrow(2, 1, n);  // a strided view, written in place
  for (std::int64_t t = 0; t < L; ++t) {
    const auto y = kernels::rtf_step(a, C, h0, u.select(0, t), state).to_vector<double>();
    for (std::int64_t bi = 0; bi < Bsz; ++bi)
      for (std::int64_t c = 0; c < Cc; ++c)
        for (std::int64_t h = 0; h < H; ++h) {
          double acc = 0.0;
          for (std::int64_t l = 0; l <= t; ++l)
            acc += K[(c * H + h) * L + l] * uv[((t - l) * Bsz + bi) * H + h];
          REQUIRE(y[(bi * Cc + c) * H + h] == Approx(acc).epsilon(1e-10).margin(1e-12));
        }
  }
}

TEST_CASE("RTF kernels reject bad arguments with messages naming the op", "[cpu][rtf]") {
  const Tensor a = Tensor::zeros({2, 3}, DType::Float64);
  const Tensor b = Tensor::zeros({1, 2, 3}, DType::Float64);
  const Tensor h0 = Tensor::zeros({1, 2}, DType::Float64);
  CHECK_THAT(error_message([&] { rtf_kernel(a, b, h0, 3); }),
             Catch::Contains("[rtf_kernel] L must exceed the state size n = 3"));
  CHECK_THAT(error_message([&] {
               rtf_kernel(a, Tensor::zeros({1, 2, 4}, DType::Float64), h0, 8);
             }),
             Catch::Contains("[rtf_kernel] b must be (Cc, H, n) = (Cc, 2, 3)"));
  CHECK_THAT(error_message([&] {
               rtf_kernel(a, b, Tensor::zeros({2, 2}, DType::Float64), 8);
             }),
             Catch::Contains("[rtf_kernel] h0 must be (Cc, H) = (1, 2)"));
  CHECK_THAT(error_message([&] {
               rtf_kernel(Tensor::zeros({2, 0}, DType::Float64), b, h0, 8);
             }),
             Catch::Contains("[rtf_kernel] a must be (H, n) with n >= 1"));
  CHECK_THAT(error_message([&] { rtf_kernel(a.to(DType::Float32), b, h0, 8); }),
             Catch::Contains("[rtf_kernel]"));
  // a = (0, 0, -1): A^3 = I, so I - A^L is singular for L = 6.
  const Tensor cyc = Tensor::from_vector<double>({0, 0, -1, 0, 0, -1}, {2, 3});
  CHECK_THAT(
      error_message([&] { kernels::rtf_state_space_C(cyc, b, 6); }),
      Catch::Contains("[rtf_state_space_C] I - A^L is singular or A^L overflows for feature 0"));
  Tensor state = Tensor::zeros({4, 2, 2}, DType::Float64);
  CHECK_THAT(error_message([&] {
               kernels::rtf_step(a, b, h0, Tensor::zeros({4, 2}, DType::Float64), state);
             }),
             Catch::Contains("[rtf_step] state must be (B, H, n) = (4, 2, 3)"));
}

// ================================================================ RTFKernel

namespace {

// Loads stable random a (sum |a_i| = 0.8 per feature) and random b into the module.
void load_stable(RTFKernel& k, std::uint64_t seed) {
  const std::int64_t H = k.d_model(), n = k.d_state(), Cc = k.channels();
  StateDict sd = k.state_dict();
  for (auto& [name, t] : sd) {
    if (name == "a") t = stable_a(H, n, seed, 0.8);
    if (name == "b") t = random_tensor({Cc, H, n}, seed + 1, -1, 1, DType::Float64, false);
  }
  for (auto& [name, t] : sd) t = t.to(k.a().dtype());
  k.load_state_dict(sd);
}

}  // namespace

TEST_CASE("RTFKernel: convolution view equals recurrent view at L = 1024", "[cpu][rtf]") {
  for (const std::string init : {"zeros", "montel"}) {
    INFO("init " << init);
    RTFOptions o;
    o.init = init;
    Generator gen(5);
    RTFKernel k32(4, 16, 2, o, gen, DType::Float32);
    Generator gen64(5);
    RTFKernel k64(4, 16, 2, o, gen64, DType::Float64);
    if (init == "montel") {
      load_stable(k32, 6);
      load_stable(k64, 6);
    }
    CHECK(conv_vs_recurrent(k32, 1024, 2, 9) < 1e-4);
    CHECK(conv_vs_recurrent(k64, 1024, 2, 9) < 1e-11);
    CHECK(k32.truncation_length() == 1024);
  }
}

TEST_CASE("RTFKernel: setup_step before any forward uses l_max", "[cpu][rtf]") {
  RTFOptions o;
  o.l_max = 40;
  Generator gen(11);
  RTFKernel k(2, 3, 1, o, gen, DType::Float64);
  load_stable(k, 12);
  CHECK(k.truncation_length() == 40);
  k.setup_step();  // C = b (I - A^40)^{-1}
  Tensor state = k.default_state(1);
  std::vector<double> impulse;
  for (std::int64_t t = 0; t < 40; ++t) {
    const Tensor u = Tensor::full({1, 2}, t == 0 ? 1.0 : 0.0, DType::Float64);
    const auto y = k.step(u, state).to_vector<double>();
    impulse.insert(impulse.end(), y.begin(), y.end());  // (t, h)
  }
  // The same impulse response as forward(40), except the wrapped-around term in K[0].
  Tensor K;
  {
    NoGradGuard no_grad;
    K = k.forward(40);
  }
  const auto Kv = K.to_vector<double>();
  for (std::int64_t h = 0; h < 2; ++h)
    for (std::int64_t t = 1; t < 40; ++t)
      CHECK(impulse[t * 2 + h] == Approx(Kv[h * 40 + t]).epsilon(1e-10).margin(1e-13));
}

TEST_CASE("RTFKernel: state_dict names, shapes, tags, zero init", "[cpu][rtf]") {
  const std::int64_t H = 3, n = 5, Cc = 2;
  Generator gen(2);
  RTFKernel k(H, n, Cc, RTFOptions(), gen);
  std::vector<std::pair<std::string, Shape>> got;
  for (const auto& [name, t] : k.state_dict()) got.emplace_back(name, t.shape());
  CHECK(got == std::vector<std::pair<std::string, Shape>>{
                   {"a", {H, n}}, {"b", {Cc, H, n}}, {"h0", {Cc, H}}});
  for (const auto& p : k.named_parameters()) {
    INFO(p.name);
    CHECK(p.has_tag("ssm") == (p.name == "a"));
  }
  CHECK(k.named_buffers().empty());
  // Zero init: a = b = 0, so K = h0 at l = 0 and 0 after.
  const auto h0 = k.h0().to_vector<double>();
  NoGradGuard no_grad;
  const auto K = k.forward(16).to_vector<double>();
  for (std::int64_t r = 0; r < Cc * H; ++r)
    for (std::int64_t l = 0; l < 16; ++l)
      CHECK(K[r * 16 + l] == Approx(l == 0 ? h0[r] : 0.0).margin(1e-6));
  CHECK(k.default_state(4).shape() == Shape({4, H, n}));
  // xavier and montel draw U(+-1/sqrt(n)) and U(+-1/n).
  for (const std::string init : {"xavier", "montel"}) {
    RTFOptions o;
    o.init = init;
    RTFKernel r(H, n, Cc, o, gen);
    const double bound = init == "xavier" ? 1.0 / std::sqrt(5.0) : 1.0 / 5.0;
    double m = 0.0;
    for (double v : r.a().to_vector<double>()) m = std::max(m, std::abs(v));
    for (double v : r.b().to_vector<double>()) m = std::max(m, std::abs(v));
    CHECK(m <= bound);
    CHECK(m > 0.5 * bound);
  }
}

TEST_CASE("RTFKernel rejects bad options and lengths", "[cpu][rtf]") {
  Generator gen(1);
  RTFOptions o;
  o.init = "ones";
  CHECK_THAT(error_message([&] { RTFKernel(2, 4, 1, o, gen); }),
             Catch::Contains("[RTFKernel] unknown init 'ones'"));
  o = RTFOptions();
  o.l_max = 4;
  CHECK_THAT(error_message([&] { RTFKernel(2, 4, 1, o, gen); }),
             Catch::Contains("[RTFKernel] l_max must exceed the state size n = 4"));
  RTFKernel k(2, 4, 1, RTFOptions(), gen);
  CHECK_THAT(error_message([&] { k.forward(4); }),
             Catch::Contains("[RTFKernel] L must exceed the state size n = 4, got 4"));
  Tensor state = k.default_state(1);
  CHECK_THAT(error_message([&] {
               k.step(Tensor::zeros({1, 2}), state);
             }),
             Catch::Contains("[RTFKernel] step needs setup_step() first"));
}
