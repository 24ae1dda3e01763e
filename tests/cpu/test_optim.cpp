// Optimizers, parameter groups, gradient clipping, learning-rate schedules
// and the optimizer state of checkpoints. The golden test replays
// tests/data/optim_golden.json, written by scripts/reference/optim_reference.py
// from torch.optim (PyTorch 1.13).
#include <bit>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "kernels/common.h"
#include "tests/testing.h"
#include "train/optim.h"

using namespace ssm;
using ssm::testing::error_message;
using json = nlohmann::json;

namespace {

// The formulas of scripts/reference/optim_reference.py: element i of
// parameter k at first, and its gradient at step t.
double init_value(std::int64_t k, std::int64_t i) {
  return static_cast<double>((i * 5 + k * 11) % 17 - 8) / 16.0;
}
double grad_value(std::int64_t k, std::int64_t t, std::int64_t i) {
  return static_cast<double>((i * 7 + t * 5 + k * 3) % 13 - 6) / 8.0 +
         static_cast<double>(t) / 32.0;
}

Tensor formula_tensor(const Shape& shape, DType dtype, std::int64_t k, std::int64_t t = -1) {
  std::vector<double> v(static_cast<std::size_t>(shape_numel(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto ii = static_cast<std::int64_t>(i);
    v[i] = t < 0 ? init_value(k, ii) : grad_value(k, t, ii);
  }
  return Tensor::from_vector(v, shape, dtype);
}

NamedParameter make_param(const std::string& name, const Shape& shape, std::int64_t k,
                          DType dtype = DType::Float64, std::vector<std::string> tags = {}) {
  Tensor t = formula_tensor(shape, dtype, k);
  t.set_requires_grad(true);
  return NamedParameter{name, t, std::move(tags)};
}

// Gives parameter k of `params` the formula gradient of step t.
void set_formula_grads(const std::vector<NamedParameter>& params, std::int64_t t) {
  for (std::size_t k = 0; k < params.size(); ++k) {
    const Tensor& p = params[k].tensor;
    p.set_grad(formula_tensor(p.shape(), p.dtype(), static_cast<std::int64_t>(k), t));
  }
}

// New leaves with the same names, tags and values.
std::vector<NamedParameter> clone_params(const std::vector<NamedParameter>& params) {
  std::vector<NamedParameter> out;
  for (const NamedParameter& p : params) {
    Tensor t = p.tensor.detach().clone();
    t.set_requires_grad(true);
    out.push_back(NamedParameter{p.name, t, p.tags});
  }
  return out;
}

std::int64_t counter(const OptimizerState& s, const std::string& key) {
  for (const auto& [k, n] : s.counters) {
    if (k == key) return n;
  }
  FAIL("no counter " << key);
  return -1;
}

const Tensor& state_tensor(const OptimizerState& s, const std::string& key) {
  for (const auto& [k, t] : s.tensors) {
    if (k == key) return t;
  }
  FAIL("no tensor " << key);
  static const Tensor none;
  return none;
}

// Distance in units in the last place between two floats of the same sign
// (or either zero).
std::int64_t ulp_distance(float a, float b) {
  const auto ordered = [](float x) {
    const auto i = static_cast<std::int64_t>(std::bit_cast<std::int32_t>(x));
    return i < 0 ? std::int64_t{std::numeric_limits<std::int32_t>::min()} - i : i;
  };
  return std::abs(ordered(a) - ordered(b));
}

OptimizerConfig config_from_json(const json& j) {
  OptimizerConfig c;
  c.name = j.at("name").get<std::string>();
  c.lr = j.at("lr").get<double>();
  c.weight_decay = j.at("weight_decay").get<double>();
  c.beta1 = j.at("beta1").get<double>();
  c.beta2 = j.at("beta2").get<double>();
  c.eps = j.at("eps").get<double>();
  c.momentum = j.at("momentum").get<double>();
  c.nesterov = j.at("nesterov").get<bool>();
  if (j.contains("ssm_lr")) c.ssm_lr = j.at("ssm_lr").get<double>();
  c.ssm_weight_decay = j.at("ssm_weight_decay").get<double>();
  return c;
}

json load_golden() {
  std::ifstream in(SSM_SOURCE_DIR "/tests/data/optim_golden.json");
  REQUIRE(in.good());
  const json j = json::parse(in);
  REQUIRE(j.at("format") == "ssmkit-optim-golden");
  REQUIRE(j.at("version") == 1);
  return j;
}

std::vector<double> values_of(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST_CASE("optimizers match torch.optim step by step", "[cpu][optim]") {
  const json golden = load_golden();
  REQUIRE(golden.at("cases").size() >= 5);
  for (const json& c : golden.at("cases")) {
    const std::string case_name = c.at("name").get<std::string>();
    SECTION(case_name) {
      const DType dtype = c.at("dtype") == "float32" ? DType::Float32 : DType::Float64;
      const OptimizerConfig config = config_from_json(c.at("optimizer"));
      std::vector<NamedParameter> params;
      std::int64_t k = 0;
      for (const json& p : c.at("params")) {
        const Shape shape = p.at("shape").get<Shape>();
        NamedParameter np = make_param(p.at("name").get<std::string>(), shape, k++, dtype,
                                       p.at("tags").get<std::vector<std::string>>());
        // The formula of the script gave the same initial values.
        CHECK(values_of(np.tensor) == p.at("init").get<std::vector<double>>());
        params.push_back(np);
      }
      // The script grouped the parameters as build_param_groups does.
      std::map<std::string, std::string> group_of;
      for (const ParamGroup& g : build_param_groups(params, config)) {
        for (const NamedParameter& p : g.params) group_of[p.name] = g.name;
      }
      for (const json& p : c.at("params")) {
        CHECK(group_of.at(p.at("name").get<std::string>()) == p.at("group").get<std::string>());
      }

      const auto opt = make_optimizer(params, config);
      const double max_norm = c.at("max_norm").get<double>();
      const auto lr_factors = c.at("lr_factors").get<std::vector<double>>();
      std::map<std::string, std::int64_t> expected_steps;
      const json& steps = c.at("steps");
      for (std::size_t t = 0; t < steps.size(); ++t) {
        INFO("case " << case_name << ", step " << t);
        const json& rec = steps[t];
        set_formula_grads(params, static_cast<std::int64_t>(t));
        for (const NamedParameter& p : params) {
          if (rec.at("grads").contains(p.name)) {
            CHECK(values_of(p.tensor.grad()) ==
                  rec.at("grads").at(p.name).get<std::vector<double>>());
            ++expected_steps[p.name];
          } else {
            p.tensor.zero_grad();  // this step leaves p without a gradient
          }
        }
        if (max_norm > 0) {
          std::vector<Tensor> tensors;
          for (const NamedParameter& p : params) tensors.push_back(p.tensor);
          const double norm = clip_grad_norm(tensors, max_norm);
          CHECK(norm == Approx(rec.at("grad_norm").get<double>()).epsilon(1e-14));
        }
        opt->set_lr_factor(lr_factors[t]);
        opt->step();
        for (const NamedParameter& p : params) {
          INFO("parameter " << p.name);
          const auto expected = rec.at("params").at(p.name).get<std::vector<double>>();
          const Tensor want = Tensor::from_vector(expected, p.tensor.shape(), DType::Float64);
          if (dtype == DType::Float64) {
            testing::require_close(p.tensor, want, 1e-12, 0.0);
          } else {
            // The same operations in the same order, fused where PyTorch's
            // kernels fuse (with AVX2 + FMA, where the data was made): the
            // same bits. A reference from a PyTorch build without FMA could
            // differ by an ulp here and there.
            const auto got = p.tensor.to_vector<float>();
            std::int64_t worst = 0;
            for (std::size_t i = 0; i < got.size(); ++i) {
              worst = std::max(worst, ulp_distance(got[i], static_cast<float>(expected[i])));
            }
            CHECK(worst == 0);
          }
        }
        const OptimizerState s = opt->state();
        for (const NamedParameter& p : params) {
          CHECK(counter(s, p.name + "/step") == expected_steps[p.name]);
          if (rec.contains("step_counts")) {
            CHECK(counter(s, p.name + "/step") == rec.at("step_counts").at(p.name).get<int>());
          }
        }
      }
    }
  }
}

TEST_CASE("build_param_groups assigns parameters by tag and dimension", "[cpu][optim]") {
  const std::vector<NamedParameter> params = {
      make_param("enc.weight", {3, 2}, 0),  // 2-d: default
      make_param("enc.bias", {3}, 1),       // 1-d: no_decay
      make_param("norm.weight", {2, 2}, 2, DType::Float64, {"no_decay"}),
      make_param("mixer.A", {2, 4}, 3, DType::Float64, {"ssm"}),
      make_param("mixer.dt", {4}, 4, DType::Float64, {"ssm", "no_decay"}),  // ssm wins
      make_param("scale", {}, 5),                                           // 0-d: no_decay
      make_param("dec.weight", {2, 3}, 6),
  };
  OptimizerConfig c;
  c.lr = 0.01;
  c.weight_decay = 0.2;
  c.ssm_lr = 0.003;
  c.ssm_weight_decay = 0.05;
  const auto groups = build_param_groups(params, c);
  REQUIRE(groups.size() == 3);
  const auto names = [](const ParamGroup& g) {
    std::vector<std::string> out;
    for (const auto& p : g.params) out.push_back(p.name);
    return out;
  };
  CHECK(groups[0].name == "default");
  CHECK(names(groups[0]) == std::vector<std::string>{"enc.weight", "dec.weight"});
  CHECK(groups[0].lr == 0.01);
  CHECK(groups[0].base_lr == 0.01);
  CHECK(groups[0].weight_decay == 0.2);
  CHECK(groups[1].name == "no_decay");
  CHECK(names(groups[1]) == std::vector<std::string>{"enc.bias", "norm.weight", "scale"});
  CHECK(groups[1].lr == 0.01);
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[2].name == "ssm");
  CHECK(names(groups[2]) == std::vector<std::string>{"mixer.A", "mixer.dt"});
  CHECK(groups[2].lr == 0.003);
  CHECK(groups[2].base_lr == 0.003);
  CHECK(groups[2].weight_decay == 0.05);
  // The tensors are the parameters themselves, not copies.
  CHECK(groups[2].params[0].tensor.impl() == params[3].tensor.impl());

  SECTION("empty groups are left out; ssm_lr defaults to lr") {
    c.ssm_lr.reset();
    const auto g2 = build_param_groups({params[0], params[3]}, c);
    REQUIRE(g2.size() == 2);
    CHECK(g2[0].name == "default");
    CHECK(g2[1].name == "ssm");
    CHECK(g2[1].lr == 0.01);
    CHECK(build_param_groups({params[1]}, c).at(0).name == "no_decay");
    CHECK(build_param_groups({}, c).empty());
  }
}

TEST_CASE("set_lr_factor scales every group's base lr; zero_grad drops gradients", "[cpu][optim]") {
  std::vector<NamedParameter> params = {make_param("w", {2, 2}, 0),
                                        make_param("A", {2, 2}, 1, DType::Float64, {"ssm"})};
  OptimizerConfig c;
  c.lr = 0.1;
  c.ssm_lr = 0.02;
  auto opt = make_optimizer(params, c);
  opt->set_lr_factor(0.5);
  REQUIRE(opt->groups().size() == 2);
  CHECK(opt->groups()[0].lr == 0.1 * 0.5);
  CHECK(opt->groups()[1].lr == 0.02 * 0.5);
  CHECK(opt->groups()[1].base_lr == 0.02);
  set_formula_grads(params, 0);
  opt->zero_grad();
  CHECK_FALSE(params[0].tensor.grad().defined());
  CHECK_FALSE(params[1].tensor.grad().defined());
}

TEST_CASE("lr_factor follows its closed forms", "[cpu][optim]") {
  SchedulerConfig s;
  SECTION("constant with warmup") {
    s.name = "constant";
    s.warmup_steps = 4;
    CHECK(lr_factor(s, 0, 100) == 0.25);
    CHECK(lr_factor(s, 2, 100) == 0.75);
    CHECK(lr_factor(s, 3, 100) == 1.0);
    CHECK(lr_factor(s, 99, 100) == 1.0);
    s.warmup_steps = 0;
    CHECK(lr_factor(s, 0, 100) == 1.0);
  }
  SECTION("cosine with warmup and a floor") {
    s.name = "cosine";
    s.warmup_steps = 10;
    s.min_lr_ratio = 0.1;
    const std::int64_t total = 110;  // 100 steps of decay
    const double pi = 3.14159265358979323846;
    const auto closed = [&](std::int64_t step) {
      const double p = static_cast<double>(step - 10) / 100.0;
      return 0.1 + 0.9 * 0.5 * (1.0 + std::cos(pi * p));
    };
    CHECK(lr_factor(s, 0, total) == Approx(0.1).margin(1e-15));
    CHECK(lr_factor(s, 4, total) == Approx(0.5).margin(1e-15));
    CHECK(lr_factor(s, 9, total) == Approx(1.0).margin(1e-15));
    CHECK(lr_factor(s, 10, total) == Approx(1.0).margin(1e-15));  // decay starts at 1
    CHECK(lr_factor(s, 35, total) == Approx(closed(35)).margin(1e-15));
    CHECK(lr_factor(s, 60, total) == Approx(0.55).margin(1e-15));  // halfway
    CHECK(lr_factor(s, 85, total) == Approx(0.1 + 0.45 * (1 - std::sqrt(0.5))).margin(1e-15));
    CHECK(lr_factor(s, 110, total) == Approx(0.1).margin(1e-15));  // the end
    CHECK(lr_factor(s, 500, total) == Approx(0.1).margin(1e-15));  // stays at the floor
    s.min_lr_ratio = 0.0;
    s.warmup_steps = 0;
    CHECK(lr_factor(s, 0, 4) == Approx(1.0).margin(1e-15));
    CHECK(lr_factor(s, 1, 4) == Approx(0.5 * (1 + std::sqrt(0.5))).margin(1e-15));
    CHECK(lr_factor(s, 4, 4) == Approx(0.0).margin(1e-15));
  }
  SECTION("step decay boundaries") {
    s.name = "step";
    s.step_size = 30;
    s.gamma = 0.5;
    CHECK(lr_factor(s, 0, 1000) == 1.0);
    CHECK(lr_factor(s, 29, 1000) == 1.0);
    CHECK(lr_factor(s, 30, 1000) == 0.5);
    CHECK(lr_factor(s, 59, 1000) == 0.5);
    CHECK(lr_factor(s, 60, 1000) == 0.25);
    CHECK(lr_factor(s, 95, 1000) == 0.125);
    s.warmup_steps = 5;  // the decay counts steps after the warmup
    CHECK(lr_factor(s, 1, 1000) == 2.0 / 5.0);
    CHECK(lr_factor(s, 34, 1000) == 1.0);
    CHECK(lr_factor(s, 35, 1000) == 0.5);
    CHECK(lr_factor(s, 65, 1000) == 0.25);
  }
  SECTION("bad names and values throw") {
    s.name = "linear";
    const std::string msg = error_message([&] { lr_factor(s, 0, 10); });
    CHECK(msg.find("unknown scheduler 'linear'") != std::string::npos);
    CHECK(msg.find("constant, cosine, step") != std::string::npos);
    s.name = "constant";
    CHECK_FALSE(error_message([&] { lr_factor(s, -1, 10); }).empty());
    s.name = "step";
    s.step_size = 0;
    CHECK_FALSE(error_message([&] { lr_factor(s, 3, 10); }).empty());
  }
}

TEST_CASE("clip_grad_norm returns the global norm and scales like PyTorch", "[cpu][optim]") {
  Tensor a = Tensor::zeros({2}, DType::Float64).set_requires_grad(true);
  Tensor b = Tensor::zeros({1, 1}, DType::Float64).set_requires_grad(true);
  Tensor no_grad = Tensor::zeros({3}, DType::Float64).set_requires_grad(true);
  const auto set = [&] {
    a.set_grad(Tensor::from_vector(std::vector<double>{3, -4}, {2}, DType::Float64));
    b.set_grad(Tensor::from_vector(std::vector<double>{12}, {1, 1}, DType::Float64));
  };
  SECTION("above max_norm: scaled by max_norm / (norm + 1e-6)") {
    set();
    CHECK(clip_grad_norm({a, b, no_grad}, 6.5) == 13.0);  // sqrt(9 + 16 + 144)
    const double f = 6.5 / (13.0 + 1e-6);
    CHECK(a.grad().to_vector<double>() == std::vector<double>{3 * f, -4 * f});
    CHECK(b.grad().to_vector<double>() == std::vector<double>{12 * f});
    CHECK_FALSE(no_grad.grad().defined());
  }
  SECTION("below max_norm, or max_norm 0: untouched") {
    set();
    CHECK(clip_grad_norm({a, b}, 20.0) == 13.0);
    CHECK(clip_grad_norm({a, b}, 0.0) == 13.0);
    CHECK(a.grad().to_vector<double>() == std::vector<double>{3, -4});
    CHECK(b.grad().to_vector<double>() == std::vector<double>{12});
  }
  SECTION("a NaN norm is returned without scaling") {
    set();
    b.set_grad(Tensor::from_vector(std::vector<double>{std::nan("")}, {1, 1}, DType::Float64));
    CHECK(std::isnan(clip_grad_norm({a, b}, 1.0)));
    CHECK(a.grad().to_vector<double>() == std::vector<double>{3, -4});
  }
  SECTION("float32 gradients are summed in float64") {
    // 1e20^2 overflows float32 but not float64.
    Tensor f = Tensor::zeros({2}).set_requires_grad(true);
    f.set_grad(Tensor::from_vector(std::vector<float>{3e20f, 4e20f}, {2}));
    const double norm = clip_grad_norm({f}, 0.0);
    const double want = std::sqrt(static_cast<double>(3e20f) * static_cast<double>(3e20f) +
                                  static_cast<double>(4e20f) * static_cast<double>(4e20f));
    CHECK(norm == Approx(want).epsilon(1e-15));
    CHECK(std::isfinite(norm));
  }
  SECTION("no gradients: norm 0") { CHECK(clip_grad_norm({no_grad}, 1.0) == 0.0); }
}

namespace {

std::vector<NamedParameter> resume_params() {
  return {make_param("w", {3, 4}, 0), make_param("b", {4}, 1),
          make_param("A", {2, 3}, 2, DType::Float64, {"ssm"})};
}

OptimizerConfig resume_config(const std::string& name) {
  OptimizerConfig c;
  c.name = name;
  c.lr = 0.05;
  c.weight_decay = 0.1;
  c.ssm_lr = 0.01;
  c.momentum = name == "sgd" ? 0.9 : 0.0;
  c.nesterov = name == "sgd";
  return c;
}

// Formula gradients of step t; at odd steps "b" gets none, so the step
// counts differ between parameters.
void resume_grads(const std::vector<NamedParameter>& params, std::int64_t t) {
  set_formula_grads(params, t);
  if (t % 2 == 1) params[1].tensor.zero_grad();
}

}  // namespace

TEST_CASE("state and load_state resume bit-identically", "[cpu][optim]") {
  for (const std::string name : {"adamw", "adam", "sgd"}) {
    SECTION(name) {
      const OptimizerConfig c = resume_config(name);
      const auto params = resume_params();
      const auto opt = make_optimizer(params, c);
      for (std::int64_t t = 0; t < 3; ++t) {
        resume_grads(params, t);
        opt->step();
      }
      const OptimizerState saved = opt->state();
      CHECK(counter(saved, "w/step") == 3);
      CHECK(counter(saved, "b/step") == 2);
      for (const auto& [key, t] : saved.tensors) CHECK(t.device().is_cpu());
      const std::string buffer_key = name == "sgd" ? "w/momentum_buffer" : "w/exp_avg";
      const auto saved_buffer = values_of(state_tensor(saved, buffer_key));

      // A fresh optimizer on identical parameters, given the saved state.
      const auto params2 = clone_params(params);
      const auto opt2 = make_optimizer(params2, c);
      opt2->load_state(saved);
      for (std::int64_t t = 3; t < 7; ++t) {
        resume_grads(params, t);
        resume_grads(params2, t);
        opt->step();
        opt2->step();
      }
      for (std::size_t k = 0; k < params.size(); ++k) {
        INFO("parameter " << params[k].name);
        CHECK(values_of(params[k].tensor) == values_of(params2[k].tensor));
      }
      const OptimizerState s1 = opt->state(), s2 = opt2->state();
      REQUIRE(s1.tensors.size() == s2.tensors.size());
      for (std::size_t i = 0; i < s1.tensors.size(); ++i) {
        CHECK(s1.tensors[i].first == s2.tensors[i].first);
        CHECK(values_of(s1.tensors[i].second) == values_of(s2.tensors[i].second));
      }
      CHECK(s1.counters == s2.counters);
      // The saved state is a snapshot: later steps did not change it.
      CHECK(values_of(state_tensor(saved, buffer_key)) == saved_buffer);
      CHECK(values_of(state_tensor(s1, buffer_key)) != saved_buffer);
      CHECK(counter(saved, "w/step") == 3);
    }
  }
}

TEST_CASE("state keys follow the optimizer", "[cpu][optim]") {
  const auto params = resume_params();
  const auto keys = [&](const OptimizerConfig& c) {
    std::vector<std::string> out;
    const OptimizerState s = make_optimizer(params, c)->state();
    for (const auto& [k, t] : s.tensors) out.push_back(k);
    for (const auto& [k, n] : s.counters) out.push_back(k);
    return out;
  };
  // Groups: default (w), no_decay (b), ssm (A).
  CHECK(keys(resume_config("adamw")) ==
        std::vector<std::string>{"w/exp_avg", "w/exp_avg_sq", "b/exp_avg", "b/exp_avg_sq",
                                 "A/exp_avg", "A/exp_avg_sq", "w/step", "b/step", "A/step"});
  CHECK(keys(resume_config("sgd")) ==
        std::vector<std::string>{"w/momentum_buffer", "b/momentum_buffer", "A/momentum_buffer",
                                 "w/step", "b/step", "A/step"});
  OptimizerConfig plain = resume_config("sgd");
  plain.momentum = 0.0;
  plain.nesterov = false;
  CHECK(keys(plain) == std::vector<std::string>{"w/step", "b/step", "A/step"});
}

TEST_CASE("load_state rejects a mismatched state, naming the key", "[cpu][optim]") {
  const auto params = resume_params();
  const auto opt = make_optimizer(params, resume_config("adamw"));
  resume_grads(params, 0);
  opt->step();
  const OptimizerState good = opt->state();
  const auto expect_error = [&](const OptimizerState& bad, const std::string& text) {
    const std::string msg = error_message([&] { opt->load_state(bad); });
    INFO(msg);
    CHECK(msg.find(text) != std::string::npos);
    // Nothing was loaded.
    const OptimizerState now = opt->state();
    CHECK(now.counters == good.counters);
    for (std::size_t i = 0; i < now.tensors.size(); ++i) {
      CHECK(values_of(now.tensors[i].second) == values_of(good.tensors[i].second));
    }
  };
  SECTION("missing tensor") {
    OptimizerState bad = good;
    bad.tensors.erase(bad.tensors.begin() + 1);  // w/exp_avg_sq
    expect_error(bad, "missing key w/exp_avg_sq");
  }
  SECTION("missing step count") {
    OptimizerState bad = good;
    bad.counters.pop_back();
    expect_error(bad, "missing key A/step");
  }
  SECTION("unexpected keys") {
    OptimizerState bad = good;
    bad.tensors.emplace_back("ghost/exp_avg", Tensor::zeros({1}, DType::Float64));
    expect_error(bad, "unexpected key ghost/exp_avg");
    bad = good;
    bad.counters.emplace_back("w/momentum_step", 1);
    expect_error(bad, "unexpected key w/momentum_step");
  }
  SECTION("wrong shape or dtype") {
    OptimizerState bad = good;
    bad.tensors[2].second = Tensor::zeros({5}, DType::Float64);  // b/exp_avg is (4)
    expect_error(bad, "b/exp_avg: expected (4,) float64, got (5,) float64");
    bad = good;
    bad.tensors[0].second = Tensor::zeros({3, 4}, DType::Float32);
    expect_error(bad, "w/exp_avg: expected (3, 4) float64, got (3, 4) float32");
  }
  SECTION("negative step count") {
    OptimizerState bad = good;
    bad.counters[0].second = -1;
    expect_error(bad, "w/step");
  }
  SECTION("the good state loads") { CHECK_NOTHROW(opt->load_state(good)); }
}

TEST_CASE("a parameter without a gradient keeps its value and step count", "[cpu][optim]") {
  for (const std::string name : {"adamw", "adam", "sgd"}) {
    SECTION(name) {
      const auto params = resume_params();
      const auto opt = make_optimizer(params, resume_config(name));
      set_formula_grads(params, 0);
      opt->step();
      const auto before = values_of(params[1].tensor);
      set_formula_grads(params, 1);
      params[1].tensor.zero_grad();
      const auto w_before = values_of(params[0].tensor);
      opt->step();
      CHECK(values_of(params[1].tensor) == before);
      CHECK(values_of(params[0].tensor) != w_before);
      const OptimizerState s = opt->state();
      CHECK(counter(s, "w/step") == 2);
      CHECK(counter(s, "b/step") == 1);
    }
  }
}

TEST_CASE("a float32 AdamW run follows the float64 one within float tolerance", "[cpu][optim]") {
  const auto run = [](DType dtype) {
    std::vector<NamedParameter> params = {make_param("w", {4, 5}, 0, dtype),
                                          make_param("b", {5}, 1, dtype)};
    OptimizerConfig c;
    c.lr = 0.01;
    c.weight_decay = 0.1;
    const auto opt = make_optimizer(params, c);
    for (std::int64_t t = 0; t < 5; ++t) {
      set_formula_grads(params, t);
      opt->step();
    }
    return params;
  };
  const auto p32 = run(DType::Float32);
  const auto p64 = run(DType::Float64);
  for (std::size_t k = 0; k < p32.size(); ++k) {
    CHECK(p32[k].tensor.dtype() == DType::Float32);
    testing::require_close(p32[k].tensor, p64[k].tensor, 1e-6, 1e-5);
  }
  // And it did move the parameters.
  CHECK(values_of(p64[0].tensor) != values_of(formula_tensor({4, 5}, DType::Float64, 0)));
}

TEST_CASE("updates do not depend on the thread count or on contiguity", "[cpu][optim]") {
  const auto run = [](int threads, bool transposed) {
    const int old = kernels::num_threads();
    kernels::set_num_threads(threads);
    // 2 x 40000 elements: several chunks of the parallel loop.
    Tensor base = formula_tensor({40000, 2}, DType::Float32, 0);
    Tensor w = transposed ? base.transpose(0, 1) : base.transpose(0, 1).contiguous();
    w.set_requires_grad(true);
    std::vector<NamedParameter> params = {{"w", w, {}}};
    const auto opt = make_optimizer(params, OptimizerConfig{});
    for (std::int64_t t = 0; t < 3; ++t) {
      w.set_grad(formula_tensor({2, 40000}, DType::Float32, 0, t));
      opt->step();
    }
    kernels::set_num_threads(old);
    return w.to_vector<float>();
  };
  const auto one = run(1, false);
  CHECK(run(2, false) == one);
  CHECK(run(2, true) == one);
  CHECK(one != formula_tensor({40000, 2}, DType::Float32, 0).transpose(0, 1).to_vector<float>());
}

TEST_CASE("make_optimizer checks its config", "[cpu][optim]") {
  const auto params = resume_params();
  OptimizerConfig c;
  c.name = "lion";
  std::string msg = error_message([&] { make_optimizer(params, c); });
  CHECK(msg.find("unknown optimizer 'lion'") != std::string::npos);
  CHECK(msg.find("adam, adamw, sgd") != std::string::npos);
  c.name = "sgd";
  c.nesterov = true;
  c.momentum = 0.0;
  CHECK(error_message([&] { make_optimizer(params, c); }).find("nesterov") != std::string::npos);
  c = OptimizerConfig{};
  c.beta2 = 1.0;
  CHECK_FALSE(error_message([&] { make_optimizer(params, c); }).empty());
  c = OptimizerConfig{};
  c.lr = -1;
  CHECK_FALSE(error_message([&] { make_optimizer(params, c); }).empty());
  // Names are state keys: they must be unique.
  auto twice = params;
  twice.push_back(make_param("w", {2, 2}, 3));
  CHECK(error_message([&] {
          make_optimizer(twice, OptimizerConfig{});
        }).find("'w' appears more than once") != std::string::npos);
  CHECK(make_optimizer(params, OptimizerConfig{})->groups().size() == 3);
}
