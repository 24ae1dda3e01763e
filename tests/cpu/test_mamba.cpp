// The Mamba block and Vision Mamba's bidirectional block: the scan (training)
// view equals the step-by-step recurrent view (the backward direction through
// flipping); padding never changes real positions; parameter names and inits
// as the reference; the golden file written by
// scripts/reference/mamba_reference.py (PyTorch, float64) is matched:
// outputs and every gradient.
#include <cmath>
#include <map>

#include "autograd/ops.h"
#include "layers/ssm/mamba.h"
#include "tests/testing.h"
#include "train/checkpoint.h"

using namespace ssm;
using ssm::testing::rel_error;
using ssm::testing::require_close;

TEST_CASE("Mamba: scan equals step, both directions of the bidirectional block", "[cpu][mamba]") {
  for (const bool bidirectional : {false, true}) {
    INFO((bidirectional ? "bidirectional" : "causal"));
    MambaOptions o;
    o.bidirectional = bidirectional;
    Generator gen(7);
    Mamba block(16, o, gen);
    const Tensor x = randn({2, 64, 16}, DType::Float32, Device::cpu(), gen);
    Tensor scan;
    {
      NoGradGuard ng;
      scan = block.forward(x);
    }
    const Tensor rec = block.forward_recurrent(x);
    CHECK(rel_error(rec, scan) < 1e-4);
    if (!bidirectional) {
      MambaState state = block.default_state(2);
      for (std::int64_t t = 0; t < 8; ++t) {
        require_close(block.step(x.select(1, t).contiguous(), state),
                      scan.select(1, t).contiguous(), 1e-5, 1e-4);
      }
    } else {
      MambaState state = block.default_state(2);
      CHECK(ssm::testing::error_message([&] {
              block.step(x.select(1, 0), state);
            }).find("bidirectional") != std::string::npos);
    }
  }
}

TEST_CASE("Mamba: padding never changes real positions", "[cpu][mamba]") {
  for (const bool bidirectional : {false, true}) {
    INFO((bidirectional ? "bidirectional" : "causal"));
    MambaOptions o;
    o.bidirectional = bidirectional;
    Generator gen(9);
    Mamba block(8, o, gen, DType::Float64);
    const std::int64_t L = 20;
    const Tensor x = randn({2, L, 8}, DType::Float64, Device::cpu(), gen);
    const Tensor lengths =
        Tensor::from_vector(std::vector<std::int64_t>{13, 20}, {2}, DType::Int64);
    NoGradGuard ng;
    const Tensor padded = block.forward_padded(x, lengths);
    // Sequence 0 alone, unpadded, and with different padding values.
    const Tensor alone = block.forward(x.narrow(0, 0, 1).narrow(1, 0, 13).contiguous());
    require_close(padded.narrow(0, 0, 1).narrow(1, 0, 13).contiguous(), alone, 1e-12, 1e-10);
    Tensor x2 = x.clone();
    x2.narrow(0, 0, 1).narrow(1, 13, L - 13).fill_(5.0);
    const Tensor padded2 = block.forward_padded(x2, lengths);
    require_close(padded2.narrow(1, 0, 13).contiguous(), padded.narrow(1, 0, 13).contiguous(),
                  1e-12, 1e-10);
  }
}

TEST_CASE("Mamba: parameter names, shapes, inits and tags as the reference", "[cpu][mamba]") {
  MambaOptions o;
  o.bidirectional = true;
  Generator gen(1);
  Mamba block(32, o, gen);
  CHECK(block.d_inner() == 64);
  CHECK(block.dt_rank() == 2);
  std::map<std::string, Shape> want = {{"in_proj.weight", {128, 32}},
                                       {"conv1d.weight", {64, 1, 4}},
                                       {"conv1d.bias", {64}},
                                       {"x_proj.weight", {34, 64}},
                                       {"dt_proj.weight", {64, 2}},
                                       {"dt_proj.bias", {64}},
                                       {"A_log", {64, 16}},
                                       {"D", {64}},
                                       {"conv1d_b.weight", {64, 1, 4}},
                                       {"conv1d_b.bias", {64}},
                                       {"x_proj_b.weight", {34, 64}},
                                       {"dt_proj_b.weight", {64, 2}},
                                       {"dt_proj_b.bias", {64}},
                                       {"A_b_log", {64, 16}},
                                       {"D_b", {64}},
                                       {"out_proj.weight", {32, 64}}};
  const auto params = block.named_parameters();
  CHECK(params.size() == want.size());
  for (const auto& p : params) {
    INFO(p.name);
    REQUIRE(want.count(p.name) == 1);
    CHECK(p.tensor.shape() == want[p.name]);
    if (p.name == "A_log" || p.name == "D") CHECK(p.has_tag("no_decay"));
    if (p.name == "A_log") {
      const auto v = p.tensor.to_vector<double>();
      CHECK(v[0] == Approx(0.0));
      CHECK(v[15] == Approx(std::log(16.0)));
    }
    if (p.name == "dt_proj.bias") {
      // softplus(bias) = dt in [dt_min, dt_max]
      for (double b : p.tensor.to_vector<double>()) {
        const double dt = std::log1p(std::exp(b));
        CHECK(dt >= 1e-3 * 0.999);
        CHECK(dt <= 1e-1 * 1.001);
      }
    }
    if (p.name == "dt_proj.weight") {
      for (double w : p.tensor.to_vector<double>()) CHECK(std::abs(w) <= 1.0 / std::sqrt(2.0));
    }
  }
  o.d_state = 300;
  CHECK(ssm::testing::error_message([&] { Mamba(8, o, gen); }).find("d_state") !=
        std::string::npos);
}

namespace {

std::map<std::string, Tensor> golden_group(const std::string& group) {
  const std::string path = std::string(SSM_SOURCE_DIR) + "/tests/data/mamba_golden.h5";
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : read_hdf5_group(path, group)) out[name] = t;
  return out;
}

// |a - b| <= 1e-9 max|b| + 1e-7 |b|: the golden values are exact to ~1e-15;
// a tolerance scaled by each tensor's own size checks small gradients (those
// that reach a parameter only through the scan) at their own scale.
void require_golden(const Tensor& actual, const Tensor& expected, const std::string& what) {
  INFO(what);
  double scale = 0.0;
  for (double v : expected.to_vector<double>()) scale = std::max(scale, std::abs(v));
  require_close(actual, expected, 1e-9 * scale + 1e-300, 1e-7);
}

}  // namespace

TEST_CASE("selective scan matches the PyTorch golden file", "[cpu][mamba][golden]") {
  for (const std::string g : {"scan_const", "scan_full"}) {
    INFO(g);
    auto in = golden_group(g + "/inputs");
    const auto out = golden_group(g + "/outputs");
    const auto grads = golden_group(g + "/grads");
    const bool full = g == "scan_full";
    std::vector<std::string> names = {"u", "delta", "A", "B", "C"};
    if (full) {
      for (const char* n : {"D", "z", "delta_bias", "initial_state"}) names.push_back(n);
    }
    for (const auto& n : names) in.at(n).set_requires_grad(true);
    auto opt = [&](const char* n) { return full ? in.at(n) : Tensor(); };
    const auto r =
        selective_scan(in.at("u"), in.at("delta"), in.at("A"), in.at("B"), in.at("C"), opt("D"),
                       opt("z"), opt("delta_bias"), full, opt("initial_state"));
    require_golden(r.y, out.at("y"), "y");
    require_golden(r.last_state, out.at("last_state"), "last_state");
    backward(sum(r.y * in.at("R")) + sum(r.last_state * in.at("R_last")));
    for (const auto& n : names) require_golden(in.at(n).grad(), grads.at(n), "grad " + n);
  }
}

TEST_CASE("Mamba and Vim v2 blocks match the PyTorch golden file", "[cpu][mamba][golden]") {
  for (const std::string g : {"mamba", "bimamba"}) {
    INFO(g);
    MambaOptions o;
    o.d_state = 8;
    o.bidirectional = g == "bimamba";
    Generator gen(0);
    Mamba block(16, o, gen, DType::Float64);
    StateDict params;
    for (auto& [name, t] : golden_group(g + "/params")) params.emplace_back(name, t);
    block.load_state_dict(params);  // strict: every name must match the reference's
    auto in = golden_group(g + "/inputs");
    Tensor x = in.at("x");
    x.set_requires_grad(true);
    const Tensor out = block.forward(x);
    require_golden(out, golden_group(g + "/outputs").at("out"), "out");
    backward(sum(out * in.at("R")));
    const auto grads = golden_group(g + "/grads");
    require_golden(x.grad(), grads.at("x"), "grad x");
    for (const auto& p : block.named_parameters()) {
      require_golden(p.tensor.grad(), grads.at(p.name), "grad " + p.name);
    }
  }
  CHECK(ssm::testing::error_message([] {
          read_hdf5_group("/nonexistent.h5", "/");
        }).find("no such file") != std::string::npos);
  CHECK(ssm::testing::error_message([] {
          read_hdf5_group(std::string(SSM_SOURCE_DIR) + "/tests/data/mamba_golden.h5", "nope");
        }).find("no group nope") != std::string::npos);
}
