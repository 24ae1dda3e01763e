// The vectorizable math of kernels/cpu/simd_math.h against libm in double
// precision, over dense sweeps and the edge values.
#include <cmath>
#include <limits>

#include "kernels/cpu/simd_math.h"
#include "tests/testing.h"

namespace simd = ssm::kernels::simd;

namespace {

double rel_err(double got, double want) {
  if (got == want) return 0.0;
  return std::abs(got - want) / std::abs(want);
}

}  // namespace

TEST_CASE("simd::exp is within 2 ulp of exp over the whole range", "[cpu][simd]") {
  constexpr float kFloatUlp = std::numeric_limits<float>::epsilon();
  constexpr double kDoubleUlp = std::numeric_limits<double>::epsilon();
  double worst_f = 0, worst_d = 0;
  for (double x = -87.3; x <= 88.7; x += 0.000731) {
    const float xf = static_cast<float>(x);
    worst_f = std::max(worst_f, rel_err(simd::exp(xf), std::exp(static_cast<double>(xf))));
  }
  for (double x = -708.0; x <= 709.7; x += 0.00373) {
    worst_d = std::max(worst_d, rel_err(simd::exp(x), std::exp(x)));
  }
  INFO("worst relative error: float " << worst_f << ", double " << worst_d);
  CHECK(worst_f <= 2 * kFloatUlp);
  CHECK(worst_d <= 2 * kDoubleUlp);
  // The largest finite results: k = 128 (float) still fits.
  CHECK(rel_err(simd::exp(88.72f), std::exp(static_cast<double>(88.72f))) <= 2 * kFloatUlp);
  CHECK(std::isfinite(simd::exp(88.72f)));
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(simd::exp(-inf) == 0.0f);
  CHECK(simd::exp(-100.0f) == 0.0f);  // below the smallest normal: flushed
  CHECK(simd::exp(89.0f) == inf);
  CHECK(simd::exp(inf) == inf);
  CHECK(std::isnan(simd::exp(std::numeric_limits<float>::quiet_NaN())));
  CHECK(simd::exp(0.0f) == 1.0f);
  CHECK(simd::exp(0.0) == 1.0);
  CHECK(simd::exp(710.0) == std::numeric_limits<double>::infinity());
  CHECK(simd::exp(-1000.0) == 0.0);
}

TEST_CASE("simd::sigmoid is accurate and saturates without overflow", "[cpu][simd]") {
  double worst = 0;
  for (double x = -80; x <= 80; x += 0.00917) {
    const float xf = static_cast<float>(x);
    const double want = 1.0 / (1.0 + std::exp(-static_cast<double>(xf)));
    worst = std::max(worst, rel_err(simd::sigmoid(xf), want));
  }
  INFO("worst relative error " << worst);
  CHECK(worst <= 4 * std::numeric_limits<float>::epsilon());
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(simd::sigmoid(inf) == 1.0f);
  CHECK(simd::sigmoid(-inf) == 0.0f);
  CHECK(simd::sigmoid(0.0f) == 0.5f);
  CHECK(std::isnan(simd::sigmoid(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("simd::normal_cdf keeps relative accuracy in the lower tail", "[cpu][simd]") {
  // Phi(x) = erfc(-x / sqrt 2) / 2 in double is the oracle.
  // The tail's error grows with x^2 rounded to float inside the exp.
  double worst_rel = 0, worst_tail_rel = 0, worst_abs = 0;
  for (double x = -13; x <= 8; x += 0.000613) {
    const float xf = static_cast<float>(x);
    const double want = 0.5 * std::erfc(-static_cast<double>(xf) / std::sqrt(2.0));
    const double got = simd::normal_cdf(xf);
    worst_abs = std::max(worst_abs, std::abs(got - want));
    if (want >= 1e-5) {
      worst_rel = std::max(worst_rel, rel_err(got, want));
    } else if (want > 1e-37) {
      worst_tail_rel = std::max(worst_tail_rel, rel_err(got, want));
    }
  }
  INFO("worst relative error " << worst_rel << " (Phi >= 1e-5), " << worst_tail_rel
                               << " (tail), absolute " << worst_abs);
  CHECK(worst_rel <= 2e-6);
  CHECK(worst_tail_rel <= 3e-5);
  CHECK(worst_abs <= 2e-7);
  CHECK(simd::normal_cdf(std::numeric_limits<float>::infinity()) == 1.0f);
  CHECK(simd::normal_cdf(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(std::isnan(simd::normal_cdf(std::numeric_limits<float>::quiet_NaN())));
}
