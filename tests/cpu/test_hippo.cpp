// HiPPO matrices against their closed forms, the NPLR decomposition against
// the dense matrix it decomposes, the S4D initialisations, and the online
// LegS projection against the Legendre expansion it is meant to compute.
#include <Eigen/Dense>
#include <cmath>
#include <numbers>

#include "layers/ssm/hippo.h"
#include "tests/testing.h"

namespace hippo = ssm::hippo;

namespace {

double at(const hippo::Transition& t, std::int64_t n, std::int64_t k) { return t.A[n * t.N + k]; }

}  // namespace

TEST_CASE("HiPPO transition matrices equal their closed forms", "[cpu][hippo]") {
  const std::int64_t N = 6;
  const auto legs = hippo::transition("legs", N);
  const auto legt = hippo::transition("legt", N);
  const auto lagt = hippo::transition("lagt", N);
  for (std::int64_t n = 0; n < N; ++n) {
    const double rn = std::sqrt(2.0 * n + 1.0);
    CHECK(legs.B[n] == Approx(rn));
    CHECK(legt.B[n] == Approx(0.5 * rn));
    CHECK(lagt.B[n] == 1.0);
    for (std::int64_t k = 0; k < N; ++k) {
      const double rk = std::sqrt(2.0 * k + 1.0);
      const double legs_ref = n > k ? -rn * rk : (n == k ? -(n + 1.0) : 0.0);
      CHECK(at(legs, n, k) == Approx(legs_ref).margin(1e-12));
      const double legt_ref = -0.5 * rn * rk * (n >= k ? 1.0 : std::pow(-1.0, n - k));
      CHECK(at(legt, n, k) == Approx(legt_ref).margin(1e-12));
      const double lagt_ref = (n == k ? 0.5 : 0.0) - (k <= n ? 1.0 : 0.0);
      CHECK(at(lagt, n, k) == Approx(lagt_ref).margin(1e-12));
    }
  }
  // FouT, N = 4: states (cos 0, sin 0, cos 1, sin 1); only (cos 1, sin 1) rotate.
  const auto fout = hippo::transition("fout", 4);
  const double s2 = std::sqrt(2.0), pi = std::numbers::pi;
  const double Bf[4] = {1.0, 0.0, s2, 0.0};
  const double rot[4][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, -pi}, {0, 0, pi, 0}};
  for (int n = 0; n < 4; ++n) {
    CHECK(fout.B[n] == Approx(Bf[n]));
    for (int k = 0; k < 4; ++k)
      CHECK(at(fout, n, k) == Approx(rot[n][k] - Bf[n] * Bf[k]).margin(1e-12));
  }
  CHECK(ssm::testing::error_message([] {
          hippo::transition("legx", 4);
        }).find("[hippo::transition] unknown measure 'legx'") == 0);
}

TEST_CASE("NPLR reconstructs the HiPPO matrix (LegS N=64 below 1e-5)", "[cpu][hippo]") {
  struct Case {
    const char* measure;
    std::int64_t N, rank;
  };
  for (const Case c : {Case{"legs", 64, 1}, Case{"legs", 8, 2}, Case{"legt", 32, 2},
                       Case{"lagt", 16, 1}, Case{"fout", 16, 1}}) {
    INFO(c.measure << " N=" << c.N << " rank=" << c.rank);
    const auto t = hippo::transition(c.measure, c.N);
    const auto d = hippo::nplr(c.measure, c.N, c.rank);
    const std::int64_t N = c.N, half = N / 2;
    Eigen::MatrixXcd V(N, N), A(N, N), P(N, c.rank);
    Eigen::VectorXcd lam(N);
    for (std::int64_t n = 0; n < N; ++n) {
      lam(n) = d.Lambda_full[n];
      for (std::int64_t k = 0; k < N; ++k) {
        V(n, k) = d.V[n * N + k];
        A(n, k) = at(t, n, k);
      }
      for (std::int64_t q = 0; q < c.rank; ++q) P(n, q) = d.P_full[q * N + n];
    }
    const double unitary = (V.adjoint() * V - Eigen::MatrixXcd::Identity(N, N)).norm();
    CHECK(unitary < 1e-10);
    const Eigen::MatrixXcd rebuilt = V * lam.asDiagonal() * V.adjoint() - P * P.adjoint();
    const double err = (rebuilt - A).cwiseAbs().maxCoeff();
    CHECK(err < 1e-5);
    // The stored half: conjugate pairs kept once, Im <= 0, P and B in the eigenbasis.
    for (std::int64_t j = 0; j < half; ++j) {
      CHECK(d.Lambda[j].imag() <= 1e-12);
      CHECK(std::abs(d.Lambda_full[half + j] - std::conj(d.Lambda[j])) < 1e-12);
      Eigen::VectorXcd Bv(N);
      for (std::int64_t n = 0; n < N; ++n) Bv(n) = t.B[n];
      CHECK(std::abs((V.col(j).adjoint() * Bv)(0) - d.B[j]) < 1e-10);
      CHECK(std::abs((V.col(j).adjoint() * P.col(0))(0) - d.P[j]) < 1e-10);
    }
  }
  // LegS: A + P P^T = -1/2 I + S, so every eigenvalue has real part -1/2.
  for (const auto& l : hippo::nplr("legs", 16).Lambda) CHECK(l.real() == Approx(-0.5));
  CHECK(ssm::testing::error_message([] { hippo::nplr("legs", 7); }).find("must be even") !=
        std::string::npos);
  CHECK(ssm::testing::error_message([] { hippo::nplr("legt", 8, 1); }).find("rank >= 2") !=
        std::string::npos);
}

TEST_CASE("S4D initialisations", "[cpu][hippo]") {
  const std::int64_t N = 8;
  const double pi = std::numbers::pi;
  const auto lin = hippo::s4d_lambda("lin", N), inv = hippo::s4d_lambda("inv", N);
  const auto real = hippo::s4d_lambda("real", N), legs = hippo::s4d_lambda("legs", N);
  REQUIRE(lin.size() == 4);
  for (int n = 0; n < 4; ++n) {
    CHECK(lin[n] == std::complex<double>(-0.5, pi * n));
    CHECK(inv[n].real() == -0.5);
    CHECK(inv[n].imag() == Approx(N / pi * (N / (2.0 * n + 1.0) - 1.0)));
    CHECK(real[n] == std::complex<double>(-(n + 1.0), 0.0));
    CHECK(legs[n] == hippo::nplr("legs", N).Lambda[n]);
  }
  CHECK(ssm::testing::error_message([] {
          hippo::s4d_lambda("foo", 8);
        }).find("[hippo::s4d_lambda] unknown init 'foo'") == 0);
}

TEST_CASE("online LegS projection recovers a polynomial signal", "[cpu][hippo]") {
  // A cubic in time lies in the span of the first four Legendre polynomials,
  // so 16 coefficients represent it; what remains is the bilinear steps' error.
  const std::int64_t L = 4000;
  std::vector<double> u(L);
  for (std::int64_t k = 0; k < L; ++k) {
    const double s = (k + 1.0) / L;
    u[k] = 1.0 - 2.0 * s + 3.0 * s * s * s;
  }
  const auto x = hippo::legs_project(u, 16);
  const auto r = hippo::legs_reconstruct(x, L);
  double worst = 0.0;
  for (std::int64_t k = L / 10; k < L; ++k) worst = std::max(worst, std::abs(r[k] - u[k]));
  INFO("max error after the first 10%: " << worst);
  CHECK(worst < 5e-3);
  for (std::int64_t n = 4; n < 16; ++n) CHECK(std::abs(x[n]) < 1e-3);

  // Time-invariant LegS: a constant input is a fixed point (x = e_0), read back as 1 at every lag.
  std::vector<double> ones(500, 1.0);
  const auto xl = hippo::legs_project_lti(ones, 8, 0.05);
  CHECK(xl[0] == Approx(1.0).margin(1e-3));
  const auto rl = hippo::legs_reconstruct_lti(xl, 500, 0.05);
  CHECK(rl.back() == Approx(1.0).margin(1e-3));
}

TEST_CASE("hippo_demo writes its picture and prints the errors; bad input exits 2",
          "[cpu][hippo][cli]") {
  ssm::testing::TempDir tmp("hippo_demo");
  const std::string bin = SSM_BIN_DIR;
  const auto log = tmp.path() / "log.txt";
  {
    const auto [rc, out] = ssm::testing::run_command(
        bin + "/hippo_demo --steps 2000 --N 32 --out " + tmp.file("pics"), log);
    INFO(out);
    REQUIRE(rc == 0);
    CHECK(std::filesystem::file_size(tmp.path() / "pics" / "hippo_demo.svg") > 1000);
    // The scale-invariant memory keeps the whole history; the time-invariant
    // one forgets: its error on the oldest tenth exceeds that on the newest.
    std::istringstream lines(out);
    std::string line;
    double tv[3] = {0, 0, 0}, lti[3] = {0, 0, 0};
    while (std::getline(lines, line)) {
      auto read3 = [&](double* v) {
        std::istringstream ls(line.substr(line.find(')') + 1));
        ls >> v[0] >> v[1] >> v[2];
      };
      if (line.rfind("LegS scale-invariant", 0) == 0) read3(tv);
      if (line.rfind("LegS time-invariant", 0) == 0) read3(lti);
    }
    CHECK(tv[0] > 0.0);
    CHECK(tv[0] < 0.05);
    CHECK(lti[1] > 10 * lti[2]);
  }
  {
    const auto [rc, out] = ssm::testing::run_command(bin + "/hippo_demo --N 0", log);
    CHECK(rc == 2);
    CHECK(out.find("hippo_demo:") != std::string::npos);
  }
}
