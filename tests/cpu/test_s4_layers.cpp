// S4DKernel and S4Kernel: the convolutional view (forward(L)) and the
// recurrent view (setup_step / step) agree at L = 1024 in float32 against a
// direct causal convolution in double; parameter names, shapes, tags and
// inits; C-tilde against a dense C (I - A-bar^l_max); finite differences of
// the raw parameters through forward(L); error messages.
#include <Eigen/Dense>
#include <complex>
#include <numbers>

#include "layers/ssm/hippo.h"
#include "layers/ssm/s4.h"
#include "layers/ssm/s4d.h"
#include "tests/ssm_testing.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::conv_vs_recurrent;
using ssm::testing::error_message;
using ssm::testing::require_close;

namespace {

using cd = std::complex<double>;

std::map<std::string, NamedParameter> params_by_name(const Module& m) {
  std::map<std::string, NamedParameter> out;
  for (const auto& p : m.named_parameters()) out[p.name] = p;
  return out;
}

// A fixed random projection for the kernel of k at length L.
Tensor random_tensor_like(const SSMKernel& k, std::int64_t L) {
  return ssm::testing::random_tensor({k.channels(), k.d_model(), L}, 99, 0.5, 1.5, DType::Float64,
                                     false);
}

// (H, N2, 2): every value 1 + 0i.
Tensor complex_ones(std::int64_t H, std::int64_t N2) {
  Tensor t = Tensor::zeros({H, N2, 2}, DType::Float64);
  t.select(2, 0).fill_(1.0);
  return t;
}

// Central differences of s = sum(forward(L) * R) in a few elements of every
// parameter against the tape's gradient (float64 module).
void check_parameter_gradients(SSMKernel& k, std::int64_t L) {
  const Tensor R = random_tensor_like(k, L);
  for (const Tensor& p : k.parameters()) p.zero_grad();
  backward(sum(mul(k.forward(L), R)));
  const auto project = [&] {
    NoGradGuard no_grad;
    const auto y = k.forward(L).to_vector<double>(), r = R.to_vector<double>();
    double s = 0.0;
    for (std::size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
    return s;
  };
  for (const auto& p : k.named_parameters()) {
    INFO("parameter " << p.name);
    const Tensor g = p.tensor.grad();
    REQUIRE(g.defined());
    const auto gv = g.to_vector<double>();
    double* x = p.tensor.data<double>();
    const std::int64_t n = p.tensor.numel();
    for (std::int64_t i : {std::int64_t{0}, n / 2, n - 1}) {
      const double orig = x[i], eps = 1e-6;
      x[i] = orig + eps;
      const double plus = project();
      x[i] = orig - eps;
      const double minus = project();
      x[i] = orig;
      const double numeric = (plus - minus) / (2 * eps);
      INFO("element " << i << ": analytic " << gv[i] << ", numeric " << numeric);
      CHECK(std::abs(gv[i] - numeric) <= 1e-6 + 1e-5 * std::abs(numeric));
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- conv vs recurrent

TEST_CASE("S4DKernel: convolution equals the recurrence at L = 1024 in float32 (each init, disc)",
          "[cpu][s4layers]") {
  for (const char* init : {"legs", "lin", "inv", "real"}) {
    for (const char* disc : {"zoh", "bilinear"}) {
      INFO(init << " " << disc);
      S4DOptions o;
      o.init = init;
      o.disc = disc;
      Generator gen(1);
      S4DKernel k(4, 64, 2, o, gen, DType::Float32);
      CHECK(conv_vs_recurrent(k, 1024, 2, 2) < 1e-4);
    }
  }
  // The other real transforms give the same A, so the same agreement.
  for (const char* transform : {"relu", "none"}) {
    S4DOptions o;
    o.real_transform = transform;
    Generator gen(3);
    S4DKernel k(3, 16, 1, o, gen, DType::Float32);
    CHECK(conv_vs_recurrent(k, 1024, 2, 4) < 1e-4);
  }
}

TEST_CASE("S4Kernel: convolution equals the dense recurrence at L = 1024 in float32",
          "[cpu][s4layers]") {
  Generator gen(5);
  S4Kernel k(3, 64, 2, S4Options{}, gen, DType::Float32);
  CHECK(k.step_length() == 1024);
  CHECK(conv_vs_recurrent(k, 1024, 2, 6) < 1e-4);
  // A forward at another length re-reads C-tilde for that length.
  {
    NoGradGuard no_grad;
    k.forward(300);
  }
  CHECK(k.step_length() == 300);
  CHECK(conv_vs_recurrent(k, 300, 1, 7) < 1e-4);
  k.set_step_length(1024);  // as after loading a checkpoint trained at L = 1024
  CHECK(k.step_length() == 1024);
  // Rank 2 (LegS padded with a zero column of P), float64: tighter.
  S4Options o2;
  o2.rank = 2;
  o2.l_max = 512;
  Generator gen2(8);
  S4Kernel k2(2, 16, 1, o2, gen2, DType::Float64);
  CHECK(conv_vs_recurrent(k2, 512, 2, 9) < 1e-10);
}

// ---------------------------------------------------------------- parameters and inits

TEST_CASE("S4DKernel parameters: names, shapes, tags and the S4D inits", "[cpu][s4layers]") {
  const std::int64_t H = 3, N = 8, N2 = 4, Cn = 2;
  S4DOptions o;
  o.init = "lin";
  o.dt_min = 1e-3;
  o.dt_max = 1e-1;
  Generator gen(10);
  S4DKernel k(H, N, Cn, o, gen, DType::Float32);
  CHECK(k.d_model() == H);
  CHECK(k.d_state() == N);
  CHECK(k.channels() == Cn);
  const StateDict sd = k.state_dict();
  REQUIRE(sd.size() == 5);
  const std::vector<std::pair<std::string, Shape>> want = {{"log_dt", {H}},
                                                           {"A_real", {H, N2}},
                                                           {"A_imag", {H, N2}},
                                                           {"B", {H, N2, 2}},
                                                           {"C", {Cn, H, N2, 2}}};
  for (std::size_t i = 0; i < want.size(); ++i) {
    CHECK(sd[i].first == want[i].first);
    CHECK(sd[i].second.shape() == want[i].second);
    CHECK(sd[i].second.dtype() == DType::Float32);
  }
  auto ps = params_by_name(k);
  for (const char* name : {"log_dt", "A_real", "A_imag", "B"}) CHECK(ps[name].has_tag("ssm"));
  CHECK(ps["C"].tags.empty());
  // lin: A = -1/2 + i pi n, B = 1; log_dt in [log 1e-3, log 1e-1).
  const auto ar = ps["A_real"].tensor.to_vector<double>();
  const auto ai = ps["A_imag"].tensor.to_vector<double>();
  for (std::int64_t i = 0; i < H * N2; ++i) {
    CHECK(ar[i] == Approx(std::log(0.5)).margin(1e-6));
    CHECK(ai[i] == Approx(std::numbers::pi * static_cast<double>(i % N2)).margin(1e-5));
  }
  require_close(ps["B"].tensor, complex_ones(H, N2));
  for (double v : ps["log_dt"].tensor.to_vector<double>()) {
    CHECK(v >= std::log(1e-3) - 1e-6);
    CHECK(v < std::log(1e-1) + 1e-6);
  }
  // C: complex normal, re and im each of variance 1/2.
  Generator big(11);
  S4DKernel wide(64, 64, 4, o, big, DType::Float64);
  double m2 = 0.0;
  const auto cv = params_by_name(wide)["C"].tensor.to_vector<double>();
  for (double v : cv) m2 += v * v;
  CHECK(m2 / static_cast<double>(cv.size()) == Approx(0.5).margin(0.03));
}

TEST_CASE("S4DKernel inits: legs uses the NPLR Lambda and V^* B; transforms of A_real",
          "[cpu][s4layers]") {
  const std::int64_t H = 2, N = 16, N2 = 8;
  {
    Generator gen(12);
    S4DKernel k(H, N, 1, S4DOptions{}, gen, DType::Float64);  // legs, zoh, exp
    const auto nplr = hippo::nplr("legs", N, 1);
    auto ps = params_by_name(k);
    const auto A = k.A().to_vector<double>(), B = ps["B"].tensor.to_vector<double>();
    for (std::int64_t h = 0; h < H; ++h) {
      for (std::int64_t n = 0; n < N2; ++n) {
        const std::int64_t i = h * N2 + n;
        CHECK(A[2 * i] == Approx(nplr.Lambda[n].real()).margin(1e-12));
        CHECK(A[2 * i + 1] == Approx(nplr.Lambda[n].imag()).margin(1e-12));
        CHECK(B[2 * i] == Approx(nplr.B[n].real()).margin(1e-12));
        CHECK(B[2 * i + 1] == Approx(nplr.B[n].imag()).margin(1e-12));
      }
    }
  }
  // real: Lambda = -(n + 1); relu and none store -Re Lambda itself, exp its log.
  for (const char* transform : {"exp", "relu", "none"}) {
    S4DOptions o;
    o.init = "real";
    o.real_transform = transform;
    Generator gen(13);
    S4DKernel k(H, N, 1, o, gen, DType::Float64);
    const auto ar = params_by_name(k)["A_real"].tensor.to_vector<double>();
    const auto A = k.A().to_vector<double>();
    for (std::int64_t i = 0; i < H * N2; ++i) {
      const double v = static_cast<double>(i % N2 + 1);
      CHECK(ar[i] == Approx(std::string(transform) == "exp" ? std::log(v) : v));
      CHECK(A[2 * i] == Approx(-v));
      CHECK(A[2 * i + 1] == 0.0);
    }
  }
}

TEST_CASE("S4Kernel parameters: names, shapes, tags, the LegS NPLR and C-tilde",
          "[cpu][s4layers]") {
  const std::int64_t H = 3, N = 16, N2 = 8, Cn = 2, R = 1;
  S4Options o;
  o.l_max = 200;
  Generator gen(14);
  S4Kernel k(H, N, Cn, o, gen, DType::Float64);
  const StateDict sd = k.state_dict();
  REQUIRE(sd.size() == 6);
  const std::vector<std::pair<std::string, Shape>> want = {
      {"log_dt", {H}},      {"A_real", {H, N2}}, {"A_imag", {H, N2}},
      {"P", {R, H, N2, 2}}, {"B", {H, N2, 2}},   {"C", {Cn, H, N2, 2}}};
  for (std::size_t i = 0; i < want.size(); ++i) {
    CHECK(sd[i].first == want[i].first);
    CHECK(sd[i].second.shape() == want[i].second);
  }
  auto ps = params_by_name(k);
  for (const char* name : {"log_dt", "A_real", "A_imag", "P", "B"}) CHECK(ps[name].has_tag("ssm"));
  CHECK(ps["C"].tags.empty());
  // Lambda, P, B from the LegS NPLR for every feature.
  const auto nplr = hippo::nplr("legs", N, R);
  const auto lam = k.Lambda().to_vector<double>(), P = ps["P"].tensor.to_vector<double>();
  for (std::int64_t h = 0; h < H; ++h) {
    for (std::int64_t n = 0; n < N2; ++n) {
      const std::int64_t i = h * N2 + n;
      CHECK(lam[2 * i] == Approx(nplr.Lambda[n].real()).margin(1e-12));
      CHECK(lam[2 * i + 1] == Approx(nplr.Lambda[n].imag()).margin(1e-12));
      CHECK(P[2 * i] == Approx(nplr.P[n].real()).margin(1e-12));
      CHECK(P[2 * i + 1] == Approx(nplr.P[n].imag()).margin(1e-12));
    }
  }
  // C-tilde = C (I - A-bar^l_max): redraw log_dt and C from the same stream
  // and build the dense N-state A-bar with an LU solve.
  Generator again(14);
  const auto log_dt = init_log_dt(H, o.dt_min, o.dt_max, again, DType::Float64).to_vector<double>();
  const auto C = init_complex_normal({Cn, H, N2, 2}, again, DType::Float64).to_vector<double>();
  const auto Ct = ps["C"].tensor.to_vector<double>();
  using MatC = Eigen::MatrixXcd;
  for (std::int64_t h = 0; h < H; ++h) {
    MatC A = MatC::Zero(N, N);
    Eigen::VectorXcd Pf(N);
    for (std::int64_t n = 0; n < N2; ++n) {
      A(n, n) = nplr.Lambda[n];
      A(N2 + n, N2 + n) = std::conj(nplr.Lambda[n]);
      Pf(n) = nplr.P[n];
      Pf(N2 + n) = std::conj(nplr.P[n]);
    }
    A -= Pf * Pf.adjoint();
    const double dt = std::exp(log_dt[h]);
    const MatC I = MatC::Identity(N, N);
    const MatC Ab = (I - dt / 2 * A).partialPivLu().solve(I + dt / 2 * A);
    MatC AL = I;
    for (std::int64_t l = 0; l < o.l_max; ++l) AL = AL * Ab;
    for (std::int64_t c = 0; c < Cn; ++c) {
      Eigen::RowVectorXcd row(N);
      for (std::int64_t n = 0; n < N2; ++n) {
        const std::int64_t i = (c * H + h) * N2 + n;
        row(n) = cd(C[2 * i], C[2 * i + 1]);
        row(N2 + n) = std::conj(row(n));
      }
      const Eigen::RowVectorXcd want_ct = row * (I - AL);
      for (std::int64_t n = 0; n < N2; ++n) {
        const std::int64_t i = (c * H + h) * N2 + n;
        CHECK(Ct[2 * i] == Approx(want_ct(n).real()).margin(1e-12));
        CHECK(Ct[2 * i + 1] == Approx(want_ct(n).imag()).margin(1e-12));
        // The conjugate half of C-tilde_full is the conjugate of the stored half.
        CHECK(std::abs(want_ct(N2 + n) - std::conj(want_ct(n))) < 1e-12);
      }
    }
  }
}

// ---------------------------------------------------------------- gradients

TEST_CASE("S4DKernel and S4Kernel: forward(L) differentiates into every raw parameter",
          "[cpu][s4layers]") {
  for (const char* transform : {"exp", "relu", "none"}) {
    for (const char* disc : {"zoh", "bilinear"}) {
      INFO("S4D " << transform << " " << disc);
      S4DOptions o;
      o.init = "lin";
      o.disc = disc;
      o.real_transform = transform;
      o.dt_min = 0.05;
      o.dt_max = 0.3;
      Generator gen(20);
      S4DKernel k(2, 6, 2, o, gen, DType::Float64);
      check_parameter_gradients(k, 12);
    }
  }
  S4Options o;
  o.rank = 2;
  o.l_max = 16;
  o.dt_min = 0.05;
  o.dt_max = 0.3;
  Generator gen(21);
  S4Kernel k(2, 6, 2, o, gen, DType::Float64);
  INFO("S4");
  check_parameter_gradients(k, 16);
}

// ---------------------------------------------------------------- errors

TEST_CASE("S4 kernel module errors", "[cpu][s4layers]") {
  Generator gen(30);
  CHECK(error_message([&] { S4DKernel(2, 7, 1, S4DOptions{}, gen); }) ==
        "[S4DKernel] d_state N must be even and >= 2 (conjugate pairs), got 7");
  S4DOptions bad;
  bad.init = "hippo";
  CHECK(error_message([&] { S4DKernel(2, 8, 1, bad, gen); }) ==
        "[S4DKernel] init must be legs, lin, inv or real, got 'hippo'");
  bad = S4DOptions{};
  bad.disc = "euler";
  CHECK(error_message([&] { S4DKernel(2, 8, 1, bad, gen); }) ==
        "[S4DKernel] disc must be zoh or bilinear, got 'euler'");
  bad = S4DOptions{};
  bad.dt_min = 0.0;
  CHECK(error_message([&] { S4DKernel(2, 8, 1, bad, gen); }) ==
        "[init_log_dt] need 0 < dt_min <= dt_max, got dt_min 0, dt_max 0.1");
  S4Options rank0;
  rank0.rank = 0;
  CHECK(error_message([&] { S4Kernel(2, 8, 1, rank0, gen); }) ==
        "[S4Kernel] rank must be in [1, N], got 0");
  S4DKernel k(2, 8, 1, S4DOptions{}, gen);
  Tensor state = k.default_state(1);
  CHECK(error_message([&] {
          k.step(Tensor::zeros({1, 2}), state);
        }) == "[S4DKernel::step] call setup_step() before step()");
  k.setup_step();
  CHECK(error_message([&] {
          k.step(Tensor::zeros({1, 3}), state);
        }) == "[s4d_step] u_t must be (B, 2), got (1, 3) float32 cpu");
  S4Kernel s(2, 8, 1, S4Options{}, gen);
  CHECK(error_message([&] {
          s.step(Tensor::zeros({1, 2}), state);
        }) == "[S4Kernel::step] call setup_step() before step()");
}
