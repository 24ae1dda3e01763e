// LSSL: GBT and dense ZOH discretization against closed forms computed here
// with Eigen, the Krylov kernel against the naive recurrence C Ā^l B̄,
// gradchecks of every op, thread-count independence, error messages, and the
// LSSLKernel module (convolution view = recurrent view, names, tags).
#include <Eigen/Dense>
#include <unsupported/Eigen/MatrixFunctions>

#include "autograd/ops/lssl.h"
#include "kernels/common.h"
#include "kernels/lssl.h"
#include "layers/ssm/hippo.h"
#include "layers/ssm/lssl.h"
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
using Vec = Eigen::VectorXd;

// Matrix h of an (N, N) or (H, N, N) tensor.
Mat matrix_of(const Tensor& t, std::int64_t h) {
  const std::int64_t N = t.size(-1);
  const auto v = t.to_vector<double>();
  const std::int64_t off = t.dim() == 3 ? h * N * N : 0;
  Mat m(N, N);
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t j = 0; j < N; ++j) m(i, j) = v[off + i * N + j];
  return m;
}

// Row h of an (N) or (H, N) tensor.
Vec vector_of(const Tensor& t, std::int64_t h) {
  const std::int64_t N = t.size(-1);
  const auto v = t.to_vector<double>();
  const std::int64_t off = t.dim() == 2 ? h * N : 0;
  Vec x(N);
  for (std::int64_t i = 0; i < N; ++i) x(i) = v[off + i];
  return x;
}

Tensor stack_matrices(const std::vector<Mat>& ms) {
  const std::int64_t H = static_cast<std::int64_t>(ms.size()), N = ms[0].rows();
  std::vector<double> v;
  for (const Mat& m : ms)
    for (std::int64_t i = 0; i < N; ++i)
      for (std::int64_t j = 0; j < N; ++j) v.push_back(m(i, j));
  return Tensor::from_vector<double>(v, {H, N, N});
}

Tensor stack_vectors(const std::vector<Vec>& vs) {
  const std::int64_t H = static_cast<std::int64_t>(vs.size()), N = vs[0].size();
  std::vector<double> v;
  for (const Vec& x : vs)
    for (std::int64_t i = 0; i < N; ++i) v.push_back(x(i));
  return Tensor::from_vector<double>(v, {H, N});
}

// HiPPO LegS (S4 conventions), written out here as an independent oracle input:
// A_nk = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n = k), 0 (n < k); B_n = sqrt(2n+1).
std::pair<Tensor, Tensor> legs(std::int64_t N) {
  std::vector<double> A(N * N, 0.0), B(N);
  for (std::int64_t n = 0; n < N; ++n) {
    B[n] = std::sqrt(2.0 * n + 1.0);
    for (std::int64_t k = 0; k <= n; ++k) {
      A[n * N + k] = n == k ? -(n + 1.0) : -std::sqrt(2.0 * n + 1.0) * std::sqrt(2.0 * k + 1.0);
    }
  }
  return {Tensor::from_vector<double>(A, {N, N}), Tensor::from_vector<double>(B, {N})};
}

// K[c, h, l] = C[c, h] Ā_h^l B̄_h by the plain recurrence, in double.
Tensor naive_krylov(const Tensor& dA, const Tensor& dB, const Tensor& C, std::int64_t L) {
  const std::int64_t H = dA.size(0), N = dA.size(1), Cc = C.size(0);
  const auto cv = C.to_vector<double>();
  std::vector<double> K(Cc * H * L);
  for (std::int64_t h = 0; h < H; ++h) {
    const Mat A = matrix_of(dA, h);
    Vec x = vector_of(dB, h);
    for (std::int64_t l = 0; l < L; ++l) {
      for (std::int64_t c = 0; c < Cc; ++c) {
        double acc = 0.0;
        for (std::int64_t n = 0; n < N; ++n) acc += cv[(c * H + h) * N + n] * x(n);
        K[(c * H + h) * L + l] = acc;
      }
      x = A * x;
    }
  }
  return Tensor::from_vector<double>(K, {Cc, H, L});
}

// a random (H, N, N) system with spectral radius below one: scaled random matrices.
Tensor stable_random(std::int64_t H, std::int64_t N, std::uint64_t seed, double radius) {
  Tensor A = random_tensor({H, N, N}, seed, -1, 1, DType::Float64, false);
  return mul(A, radius / std::sqrt(static_cast<double>(N))).detach();
}

}  // namespace

// ================================================================ gbt_discretize

TEST_CASE("gbt_discretize equals forward Euler, bilinear and backward Euler", "[cpu][lssl]") {
  const std::int64_t H = 3, N = 6;
  for (bool shared : {true, false}) {
    const Tensor A = shared ? random_tensor({N, N}, 1, -1, 1, DType::Float64, false)
                            : random_tensor({H, N, N}, 2, -1, 1, DType::Float64, false);
    const Tensor B = shared ? random_tensor({N}, 3, -1, 1, DType::Float64, false)
                            : random_tensor({H, N}, 4, -1, 1, DType::Float64, false);
    const Tensor dt = random_tensor({H}, 5, 0.01, 0.5, DType::Float64, false);
    const auto dtv = dt.to_vector<double>();
    for (double alpha : {0.0, 0.5, 1.0}) {
      INFO("shared " << shared << ", alpha " << alpha);
      std::vector<Mat> eA;
      std::vector<Vec> eB;
      for (std::int64_t h = 0; h < H; ++h) {
        const Mat a = matrix_of(A, h), I = Mat::Identity(N, N);
        const Vec b = vector_of(B, h);
        const double d = dtv[h];
        if (alpha == 0.0) {
          eA.push_back(I + d * a);
          eB.push_back(d * b);
        } else if (alpha == 1.0) {
          const Mat inv = (I - d * a).inverse();
          eA.push_back(inv);
          eB.push_back(d * inv * b);
        } else {
          const Mat inv = (I - d / 2 * a).inverse();
          eA.push_back(inv * (I + d / 2 * a));
          eB.push_back(d * inv * b);
        }
      }
      auto [dA, dB] = gbt_discretize(A, B, dt, alpha);
      require_close(dA, stack_matrices(eA), 1e-13, 1e-12);
      require_close(dB, stack_vectors(eB), 1e-13, 1e-12);
      // float32 in, float32 out (float64 inside).
      auto [dA32, dB32] =
          gbt_discretize(A.to(DType::Float32), B.to(DType::Float32), dt.to(DType::Float32), alpha);
      REQUIRE(dA32.dtype() == DType::Float32);
      require_close(dA32, stack_matrices(eA), 1e-5, 1e-5);
      require_close(dB32, stack_vectors(eB), 1e-5, 1e-5);
    }
  }
}

TEST_CASE("gbt_discretize solves past the LU panel width (N = 150)", "[cpu][lssl]") {
  // The blocked LU factors 64 columns at a time; pivoting matters for this A.
  const std::int64_t N = 150;
  const Tensor A = random_tensor({N, N}, 11, -1, 1, DType::Float64, false);
  const Tensor B = random_tensor({N}, 12, -1, 1, DType::Float64, false);
  const Tensor dt = Tensor::from_vector<double>({0.7, 2.0}, {2});
  auto [dA, dB] = gbt_discretize(A, B, dt, 1.0);
  std::vector<Mat> eA;
  std::vector<Vec> eB;
  for (double d : {0.7, 2.0}) {
    const Eigen::PartialPivLU<Mat> lu(Mat::Identity(N, N) - d * matrix_of(A, 0));
    eA.push_back(lu.solve(Mat::Identity(N, N)));
    eB.push_back(d * lu.solve(vector_of(B, 0)));
  }
  require_close(dA, stack_matrices(eA), 1e-10, 1e-9);
  require_close(dB, stack_vectors(eB), 1e-10, 1e-9);
}

TEST_CASE("gbt_discretize gradcheck", "[cpu][lssl]") {
  const std::int64_t H = 2, N = 3;
  for (bool shared_A : {true, false}) {
    for (bool shared_B : {true, false}) {
      for (double alpha : {0.0, 0.5, 1.0}) {
        INFO("shared A " << shared_A << ", shared B " << shared_B << ", alpha " << alpha);
        Tensor A = shared_A ? random_tensor({N, N}, 21) : random_tensor({H, N, N}, 22);
        Tensor B = shared_B ? random_tensor({N}, 23) : random_tensor({H, N}, 24);
        Tensor dt = random_tensor({H}, 25, 0.1, 0.8);
        require_gradcheck(
            [alpha](const std::vector<Tensor>& x) {
              auto [dA, dB] = gbt_discretize(x[0], x[1], x[2], alpha);
              return cat({reshape(dA, {-1}), reshape(dB, {-1})});
            },
            {A, B, dt});
      }
    }
  }
}

// ================================================================ zoh_discretize_dense

TEST_CASE("zoh_discretize_dense equals Eigen's matrix exponential", "[cpu][lssl]") {
  const std::int64_t N = 5;
  // dt from tiny to large so that every Padé degree (3, 5, 7, 9, 13) and scaling run.
  const std::vector<double> dts = {1e-4, 0.02, 0.1, 0.4, 0.9, 3.0, 40.0};
  const std::int64_t H = static_cast<std::int64_t>(dts.size());
  // A well-conditioned invertible A (random - 1.5 I), so that A^{-1} (exp(dt A) - I) B is an
  // independent oracle.
  auto av = random_tensor({N, N}, 31, -1, 1, DType::Float64, false).to_vector<double>();
  for (std::int64_t n = 0; n < N; ++n) av[n * N + n] -= 1.5;
  const Tensor A = Tensor::from_vector<double>(av, {N, N});
  const Tensor B = random_tensor({N}, 32, -1, 1, DType::Float64, false);
  const Tensor dt = Tensor::from_vector<double>(dts, {H});
  auto [dA, dB] = zoh_discretize_dense(A, B, dt);
  std::vector<Mat> eA;
  std::vector<Vec> eB;
  const Mat a = matrix_of(A, 0);
  for (double d : dts) {
    const Mat e = (d * a).exp();
    eA.push_back(e);
    eB.push_back(a.inverse() * (e - Mat::Identity(N, N)) * vector_of(B, 0));
  }
  require_close(dA, stack_matrices(eA), 1e-13, 1e-11);
  require_close(dB, stack_vectors(eB), 1e-13, 1e-11);
}

TEST_CASE("zoh_discretize_dense of a diagonal A is elementwise", "[cpu][lssl]") {
  const std::int64_t H = 2, N = 4;
  const std::vector<double> diag = {-0.5, -1.0, 0.3, -2.0};
  std::vector<double> A(H * N * N, 0.0);
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t n = 0; n < N; ++n) A[(h * N + n) * N + n] = diag[n] * (h + 1);
  const Tensor At = Tensor::from_vector<double>(A, {H, N, N});
  const Tensor B = random_tensor({H, N}, 41, -1, 1, DType::Float64, false);
  const Tensor dt = Tensor::from_vector<double>({0.05, 0.7}, {H});
  auto [dA, dB] = zoh_discretize_dense(At, B, dt);
  const auto av = dA.to_vector<double>(), bv = dB.to_vector<double>(), b = B.to_vector<double>();
  for (std::int64_t h = 0; h < H; ++h) {
    for (std::int64_t n = 0; n < N; ++n) {
      const double a = diag[n] * (h + 1), d = h == 0 ? 0.05 : 0.7;
      for (std::int64_t m = 0; m < N; ++m) {
        CHECK(av[(h * N + n) * N + m] == Approx(m == n ? std::exp(d * a) : 0.0).margin(1e-15));
      }
      CHECK(bv[h * N + n] == Approx(std::expm1(d * a) / a * b[h * N + n]).epsilon(1e-12));
    }
  }
}

TEST_CASE("zoh_discretize_dense gradcheck", "[cpu][lssl]") {
  const std::int64_t H = 2, N = 3;
  for (bool shared : {true, false}) {
    INFO("shared " << shared);
    Tensor A = shared ? random_tensor({N, N}, 51) : random_tensor({H, N, N}, 52);
    Tensor B = shared ? random_tensor({N}, 53) : random_tensor({H, N}, 54);
    Tensor dt = random_tensor({H}, 55, 0.2, 2.0);  // norms past theta_13: scaling and squaring
    require_gradcheck(
        [](const std::vector<Tensor>& x) {
          auto [dA, dB] = zoh_discretize_dense(x[0], x[1], x[2]);
          return cat({reshape(dA, {-1}), reshape(dB, {-1})});
        },
        {A, B, dt});
  }
}

// ================================================================ krylov_kernel

TEST_CASE("krylov_kernel equals C Ā^l B̄ (HiPPO LegS, N up to 64, L up to 4096)", "[cpu][lssl]") {
  struct Case {
    std::int64_t N, L;
  };
  for (const Case cs : {Case{1, 5}, Case{3, 64}, Case{16, 1000}, Case{64, 4096}}) {
    INFO("N " << cs.N << ", L " << cs.L);
    const std::int64_t H = 2, Cc = 2;
    auto [A, B] = legs(cs.N);
    // Bilinear with dt ~ 1/L: a stable, slowly decaying LTI system.
    const Tensor dt = Tensor::from_vector<double>({2.0 / cs.L, 10.0 / cs.L}, {H});
    auto [dA, dB] = gbt_discretize(A, B, dt, 0.5);
    const Tensor C = random_tensor({Cc, H, cs.N}, 61, -1, 1, DType::Float64, false);
    const Tensor ref = naive_krylov(dA, dB, C, cs.L);
    const double scale = max_abs(ref);
    require_close(krylov_kernel(dA, dB, C, cs.L), ref, 1e-11 * scale, 1e-10);
    const Tensor K32 =
        krylov_kernel(dA.to(DType::Float32), dB.to(DType::Float32), C.to(DType::Float32), cs.L);
    REQUIRE(K32.dtype() == DType::Float32);
    require_close(K32, ref, 1e-4 * scale, 1e-4);
  }
}

TEST_CASE("krylov_kernel gradcheck", "[cpu][lssl]") {
  SECTION("doubling only (L = 9)") {
    Tensor dA = stable_random(2, 3, 71, 0.9).set_requires_grad(true);
    Tensor dB = random_tensor({2, 3}, 72);
    Tensor C = random_tensor({2, 2, 3}, 73);
    require_gradcheck(
        [](const std::vector<Tensor>& x) { return krylov_kernel(x[0], x[1], x[2], 9); },
        {dA, dB, C});
  }
  SECTION("blocks of 64 past the doubling (L = 150), one channel") {
    Tensor dA = stable_random(1, 3, 74, 0.9).set_requires_grad(true);
    Tensor dB = random_tensor({1, 3}, 75);
    Tensor C = random_tensor({1, 1, 3}, 76);
    require_gradcheck(
        [](const std::vector<Tensor>& x) { return krylov_kernel(x[0], x[1], x[2], 150); },
        {dA, dB, C});
  }
  SECTION("L = 1 and only some inputs requiring grad") {
    Tensor dA = stable_random(2, 2, 77, 0.5).set_requires_grad(true);
    Tensor dB = random_tensor({2, 2}, 78, -1, 1, DType::Float64, false);
    Tensor C = random_tensor({1, 2, 2}, 79);
    for (std::int64_t L : {1, 2}) {
      require_gradcheck(
          [L](const std::vector<Tensor>& x) { return krylov_kernel(x[0], x[1], x[2], L); },
          {dA, dB, C});
    }
  }
}

TEST_CASE("the LSSL chain gbt -> krylov_kernel gradcheck through A, B, dt and C", "[cpu][lssl]") {
  auto [A0, B0] = legs(4);
  Tensor A = A0.clone().set_requires_grad(true), B = B0.clone().set_requires_grad(true);
  Tensor log_dt = random_tensor({2}, 81, std::log(0.01), std::log(0.1));
  Tensor C = random_tensor({1, 2, 4}, 82);
  for (const std::string disc : {"gbt", "zoh"}) {
    INFO(disc);
    require_gradcheck(
        [disc](const std::vector<Tensor>& x) {
          const Tensor dt = exp(x[2]);
          auto [dA, dB] = disc == "gbt" ? gbt_discretize(x[0], x[1], dt, 0.5)
                                        : zoh_discretize_dense(x[0], x[1], dt);
          return krylov_kernel(dA, dB, x[3], 70);
        },
        {A, B, log_dt, C});
  }
}

TEST_CASE("krylov_kernel and its gradients do not depend on the thread count", "[cpu][lssl]") {
  const std::int64_t H = 5, N = 8, L = 300;
  Tensor dA = stable_random(H, N, 91, 0.95).set_requires_grad(true);
  Tensor dB = random_tensor({H, N}, 92);
  Tensor C = random_tensor({2, H, N}, 93);
  const Tensor g = random_tensor({2, H, L}, 94, -1, 1, DType::Float64, false);
  const int threads = kernels::num_threads();
  std::vector<std::vector<double>> runs;
  for (int n : {1, 3}) {
    kernels::set_num_threads(n);
    for (Tensor* t : {&dA, &dB, &C}) t->zero_grad();
    const Tensor K = krylov_kernel(dA, dB, C, L);
    backward(K, g);
    std::vector<double> all = K.to_vector<double>();
    for (const Tensor* t : {&dA, &dB, &C}) {
      const auto v = t->grad().to_vector<double>();
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

TEST_CASE("dense_ssm_step from a zero state reproduces the Krylov convolution", "[cpu][lssl]") {
  const std::int64_t H = 3, N = 5, Cc = 2, Bsz = 2, L = 40;
  const Tensor dA = stable_random(H, N, 101, 0.9);
  const Tensor dB = random_tensor({H, N}, 102, -1, 1, DType::Float64, false);
  const Tensor C = random_tensor({Cc, H, N}, 103, -1, 1, DType::Float64, false);
  const Tensor u = random_tensor({L, Bsz, H}, 104, -1, 1, DType::Float64, false);
  const auto K = naive_krylov(dA, dB, C, L).to_vector<double>();
  const auto uv = u.to_vector<double>();
  // A non-contiguous state view: written in place through its strides.
  Tensor big = Tensor::zeros({Bsz, H, 2 * N}, DType::Float64);
  Tensor state = big.narrow(2, 0, N);
  for (std::int64_t t = 0; t < L; ++t) {
    const auto y = kernels::dense_ssm_step(dA, dB, C, u.select(0, t), state).to_vector<double>();
    for (std::int64_t b = 0; b < Bsz; ++b)
      for (std::int64_t c = 0; c < Cc; ++c)
        for (std::int64_t h = 0; h < H; ++h) {
          double ref = 0.0;
          for (std::int64_t l = 0; l <= t; ++l)
            ref += K[(c * H + h) * L + l] * uv[((t - l) * Bsz + b) * H + h];
          REQUIRE(y[(b * Cc + c) * H + h] == Approx(ref).epsilon(1e-12).margin(1e-12));
        }
  }
}

TEST_CASE("LSSL ops reject bad arguments with messages naming the op", "[cpu][lssl]") {
  const Tensor A = random_tensor({3, 3}, 111, -1, 1, DType::Float64, false);
  const Tensor B = random_tensor({3}, 112, -1, 1, DType::Float64, false);
  const Tensor dt = Tensor::from_vector<double>({0.1, 0.2}, {2});
  CHECK_THAT(error_message([&] { gbt_discretize(A, B, dt, 1.5); }),
             Catch::Contains("[gbt_discretize] alpha must be in [0, 1]"));
  CHECK_THAT(error_message([&] { gbt_discretize(A.narrow(1, 0, 2), B, dt, 0.5); }),
             Catch::Contains("[gbt_discretize] A must be (N, N) or (H, N, N)"));
  CHECK_THAT(error_message([&] { gbt_discretize(A, Tensor::zeros({4}, DType::Float64), dt, 0.5); }),
             Catch::Contains("[gbt_discretize] B must be (N) or (H, N)"));
  CHECK_THAT(
      error_message([&] {
        zoh_discretize_dense(Tensor::zeros({3, 3, 3}, DType::Float64), B, dt);
      }),
      Catch::Contains("[zoh_discretize_dense] A (3, 3, 3) float64 cpu has 3 features but dt"));
  CHECK_THAT(error_message([&] {
               gbt_discretize(A, B, Tensor::from_vector<double>({0.1, 0.0}, {2}), 0.5);
             }),
             Catch::Contains("[gbt_discretize] dt must be positive and finite, got dt[1] = 0"));
  CHECK_THAT(error_message([&] { gbt_discretize(A, B, dt.to(DType::Float32), 0.5); }),
             Catch::Contains("[gbt_discretize]"));
  // alpha = 1, dt A = I: I - dt A = 0.
  const Tensor I = Tensor::from_vector<double>({1, 0, 0, 1}, {2, 2});
  CHECK_THAT(error_message([&] {
               gbt_discretize(I, Tensor::ones({2}, DType::Float64),
                              Tensor::from_vector<double>({0.5, 1.0}, {2}), 1.0);
             }),
             Catch::Contains("[gbt_discretize] I - alpha dt A is singular for feature 1"));
  auto [dA, dB] = gbt_discretize(A, B, dt, 0.5);
  const Tensor C = Tensor::ones({1, 2, 3}, DType::Float64);
  CHECK_THAT(error_message([&] { krylov_kernel(dA, dB, C, 0); }),
             Catch::Contains("[krylov_kernel] L must be positive, got 0"));
  CHECK_THAT(error_message([&] {
               krylov_kernel(dA, dB, Tensor::ones({1, 3, 3}, DType::Float64), 4);
             }),
             Catch::Contains("[krylov_kernel] C must be (Cc, H, N) = (Cc, 2, 3)"));
  CHECK_THAT(error_message([&] { krylov_kernel(dA, dB.narrow(1, 0, 2), C, 4); }),
             Catch::Contains("[krylov_kernel] dB must be (H, N) = (2, 3)"));
  Tensor state = Tensor::zeros({4, 2, 2}, DType::Float64);
  CHECK_THAT(error_message([&] {
               kernels::dense_ssm_step(dA, dB, C, Tensor::zeros({4, 2}, DType::Float64), state);
             }),
             Catch::Contains("[dense_ssm_step] state must be (B, H, N) = (4, 2, 3)"));
}

// ================================================================ LSSLKernel

TEST_CASE("LSSLKernel: convolution view equals recurrent view at L = 1024", "[cpu][lssl]") {
  struct Case {
    const char* measure;
    bool learn_A;
    const char* disc;
  };
  for (const Case cs :
       {Case{"legs", false, "gbt"}, Case{"legs", true, "gbt"}, Case{"legt", false, "gbt"},
        Case{"lagt", true, "zoh"}, Case{"fout", false, "gbt"}}) {
    INFO(cs.measure << ", learn_A " << cs.learn_A << ", " << cs.disc);
    LSSLOptions o;
    o.measure = cs.measure;
    o.learn_A = cs.learn_A;
    o.disc = cs.disc;
    Generator gen(7);
    LSSLKernel k32(4, 16, 2, o, gen, DType::Float32);
    CHECK(conv_vs_recurrent(k32, 1024, 2, 8) < 1e-4);
    Generator gen64(7);
    LSSLKernel k64(4, 16, 2, o, gen64, DType::Float64);
    CHECK(conv_vs_recurrent(k64, 1024, 2, 8) < 1e-11);
  }
}

TEST_CASE("LSSLKernel: state_dict names, shapes, tags; LSSL-fixed keeps A and B as buffers",
          "[cpu][lssl]") {
  const std::int64_t H = 3, N = 8, Cc = 2;
  Generator gen(1);
  LSSLOptions fixed;
  LSSLKernel kf(H, N, Cc, fixed, gen);
  std::vector<std::string> names;
  for (const auto& p : kf.named_parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"log_dt", "C"});
  const StateDict buffers = kf.named_buffers();
  REQUIRE(buffers.size() == 2);
  CHECK(buffers[0].first == "A");
  CHECK(buffers[1].first == "B");
  CHECK_FALSE(kf.A().requires_grad());
  const hippo::Transition tr = hippo::transition("legs", N);
  require_close(kf.A(), Tensor::from_vector<double>(tr.A, {N, N}), 0, 1e-6);
  require_close(kf.B(), Tensor::from_vector<double>(tr.B, {N}), 0, 1e-6);

  LSSLOptions learned;
  learned.learn_A = true;
  LSSLKernel kl(H, N, Cc, learned, gen);
  std::vector<std::pair<std::string, Shape>> got;
  for (const auto& [name, t] : kl.state_dict()) got.emplace_back(name, t.shape());
  CHECK(got == std::vector<std::pair<std::string, Shape>>{
                   {"A", {N, N}}, {"B", {N}}, {"log_dt", {H}}, {"C", {Cc, H, N}}});
  for (const auto& p : kl.named_parameters()) {
    INFO(p.name);
    CHECK(p.has_tag("ssm") == (p.name != "C"));
  }
  // log_dt in [log dt_min, log dt_max]; C ~ N(0, 1).
  for (double v : kl.log_dt().to_vector<double>()) {
    CHECK(v >= std::log(1e-3));
    CHECK(v <= std::log(1e-1));
  }
  CHECK(kl.d_model() == H);
  CHECK(kl.d_state() == N);
  CHECK(kl.channels() == Cc);
  CHECK(kl.forward(10).shape() == Shape({Cc, H, 10}));
  CHECK(kl.default_state(5).shape() == Shape({5, H, N}));
}

TEST_CASE("LSSLKernel: gradients reach log_dt and C, and A, B only when learned", "[cpu][lssl]") {
  for (bool learn : {false, true}) {
    INFO("learn_A " << learn);
    Generator gen(3);
    LSSLOptions o;
    o.learn_A = learn;
    LSSLKernel k(2, 4, 1, o, gen, DType::Float64);
    backward(sum(k.forward(32)));
    CHECK(k.log_dt().grad().defined());
    CHECK(k.C().grad().defined());
    CHECK(k.A().grad().defined() == learn);
    CHECK(k.B().grad().defined() == learn);
    CHECK(k.parameters().size() == (learn ? 4u : 2u));
  }
}

TEST_CASE("LSSLKernel rejects bad options", "[cpu][lssl]") {
  Generator gen(1);
  LSSLOptions o;
  o.measure = "legx";
  CHECK_THAT(error_message([&] { LSSLKernel(2, 4, 1, o, gen); }),
             Catch::Contains("[LSSLKernel] unknown measure 'legx'"));
  o = LSSLOptions();
  o.disc = "euler";
  CHECK_THAT(error_message([&] { LSSLKernel(2, 4, 1, o, gen); }),
             Catch::Contains("[LSSLKernel] unknown disc 'euler'"));
  o = LSSLOptions();
  o.dt_min = 0.5;
  CHECK_THAT(error_message([&] { LSSLKernel(2, 4, 1, o, gen); }),
             Catch::Contains("[LSSLKernel] need 0 < dt_min <= dt_max"));
  LSSLKernel k(2, 4, 1, LSSLOptions(), gen);
  Tensor state = k.default_state(1);
  CHECK_THAT(error_message([&] {
               k.step(Tensor::zeros({1, 2}), state);
             }),
             Catch::Contains("[LSSLKernel] step needs setup_step() first"));
}
