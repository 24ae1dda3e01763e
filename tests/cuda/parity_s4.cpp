// CPU-versus-CUDA parity of the S4 family (kernels/cuda/s4.cu) through the
// differentiable ops of autograd/ops/s4.h: diag_discretize (dA, dB),
// s4d_kernel (ZOH and bilinear) and s4_dplr_kernel, outputs and the gradient
// of every input, for N2 from 2 to 256 (N = 4 .. 512, odd N2 = 5, 33 and
// N = 100), L in {1, 33, 100, 1024, 4096} (odd and even irfft lengths), H not
// a multiple of a block or warp (3, 5, 37), one or two channels, rank 1 and
// 2, inputs without gradients, and C as a transposed view. Then, on the GPU
// only: the recurrent steps against the convolution kernel and against the
// CPU steps, bitwise repeatability of the kernels' gradients, and the errors.
//
// Tolerance 1e-4 (relative to max(1, max |cpu|)): both devices compute in
// double and round to float32 once, but the CUDA kernels add their sums over
// modes, l tiles and nodes in other groupings, form dA^l from the polar form,
// and use cuFFT instead of FFTW, so they agree to a few float32 ulps.
#include <complex>
#include <cstring>

#include "autograd/ops/s4.h"
#include "kernels/s4.h"
#include "tests/cuda/parity.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::ParityCase;
using ssm::testing::ParityInput;
using ssm::testing::random_tensor;
using ssm::testing::run_parity_table;

namespace {

using Vec = std::vector<Tensor>;
using std::int64_t;

constexpr double kTol = 1e-4;

ParityInput in(const Shape& s, double lo, double hi, bool grad = true) {
  return ParityInput{s, lo, hi, false, grad};
}

std::string dims(int64_t H, int64_t N2) {
  return "H " + std::to_string(H) + " N2 " + std::to_string(N2);
}

// ---------------------------------------------------------------- diag_discretize

ParityCase disc_case(int64_t H, int64_t N2, const std::string& method, double dt_hi) {
  ParityCase c;
  c.name = "diag_discretize " + dims(H, N2) + " " + method + " dt < " + std::to_string(dt_hi);
  // dt A spans |z| < 1/2 (the series of phi, psi) and beyond (the closed forms).
  c.inputs = {in({H}, 1e-3, dt_hi), in({H, N2, 2}, -2.0, 0.5)};
  c.tol = kTol;
  c.f = [method](const Vec& v) {
    const DiagDiscretization d = diag_discretize(v[0], v[1], method);
    return Vec{d.dA, d.dB};
  };
  return c;
}

// ---------------------------------------------------------------- s4d_kernel

struct S4DCase {
  int64_t Cn = 1, H = 3, N2 = 2, L = 1;
  std::string method = "zoh";
  bool grad_dtA = true, grad_B = true;
  bool transposed_C = false;  // C arrives as a (H, Cn, N2, 2) tensor transposed inside f
};

ParityCase s4d_case(const S4DCase& k) {
  ParityCase c;
  c.name = "s4d_kernel C " + std::to_string(k.Cn) + " " + dims(k.H, k.N2) + " L " +
           std::to_string(k.L) + " " + k.method + (k.grad_dtA ? "" : ", dt and A without grad") +
           (k.grad_B ? "" : ", B without grad") + (k.transposed_C ? ", C transposed view" : "");
  const Shape cshape = k.transposed_C ? Shape{k.H, k.Cn, k.N2, 2} : Shape{k.Cn, k.H, k.N2, 2};
  // Re A and Im A both in [-1, -0.05]: stable modes (|dA| < 1) for both methods.
  c.inputs = {in({k.H}, 1e-3, 0.1, k.grad_dtA), in({k.H, k.N2, 2}, -1.0, -0.05, k.grad_dtA),
              in({k.H, k.N2, 2}, -1, 1, k.grad_B), in(cshape, -1, 1)};
  c.tol = kTol;
  c.f = [k](const Vec& v) {
    const Tensor C = k.transposed_C ? transpose(v[3], 0, 1) : v[3];
    return Vec{s4d_kernel(v[0], v[1], v[2], C, k.L, k.method)};
  };
  return c;
}

// ---------------------------------------------------------------- s4_dplr_kernel

struct DplrCase {
  int64_t Cn = 1, R = 1, H = 3, N2 = 2, L = 1;
  bool grad_all = true;  // false: only C gets a gradient
};

ParityCase dplr_case(const DplrCase& k) {
  ParityCase c;
  c.name = "s4_dplr_kernel C " + std::to_string(k.Cn) + " R " + std::to_string(k.R) + " " +
           dims(k.H, k.N2) + " L " + std::to_string(k.L) + (k.grad_all ? "" : ", only C with grad");
  const bool g = k.grad_all;
  c.inputs = {in({k.H}, 1e-2, 0.3, g), in({k.H, k.N2, 2}, -1.0, -0.1, g),
              in({k.R, k.H, k.N2, 2}, -0.5, 0.5, g), in({k.H, k.N2, 2}, -1, 1, g),
              in({k.Cn, k.H, k.N2, 2}, -1, 1)};
  c.tol = kTol;
  c.f = [k](const Vec& v) { return Vec{s4_dplr_kernel(v[0], v[1], v[2], v[3], v[4], k.L)}; };
  return c;
}

std::vector<ParityCase> s4_cases() {
  std::vector<ParityCase> cases;
  cases.push_back(disc_case(3, 5, "zoh", 1.0));
  cases.push_back(disc_case(37, 33, "zoh", 0.2));
  cases.push_back(disc_case(37, 256, "bilinear", 1.0));
  cases.push_back(disc_case(5, 2, "bilinear", 0.1));
  // s4d_kernel: {Cn, H, N2, L, method, grad dt/A, grad B, transposed C}.
  const S4DCase s4d[] = {
      {1, 3, 2, 1, "zoh"},
      {2, 37, 8, 100, "bilinear"},
      {1, 5, 33, 1024, "zoh"},
      {2, 3, 32, 4096, "bilinear"},
      {1, 37, 128, 1024, "zoh"},
      {1, 3, 256, 4096, "zoh"},
      {1, 37, 50, 4096, "bilinear"},
      {2, 37, 5, 100, "zoh", true, true, true},
      {1, 5, 33, 1024, "bilinear", false, true},
      {2, 3, 8, 100, "zoh", false, false},
  };
  for (const S4DCase& k : s4d) cases.push_back(s4d_case(k));
  // s4_dplr_kernel: {Cn, R, H, N2, L, grad all}.
  const DplrCase dplr[] = {
      {1, 1, 3, 2, 1},      {2, 1, 37, 8, 100},   {1, 2, 5, 33, 1024},
      {1, 1, 3, 32, 4096},  {2, 2, 37, 64, 1024}, {1, 1, 3, 256, 4096},
      {1, 1, 37, 50, 4096}, {1, 2, 3, 5, 33},     {2, 1, 5, 16, 100, false},
  };
  for (const DplrCase& k : dplr) cases.push_back(dplr_case(k));
  return cases;
}

// ---------------------------------------------------------------- GPU-only helpers

// Complex (..., 2) tensors as vectors of std::complex<double> and back.
std::vector<std::complex<double>> complex_values(const Tensor& t) {
  const auto v = t.to(Device::cpu()).contiguous().to_vector<double>();
  std::vector<std::complex<double>> out(v.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = {v[2 * i], v[2 * i + 1]};
  return out;
}
Tensor complex_tensor(const std::vector<std::complex<double>>& v, Shape shape, Device device) {
  std::vector<float> f(2 * v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    f[2 * i] = static_cast<float>(v[i].real());
    f[2 * i + 1] = static_cast<float>(v[i].imag());
  }
  shape.push_back(2);
  return Tensor::from_vector<float>(f, shape).to(device);
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  const auto va = a.to(Device::cpu()).contiguous().to_vector<float>();
  const auto vb = b.to(Device::cpu()).contiguous().to_vector<float>();
  return std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

Tensor f32(const Shape& s, std::uint64_t seed, double lo, double hi) {
  return random_tensor(s, seed, lo, hi, DType::Float32, false);
}

}  // namespace

TEST_CASE("cuda parity: s4 family (diag_discretize, s4d_kernel, s4_dplr_kernel)",
          "[cuda][parity]") {
  run_parity_table(s4_cases());
}

TEST_CASE("cuda parity: s4d_step and s4_dense_step equal the CPU, and the S4D steps the kernel",
          "[cuda][parity]") {
  if (!ssm::testing::cuda_or_skip()) return;
  const Device gpu = Device::cuda();
  const int64_t Cn = 2, H = 37, N2 = 33, L = 300, Bn = 3;
  for (const char* method : {"zoh", "bilinear"}) {
    INFO(method);
    // The impulse response of the CUDA recurrence is the CUDA s4d_kernel's K.
    const Tensor dt = f32({H}, 1, 1e-3, 0.1).to(gpu), A = f32({H, N2, 2}, 2, -1, -0.05).to(gpu);
    const Tensor B = f32({H, N2, 2}, 3, -1, 1).to(gpu), C = f32({Cn, H, N2, 2}, 4, -1, 1).to(gpu);
    Tensor K, dA, dBbar;
    {
      NoGradGuard no_grad;
      K = s4d_kernel(dt, A, B, C, L, method).to(Device::cpu());
      const DiagDiscretization d = diag_discretize(dt, A, method);
      const auto db = complex_values(d.dB), b = complex_values(B);
      std::vector<std::complex<double>> bbar(db.size());
      for (std::size_t i = 0; i < db.size(); ++i) bbar[i] = db[i] * b[i];
      dA = d.dA;
      dBbar = complex_tensor(bbar, {H, N2}, gpu);
    }
    Tensor state = Tensor::zeros({1, H, N2, 2}, DType::Float32, gpu);
    std::vector<double> got(Cn * H * L);
    for (int64_t t = 0; t < L; ++t) {
      const Tensor u = Tensor::full({1, H}, t == 0 ? 1.0 : 0.0, DType::Float32, gpu);
      const Tensor y = kernels::s4d_step(u, state, dA, dBbar, C);
      REQUIRE(y.device().is_cuda());
      const auto yv = y.to(Device::cpu()).to_vector<double>();
      for (int64_t i = 0; i < Cn * H; ++i) got[i * L + t] = yv[i];
    }
    const Tensor Kr = Tensor::from_vector<double>(got, {Cn, H, L});
    CHECK(ssm::testing::rel_error(Kr, K) < 1e-4);
  }
  // s4d_step and s4_dense_step from random states against the CPU, a few steps, batch 3.
  const Tensor dA = f32({H, N2, 2}, 10, -0.6, 0.6), dB = f32({H, N2, 2}, 11, -1, 1);
  const Tensor dA1 = f32({H, N2, N2, 2}, 12, -0.05, 0.05);
  const Tensor dA2 = f32({H, N2, N2, 2}, 13, -0.05, 0.05), C = f32({Cn, H, N2, 2}, 14, -1, 1);
  Tensor s_cpu = f32({Bn, H, N2, 2}, 15, -1, 1), s_gpu = s_cpu.to(gpu);
  Tensor d_cpu = s_cpu.clone(), d_gpu = s_cpu.to(gpu);
  for (int t = 0; t < 5; ++t) {
    INFO("step " << t);
    const Tensor u = f32({Bn, H}, 20 + t, -1, 1);
    const Tensor y_cpu = kernels::s4d_step(u, s_cpu, dA, dB, C);
    const Tensor y_gpu = kernels::s4d_step(u.to(gpu), s_gpu, dA.to(gpu), dB.to(gpu), C.to(gpu));
    CHECK(ssm::testing::rel_error(y_gpu.to(Device::cpu()), y_cpu) < 1e-5);
    CHECK(ssm::testing::rel_error(s_gpu.to(Device::cpu()), s_cpu) < 1e-5);
    const Tensor z_cpu = kernels::s4_dense_step(u, d_cpu, dA1, dA2, dB, C);
    const Tensor z_gpu =
        kernels::s4_dense_step(u.to(gpu), d_gpu, dA1.to(gpu), dA2.to(gpu), dB.to(gpu), C.to(gpu));
    CHECK(ssm::testing::rel_error(z_gpu.to(Device::cpu()), z_cpu) < 1e-5);
    CHECK(ssm::testing::rel_error(d_gpu.to(Device::cpu()), d_cpu) < 1e-5);
  }
}

TEST_CASE("cuda parity: s4 kernels' outputs and gradients repeat bit for bit", "[cuda][parity]") {
  if (!ssm::testing::cuda_or_skip()) return;
  const Device gpu = Device::cuda();
  const int64_t Cn = 2, R = 2, H = 37, N2 = 64, L = 1024;
  const Vec host = {f32({H}, 30, 1e-2, 0.1),           f32({H, N2, 2}, 31, -1, -0.1),
                    f32({R, H, N2, 2}, 32, -0.5, 0.5), f32({H, N2, 2}, 33, -1, 1),
                    f32({Cn, H, N2, 2}, 34, -1, 1),    f32({Cn, H, L}, 35, -1, 1)};
  // Every output and gradient of one run (s4d_kernel zoh, then s4_dplr_kernel).
  const auto run = [&] {
    Vec x;
    for (const Tensor& t : host) {
      Tensor d = t.to(gpu);
      d.set_requires_grad(true);
      x.push_back(d);
    }
    const Tensor K1 = s4d_kernel(x[0], x[1], x[3], x[4], L, "zoh");
    const Tensor K2 = s4_dplr_kernel(x[0], x[1], x[2], x[3], x[4], L);
    backward(add(sum(mul(K1, x[5])), sum(mul(K2, x[5]))));
    Vec out = {K1.detach(), K2.detach()};
    for (int i = 0; i < 5; ++i) out.push_back(x[i].grad());
    return out;
  };
  const Vec first = run();
  for (int r = 1; r < 3; ++r) {
    const Vec again = run();
    for (std::size_t i = 0; i < first.size(); ++i) {
      INFO("run " << r << ", result " << i);
      CHECK(bitwise_equal(again[i], first[i]));
    }
  }
}

TEST_CASE("cuda parity: s4 kernels refuse float64 and N2 > 256 with clear errors",
          "[cuda][parity]") {
  if (!ssm::testing::cuda_or_skip()) return;
  const Device gpu = Device::cuda();
  const Tensor dt = Tensor::full({2}, 0.1, DType::Float64, gpu);
  const Tensor A = Tensor::zeros({2, 3, 2}, DType::Float64, gpu);
  const Tensor C = Tensor::zeros({1, 2, 3, 2}, DType::Float64, gpu);
  const std::string m64 = ssm::testing::error_message([&] { s4d_kernel(dt, A, A, C, 8); });
  INFO(m64);
  CHECK(m64.find("[s4d_kernel] the CUDA kernels take float32 tensors") == 0);
  const Tensor dt32 = Tensor::full({2}, 0.1, DType::Float32, gpu);
  const Tensor L32 = Tensor::full({2, 257, 2}, -0.5, DType::Float32, gpu);
  const Tensor P32 = Tensor::zeros({1, 2, 257, 2}, DType::Float32, gpu);
  const std::string mN =
      ssm::testing::error_message([&] { s4_dplr_kernel(dt32, L32, P32, L32, P32, 8); });
  INFO(mN);
  CHECK(mN.find("[s4_dplr_kernel] the CUDA kernel supports N2 <= 256") == 0);
}
