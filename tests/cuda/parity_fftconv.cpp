// CPU-versus-CUDA parity of the FFT convolution (kernels/cuda/fftconv.cu)
// and of the RTF kernels (kernels/cuda/rtf.cu) through the ops of
// autograd/ops/fftconv.h and autograd/ops/rtf.h: outputs and the gradient of
// every input.
//   fft_conv: L in {1, 100, 1024, 4096} (FFT lengths 2 to 8192) and 16384 with
//             small B H; H = 3 and 37 (not multiples of a block); B = 1 and 3;
//             C = 1 and 2; with and without D; causal and bidirectional;
//             transposed views; inputs without gradients.
//   rtf:      state sizes n in {1, 4, 16, 64} with L = n + 1 (the shortest
//             allowed: L must exceed n, so L = 1 is not a valid RTF length;
//             odd L for n > 1), 100 and 1024; Cc = 1 and 2; the kernel fed
//             into fft_conv; rtf_state_space_C and rtf_step (no gradients),
//             the step on a non-contiguous state.
// Then, on the GPU only: forward and backward repeat bit for bit over 3 runs
// (including a batch split into chunks), and the float32-only error.
//
// Tolerance 1e-4 (relative to max(1, max |cpu|)): cuFFT and FFTW round
// differently and the batch sums run in other orders; the errors seen are
// float rounding of transforms up to length 32768.
#include <cstring>

#include "autograd/ops/fftconv.h"
#include "autograd/ops/rtf.h"
#include "autograd/ops/shape.h"
#include "kernels/fftconv.h"
#include "kernels/rtf.h"
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

// ---------------------------------------------------------------- fft_conv

struct ConvCase {
  int64_t B = 1, C = 1, H = 3, L = 100;
  bool D = false, bidir = false;
  bool transposed = false;  // u (B, L, H) and k (C, L, H) transposed inside f
  bool grad_u = true, grad_k = true;
};

// Inputs: u, k, then D and k_rev when the case has them.
ParityCase conv_case(const ConvCase& k) {
  ParityCase c;
  c.name = "fft_conv B " + std::to_string(k.B) + " C " + std::to_string(k.C) + " H " +
           std::to_string(k.H) + " L " + std::to_string(k.L) + (k.D ? ", D" : "") +
           (k.bidir ? ", bidirectional" : "") + (k.transposed ? ", transposed views" : "") +
           (k.grad_u ? "" : ", u without grad") + (k.grad_k ? "" : ", k without grad");
  const Shape us = k.transposed ? Shape{k.B, k.L, k.H} : Shape{k.B, k.H, k.L};
  const Shape ks = k.transposed ? Shape{k.C, k.L, k.H} : Shape{k.C, k.H, k.L};
  c.inputs = {in(us, -1, 1, k.grad_u), in(ks, -1, 1, k.grad_k)};
  if (k.D) c.inputs.push_back(in({k.C, k.H}, -1, 1));
  if (k.bidir) c.inputs.push_back(in({k.C, k.H, k.L}, -1, 1));
  c.tol = kTol;
  c.f = [k](const Vec& v) {
    std::size_t i = 2;
    const Tensor u = k.transposed ? transpose(v[0], 1, 2) : v[0];
    const Tensor kk = k.transposed ? transpose(v[1], 1, 2) : v[1];
    const Tensor D = k.D ? v[i++] : Tensor();
    const Tensor k_rev = k.bidir ? v[i++] : Tensor();
    return Vec{fft_conv(u, kk, D, k_rev)};
  };
  return c;
}

std::vector<ParityCase> conv_cases() {
  std::vector<ConvCase> ks;
  for (int64_t L : {1, 100, 1024, 4096}) {
    for (const auto& [B, C, H] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 3}, {3, 2, 37}}) {
      for (int flags = 0; flags < 4; ++flags) {
        ConvCase k;
        k.B = B;
        k.C = C;
        k.H = H;
        k.L = L;
        k.D = flags & 1;
        k.bidir = flags & 2;
        ks.push_back(k);
      }
    }
  }
  // L = 16384 (n = 32768), small B H.
  {
    ConvCase k;
    k.B = 1;
    k.C = 1;
    k.H = 3;
    k.L = 16384;
    k.D = k.bidir = true;
    ks.push_back(k);
    k.B = 3;
    k.C = 2;
    k.H = 1;
    k.D = k.bidir = false;
    ks.push_back(k);
  }
  {
    ConvCase k;
    k.B = 3;
    k.C = 2;
    k.H = 37;
    k.L = 100;
    k.D = k.bidir = true;
    k.transposed = true;
    ks.push_back(k);
    k.transposed = false;
    k.grad_u = false;
    ks.push_back(k);
    k.grad_u = true;
    k.grad_k = false;
    k.L = 1024;
    ks.push_back(k);
  }
  std::vector<ParityCase> cases;
  for (const ConvCase& k : ks) cases.push_back(conv_case(k));
  return cases;
}

// ---------------------------------------------------------------- rtf

// a in [-0.5 / n, 0.5 / n]: |1 + a_1 z^-1 + ... + a_n z^-n| >= 1/2 on the unit
// circle (a stable, well-conditioned denominator).
ParityInput denominator(int64_t H, int64_t n, bool grad = true) {
  const double r = 0.5 / static_cast<double>(n);
  return in({H, n}, -r, r, grad);
}

struct RtfCase {
  int64_t Cc = 1, H = 3, n = 4, L = 100;
  bool conv = false;  // K fed into fft_conv (u (B, H, L) another input)
};

ParityCase rtf_case(const RtfCase& k) {
  ParityCase c;
  c.name = "rtf_kernel Cc " + std::to_string(k.Cc) + " H " + std::to_string(k.H) + " n " +
           std::to_string(k.n) + " L " + std::to_string(k.L) + (k.conv ? ", into fft_conv" : "");
  c.inputs = {denominator(k.H, k.n), in({k.Cc, k.H, k.n}, -1, 1), in({k.Cc, k.H}, -1, 1)};
  if (k.conv) c.inputs.push_back(in({2, k.H, k.L}, -1, 1));
  c.tol = kTol;
  c.f = [k](const Vec& v) {
    const Tensor K = rtf_kernel(v[0], v[1], v[2], k.L);
    return k.conv ? Vec{fft_conv(v[3], K)} : Vec{K};
  };
  return c;
}

std::vector<ParityCase> rtf_cases() {
  std::vector<RtfCase> ks;
  for (int64_t n : {1, 4, 16, 64}) {
    for (int64_t L : {n + 1, int64_t{100}, int64_t{1024}}) {
      RtfCase k;
      k.n = n;
      k.L = L;
      k.Cc = n % 2 == 0 ? 2 : 1;
      k.H = L == 100 ? 37 : 3;
      ks.push_back(k);
    }
  }
  {
    RtfCase k;
    k.Cc = 2;
    k.H = 5;
    k.n = 16;
    k.L = 1023;  // odd L
    ks.push_back(k);
    k.Cc = 1;
    k.n = 4;
    k.L = 300;
    k.conv = true;
    ks.push_back(k);
  }
  std::vector<ParityCase> cases;
  for (const RtfCase& k : ks) cases.push_back(rtf_case(k));
  return cases;
}

// rtf_state_space_C (Cc, H, n), and T steps of rtf_step from a state given as
// an (n, B, H) tensor viewed as (B, H, n) (non-contiguous, updated in place):
// the outputs y_0 ... y_{T-1} and the final state.
ParityCase rtf_recurrent_case(int64_t Cc, int64_t H, int64_t n, int64_t L, int64_t B, int64_t T) {
  ParityCase c;
  c.name = "rtf_state_space_C and rtf_step Cc " + std::to_string(Cc) + " H " + std::to_string(H) +
           " n " + std::to_string(n) + " L " + std::to_string(L) + " B " + std::to_string(B) +
           ", " + std::to_string(T) + " steps";
  c.inputs = {denominator(H, n, false), in({Cc, H, n}, -1, 1, false), in({Cc, H}, -1, 1, false),
              in({B, T, H}, -1, 1, false), in({n, B, H}, -1, 1, false)};
  c.backward = false;
  c.tol = kTol;
  c.f = [L, T](const Vec& v) {
    const Tensor C = rtf_state_space_C(v[0], v[1], L);
    Tensor state = v[4].clone().permute({1, 2, 0});  // (B, H, n), non-contiguous
    Vec out{C};
    for (int64_t t = 0; t < T; ++t)
      out.push_back(rtf_step(v[0], C, v[2], v[3].select(1, t), state));
    out.push_back(state.contiguous());
    return out;
  };
  return c;
}

std::vector<ParityCase> rtf_recurrent_cases() {
  return {rtf_recurrent_case(1, 3, 1, 2, 2, 4), rtf_recurrent_case(2, 37, 4, 100, 3, 6),
          rtf_recurrent_case(2, 5, 16, 1024, 2, 5), rtf_recurrent_case(1, 3, 64, 100, 1, 5)};
}

// ---------------------------------------------------------------- GPU-only helpers

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const Tensor ha = a.to(Device::cpu()).contiguous(), hb = b.to(Device::cpu()).contiguous();
  if (ha.shape() != hb.shape() || ha.dtype() != hb.dtype()) return false;
  return std::memcmp(ha.raw_data(), hb.raw_data(),
                     static_cast<std::size_t>(ha.numel()) * dtype_size(ha.dtype())) == 0;
}

double host_error(const Tensor& a, const Tensor& ref) {
  return ssm::testing::parity_error(a.to(Device::cpu()), ref.to(Device::cpu()));
}

// fft_conv forward and backward through the kernel API: y, grad u, k, D, k_rev.
Vec conv_run(const Vec& x) {
  const Tensor y = kernels::fft_conv_forward(x[0], x[1], x[2], x[3]);
  const kernels::FftConvGrads g =
      kernels::fft_conv_backward(x[4], x[0], x[1], x[2], x[3], true, true, true, true);
  return {y, g.u, g.k, g.D, g.k_rev};
}

// rtf forward and backward through the kernel API: K, grad a, b, h0.
Vec rtf_run(const Vec& x, int64_t L) {
  const Tensor K = kernels::rtf_kernel_forward(x[0], x[1], x[2], L);
  const kernels::RtfGrads g = kernels::rtf_kernel_backward(x[3], x[0], x[1], true, true, true);
  return {K, g.a, g.b, g.h0};
}

Vec to_device(const Vec& xs, Device dev) {
  Vec out;
  for (const Tensor& x : xs) out.push_back(x.to(dev));
  return out;
}

}  // namespace

TEST_CASE("cuda parity: fft_conv", "[cuda][parity]") { run_parity_table(conv_cases()); }

TEST_CASE("cuda parity: rtf_kernel", "[cuda][parity]") { run_parity_table(rtf_cases()); }

TEST_CASE("cuda parity: rtf_state_space_C and rtf_step", "[cuda][parity]") {
  run_parity_table(rtf_recurrent_cases());
}

TEST_CASE("cuda fft_conv and rtf_kernel repeat bit for bit", "[cuda][fftconv]") {
  if (!ssm::testing::cuda_or_skip()) return;
  const Device gpu = Device::cuda();
  const char* const conv_names[] = {"y", "grad u", "grad k", "grad D", "grad k_rev"};
  struct ConvShape {
    int64_t B, C, H, L;
  };
  // The last shape splits the batch into chunks (forward 5 + 3, backward 3 + 3 + 2).
  const ConvShape shapes[] = {{3, 2, 37, 1000}, {4, 1, 3, 4096}, {8, 2, 64, 16384}};
  std::uint64_t seed = 9000;
  for (const ConvShape& s : shapes) {
    const Vec host = {random_tensor({s.B, s.H, s.L}, seed++, -1, 1, DType::Float32, false),
                      random_tensor({s.C, s.H, s.L}, seed++, -1, 1, DType::Float32, false),
                      random_tensor({s.C, s.H}, seed++, -1, 1, DType::Float32, false),
                      random_tensor({s.C, s.H, s.L}, seed++, -1, 1, DType::Float32, false),
                      random_tensor({s.B, s.C, s.H, s.L}, seed++, -1, 1, DType::Float32, false)};
    const Vec dev = to_device(host, gpu);
    const Vec first = conv_run(dev);
    const Vec cpu = conv_run(host);
    for (std::size_t i = 0; i < first.size(); ++i) {
      INFO("B " << s.B << " H " << s.H << " L " << s.L << ", " << conv_names[i]
                << " against the CPU");
      CHECK(host_error(first[i], cpu[i]) <= kTol);
    }
    for (int run = 1; run < 3; ++run) {
      const Vec again = conv_run(dev);
      for (std::size_t i = 0; i < first.size(); ++i) {
        INFO("B " << s.B << " H " << s.H << " L " << s.L << ", run " << run << ", "
                  << conv_names[i]);
        CHECK(bitwise_equal(again[i], first[i]));
      }
    }
  }
  const char* const rtf_names[] = {"K", "grad a", "grad b", "grad h0"};
  for (int64_t n : {4, 64}) {
    const int64_t Cc = 2, H = 37, L = 1000;
    const double r = 0.5 / static_cast<double>(n);
    const Vec dev = to_device({random_tensor({H, n}, seed++, -r, r, DType::Float32, false),
                               random_tensor({Cc, H, n}, seed++, -1, 1, DType::Float32, false),
                               random_tensor({Cc, H}, seed++, -1, 1, DType::Float32, false),
                               random_tensor({Cc, H, L}, seed++, -1, 1, DType::Float32, false)},
                              gpu);
    const Vec first = rtf_run(dev, L);
    for (int run = 1; run < 3; ++run) {
      const Vec again = rtf_run(dev, L);
      for (std::size_t i = 0; i < first.size(); ++i) {
        INFO("n " << n << ", run " << run << ", " << rtf_names[i]);
        CHECK(bitwise_equal(again[i], first[i]));
      }
    }
  }
}

TEST_CASE("cuda fft_conv and rtf_kernel refuse float64 with clear errors", "[cuda][fftconv]") {
  if (!ssm::testing::cuda_or_skip()) return;
  const Device gpu = Device::cuda();
  const Tensor u = Tensor::zeros({1, 2, 8}, DType::Float64, gpu);
  const std::string msg = ssm::testing::error_message([&] { fft_conv(u, u); });
  INFO(msg);
  CHECK(msg.find("[fft_conv] the CUDA kernels take float32 tensors") == 0);
  const Tensor a = Tensor::zeros({2, 3}, DType::Float64, gpu);
  const Tensor b = Tensor::zeros({1, 2, 3}, DType::Float64, gpu);
  const Tensor h0 = Tensor::zeros({1, 2}, DType::Float64, gpu);
  const std::string msg_rtf = ssm::testing::error_message([&] { rtf_kernel(a, b, h0, 8); });
  INFO(msg_rtf);
  CHECK(msg_rtf.find("[rtf_kernel] the CUDA kernels take float32 tensors") == 0);
  const Tensor a32 = Tensor::zeros({2, 3}, DType::Float32, gpu);
  const Tensor b32 = Tensor::zeros({1, 2, 3}, DType::Float32, gpu);
  const std::string msg_len =
      ssm::testing::error_message([&] { rtf_kernel(a32, b32, h0.to(DType::Float32), 3); });
  INFO(msg_len);
  CHECK(msg_len.find("[rtf_kernel] L must exceed the state size n = 3") == 0);
}
