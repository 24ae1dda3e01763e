// kernels::fft against a naive O(n^2) DFT in long double: numpy's conventions
// (forward unscaled, inverse scaled by 1/n), real and complex, for powers of
// two and other lengths, aligned and misaligned arrays.
#include <complex>
#include <numbers>
#include <vector>

#include "kernels/fft.h"
#include "tests/testing.h"

namespace {

using cd = std::complex<double>;

std::vector<cd> naive_dft(const std::vector<cd>& x, int sign) {
  const auto n = static_cast<std::int64_t>(x.size());
  std::vector<cd> out(x.size());
  for (std::int64_t k = 0; k < n; ++k) {
    std::complex<long double> acc = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      const long double ang = sign * 2.0L * std::numbers::pi_v<long double> *
                              static_cast<long double>((j * k) % n) / static_cast<long double>(n);
      acc += std::complex<long double>(x[j]) * std::polar(1.0L, ang);
    }
    out[k] = cd(static_cast<double>(acc.real()), static_cast<double>(acc.imag()));
  }
  return out;
}

std::vector<double> random_values(std::size_t n, std::uint64_t seed) {
  const auto t = ssm::testing::random_tensor({static_cast<std::int64_t>(n)}, seed, -1, 1,
                                             ssm::DType::Float64, false);
  return t.to_vector<double>();
}

}  // namespace

TEST_CASE("rfft and irfft match the naive DFT and invert each other", "[cpu][fft]") {
  namespace fft = ssm::kernels::fft;
  for (std::int64_t n : {1, 2, 7, 16, 60, 2048}) {
    INFO("n = " << n);
    auto x = random_values(static_cast<std::size_t>(n), 7 + n);
    std::vector<cd> xc(x.begin(), x.end());
    const auto ref = naive_dft(xc, -1);
    std::vector<cd> X(static_cast<std::size_t>(n / 2 + 1));
    fft::rfft(x.data(), X.data(), n);
    for (std::int64_t k = 0; k <= n / 2; ++k) {
      REQUIRE(std::abs(X[k] - ref[k]) < 1e-10 * (1 + n));
    }
    std::vector<double> back(static_cast<std::size_t>(n));
    fft::irfft(X.data(), back.data(), n);
    for (std::int64_t j = 0; j < n; ++j) REQUIRE(std::abs(back[j] - x[j]) < 1e-12 * (1 + n));

    // float, through a misaligned input (offset by one element)
    std::vector<float> xf(static_cast<std::size_t>(n) + 1);
    for (std::int64_t j = 0; j < n; ++j) xf[j + 1] = static_cast<float>(x[j]);
    std::vector<std::complex<float>> Xf(static_cast<std::size_t>(n / 2 + 2));
    fft::rfft(xf.data() + 1, Xf.data() + 1, n);
    for (std::int64_t k = 0; k <= n / 2; ++k) {
      REQUIRE(std::abs(cd(Xf[k + 1]) - ref[k]) < 1e-5 * (1 + n));
    }
  }
}

TEST_CASE("complex fft and ifft match the naive DFT", "[cpu][fft]") {
  namespace fft = ssm::kernels::fft;
  for (std::int64_t n : {1, 3, 32, 100}) {
    INFO("n = " << n);
    const auto re = random_values(static_cast<std::size_t>(n), 100 + n);
    const auto im = random_values(static_cast<std::size_t>(n), 200 + n);
    std::vector<cd> x(static_cast<std::size_t>(n));
    for (std::int64_t j = 0; j < n; ++j) x[j] = cd(re[j], im[j]);
    const auto ref = naive_dft(x, -1);
    const auto ref_inv = naive_dft(x, +1);
    std::vector<cd> X(x.size()), Y(x.size());
    fft::fft(x.data(), X.data(), n);
    fft::ifft(x.data(), Y.data(), n);
    for (std::int64_t k = 0; k < n; ++k) {
      REQUIRE(std::abs(X[k] - ref[k]) < 1e-10 * (1 + n));
      REQUIRE(std::abs(Y[k] - ref_inv[k] / static_cast<double>(n)) < 1e-12 * (1 + n));
    }
  }
  REQUIRE(fft::next_pow2(1) == 1);
  REQUIRE(fft::next_pow2(1025) == 2048);
  REQUIRE(ssm::testing::error_message([] { fft::next_pow2(0); }).find("[next_pow2]") == 0);
}
