// CPU-versus-CUDA parity of the selective scan (kernels/cuda/selective_scan.cu)
// through the differentiable op of autograd/ops/selective_scan.h: y (and
// last_state where asked) and the gradient of every input, for L across one
// and many chunks (1, 7, 128, 1000, 4097), N from 1 to 256 (powers of two and
// not), channel counts that are not multiples of 32 or of the channel tiles,
// B / C constant or input-dependent with one or several groups, every option
// on and off, inputs without gradients, and transposed views built inside f.
// Then, on the GPU only: other chunk lengths through the kernel API (a
// backward over the forward's chunks, or over recomputed 64-step chunks),
// bitwise repeatability of forward and backward, the one-step update against
// the scan, and the errors.
//
// Tolerance 1e-4 (relative to max(1, max |cpu|)): the CUDA scan runs its
// chunks in parallel (a chunk's decay is exp(A sum_t dt_t), not the product
// of the per-step exp(dt_t A)) and adds its sums over n, b, chunks and
// channels in other orders than the CPU's sequential loops, so float32
// results differ from the CPU by rounding, about 1e-6 to 1e-5 relative at
// L = 4097.
#include <cstring>

#include "autograd/ops/selective_scan.h"
#include "kernels/selective_scan.h"
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

// How B or C is given: constant (D, N), (B, N, L), or (B, G, N, L) with G groups.
struct Proj {
  int64_t groups = -1;  // -1: constant (D, N); 0: (B, N, L); G >= 1: (B, G, N, L)
};
constexpr Proj kConst{-1};
constexpr Proj kSingle{0};
constexpr Proj groups(int64_t g) { return Proj{g}; }

Shape proj_shape(Proj p, int64_t B, int64_t D, int64_t N, int64_t L) {
  if (p.groups < 0) return {D, N};
  if (p.groups == 0) return {B, N, L};
  return {B, p.groups, N, L};
}

std::string proj_name(Proj p) {
  if (p.groups < 0) return "(D, N)";
  if (p.groups == 0) return "(B, N, L)";
  return "(B, " + std::to_string(p.groups) + ", N, L)";
}

struct ScanCase {
  int64_t B = 1, D = 5, L = 7, N = 4;
  Proj b = kSingle, c = kSingle;
  bool D_skip = true, z = true, bias = true, softplus = true, h0 = true;
  bool last = false;        // last_state is an output (its gradient flows back)
  bool transposed = false;  // u, delta and B arrive as transposed views
  bool grad_A = true, grad_B = true;
};

ParityInput in(const Shape& s, double lo, double hi, bool grad = true) {
  return ParityInput{s, lo, hi, false, grad};
}

// Inputs in this order: u, delta, A, B, C, then the optional D, z, delta_bias,
// initial_state that the case has.
ParityCase scan_case(const ScanCase& k) {
  ParityCase c;
  c.name = "selective_scan B " + std::to_string(k.B) + " D " + std::to_string(k.D) + " L " +
           std::to_string(k.L) + " N " + std::to_string(k.N) + ", B " + proj_name(k.b) + ", C " +
           proj_name(k.c) + (k.D_skip ? ", D" : "") + (k.z ? ", z" : "") +
           (k.bias ? ", delta_bias" : "") + (k.softplus ? ", softplus" : "") +
           (k.h0 ? ", initial_state" : "") + (k.last ? ", last_state out" : "") +
           (k.transposed ? ", transposed views" : "") + (k.grad_A ? "" : ", A without grad") +
           (k.grad_B ? "" : ", B without grad");
  const Shape blk = k.transposed ? Shape{k.B, k.L, k.D} : Shape{k.B, k.D, k.L};
  Shape bshape = proj_shape(k.b, k.B, k.D, k.N, k.L);
  const bool transpose_b = k.transposed && k.b.groups >= 0;
  if (transpose_b) std::swap(bshape[bshape.size() - 1], bshape[bshape.size() - 2]);
  c.inputs = {in(blk, -1, 1), in(blk, k.softplus ? -2.0 : 0.05, k.softplus ? 0.5 : 0.6),
              in({k.D, k.N}, -1.5, -0.2, k.grad_A), in(bshape, -1, 1, k.grad_B),
              in(proj_shape(k.c, k.B, k.D, k.N, k.L), -1, 1)};
  if (k.D_skip) c.inputs.push_back(in({k.D}, -1, 1));
  if (k.z) c.inputs.push_back(in({k.B, k.D, k.L}, -2, 2));
  if (k.bias) c.inputs.push_back(in({k.D}, -0.5, 0.5));
  if (k.h0) c.inputs.push_back(in({k.B, k.D, k.N}, -1, 1));
  c.tol = kTol;
  c.f = [k, transpose_b](const Vec& v) {
    std::size_t i = 5;
    const Tensor u = k.transposed ? transpose(v[0], 1, 2) : v[0];
    const Tensor delta = k.transposed ? transpose(v[1], 1, 2) : v[1];
    const Tensor B = transpose_b ? transpose(v[3], -1, -2) : v[3];
    const Tensor D = k.D_skip ? v[i++] : Tensor();
    const Tensor z = k.z ? v[i++] : Tensor();
    const Tensor bias = k.bias ? v[i++] : Tensor();
    const Tensor h0 = k.h0 ? v[i++] : Tensor();
    const SelectiveScanResult r =
        selective_scan(u, delta, v[2], B, v[4], D, z, bias, k.softplus, h0);
    return k.last ? Vec{r.y, r.last_state} : Vec{r.y};
  };
  return c;
}

ScanCase options_off(ScanCase k) {
  k.D_skip = k.z = k.bias = k.softplus = k.h0 = false;
  return k;
}

std::vector<ParityCase> scan_cases() {
  std::vector<ScanCase> ks;
  const auto add = [&](int64_t B, int64_t D, int64_t L, int64_t N, Proj b, Proj c) {
    ScanCase k;
    k.B = B;
    k.D = D;
    k.L = L;
    k.N = N;
    k.b = b;
    k.c = c;
    ks.push_back(k);
    return &ks.back();
  };
  // L = 1 and 7: one chunk shorter than 64.
  add(2, 5, 1, 1, kConst, kConst);
  ks.push_back(options_off(ks.back()));
  add(2, 5, 1, 4, kSingle, kSingle)->last = true;
  add(2, 5, 7, 4, kSingle, kConst);
  ks.push_back(options_off(ks.back()));
  add(2, 37, 7, 16, kConst, kSingle)->last = true;
  add(1, 6, 7, 64, groups(2), groups(3));
  add(1, 5, 7, 256, kSingle, kSingle)->last = true;
  // L = 128: two full chunks.
  add(2, 37, 128, 16, groups(1), groups(1))->last = true;
  ks.push_back(options_off(ks.back()));
  add(2, 6, 128, 64, groups(2), kConst);
  add(2, 5, 128, 256, kSingle, kSingle)->last = true;
  add(2, 12, 128, 17, groups(2), groups(3));  // segments of gcd(6, 4) = 2 channels
  add(1, 5, 128, 33, kConst, kConst);
  add(1, 37, 128, 1, kSingle, kSingle);
  add(2, 5, 128, 4, kSingle, kSingle)->transposed = true;
  add(2, 5, 128, 100, kConst, kSingle);
  ks.back().softplus = false;
  add(1, 3, 128, 200, groups(3), kSingle)->last = true;
  // L = 1000: a partial last chunk (1000 = 15 * 64 + 40).
  add(1, 37, 1000, 16, kSingle, kSingle)->last = true;
  ks.push_back(options_off(ks.back()));
  add(1, 5, 1000, 64, kConst, kConst);
  add(2, 70, 1000, 16, kSingle, kConst);  // channel tiles of 64 + 6
  add(1, 70, 1000, 64, kConst, kSingle)->last = true;
  add(1, 300, 1000, 1, kSingle, kSingle);  // 256 one-lane groups per block
  add(1, 4, 1000, 256, groups(2), groups(4));
  add(1, 5, 1000, 7, kSingle, kSingle)->transposed = true;
  add(1, 37, 1000, 16, kSingle, kSingle)->grad_A = false;
  ks.back().grad_B = false;
  add(1, 6, 1000, 16, groups(2), kConst)->grad_B = false;
  {
    ScanCase* k = add(1, 5, 1000, 32, kSingle, kSingle);
    k->z = false;
    k->h0 = false;
    k->last = true;
  }
  {
    ScanCase* k = add(1, 5, 1000, 16, kConst, kSingle);
    k->D_skip = false;
    k->bias = false;
  }
  // L = 4097: 64 full chunks and one of a single step.
  add(1, 5, 4097, 16, kSingle, kSingle)->last = true;
  ks.push_back(options_off(ks.back()));
  add(1, 37, 4097, 4, groups(1), kConst);
  add(1, 5, 4097, 64, kConst, kSingle)->last = true;
  add(1, 2, 4097, 256, kSingle, kSingle)->last = true;
  add(2, 6, 4097, 1, groups(3), groups(2));
  add(1, 3, 4097, 128, kSingle, kConst);
  std::vector<ParityCase> cases;
  for (const ScanCase& k : ks) cases.push_back(scan_case(k));
  return cases;
}

// ---------------------------------------------------------------- kernel API helpers

struct KernelInputs {
  Tensor u, delta, A, B, C, D, z, bias, h0, gy, gh;  // all defined, float32, on the CPU
  Vec all() const { return {u, delta, A, B, C, D, z, bias, h0, gy, gh}; }
};

// delta in softplus's useful range, or positive (dt = delta) without softplus.
KernelInputs kernel_inputs(int64_t B, int64_t D, int64_t L, int64_t N, Proj pb, Proj pc,
                           std::uint64_t seed, bool softplus = true) {
  KernelInputs in;
  const auto r = [&](const Shape& s, double lo, double hi) {
    return random_tensor(s, seed++, lo, hi, DType::Float32, false);
  };
  in.u = r({B, D, L}, -1, 1);
  in.delta = softplus ? r({B, D, L}, -2, 0.5) : r({B, D, L}, 0.05, 0.6);
  in.A = r({D, N}, -1.5, -0.2);
  in.B = r(proj_shape(pb, B, D, N, L), -1, 1);
  in.C = r(proj_shape(pc, B, D, N, L), -1, 1);
  in.D = r({D}, -1, 1);
  in.z = r({B, D, L}, -2, 2);
  in.bias = r({D}, -0.5, 0.5);
  in.h0 = r({B, D, N}, -1, 1);
  in.gy = r({B, D, L}, -1, 1);
  in.gh = r({B, D, N}, -1, 1);
  return in;
}

KernelInputs to_device(const KernelInputs& in, Device dev) {
  const Vec v = in.all();
  KernelInputs out;
  Tensor* dst[] = {&out.u, &out.delta, &out.A,  &out.B,  &out.C, &out.D,
                   &out.z, &out.bias,  &out.h0, &out.gy, &out.gh};
  for (std::size_t i = 0; i < v.size(); ++i) *dst[i] = v[i].to(dev);
  return out;
}

// Forward and backward through the kernel API: y, last_state, checkpoints,
// then the gradients of u, delta, A, B, C, D, z, delta_bias, initial_state.
Vec kernel_run(const KernelInputs& in, int64_t chunk) {
  const kernels::SelectiveScanForward f = kernels::selective_scan_forward(
      in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.bias, true, in.h0, chunk);
  const kernels::SelectiveScanGrads g = kernels::selective_scan_backward(
      in.gy, in.gh, in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.bias, true, in.h0, f);
  return {f.y, f.last_state, f.checkpoints, g.u, g.delta,      g.A,
          g.B, g.C,          g.D_skip,      g.z, g.delta_bias, g.initial_state};
}

const char* const kResultNames[] = {
    "y",      "last_state", "checkpoints", "grad u", "grad delta",      "grad A",
    "grad B", "grad C",     "grad D",      "grad z", "grad delta_bias", "grad initial_state"};

// parity_error of two tensors on any devices (compared on the host).
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

TEST_CASE("cuda parity: selective_scan", "[cuda][parity]") { run_parity_table(scan_cases()); }

TEST_CASE("cuda selective_scan kernels equal the CPU for other chunk lengths", "[cuda][scan]") {
  if (!ssm::testing::cuda_or_skip()) return;
  // chunk 1 and 7: the backward's chunks are the forward's; 100 and L: the
  // backward recomputes the states entering 64-step chunks first.
  const KernelInputs host = kernel_inputs(2, 5, 300, 16, kSingle, kConst, 4100);
  const KernelInputs host64 = kernel_inputs(1, 3, 200, 64, kConst, groups(3), 4200);
  for (const KernelInputs* h : {&host, &host64}) {
    const KernelInputs dev = to_device(*h, Device::cuda());
    for (int64_t chunk : std::vector<int64_t>{1, 7, 64, 100, h->u.size(2)}) {
      const Vec cpu = kernel_run(*h, chunk);
      const Vec gpu = kernel_run(dev, chunk);
      for (std::size_t i = 0; i < cpu.size(); ++i) {
        INFO("N " << h->A.size(1) << ", chunk " << chunk << ", " << kResultNames[i]);
        REQUIRE(gpu[i].shape() == cpu[i].shape());
        CHECK(host_error(gpu[i], cpu[i]) <= kTol);
      }
    }
  }
}

TEST_CASE("cuda selective_scan forward and backward repeat bit for bit", "[cuda][scan]") {
  if (!ssm::testing::cuda_or_skip()) return;
  struct Shape5 {
    int64_t B, D, L, N;
    Proj b, c;
    int runs;
  };
  // Input-dependent B over tiles of 64 + 6 channels, grouped C; constant B / C
  // (partials over batch and chunks); N = 64 (two states per lane).
  const Shape5 shapes[] = {{2, 70, 1000, 16, kSingle, groups(2), 2},
                           {2, 37, 300, 64, kConst, kConst, 2},
                           {4, 64, 512, 16, kSingle, kSingle, 10}};
  std::uint64_t seed = 5000;
  for (const Shape5& s : shapes) {
    const KernelInputs dev =
        to_device(kernel_inputs(s.B, s.D, s.L, s.N, s.b, s.c, seed += 20), Device::cuda());
    const Vec first = kernel_run(dev, 0);
    for (int run = 1; run < s.runs; ++run) {
      const Vec again = kernel_run(dev, 0);
      for (std::size_t i = 0; i < first.size(); ++i) {
        INFO("D " << s.D << ", N " << s.N << ", run " << run << ", " << kResultNames[i]);
        CHECK(bitwise_equal(again[i], first[i]));
      }
    }
  }
}

TEST_CASE("cuda selective_state_update stepped through the sequence equals the scan",
          "[cuda][scan]") {
  if (!ssm::testing::cuda_or_skip()) return;
  const Device gpu = Device::cuda();
  struct Layout {
    int64_t N;
    Proj b, c;
    bool all;
  };
  const Layout layouts[] = {{3, groups(1), groups(2), true},
                            {16, kConst, groups(1), false},
                            {64, groups(2), kConst, true},
                            {200, groups(1), groups(1), true}};
  const int64_t B = 2, D = 6, L = 70;
  std::uint64_t seed = 6000;
  for (const Layout& lay : layouts) {
    INFO("N " << lay.N << ", B " << proj_name(lay.b) << ", C " << proj_name(lay.c)
              << (lay.all ? ", every option" : ", no options"));
    const KernelInputs in =
        to_device(kernel_inputs(B, D, L, lay.N, lay.b, lay.c, seed += 20, lay.all), gpu);
    const Tensor Dk = lay.all ? in.D : Tensor(), z = lay.all ? in.z : Tensor();
    const Tensor bias = lay.all ? in.bias : Tensor(), h0 = lay.all ? in.h0 : Tensor();
    const SelectiveScanResult r =
        selective_scan(in.u, in.delta, in.A, in.B, in.C, Dk, z, bias, lay.all, h0);
    // A non-contiguous state, (N, B, D) permuted, updated through its strides.
    Tensor base = Tensor::zeros({lay.N, B, D}, DType::Float32, gpu);
    Tensor state = base.permute({1, 2, 0});
    if (h0.defined()) state.copy_(h0);
    const auto step_of = [](const Tensor& p, int64_t t) {
      return p.dim() == 2 ? p : p.select(3, t);  // (B, G, N, L) -> (B, G, N)
    };
    for (int64_t t = 0; t < L; ++t) {
      INFO("t " << t);
      const Tensor y_t = selective_state_update(
          state, in.u.select(2, t), in.delta.select(2, t), in.A, step_of(in.B, t), step_of(in.C, t),
          Dk, z.defined() ? z.select(2, t) : Tensor(), bias, lay.all);
      REQUIRE(y_t.device().is_cuda());
      CHECK(host_error(y_t, r.y.select(2, t)) <= kTol);
    }
    CHECK(host_error(base.permute({1, 2, 0}), r.last_state) <= kTol);
  }
}

TEST_CASE("cuda selective_scan refuses N = 257 and float64 with clear errors", "[cuda][scan]") {
  if (!ssm::testing::cuda_or_skip()) return;
  const Device gpu = Device::cuda();
  const Tensor u = Tensor::zeros({1, 2, 3}, DType::Float32, gpu);
  const Tensor A = Tensor::zeros({2, 257}, DType::Float32, gpu);
  const std::string msg = ssm::testing::error_message([&] { selective_scan(u, u, A, A, A); });
  INFO(msg);
  CHECK(msg.find("[selective_scan] d_state N = 257 exceeds the supported 256") == 0);
  Tensor state = Tensor::zeros({1, 2, 257}, DType::Float32, gpu);
  const Tensor u_t = Tensor::zeros({1, 2}, DType::Float32, gpu);
  const std::string msg_step =
      ssm::testing::error_message([&] { selective_state_update(state, u_t, u_t, A, A, A); });
  INFO(msg_step);
  CHECK(msg_step.find("[selective_state_update] d_state N = 257 exceeds the supported 256") == 0);
  const Tensor u64 = Tensor::zeros({1, 2, 3}, DType::Float64, gpu);
  const Tensor A64 = Tensor::zeros({2, 4}, DType::Float64, gpu);
  const std::string msg64 =
      ssm::testing::error_message([&] { selective_scan(u64, u64, A64, A64, A64); });
  INFO(msg64);
  CHECK(msg64.find("[selective_scan] the CUDA kernels take float32 tensors") == 0);
}
