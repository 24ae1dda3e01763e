// The dense discretizations (LSSL: GBT, ZOH by the matrix exponential) and
// the diagonal complex ones (S4, S4D) describe the same map: a complex
// eigenvalue lambda = a + ib acts on R^2 as the block [[a, -b], [b, a]], and
// multiplication by a complex z as [[Re z, -Im z], [Im z, Re z]]. So GBT with
// alpha 0.5 of a block-diagonal A must equal the diagonal bilinear rule, and
// dense ZOH the diagonal ZOH, block by block (B = e_{2j} reads column 2j).
#include "autograd/ops.h"
#include "tests/testing.h"

using namespace ssm;

TEST_CASE("GBT(0.5) equals diagonal bilinear and dense ZOH equals diagonal ZOH",
          "[cpu][discretize]") {
  const std::int64_t H = 2, N2 = 3, N = 2 * N2;
  Tensor lam = Tensor::empty({H, N2, 2}, DType::Float64);  // (H, N2, 2): Re < 0
  Tensor dt = Tensor::empty({H}, DType::Float64);
  {
    Generator gen(3);
    uniform_(lam, -2.0, 2.0, gen);
    uniform_(dt, 0.01, 0.5, gen);
  }
  auto lv = lam.to_vector<double>();
  for (std::int64_t i = 0; i < H * N2; ++i) lv[2 * i] = -std::abs(lv[2 * i]) - 0.1;
  lam = Tensor::from_vector(lv, {H, N2, 2});
  // Block-diagonal real A (H, N, N) and B = the sum of every block's e_{2j}
  // (blocks do not mix, so each block sees its own e_{2j}).
  std::vector<double> A(static_cast<std::size_t>(H * N * N), 0.0),
      B(static_cast<std::size_t>(H * N), 0.0);
  for (std::int64_t h = 0; h < H; ++h) {
    for (std::int64_t j = 0; j < N2; ++j) {
      const double a = lv[2 * (h * N2 + j)], b = lv[2 * (h * N2 + j) + 1];
      auto at = [&](std::int64_t r, std::int64_t c) -> double& { return A[(h * N + r) * N + c]; };
      at(2 * j, 2 * j) = a;
      at(2 * j, 2 * j + 1) = -b;
      at(2 * j + 1, 2 * j) = b;
      at(2 * j + 1, 2 * j + 1) = a;
      B[h * N + 2 * j] = 1.0;
    }
  }
  const Tensor Ad = Tensor::from_vector(A, {H, N, N}), Bd = Tensor::from_vector(B, {H, N});
  NoGradGuard ng;
  for (const std::string method : {"bilinear", "zoh"}) {
    INFO(method);
    const auto diag = diag_discretize(dt, lam, method);
    const auto dense =
        method == "bilinear" ? gbt_discretize(Ad, Bd, dt, 0.5) : zoh_discretize_dense(Ad, Bd, dt);
    const auto dA = diag.dA.to_vector<double>(), dB = diag.dB.to_vector<double>();
    const auto DA = dense.dA.to_vector<double>(), DB = dense.dB.to_vector<double>();
    for (std::int64_t h = 0; h < H; ++h) {
      for (std::int64_t j = 0; j < N2; ++j) {
        const double re = dA[2 * (h * N2 + j)], im = dA[2 * (h * N2 + j) + 1];
        auto at = [&](std::int64_t r, std::int64_t c) { return DA[(h * N + r) * N + c]; };
        CHECK(at(2 * j, 2 * j) == Approx(re).margin(1e-12));
        CHECK(at(2 * j, 2 * j + 1) == Approx(-im).margin(1e-12));
        CHECK(at(2 * j + 1, 2 * j) == Approx(im).margin(1e-12));
        CHECK(at(2 * j + 1, 2 * j + 1) == Approx(re).margin(1e-12));
        // B-bar: the diagonal dB times B (= 1 here) against the dense B-bar's block column.
        CHECK(DB[h * N + 2 * j] == Approx(dB[2 * (h * N2 + j)]).margin(1e-12));
        CHECK(DB[h * N + 2 * j + 1] == Approx(dB[2 * (h * N2 + j) + 1]).margin(1e-12));
      }
    }
  }
}
