// The selective scan (Mamba's S6): forward against a float64 loop written
// straight from the formula, float32 against it at L = 1024, gradchecks of
// every input and of both outputs, the chunked backward against the same
// backward with one chunk, the one-step update against the scan, thread-count
// independence, and error messages.
#include <algorithm>
#include <cmath>

#include "autograd/ops/selective_scan.h"
#include "kernels/common.h"
#include "kernels/selective_scan.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

// How B or C is given: constant (D, N), (B, N, L), or (B, G, N, L).
enum class Proj { Constant, Single, Groups1, Groups2 };

const char* proj_name(Proj p) {
  switch (p) {
    case Proj::Constant: return "(D, N)";
    case Proj::Single: return "(B, N, L)";
    case Proj::Groups1: return "(B, 1, N, L)";
    case Proj::Groups2: return "(B, 2, N, L)";
  }
  return "";
}

struct Options {
  Proj b = Proj::Single, c = Proj::Single;
  bool D = true, z = true, bias = true, softplus = true, h0 = true;
};

struct Inputs {
  Tensor u, delta, A, B, C, D, z, bias, h0;  // (B, D, L) (B, D, L) (D, N) ...
  bool softplus = false;
  std::vector<Tensor> all() const { return {u, delta, A, B, C, D, z, bias, h0}; }
};

Shape proj_shape(Proj p, std::int64_t B, std::int64_t D, std::int64_t N, std::int64_t L) {
  switch (p) {
    case Proj::Constant: return {D, N};
    case Proj::Single: return {B, N, L};
    case Proj::Groups1: return {B, 1, N, L};
    case Proj::Groups2: return {B, 2, N, L};
  }
  return {};
}

// Mamba-like inputs: A = -(uniform in [0.2, 1.5]) so that the state decays,
// delta around softplus's useful range.
Inputs make_inputs(std::int64_t B, std::int64_t D, std::int64_t N, std::int64_t L, const Options& o,
                   std::uint64_t seed, DType dtype = DType::Float64, bool grad = false) {
  Inputs in;
  in.u = random_tensor({B, D, L}, seed + 1, -1, 1, dtype, grad);
  in.delta = random_tensor({B, D, L}, seed + 2, o.softplus ? -2.0 : 0.05, o.softplus ? 0.5 : 0.6,
                           dtype, grad);
  in.A = random_tensor({D, N}, seed + 3, -1.5, -0.2, dtype, grad);
  in.B = random_tensor(proj_shape(o.b, B, D, N, L), seed + 4, -1, 1, dtype, grad);
  in.C = random_tensor(proj_shape(o.c, B, D, N, L), seed + 5, -1, 1, dtype, grad);
  if (o.D) in.D = random_tensor({D}, seed + 6, -1, 1, dtype, grad);
  if (o.z) in.z = random_tensor({B, D, L}, seed + 7, -2, 2, dtype, grad);
  if (o.bias) in.bias = random_tensor({D}, seed + 8, -0.5, 0.5, dtype, grad);
  if (o.h0) in.h0 = random_tensor({B, D, N}, seed + 9, -1, 1, dtype, grad);
  in.softplus = o.softplus;
  return in;
}

// The scan straight from its definition (selective_scan_ref), in double:
// returns y (B, D, L) and the last state (B, D, N).
std::pair<Tensor, Tensor> naive_scan(const Inputs& in) {
  const std::int64_t B = in.u.size(0), D = in.u.size(1), L = in.u.size(2), N = in.A.size(1);
  const auto get = [](const Tensor& t) {
    return t.defined() ? t.to_vector<double>() : std::vector<double>();
  };
  const auto u = get(in.u), delta = get(in.delta), A = get(in.A), Bv = get(in.B), Cv = get(in.C);
  const auto Dv = get(in.D), z = get(in.z), bias = get(in.bias), h0 = get(in.h0);
  // proj[b, d, n, t] for each layout.
  const auto at = [&](const Tensor& t, const std::vector<double>& v, std::int64_t b, std::int64_t d,
                      std::int64_t n, std::int64_t s) {
    if (t.dim() == 2) return v[d * N + n];
    if (t.dim() == 3) return v[(b * N + n) * L + s];
    const std::int64_t G = t.size(1), g = d / (D / G);
    return v[((b * G + g) * N + n) * L + s];
  };
  std::vector<double> y(B * D * L), last(B * D * N);
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t d = 0; d < D; ++d) {
      std::vector<double> h(N, 0.0);
      if (!h0.empty()) {
        for (std::int64_t n = 0; n < N; ++n) h[n] = h0[(b * D + d) * N + n];
      }
      for (std::int64_t t = 0; t < L; ++t) {
        const std::int64_t i = (b * D + d) * L + t;
        double dt = delta[i] + (bias.empty() ? 0.0 : bias[d]);
        if (in.softplus) dt = dt > 20.0 ? dt : std::log1p(std::exp(dt));
        double out = 0.0;
        for (std::int64_t n = 0; n < N; ++n) {
          h[n] = std::exp(dt * A[d * N + n]) * h[n] + dt * at(in.B, Bv, b, d, n, t) * u[i];
          out += at(in.C, Cv, b, d, n, t) * h[n];
        }
        if (!Dv.empty()) out += Dv[d] * u[i];
        if (!z.empty()) out *= z[i] / (1.0 + std::exp(-z[i]));
        y[i] = out;
      }
      for (std::int64_t n = 0; n < N; ++n) last[(b * D + d) * N + n] = h[n];
    }
  }
  return {Tensor::from_vector<double>(y, {B, D, L}), Tensor::from_vector<double>(last, {B, D, N})};
}

SelectiveScanResult run(const Inputs& in) {
  return selective_scan(in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.bias, in.softplus, in.h0);
}

kernels::SelectiveScanForward run_kernel(const Inputs& in, std::int64_t chunk) {
  return kernels::selective_scan_forward(in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.bias,
                                         in.softplus, in.h0, chunk);
}

kernels::SelectiveScanGrads run_backward(const Inputs& in, const Tensor& gy, const Tensor& gh,
                                         const kernels::SelectiveScanForward& fwd) {
  return kernels::selective_scan_backward(gy, gh, in.u, in.delta, in.A, in.B, in.C, in.D, in.z,
                                          in.bias, in.softplus, in.h0, fwd);
}

std::vector<Tensor> grad_list(const kernels::SelectiveScanGrads& g) {
  return {g.u, g.delta, g.A, g.B, g.C, g.D_skip, g.z, g.delta_bias, g.initial_state};
}

const char* kInputNames[] = {"u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state"};

}  // namespace

// ---------------------------------------------------------------- forward

TEST_CASE("selective_scan equals a float64 loop over layouts of B and C and every option",
          "[cpu][scan]") {
  const std::int64_t B = 2, D = 4, L = 9;
  std::uint64_t seed = 100;
  const std::vector<std::pair<Proj, Proj>> layouts = {
      {Proj::Constant, Proj::Constant}, {Proj::Single, Proj::Single},
      {Proj::Groups1, Proj::Groups2},   {Proj::Groups2, Proj::Constant},
      {Proj::Constant, Proj::Groups2},  {Proj::Groups2, Proj::Single}};
  // N = 3 (padded to 8), 16 (no padding) and 21 (the width read at run time).
  for (std::int64_t N : {3, 16, 21}) {
    for (const auto& [pb, pc] : layouts) {
      for (int mask = 0; mask < 32; ++mask) {
        Options o;
        o.b = pb;
        o.c = pc;
        o.D = mask & 1;
        o.z = mask & 2;
        o.bias = mask & 4;
        o.softplus = mask & 8;
        o.h0 = mask & 16;
        INFO("N " << N << " B " << proj_name(pb) << " C " << proj_name(pc) << " D " << o.D << " z "
                  << o.z << " bias " << o.bias << " softplus " << o.softplus << " h0 " << o.h0);
        const Inputs in = make_inputs(B, D, N, L, o, seed += 10);
        const auto [y, last] = naive_scan(in);
        const SelectiveScanResult r = run(in);
        require_close(r.y, y, 1e-12, 1e-12);
        require_close(r.last_state, last, 1e-12, 1e-12);
      }
    }
  }
  // L = 0: no output, the last state is the initial state.
  Options o;
  const Inputs empty = make_inputs(B, D, 3, 0, o, 190);
  const SelectiveScanResult r = run(empty);
  CHECK(r.y.shape() == Shape{B, D, 0});
  require_close(r.last_state, empty.h0, 0, 0);
}

TEST_CASE("selective_scan over several chunks, non-contiguous inputs, softplus threshold",
          "[cpu][scan]") {
  // L = 150: chunks of 64, 64 and 22; u, delta, z arrive as (B, L, D) transposed,
  // B and C as (B, L, G, N) permuted, as Mamba's projections produce them.
  const std::int64_t B = 2, D = 6, N = 5, L = 150;
  Options o;
  o.b = o.c = Proj::Groups2;
  Inputs in = make_inputs(B, D, N, L, o, 200);
  in.u = random_tensor({B, L, D}, 201, -1, 1, DType::Float64, false).transpose(1, 2);
  in.z = random_tensor({B, L, D}, 202, -2, 2, DType::Float64, false).transpose(1, 2);
  // delta + bias above 20 in places: softplus passes it through.
  in.delta = random_tensor({B, L, D}, 203, -3, 22, DType::Float64, false).transpose(1, 2);
  in.A = random_tensor({D, N}, 204, -0.2, -0.01, DType::Float64, false);
  in.B = random_tensor({B, L, 2, N}, 205, -1, 1, DType::Float64, false).permute({0, 2, 3, 1});
  REQUIRE_FALSE(in.u.is_contiguous());
  REQUIRE_FALSE(in.B.is_contiguous());
  const auto [y, last] = naive_scan(in);
  const SelectiveScanResult r = run(in);
  require_close(r.y, y, 1e-11, 1e-11);
  require_close(r.last_state, last, 1e-11, 1e-11);
  // Any chunk length gives the same forward; the checkpoints are the states entering each chunk.
  for (std::int64_t chunk : {1, 7, 150, 1000}) {
    INFO("chunk " << chunk);
    const auto f = run_kernel(in, chunk);
    require_close(f.y, y, 1e-11, 1e-11);
    const std::int64_t T = std::min(chunk, L), K = (L + T - 1) / T;
    CHECK(f.chunk == T);
    CHECK(f.checkpoints.shape() == Shape{B, D, K, N});
    if (K > 1) {
      // The state entering chunk 1 is the last state of the scan cut at T steps.
      Inputs head = in;
      head.u = in.u.narrow(2, 0, T);
      head.delta = in.delta.narrow(2, 0, T);
      head.z = in.z.narrow(2, 0, T);
      head.B = in.B.narrow(3, 0, T);
      head.C = in.C.narrow(3, 0, T);
      require_close(f.checkpoints.select(2, 1).contiguous(), naive_scan(head).second, 1e-11, 1e-11);
    }
  }
  // The default saves every 64 steps: 3 checkpoints, not L states.
  CHECK(run_kernel(in, 0).checkpoints.shape() == Shape{B, D, 3, N});
}

TEST_CASE("selective_scan in float32 stays within 1e-4 of the float64 loop at L = 1024",
          "[cpu][scan]") {
  const std::int64_t B = 2, D = 8, N = 16, L = 1024;
  Options o;  // input-dependent B, C; z, D, bias, softplus, initial state
  Inputs in = make_inputs(B, D, N, L, o, 300, DType::Float32);
  // Mamba's init: A = -(1..N), dt in [1e-3, 1e-1] through the softplus bias.
  std::vector<float> a(D * N);
  for (std::int64_t i = 0; i < D * N; ++i) a[i] = -static_cast<float>(i % N + 1);
  in.A = Tensor::from_vector<float>(a, {D, N});
  in.bias = random_tensor({D}, 301, -6.9, -2.3, DType::Float32, false);
  in.delta = random_tensor({B, D, L}, 302, -1, 1, DType::Float32, false);
  const auto [y, last] = naive_scan(in);  // float64 loop on the float32 values
  const SelectiveScanResult r = run(in);
  CHECK(r.y.dtype() == DType::Float32);
  double max_y = 0.0, max_h = 0.0;
  for (double v : y.to_vector<double>()) max_y = std::max(max_y, std::abs(v));
  for (double v : last.to_vector<double>()) max_h = std::max(max_h, std::abs(v));
  REQUIRE(max_y > 0.1);
  // Relative 1e-4 of each value, or 1e-5 of the largest for values near 0.
  require_close(r.y.to(DType::Float64), y, 1e-5 * max_y, 1e-4);
  require_close(r.last_state.to(DType::Float64), last, 1e-5 * max_h, 1e-4);
}

// ---------------------------------------------------------------- gradients

TEST_CASE("gradcheck: selective_scan, all inputs, each output and both", "[cpu][scan][grad]") {
  const std::int64_t B = 2, D = 4, N = 3, L = 7;
  const std::vector<std::pair<Proj, Proj>> layouts = {{Proj::Single, Proj::Groups2},
                                                      {Proj::Constant, Proj::Constant},
                                                      {Proj::Groups2, Proj::Constant}};
  std::uint64_t seed = 400;
  for (const auto& [pb, pc] : layouts) {
    for (bool sp : {false, true}) {
      Options o;
      o.b = pb;
      o.c = pc;
      o.softplus = sp;
      const Inputs in = make_inputs(B, D, N, L, o, seed += 10, DType::Float64, true);
      INFO("B " << proj_name(pb) << " C " << proj_name(pc) << " softplus " << sp);
      const auto scan = [sp](const std::vector<Tensor>& t) {
        return selective_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], sp, t[8]);
      };
      {
        INFO("loss on y");
        require_gradcheck([&](const std::vector<Tensor>& t) { return scan(t).y; }, in.all());
      }
      {
        INFO("loss on last_state only");
        require_gradcheck([&](const std::vector<Tensor>& t) { return scan(t).last_state; },
                          in.all());
      }
      {
        INFO("loss on both outputs");
        require_gradcheck(
            [&](const std::vector<Tensor>& t) {
              const SelectiveScanResult r = scan(t);
              return cat({flatten(r.y), flatten(r.last_state)});
            },
            in.all());
      }
    }
  }
}

TEST_CASE("gradcheck: selective_scan with optional inputs absent or constant",
          "[cpu][scan][grad]") {
  const std::int64_t B = 2, D = 4, N = 3, L = 6;
  Options bare;
  bare.D = bare.z = bare.bias = bare.h0 = bare.softplus = false;
  const Inputs in = make_inputs(B, D, N, L, bare, 500, DType::Float64, true);
  require_gradcheck(
      [](const std::vector<Tensor>& t) { return selective_scan(t[0], t[1], t[2], t[3], t[4]).y; },
      {in.u, in.delta, in.A, in.B, in.C});
  // Subsets: only some inputs require grad; the others get no gradient.
  Options full;
  full.c = Proj::Groups2;
  const Inputs g = make_inputs(B, D, N, L, full, 510, DType::Float64, true);
  const auto scan = [](const std::vector<Tensor>& t) {
    const SelectiveScanResult r =
        selective_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], true, t[8]);
    return cat({flatten(r.y), flatten(r.last_state)});
  };
  for (int which = 0; which < 9; ++which) {
    INFO("only " << kInputNames[which] << " requires grad");
    std::vector<Tensor> t = g.all();
    for (int k = 0; k < 9; ++k) {
      if (k != which) t[k] = t[k].detach();
    }
    require_gradcheck(scan, t);
  }
  // Parameters only (A, D, delta_bias, B, C as in a layer whose inputs are fixed).
  std::vector<Tensor> params = g.all();
  for (int k : {0, 1, 6, 8}) params[k] = params[k].detach();
  require_gradcheck(scan, params);
}

TEST_CASE("gradcheck: selective_scan across chunk boundaries (L = 70 > 64)", "[cpu][scan][grad]") {
  const std::int64_t B = 1, D = 2, N = 2, L = 70;
  Options o;
  o.b = Proj::Single;
  o.c = Proj::Groups2;
  const Inputs in = make_inputs(B, D, N, L, o, 600, DType::Float64, true);
  require_gradcheck(
      [](const std::vector<Tensor>& t) {
        const SelectiveScanResult r =
            selective_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], true, t[8]);
        return cat({flatten(r.y), flatten(r.last_state)});
      },
      in.all());
}

TEST_CASE("gradcheck: selective_scan with N = 17 (state width read at run time)",
          "[cpu][scan][grad]") {
  const std::int64_t B = 1, D = 2, N = 17, L = 5;
  Options o;
  o.c = Proj::Constant;
  const Inputs in = make_inputs(B, D, N, L, o, 650, DType::Float64, true);
  require_gradcheck(
      [](const std::vector<Tensor>& t) {
        const SelectiveScanResult r =
            selective_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], true, t[8]);
        return cat({flatten(r.y), flatten(r.last_state)});
      },
      in.all());
}

TEST_CASE("the chunked backward equals the backward with one chunk", "[cpu][scan][grad]") {
  // With chunk >= L the backward holds every state of the row (the plain reverse
  // scan); smaller chunks recompute them from checkpoints and must agree.
  const std::int64_t B = 2, D = 6, N = 4, L = 45;
  Options o;
  o.b = Proj::Groups2;
  o.c = Proj::Single;
  const Inputs in = make_inputs(B, D, N, L, o, 700);
  const Tensor gy = random_tensor({B, D, L}, 701, -1, 1, DType::Float64, false);
  const Tensor gh = random_tensor({B, D, N}, 702, -1, 1, DType::Float64, false);
  const auto whole = grad_list(run_backward(in, gy, gh, run_kernel(in, L)));
  for (std::int64_t chunk : {1, 2, 7, 16, 44}) {
    const auto chunked = grad_list(run_backward(in, gy, gh, run_kernel(in, chunk)));
    for (int k = 0; k < 9; ++k) {
      INFO("chunk " << chunk << ", gradient of " << kInputNames[k]);
      require_close(chunked[k], whole[k], 1e-12, 1e-11);
    }
  }
  // Undefined output gradients are zeros.
  const auto no_h = grad_list(run_backward(in, gy, Tensor(), run_kernel(in, 8)));
  const auto zero_h =
      grad_list(run_backward(in, gy, Tensor::zeros({B, D, N}, DType::Float64), run_kernel(in, 8)));
  const auto no_y = grad_list(run_backward(in, Tensor(), gh, run_kernel(in, 8)));
  const auto zero_y =
      grad_list(run_backward(in, Tensor::zeros({B, D, L}, DType::Float64), gh, run_kernel(in, 8)));
  for (int k = 0; k < 9; ++k) {
    INFO("gradient of " << kInputNames[k]);
    require_close(no_h[k], zero_h[k], 0, 0);
    require_close(no_y[k], zero_y[k], 0, 0);
  }
  // L = 0: the initial state's gradient is grad_last_state, the others are zero.
  const Inputs empty = make_inputs(B, D, N, 0, o, 710);
  const auto g0 =
      run_backward(empty, Tensor::zeros({B, D, 0}, DType::Float64), gh, run_kernel(empty, 0));
  require_close(g0.initial_state, gh, 0, 0);
  require_close(g0.A, Tensor::zeros({D, N}, DType::Float64), 0, 0);
}

TEST_CASE("selective_scan float32 gradients follow the float64 ones at L = 1024",
          "[cpu][scan][grad]") {
  const std::int64_t B = 2, D = 4, N = 16, L = 1024;
  Options o;
  o.c = Proj::Groups2;
  Inputs in = make_inputs(B, D, N, L, o, 800, DType::Float32);
  in.bias = random_tensor({D}, 801, -6.9, -2.3, DType::Float32, false);
  const Tensor gy = random_tensor({B, D, L}, 802, -1, 1, DType::Float32, false);
  const Tensor gh = random_tensor({B, D, N}, 803, -1, 1, DType::Float32, false);
  const auto g32 = grad_list(run_backward(in, gy, gh, run_kernel(in, 0)));
  Inputs in64 = in;
  for (Tensor* t :
       {&in64.u, &in64.delta, &in64.A, &in64.B, &in64.C, &in64.D, &in64.z, &in64.bias, &in64.h0}) {
    *t = t->to(DType::Float64);
  }
  const auto g64 = grad_list(
      run_backward(in64, gy.to(DType::Float64), gh.to(DType::Float64), run_kernel(in64, 0)));
  for (int k = 0; k < 9; ++k) {
    INFO("gradient of " << kInputNames[k]);
    double scale = 0.0;
    for (double v : g64[k].to_vector<double>()) scale = std::max(scale, std::abs(v));
    require_close(g32[k].to(DType::Float64), g64[k], 1e-5 * scale, 1e-3);
  }
}

// ---------------------------------------------------------------- one step

TEST_CASE("selective_state_update stepped through the sequence equals the scan", "[cpu][scan]") {
  const std::int64_t B = 2, D = 4, N = 3, L = 11;
  const std::vector<std::pair<Proj, Proj>> layouts = {{Proj::Groups1, Proj::Groups2},
                                                      {Proj::Constant, Proj::Groups1},
                                                      {Proj::Groups2, Proj::Constant}};
  std::uint64_t seed = 900;
  for (const auto& [pb, pc] : layouts) {
    for (bool all : {false, true}) {
      Options o;
      o.b = pb;
      o.c = pc;
      o.D = o.z = o.bias = o.softplus = o.h0 = all;
      INFO("B " << proj_name(pb) << " C " << proj_name(pc) << " options " << all);
      const Inputs in = make_inputs(B, D, N, L, o, seed += 10);
      const SelectiveScanResult r = run(in);
      // A non-contiguous state, (N, B, D) permuted, is updated through its strides.
      Tensor base = Tensor::zeros({N, B, D}, DType::Float64);
      Tensor state = base.permute({1, 2, 0});
      if (in.h0.defined()) state.copy_(in.h0);
      const auto step_of = [&](const Tensor& p, std::int64_t t) {
        return p.dim() == 2 ? p : p.select(3, t);  // (B, G, N, L) -> (B, G, N)
      };
      for (std::int64_t t = 0; t < L; ++t) {
        INFO("t " << t);
        const Tensor y_t = selective_state_update(state, in.u.select(2, t), in.delta.select(2, t),
                                                  in.A, step_of(in.B, t), step_of(in.C, t), in.D,
                                                  in.z.defined() ? in.z.select(2, t) : Tensor(),
                                                  in.bias, in.softplus);
        require_close(y_t, r.y.select(2, t).contiguous(), 1e-12, 1e-12);
      }
      require_close(base.permute({1, 2, 0}).contiguous(), r.last_state, 1e-12, 1e-12);
    }
  }
}

// ---------------------------------------------------------------- threads

TEST_CASE("selective_scan forward and gradients are bitwise equal on 1 and 2 threads",
          "[cpu][scan][grad]") {
  // Large enough for the parallel paths; 192 channels of one group of B make
  // three channel blocks whose partial sums are added in order.
  const std::int64_t B = 2, D = 192, N = 8, L = 80;
  Options o;
  o.b = Proj::Single;
  o.c = Proj::Groups2;
  const Inputs in = make_inputs(B, D, N, L, o, 1000, DType::Float32);
  const Inputs in_const =
      make_inputs(B, D, N, L, Options{Proj::Constant, Proj::Constant}, 1010, DType::Float32);
  const Tensor gy = random_tensor({B, D, L}, 1001, -1, 1, DType::Float32, false);
  const Tensor gh = random_tensor({B, D, N}, 1002, -1, 1, DType::Float32, false);
  const auto everything = [&](const Inputs& x) {
    const auto f = run_kernel(x, 0);
    std::vector<Tensor> out = grad_list(run_backward(x, gy, gh, f));
    out.push_back(f.y);
    out.push_back(f.last_state);
    return out;
  };
  const int threads = kernels::num_threads();
  for (const Inputs* x : {&in, &in_const}) {
    kernels::set_num_threads(1);
    const auto one = everything(*x);
    kernels::set_num_threads(2);
    const auto two = everything(*x);
    kernels::set_num_threads(threads);
    for (std::size_t k = 0; k < one.size(); ++k) {
      INFO("output " << k);
      CHECK(one[k].to_vector<float>() == two[k].to_vector<float>());
    }
  }
}

// ---------------------------------------------------------------- errors

TEST_CASE("selective_scan errors name the op and the shapes", "[cpu][scan]") {
  const Tensor u = Tensor::zeros({2, 4, 8}), A = Tensor::zeros({4, 3});
  const Tensor Bv = Tensor::zeros({2, 3, 8});
  // d_state beyond the kernel's limit.
  CHECK(error_message([&] {
          selective_scan(u, u, Tensor::zeros({4, 257}), Tensor::zeros({4, 257}),
                         Tensor::zeros({4, 257}));
        }) ==
        "[selective_scan] d_state N = 257 exceeds the supported 256 (A (4, 257) float32 cpu)");
  // N = 256 is accepted.
  CHECK(selective_scan(u, u, Tensor::zeros({4, 256}), Tensor::zeros({4, 256}),
                       Tensor::zeros({4, 256}))
            .last_state.shape() == Shape{2, 4, 256});
  // Groups that do not divide the channels.
  CHECK(error_message([&] {
          selective_scan(u, u, A, Tensor::zeros({2, 3, 3, 8}), Bv);
        }) ==
        "[selective_scan] B has G = 3 groups, which must divide the D = 4 channels: u (2, 4, 8) "
        "float32 cpu, B (2, 3, 3, 8) float32 cpu");
  // Mismatched shapes.
  CHECK(error_message([&] {
          selective_scan(u, Tensor::zeros({2, 4, 7}), A, Bv, Bv);
        }) == "[selective_scan] delta must have u's shape (2, 4, 8), got (2, 4, 7) float32 cpu");
  CHECK(error_message([&] {
          selective_scan(u, u, Tensor::zeros({5, 3}), Bv, Bv);
        }) ==
        "[selective_scan] A must be (D, N) with D = 4 (the channels of u (2, 4, 8) float32 cpu), "
        "got (5, 3) float32 cpu");
  CHECK(error_message([&] {
          selective_scan(u, u, A, Tensor::zeros({2, 3, 7}), Bv);
        }) ==
        "[selective_scan] B must be (B, N, L) = (2, 3, 8) for u (2, 4, 8) float32 cpu and A with "
        "N = 3, got (2, 3, 7) float32 cpu");
  CHECK(error_message([&] {
          selective_scan(u, u, A, Bv, Tensor::zeros({4, 2}));
        }) == "[selective_scan] C must be (D, N) = (4, 3) when constant, got (4, 2) float32 cpu");
  CHECK(error_message([&] { selective_scan(u, u, A, Bv, Bv, Tensor::zeros({3})); }) ==
        "[selective_scan] D must be (D) = (4,), got (3,) float32 cpu");
  CHECK(error_message([&] {
          selective_scan(u, u, A, Bv, Bv, Tensor(), Tensor(), Tensor(), false,
                         Tensor::zeros({2, 4, 2}));
        }) ==
        "[selective_scan] initial_state must be (B, D, N) = (2, 4, 3), got (2, 4, 2) float32 cpu");
  CHECK(error_message([&] { selective_scan(u, u.to(DType::Float64), A, Bv, Bv); }) ==
        "[selective_scan] dtypes differ: (2, 4, 8) float32 cpu and (2, 4, 8) float64 cpu");
  CHECK(error_message([&] {
          selective_scan(Tensor::zeros({4, 8}), u, A, Bv, Bv);
        }) == "[selective_scan] u must be (B, D, L), got (4, 8) float32 cpu");
  // The one-step update checks its state and its B_t / C_t.
  Tensor state = Tensor::zeros({2, 4, 2});
  const Tensor u_t = Tensor::zeros({2, 4});
  CHECK(error_message([&] {
          selective_state_update(state, u_t, u_t, A, Tensor::zeros({2, 1, 3}),
                                 Tensor::zeros({2, 1, 3}));
        }) ==
        "[selective_state_update] state must be (B, D, N) = (2, 4, 3), got (2, 4, 2) float32 cpu");
  Tensor good = Tensor::zeros({2, 4, 3});
  CHECK(error_message([&] {
          selective_state_update(good, u_t, u_t, A, Tensor::zeros({2, 3, 3}),
                                 Tensor::zeros({2, 1, 3}));
        }) ==
        "[selective_state_update] B_t has G = 3 groups, which must divide the D = 4 channels: u_t "
        "(2, 4) float32 cpu, B_t (2, 3, 3) float32 cpu");
  CHECK(error_message([&] {
          selective_state_update(good, u_t, u_t, Tensor::zeros({4, 300}), Tensor::zeros({4, 300}),
                                 Tensor::zeros({4, 300}));
        }).find("[selective_state_update] d_state N = 300 exceeds the supported 256") == 0);
}
