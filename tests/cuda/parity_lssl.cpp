// CPU-versus-CUDA parity of the LSSL kernels (kernels/cuda/lssl.cu) through
// the differentiable ops of autograd/ops/lssl.h: gbt_discretize (alpha 0,
// 0.5, 1; A and B shared or per feature), zoh_discretize_dense (small and
// large dt A, the latter through scaling and squaring), krylov_kernel, and
// the discretize -> krylov chains of the LSSL layer, every output and the
// gradient of every input, for N in {4, 5, 16, 33, 64, 256}, L in {1, 100,
// 1024}, H in {3, 37}. Then, on the GPU only: dense_ssm_step against the CPU
// (a state written through its strides), the LSSLKernel convolution view
// against the recurrent view on CUDA, bitwise repeatability of the
// gradients, and the errors.
//
// Tolerances (relative to max(1, max |cpu|)): 1e-5 for the discretizations
// (float64 inside on both devices; only the float32 rounding of the results
// differs), 1e-4 where the Krylov kernel is involved (the CPU builds the
// Krylov matrix by doubling float32 GEMMs, CUDA by the float64 recurrence
// x_{l+1} = Ā x_l, so the two round differently over up to 1024 powers).
#include <cmath>
#include <cstring>
#include <string>

#include "autograd/ops/elementwise.h"
#include "autograd/ops/lssl.h"
#include "autograd/ops/shape.h"
#include "kernels/lssl.h"
#include "layers/ssm/lssl.h"
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

constexpr double kDiscTol = 1e-5;
constexpr double kKrylovTol = 1e-4;

ParityInput in(const Shape& s, double lo, double hi, bool grad = true) {
  return ParityInput{s, lo, hi, false, grad};
}

std::string dims(int64_t H, int64_t N) {
  return "H " + std::to_string(H) + " N " + std::to_string(N);
}

// s I (n, n) on the device of `like` (a constant: no gradient).
Tensor scaled_eye(int64_t n, double s, const Tensor& like) {
  std::vector<float> v(static_cast<std::size_t>(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i * n + i)] = static_cast<float>(s);
  return Tensor::from_vector<float>(v, {n, n}).to(like.device());
}

// A random (N, N) matrix with entries in [-1, 1] has spectral radius about sqrt(N / 3):
// shifting by that plus one puts every eigenvalue in the left half plane (a stable
// continuous system, |eig(Ā)| < 1 after GBT or ZOH).
double stabilizing_shift(int64_t N) { return std::sqrt(static_cast<double>(N) / 3.0) + 1.0; }

// ---------------------------------------------------------------- discretization cases

struct DiscCase {
  int64_t H = 3, N = 4;
  bool shared_A = false, shared_B = false;
  double alpha = 0.5;  // gbt
  bool zoh = false;    // zoh_discretize_dense instead of gbt
  double dt_lo = 1e-3, dt_hi = 5e-2;
  bool transposed = false;  // A arrives as a transposed view
  bool grad_B = true;
};

ParityCase disc_case(const DiscCase& k) {
  ParityCase c;
  c.name = std::string(k.zoh ? "zoh_discretize_dense " : "gbt_discretize ") + dims(k.H, k.N) +
           (k.zoh ? "" : ", alpha " + std::to_string(k.alpha)) +
           (k.shared_A ? ", A (N, N)" : ", A (H, N, N)") + (k.shared_B ? ", B (N)" : ", B (H, N)") +
           ", dt in [" + std::to_string(k.dt_lo) + ", " + std::to_string(k.dt_hi) + "]" +
           (k.transposed ? ", A transposed view" : "") + (k.grad_B ? "" : ", B without grad");
  const Shape a = k.shared_A ? Shape{k.N, k.N} : Shape{k.H, k.N, k.N};
  const Shape b = k.shared_B ? Shape{k.N} : Shape{k.H, k.N};
  c.inputs = {in(a, -1, 1), in(b, -1, 1, k.grad_B), in({k.H}, k.dt_lo, k.dt_hi)};
  c.tol = kDiscTol;
  c.f = [k](const Vec& v) {
    const Tensor A = k.transposed ? transpose(v[0], -1, -2) : v[0];
    const DiscreteSSM d =
        k.zoh ? zoh_discretize_dense(A, v[1], v[2]) : gbt_discretize(A, v[1], v[2], k.alpha);
    return Vec{d.dA, d.dB};
  };
  return c;
}

std::vector<ParityCase> disc_cases() {
  std::vector<DiscCase> ks;
  const auto gbt = [&](int64_t H, int64_t N, double alpha, bool sA, bool sB) {
    DiscCase k;
    k.H = H;
    k.N = N;
    k.alpha = alpha;
    k.shared_A = sA;
    k.shared_B = sB;
    ks.push_back(k);
  };
  gbt(3, 4, 0.0, false, false);
  gbt(37, 4, 0.5, true, true);
  gbt(3, 5, 1.0, true, false);
  gbt(37, 5, 0.5, false, true);
  gbt(37, 16, 0.0, true, true);
  gbt(3, 16, 1.0, false, false);
  gbt(37, 33, 0.5, false, false);
  gbt(3, 64, 0.5, true, true);
  gbt(37, 64, 1.0, false, true);
  gbt(3, 64, 0.0, true, false);
  gbt(3, 256, 0.5, true, true);
  gbt(3, 256, 1.0, false, false);
  {
    DiscCase k;  // a transposed view of A, B without gradient
    k.H = 37;
    k.N = 16;
    k.alpha = 0.3;
    k.shared_A = true;
    k.transposed = true;
    k.grad_B = false;
    ks.push_back(k);
  }
  const auto zoh = [&](int64_t H, int64_t N, bool sA, bool sB, double dt_lo, double dt_hi) {
    DiscCase k;
    k.H = H;
    k.N = N;
    k.zoh = true;
    k.shared_A = sA;
    k.shared_B = sB;
    k.dt_lo = dt_lo;
    k.dt_hi = dt_hi;
    ks.push_back(k);
  };
  zoh(3, 4, false, false, 1e-3, 5e-2);
  zoh(37, 5, true, true, 1e-3, 5e-2);
  zoh(37, 16, true, false, 1e-3, 5e-2);
  zoh(3, 33, false, true, 1e-3, 5e-2);
  zoh(3, 64, true, true, 1e-3, 5e-2);
  zoh(3, 256, true, false, 1e-3, 5e-2);
  // ||dt A||_1 from about 0.1 to 16: every Padé degree, and scaling and squaring.
  zoh(37, 16, false, false, 0.01, 2.0);
  zoh(3, 5, true, false, 0.5, 3.0);
  std::vector<ParityCase> out;
  for (const DiscCase& k : ks) out.push_back(disc_case(k));
  return out;
}

// ---------------------------------------------------------------- Krylov cases

struct KrylovCase {
  int64_t H = 3, N = 4, Cc = 1, L = 100;
  bool grad_C = true;
};

// dA with entries in [-a, a], a = 1 / sqrt(N): spectral radius about 0.58.
ParityCase krylov_case(const KrylovCase& k) {
  ParityCase c;
  c.name = "krylov_kernel " + dims(k.H, k.N) + " Cc " + std::to_string(k.Cc) + " L " +
           std::to_string(k.L) + (k.grad_C ? "" : ", C without grad");
  const double a = 1.0 / std::sqrt(static_cast<double>(k.N));
  c.inputs = {in({k.H, k.N, k.N}, -a, a), in({k.H, k.N}, -1, 1),
              in({k.Cc, k.H, k.N}, -1, 1, k.grad_C)};
  c.tol = kKrylovTol;
  const int64_t L = k.L;
  c.f = [L](const Vec& v) { return Vec{krylov_kernel(v[0], v[1], v[2], L)}; };
  return c;
}

// The LSSL layer's chain: A (N, N) shared, shifted to be stable, B (N), dt (H), C (Cc, H, N):
// discretize (GBT alpha or ZOH), then the Krylov kernel.
struct ChainCase {
  int64_t H = 3, N = 16, Cc = 2, L = 1024;
  bool zoh = false;
  double alpha = 0.5;
};

ParityCase chain_case(const ChainCase& k) {
  ParityCase c;
  c.name = std::string(k.zoh ? "zoh_discretize_dense" : "gbt_discretize") + " -> krylov_kernel " +
           dims(k.H, k.N) + " Cc " + std::to_string(k.Cc) + " L " + std::to_string(k.L) +
           (k.zoh ? "" : ", alpha " + std::to_string(k.alpha));
  c.inputs = {in({k.N, k.N}, -1, 1), in({k.N}, -1, 1), in({k.H}, 1e-3, 5e-2),
              in({k.Cc, k.H, k.N}, -1, 1)};
  c.tol = kKrylovTol;
  c.f = [k](const Vec& v) {
    const Tensor A = sub(v[0], scaled_eye(k.N, stabilizing_shift(k.N), v[0]));
    const DiscreteSSM d =
        k.zoh ? zoh_discretize_dense(A, v[1], v[2]) : gbt_discretize(A, v[1], v[2], k.alpha);
    return Vec{krylov_kernel(d.dA, d.dB, v[3], k.L), d.dA, d.dB};
  };
  return c;
}

std::vector<ParityCase> krylov_cases() {
  std::vector<ParityCase> out;
  const auto add = [&](int64_t H, int64_t N, int64_t Cc, int64_t L, bool grad_C = true) {
    KrylovCase k;
    k.H = H;
    k.N = N;
    k.Cc = Cc;
    k.L = L;
    k.grad_C = grad_C;
    out.push_back(krylov_case(k));
  };
  add(3, 4, 1, 1);
  add(37, 4, 2, 100);
  add(3, 4, 1, 1024);
  add(37, 5, 1, 100);
  add(3, 5, 2, 1);
  add(3, 16, 2, 1024);
  add(37, 16, 1, 100, false);
  add(37, 33, 2, 1024);
  add(3, 64, 1, 1);
  add(37, 64, 2, 1024);
  add(3, 64, 1, 100);
  add(3, 256, 1, 1024);
  add(3, 256, 2, 100);
  const auto chain = [&](int64_t H, int64_t N, int64_t Cc, int64_t L, bool zoh, double alpha) {
    ChainCase k;
    k.H = H;
    k.N = N;
    k.Cc = Cc;
    k.L = L;
    k.zoh = zoh;
    k.alpha = alpha;
    out.push_back(chain_case(k));
  };
  chain(37, 16, 2, 1024, false, 0.5);
  chain(3, 64, 1, 1024, false, 1.0);
  chain(3, 5, 2, 100, false, 0.0);
  chain(37, 5, 1, 1024, true, 0.0);
  chain(3, 33, 2, 100, true, 0.0);
  return out;
}

double host_error(const Tensor& a, const Tensor& ref) {
  return ssm::testing::parity_error(a.to(Device::cpu()), ref.to(Device::cpu()));
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const Tensor ha = a.to(Device::cpu()).contiguous(), hb = b.to(Device::cpu()).contiguous();
  if (ha.shape() != hb.shape() || ha.dtype() != hb.dtype()) return false;
  return std::memcmp(ha.raw_data(), hb.raw_data(),
                     static_cast<std::size_t>(ha.numel()) * dtype_size(ha.dtype())) == 0;
}

}  // namespace

TEST_CASE("cuda parity: lssl discretizations", "[cuda][parity]") { run_parity_table(disc_cases()); }

TEST_CASE("cuda parity: lssl krylov_kernel", "[cuda][parity]") { run_parity_table(krylov_cases()); }

TEST_CASE("cuda lssl: dense_ssm_step equals the CPU, the state written through its strides",
          "[cuda][lssl]") {
  if (!ssm::testing::cuda_or_skip()) return;
  const Device gpu = Device::cuda();
  const int64_t H = 37, Cc = 2, Bsz = 3, T = 20;
  std::uint64_t seed = 7100;
  for (const int64_t N : {int64_t{5}, int64_t{64}, int64_t{256}}) {
    INFO("N " << N);
    const double a = 1.0 / std::sqrt(static_cast<double>(N));
    const Tensor dA = random_tensor({H, N, N}, seed += 10, -a, a, DType::Float32, false);
    const Tensor dB = random_tensor({H, N}, seed += 10, -1, 1, DType::Float32, false);
    const Tensor C = random_tensor({Cc, H, N}, seed += 10, -1, 1, DType::Float32, false);
    const Tensor u = random_tensor({T, Bsz, H}, seed += 10, -1, 1, DType::Float32, false);
    const Tensor dA_g = dA.to(gpu), dB_g = dB.to(gpu), C_g = C.to(gpu), u_g = u.to(gpu);
    // CPU: a contiguous state; CUDA: (N, B, H) permuted, written in place through its strides.
    Tensor state = Tensor::zeros({Bsz, H, N}, DType::Float32);
    Tensor base = Tensor::zeros({N, Bsz, H}, DType::Float32, gpu);
    Tensor state_g = base.permute({1, 2, 0});
    for (int64_t t = 0; t < T; ++t) {
      INFO("t " << t);
      const Tensor y = kernels::dense_ssm_step(dA, dB, C, u.select(0, t), state);
      const Tensor y_g = kernels::dense_ssm_step(dA_g, dB_g, C_g, u_g.select(0, t), state_g);
      REQUIRE(y_g.device().is_cuda());
      REQUIRE(y_g.shape() == Shape({Bsz, Cc, H}));
      CHECK(host_error(y_g, y) <= 1e-5);
    }
    CHECK(host_error(base.permute({1, 2, 0}), state) <= 1e-5);
  }
}

TEST_CASE("cuda lssl: LSSLKernel convolution view equals dense_ssm_step stepped over time",
          "[cuda][lssl]") {
  if (!ssm::testing::cuda_or_skip()) return;
  const Device gpu = Device::cuda();
  struct Case {
    const char* measure;
    const char* disc;
  };
  for (const Case cs : {Case{"legs", "gbt"}, Case{"lagt", "zoh"}}) {
    INFO(cs.measure << ", " << cs.disc);
    LSSLOptions o;
    o.measure = cs.measure;
    o.disc = cs.disc;
    Generator gen(7);
    const int64_t H = 4, N = 16, Cc = 2, Bsz = 2, L = 512;
    LSSLKernel k(H, N, Cc, o, gen, DType::Float32);
    k.to(gpu);
    Tensor Kt;
    {
      NoGradGuard no_grad;
      Kt = k.forward(L);  // (Cc, H, L)
    }
    REQUIRE(Kt.device().is_cuda());
    const auto K = Kt.to_vector<double>();
    const Tensor u = random_tensor({L, Bsz, H}, 8, -1, 1, DType::Float32, false);
    const auto uv = u.to_vector<double>();
    const Tensor u_g = u.to(gpu);
    k.setup_step();
    Tensor state = k.default_state(Bsz);
    REQUIRE(state.device().is_cuda());
    double max_err = 0.0, max_ref = 0.0;
    for (int64_t t = 0; t < L; ++t) {
      const auto y = k.step(u_g.select(0, t), state).to_vector<double>();
      for (int64_t b = 0; b < Bsz; ++b) {
        for (int64_t c = 0; c < Cc; ++c) {
          for (int64_t h = 0; h < H; ++h) {
            const double* kk = K.data() + (c * H + h) * L;
            double ref = 0.0;
            for (int64_t l = 0; l <= t; ++l) ref += kk[l] * uv[((t - l) * Bsz + b) * H + h];
            max_err = std::max(max_err, std::abs(y[(b * Cc + c) * H + h] - ref));
            max_ref = std::max(max_ref, std::abs(ref));
          }
        }
      }
    }
    REQUIRE(max_ref > 0.0);
    CHECK(max_err / std::max(1.0, max_ref) < 1e-4);
  }
}

TEST_CASE("cuda lssl: outputs and gradients repeat bit for bit", "[cuda][lssl]") {
  if (!ssm::testing::cuda_or_skip()) return;
  const Device gpu = Device::cuda();
  for (const bool zoh : {false, true}) {
    INFO((zoh ? "zoh" : "gbt") << " -> krylov_kernel");
    const int64_t H = 37, N = 33, Cc = 2, L = 1024;
    const Tensor A0 = random_tensor({N, N}, 7200, -1, 1, DType::Float32, false).to(gpu);
    const Tensor B0 = random_tensor({H, N}, 7201, -1, 1, DType::Float32, false).to(gpu);
    const Tensor dt0 = random_tensor({H}, 7202, 1e-3, 5e-2, DType::Float32, false).to(gpu);
    const Tensor C0 = random_tensor({Cc, H, N}, 7203, -1, 1, DType::Float32, false).to(gpu);
    const Tensor R = random_tensor({Cc, H, L}, 7204, -1, 1, DType::Float32, false).to(gpu);
    const auto run = [&] {
      Tensor A = A0.clone(), B = B0.clone(), dt = dt0.clone(), C = C0.clone();
      for (Tensor* t : {&A, &B, &dt, &C}) t->set_requires_grad(true);
      const Tensor As = sub(A, scaled_eye(N, stabilizing_shift(N), A));
      const DiscreteSSM d = zoh ? zoh_discretize_dense(As, B, dt) : gbt_discretize(As, B, dt, 0.5);
      const Tensor K = krylov_kernel(d.dA, d.dB, C, L);
      backward(sum(mul(K, R)));
      return Vec{K, A.grad(), B.grad(), dt.grad(), C.grad()};
    };
    const Vec first = run();
    for (const Tensor& t : first) REQUIRE(t.defined());
    for (int r = 1; r < 3; ++r) {
      const Vec again = run();
      for (std::size_t i = 0; i < first.size(); ++i) {
        INFO("run " << r << ", result " << i);
        CHECK(bitwise_equal(again[i], first[i]));
      }
    }
  }
}

TEST_CASE("cuda lssl: errors name the op", "[cuda][lssl]") {
  if (!ssm::testing::cuda_or_skip()) return;
  using ssm::testing::error_message;
  const Device gpu = Device::cuda();
  const Tensor A = Tensor::zeros({3, 3}, DType::Float32, gpu);
  const Tensor B = Tensor::zeros({3}, DType::Float32, gpu);
  const Tensor dt = Tensor::from_vector<float>({0.1f, 0.0f}, {2}).to(gpu);
  CHECK_THAT(error_message([&] { gbt_discretize(A, B, dt, 0.5); }),
             Catch::Contains("[gbt_discretize] dt must be positive and finite, got dt[1] = 0"));
  CHECK_THAT(error_message([&] { zoh_discretize_dense(A, B, dt); }),
             Catch::Contains("[zoh_discretize_dense] dt must be positive and finite"));
  CHECK_THAT(error_message([&] { gbt_discretize(A, B, dt, -0.1); }),
             Catch::Contains("[gbt_discretize] alpha must be in [0, 1]"));
  // alpha = 1, dt A = I: I - dt A = 0 for feature 1.
  const Tensor I = Tensor::from_vector<float>({1, 0, 0, 1}, {2, 2}).to(gpu);
  CHECK_THAT(error_message([&] {
               gbt_discretize(I, Tensor::ones({2}, DType::Float32, gpu),
                              Tensor::from_vector<float>({0.5f, 1.0f}, {2}).to(gpu), 1.0);
             }),
             Catch::Contains("[gbt_discretize] I - alpha dt A is singular for feature 1"));
  const Tensor A64 = Tensor::zeros({3, 3}, DType::Float64, gpu);
  const Tensor B64 = Tensor::zeros({3}, DType::Float64, gpu);
  const Tensor dt64 = Tensor::ones({2}, DType::Float64, gpu);
  CHECK_THAT(error_message([&] { gbt_discretize(A64, B64, dt64, 0.5); }),
             Catch::Contains("[gbt_discretize] the CUDA kernels take float32 tensors"));
  CHECK_THAT(error_message([&] { gbt_discretize(A, B, dt.to(Device::cpu()), 0.5); }),
             Catch::Contains("[gbt_discretize]"));
  // The Krylov kernel and the step keep their state vectors in shared memory: N <= 2048.
  const int64_t big = 2049;
  const Tensor dA = Tensor::zeros({1, big, big}, DType::Float32, gpu);
  const Tensor dB = Tensor::zeros({1, big}, DType::Float32, gpu);
  const Tensor C = Tensor::zeros({1, 1, big}, DType::Float32, gpu);
  CHECK_THAT(error_message([&] { krylov_kernel(dA, dB, C, 4); }),
             Catch::Contains("[krylov_kernel] state size N = 2049 exceeds the supported 2048"));
  Tensor state = Tensor::zeros({1, 1, big}, DType::Float32, gpu);
  CHECK_THAT(error_message([&] {
               dense_ssm_step(dA, dB, C, Tensor::zeros({1, 1}, DType::Float32, gpu), state);
             }),
             Catch::Contains("[dense_ssm_step] state size N = 2049 exceeds the supported 2048"));
  const Tensor dA3 = Tensor::zeros({2, 3, 3}, DType::Float32, gpu);
  const Tensor dB3 = Tensor::zeros({2, 3}, DType::Float32, gpu);
  CHECK_THAT(error_message([&] {
               krylov_kernel(dA3, dB3, Tensor::zeros({1, 2, 3}, DType::Float32, gpu), 0);
             }),
             Catch::Contains("[krylov_kernel] L must be positive, got 0"));
  CHECK_THAT(error_message([&] {
               krylov_kernel(dA3, dB3, Tensor::zeros({1, 3, 3}, DType::Float32, gpu), 4);
             }),
             Catch::Contains("[krylov_kernel] C must be (Cc, H, N) = (Cc, 2, 3)"));
}
