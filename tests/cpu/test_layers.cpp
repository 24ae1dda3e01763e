// nn layers (Linear, LayerNorm, RMSNorm, Embedding, Dropout, CausalConv1d)
// against hand-written formulas, and the mlp_mixer model: its public
// parameter names, state dicts, train/eval, gradients (gradcheck in
// float64), pooling over padded batches, the registry's errors, and a short
// training run on the generated templates task.
#include <algorithm>
#include <cmath>
#include <map>

#include "data/dataset.h"
#include "data/templates.h"
#include "layers/conv.h"
#include "layers/dropout.h"
#include "layers/embedding.h"
#include "layers/linear.h"
#include "layers/models/mlp_mixer.h"
#include "layers/models/model.h"
#include "layers/norm.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;

namespace {

// Overwrites a parameter's values (no autograd).
void set_values(const Tensor& param, const Tensor& values) {
  NoGradGuard no_grad;
  param.detach().copy_(values);
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.name = "mlp_mixer";
  c.d_model = 8;
  c.n_layers = 2;
  c.expand = 2.0;
  return c;
}

std::shared_ptr<Model> build(const ModelConfig& c, const ModelIO& io, std::uint64_t seed,
                             Generator* dropout_gen = nullptr) {
  Generator gen(seed);
  return make_model(c, io, gen, dropout_gen);
}

Tensor eval_logits(Model& m, const Tensor& x, const Tensor& lengths = Tensor()) {
  NoGradGuard no_grad;
  return m.forward(x, lengths);
}

Tensor lengths_of(const std::vector<std::int64_t>& v) {
  return Tensor::from_vector<std::int64_t>(v, {static_cast<std::int64_t>(v.size())});
}

bool all_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector<double>() == b.to_vector<double>();
}

}  // namespace

// ---------------------------------------------------------------- Linear

TEST_CASE("Linear computes x W^T + b with PyTorch's layout and init", "[cpu][layers]") {
  Generator gen(7);
  Linear lin(4, 5, true, gen);
  const auto params = lin.named_parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0].name == "weight");
  CHECK(params[0].tensor.shape() == Shape{5, 4});
  CHECK(params[0].tags.empty());
  CHECK(params[1].name == "bias");
  CHECK(params[1].tensor.shape() == Shape{5});
  CHECK(params[1].has_tag("no_decay"));

  const Tensor x = random_tensor({2, 3, 4}, 1, -1, 1, DType::Float32, false);  // (2, 3, 4)
  const Tensor y = lin.forward(x);                                             // (2, 3, 5)
  REQUIRE(y.shape() == Shape{2, 3, 5});
  const auto xv = x.to_vector<double>(), wv = lin.weight().to_vector<double>();
  const auto bv = lin.bias().to_vector<double>();
  std::vector<double> expected(2 * 3 * 5);
  for (int r = 0; r < 6; ++r) {
    for (int o = 0; o < 5; ++o) {
      double s = bv[o];
      for (int i = 0; i < 4; ++i) s += xv[r * 4 + i] * wv[o * 4 + i];
      expected[r * 5 + o] = s;
    }
  }
  require_close(y, Tensor::from_vector(expected, {2, 3, 5}, DType::Float32), 1e-6, 1e-5);

  Linear no_bias(4, 5, false, gen);
  CHECK(no_bias.named_parameters().size() == 1);
  CHECK_FALSE(no_bias.bias().defined());
  const auto nv = no_bias.weight().to_vector<double>();
  const auto y2 = no_bias.forward(x).to_vector<double>();
  for (int o = 0; o < 5; ++o) {
    double s = 0;
    for (int i = 0; i < 4; ++i) s += xv[i] * nv[o * 4 + i];
    CHECK(y2[o] == Approx(s).margin(1e-6));
  }
}

TEST_CASE("Linear draws weight and bias from U(-1/sqrt(in), 1/sqrt(in))", "[cpu][layers]") {
  Generator gen(3);
  Linear lin(64, 128, true, gen);
  const double bound = 1.0 / 8.0;
  for (const Tensor& t : {lin.weight(), lin.bias()}) {
    const auto v = t.to_vector<double>();
    double lo = 1, hi = -1;
    for (double e : v) lo = std::min(lo, e), hi = std::max(hi, e);
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    CHECK(lo < -0.9 * bound);  // the whole range is used, not a narrower one
    CHECK(hi > 0.9 * bound);
  }
  // Same seed, same values.
  Generator gen2(3);
  Linear again(64, 128, true, gen2);
  CHECK(all_equal(lin.weight(), again.weight()));
  CHECK(error_message([&] { Linear bad(0, 3, true, gen); }).find("[Linear]") != std::string::npos);
}

// ---------------------------------------------------------------- norms

TEST_CASE("LayerNorm and RMSNorm match the naive formulas", "[cpu][layers]") {
  const std::int64_t D = 6, R = 4;
  const Tensor x = random_tensor({2, 2, D}, 11, -2, 3, DType::Float64, false);  // (2, 2, 6)
  const Tensor w = random_tensor({D}, 12, 0.5, 1.5, DType::Float64, false);
  const Tensor b = random_tensor({D}, 13, -1, 1, DType::Float64, false);
  const auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();

  LayerNorm ln(D, 1e-5, DType::Float64);
  const auto lp = ln.named_parameters();
  REQUIRE(lp.size() == 2);
  CHECK(lp[0].name == "weight");
  CHECK(lp[1].name == "bias");
  CHECK(lp[0].has_tag("no_decay"));
  CHECK(lp[1].has_tag("no_decay"));
  CHECK(ln.weight().to_vector<double>() == std::vector<double>(D, 1.0));
  CHECK(ln.bias().to_vector<double>() == std::vector<double>(D, 0.0));
  set_values(ln.weight(), w);
  set_values(ln.bias(), b);

  RMSNorm rms(D, 1e-5, DType::Float64);
  const auto rp = rms.named_parameters();
  REQUIRE(rp.size() == 1);
  CHECK(rp[0].name == "weight");
  CHECK(rp[0].has_tag("no_decay"));
  set_values(rms.weight(), w);

  std::vector<double> ln_ref(R * D), rms_ref(R * D);
  for (std::int64_t r = 0; r < R; ++r) {
    double mean = 0, sq = 0;
    for (std::int64_t i = 0; i < D; ++i) mean += xv[r * D + i] / D;
    for (std::int64_t i = 0; i < D; ++i) sq += xv[r * D + i] * xv[r * D + i] / D;
    double var = 0;
    for (std::int64_t i = 0; i < D; ++i) var += std::pow(xv[r * D + i] - mean, 2) / D;
    for (std::int64_t i = 0; i < D; ++i) {
      ln_ref[r * D + i] = (xv[r * D + i] - mean) / std::sqrt(var + 1e-5) * wv[i] + bv[i];
      rms_ref[r * D + i] = xv[r * D + i] / std::sqrt(sq + 1e-5) * wv[i];
    }
  }
  require_close(ln.forward(x), Tensor::from_vector(ln_ref, {2, 2, D}), 1e-12, 1e-10);
  require_close(rms.forward(x), Tensor::from_vector(rms_ref, {2, 2, D}), 1e-12, 1e-10);

  CHECK(dynamic_cast<RMSNorm*>(make_norm("rms", D).get()) != nullptr);
  CHECK(dynamic_cast<LayerNorm*>(make_norm("layer", D).get()) != nullptr);
  CHECK(error_message([] { make_norm("batch", 4); }).find("unknown norm 'batch'") !=
        std::string::npos);
}

// ---------------------------------------------------------------- embedding, conv, dropout

TEST_CASE("Embedding gathers rows of an N(0, 1) table", "[cpu][layers]") {
  Generator gen(5);
  Embedding emb(100, 50, gen);
  REQUIRE(emb.named_parameters().size() == 1);
  CHECK(emb.named_parameters()[0].name == "weight");
  CHECK(emb.weight().shape() == Shape{100, 50});
  const auto wv = emb.weight().to_vector<double>();
  double mean = 0, sq = 0;
  for (double v : wv) mean += v / 5000.0, sq += v * v / 5000.0;
  CHECK(std::abs(mean) < 0.05);
  CHECK(std::abs(std::sqrt(sq - mean * mean) - 1.0) < 0.05);

  const std::vector<std::int64_t> idx = {3, 0, 99, 3, 42, 7};
  const Tensor out = emb.forward(Tensor::from_vector(idx, {2, 3}));  // (2, 3, 50)
  REQUIRE(out.shape() == Shape{2, 3, 50});
  const auto ov = out.to_vector<double>();
  for (std::size_t j = 0; j < idx.size(); ++j) {
    for (std::size_t k = 0; k < 50; ++k) REQUIRE(ov[j * 50 + k] == wv[idx[j] * 50 + k]);
  }
  CHECK_THROWS_AS(emb.forward(Tensor::from_vector<std::int64_t>({100}, {1})), Error);
}

TEST_CASE("CausalConv1d uses nn.Conv1d's depthwise layout and sees the past only",
          "[cpu][layers]") {
  Generator gen(9);
  CausalConv1d conv(3, 4, true, gen, DType::Float64);
  const auto params = conv.named_parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0].name == "weight");
  CHECK(params[0].tensor.shape() == Shape{3, 1, 4});
  CHECK(params[1].name == "bias");
  CHECK(params[1].has_tag("no_decay"));
  const Tensor x = random_tensor({2, 3, 6}, 21, -1, 1, DType::Float64, false);  // (B, D, L)
  const auto xv = x.to_vector<double>(), wv = conv.weight().to_vector<double>();
  const auto bv = conv.bias().to_vector<double>();
  std::vector<double> ref(2 * 3 * 6);
  for (int b = 0; b < 2; ++b) {
    for (int d = 0; d < 3; ++d) {
      for (int t = 0; t < 6; ++t) {
        double s = bv[d];
        for (int k = 0; k < 4; ++k) {
          const int src = t - 3 + k;
          if (src >= 0) s += wv[d * 4 + k] * xv[(b * 3 + d) * 6 + src];
        }
        ref[(b * 3 + d) * 6 + t] = s;
      }
    }
  }
  require_close(conv.forward(x), Tensor::from_vector(ref, {2, 3, 6}), 1e-12, 1e-10);
}

TEST_CASE("Dropout drops in training only", "[cpu][layers]") {
  Generator gen(1);
  Dropout drop(0.5, &gen);
  const Tensor x = Tensor::ones({4000});
  CHECK(drop.is_training());
  const auto y = drop.forward(x).to_vector<double>();
  std::int64_t zeros = 0;
  for (double v : y) {
    REQUIRE((v == 0.0 || v == 2.0));
    zeros += v == 0.0;
  }
  CHECK(zeros > 1800);
  CHECK(zeros < 2200);
  drop.eval();
  CHECK(all_equal(drop.forward(x), x));
  drop.train();
  CHECK_FALSE(all_equal(drop.forward(x), x));

  Dropout off(0.0, nullptr);
  CHECK(all_equal(off.forward(x), x));
  CHECK(error_message([] { Dropout d(0.1, nullptr); }).find("needs a generator") !=
        std::string::npos);
  CHECK_THROWS_AS(Dropout(1.5, &gen), Error);
}

// ---------------------------------------------------------------- mlp_mixer: names

TEST_CASE("mlp_mixer's parameter names, shapes and tags", "[cpu][layers]") {
  ModelConfig c = tiny_config();
  const ModelIO io{.d_input = 3, .num_classes = 5};
  auto m = build(c, io, 0);
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"encoder.weight", {8, 3}},
      {"encoder.bias", {8}},
      {"layers.0.norm.weight", {8}},
      {"layers.0.norm.bias", {8}},
      {"layers.0.mixer.conv1d.weight", {8, 1, 4}},
      {"layers.0.mixer.conv1d.bias", {8}},
      {"layers.0.mixer.in_proj.weight", {16, 8}},
      {"layers.0.mixer.in_proj.bias", {16}},
      {"layers.0.mixer.out_proj.weight", {8, 16}},
      {"layers.0.mixer.out_proj.bias", {8}},
      {"layers.1.norm.weight", {8}},
      {"layers.1.norm.bias", {8}},
      {"layers.1.mixer.conv1d.weight", {8, 1, 4}},
      {"layers.1.mixer.conv1d.bias", {8}},
      {"layers.1.mixer.in_proj.weight", {16, 8}},
      {"layers.1.mixer.in_proj.bias", {16}},
      {"layers.1.mixer.out_proj.weight", {8, 16}},
      {"layers.1.mixer.out_proj.bias", {8}},
      {"norm_f.weight", {8}},
      {"norm_f.bias", {8}},
      {"decoder.weight", {5, 8}},
      {"decoder.bias", {5}},
  };
  const auto params = m->named_parameters();
  REQUIRE(params.size() == expected.size());
  std::int64_t total = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    INFO(params[i].name);
    CHECK(params[i].name == expected[i].first);
    CHECK(params[i].tensor.shape() == expected[i].second);
    CHECK(params[i].tensor.dtype() == DType::Float32);
    CHECK(params[i].tensor.requires_grad());
    const std::string& n = params[i].name;
    const bool bias = n.ends_with(".bias");
    const bool norm = n.find("norm") != std::string::npos;
    CHECK(params[i].has_tag("no_decay") == (bias || norm));
    total += params[i].tensor.numel();
  }
  CHECK(m->num_parameters() == total);
  CHECK(total == 32 + 2 * (16 + 40 + 144 + 136) + 16 + 45);

  // RMSNorm has no bias; token inputs swap the encoder for an embedding.
  c.norm = "rms";
  auto r = build(c, {.d_input = 1, .vocab_size = 10, .num_classes = 5}, 0);
  std::map<std::string, Shape> names;
  for (const auto& p : r->named_parameters()) names[p.name] = p.tensor.shape();
  CHECK(names.size() == expected.size() - 4);  // minus encoder.bias and three norm biases
  CHECK(names.at("encoder.weight") == Shape{10, 8});
  CHECK(names.count("encoder.bias") == 0);
  CHECK(names.count("layers.0.norm.bias") == 0);
  CHECK(names.count("norm_f.bias") == 0);
  CHECK(names.at("layers.1.norm.weight") == Shape{8});

  const Tensor tokens = Tensor::from_vector<std::int64_t>({1, 2, 3, 9, 0, 4}, {2, 3});
  CHECK(eval_logits(*r, tokens).shape() == Shape{2, 5});
}

// ---------------------------------------------------------------- state dicts

TEST_CASE("mlp_mixer state dicts round-trip and report mismatches by name", "[cpu][layers]") {
  const ModelConfig c = tiny_config();
  const ModelIO io{.d_input = 3, .num_classes = 4};
  auto a = build(c, io, 1);
  auto b = build(c, io, 2);
  const Tensor x = random_tensor({2, 6, 3}, 3, -1, 1, DType::Float32, false);
  const Tensor ya = eval_logits(*a, x);
  REQUIRE_FALSE(all_equal(ya, eval_logits(*b, x)));

  SECTION("a full round trip makes the outputs identical") {
    const LoadReport rep = b->load_state_dict(a->state_dict());
    CHECK(rep.ok());
    CHECK(all_equal(ya, eval_logits(*b, x)));
    // Loading copies values: changing a afterwards does not change b.
    set_values(a->named_parameters()[0].tensor, Tensor::zeros({8, 3}));
    CHECK(all_equal(ya, eval_logits(*b, x)));
  }

  // A state dict with one missing key, one unexpected key and one wrong shape.
  StateDict bad;
  for (const auto& [name, t] : a->state_dict()) {
    if (name == "layers.1.mixer.in_proj.bias") continue;
    if (name == "decoder.weight") {
      bad.emplace_back(name, Tensor::zeros({8, 4}));
    } else {
      bad.emplace_back(name, t);
    }
  }
  bad.emplace_back("layers.2.norm.weight", Tensor::ones({8}));
  StateDict before;
  for (const auto& [name, t] : b->state_dict()) before.emplace_back(name, t.clone());

  SECTION("strict loading throws naming every problem and copies nothing") {
    const std::string msg = error_message([&] { b->load_state_dict(bad); });
    CHECK(msg.find("missing key layers.1.mixer.in_proj.bias") != std::string::npos);
    CHECK(msg.find("unexpected key layers.2.norm.weight") != std::string::npos);
    CHECK(msg.find("decoder.weight") != std::string::npos);
    CHECK(msg.find("(8, 4)") != std::string::npos);
    const StateDict after = b->state_dict();
    REQUIRE(after.size() == before.size());
    for (std::size_t i = 0; i < after.size(); ++i) {
      INFO(after[i].first);
      CHECK(all_equal(after[i].second, before[i].second));
    }
  }

  SECTION("non-strict loading reports the problems and copies the rest") {
    const LoadReport rep = b->load_state_dict(bad, false);
    CHECK(rep.missing == std::vector<std::string>{"layers.1.mixer.in_proj.bias"});
    CHECK(rep.unexpected == std::vector<std::string>{"layers.2.norm.weight"});
    REQUIRE(rep.mismatched.size() == 1);
    CHECK(rep.mismatched[0].starts_with("decoder.weight:"));
    const StateDict sa = a->state_dict(), sb = b->state_dict();
    for (std::size_t i = 0; i < sb.size(); ++i) {
      INFO(sb[i].first);
      const bool skipped =
          sb[i].first == "layers.1.mixer.in_proj.bias" || sb[i].first == "decoder.weight";
      CHECK(all_equal(sb[i].second, skipped ? before[i].second : sa[i].second));
    }
  }
}

// ---------------------------------------------------------------- train / eval

TEST_CASE("mlp_mixer's train()/eval() reach every block and switch dropout", "[cpu][layers]") {
  ModelConfig c = tiny_config();
  c.dropout = 0.3;
  Generator dropout_gen(77);
  Generator init(4);
  auto model = make_model(c, {.d_input = 3, .num_classes = 4}, init, &dropout_gen);
  auto& net = dynamic_cast<SequenceClassifier&>(*model);
  REQUIRE(net.num_blocks() == 2);
  const Tensor x = random_tensor({2, 6, 3}, 3, -1, 1, DType::Float32, false);

  CHECK(net.block(1).dropout().is_training());
  const Tensor t1 = eval_logits(net, x), t2 = eval_logits(net, x);
  CHECK_FALSE(all_equal(t1, t2));  // fresh masks each call

  net.eval();
  for (std::int64_t i = 0; i < 2; ++i) {
    CHECK_FALSE(net.block(i).is_training());
    CHECK_FALSE(net.block(i).dropout().is_training());
    CHECK_FALSE(net.block(i).mixer().is_training());
  }
  const GeneratorState state = dropout_gen.state();
  const Tensor e1 = eval_logits(net, x), e2 = eval_logits(net, x);
  CHECK(all_equal(e1, e2));
  CHECK(dropout_gen.state() == state);  // nothing drawn in eval
  CHECK_FALSE(all_equal(t1, e1));

  net.train();
  CHECK(net.block(0).dropout().is_training());
  CHECK_FALSE(all_equal(eval_logits(net, x), e1));
}

// ---------------------------------------------------------------- gradients

TEST_CASE("mlp_mixer's gradient w.r.t. its input passes gradcheck in float64", "[cpu][layers]") {
  ModelConfig c = tiny_config();
  c.d_model = 4;
  SECTION("prenorm, layer norm, mean pooling") {}
  SECTION("postnorm, rms norm, last pooling") {
    c.prenorm = false;
    c.norm = "rms";
    c.pooling = "last";
  }
  auto m = build(c, {.d_input = 3, .num_classes = 3, .dtype = DType::Float64}, 8);
  const Tensor x = random_tensor({2, 5, 3}, 9);  // (B, L, d_input) float64
  const Tensor lengths = lengths_of({5, 3});
  testing::require_gradcheck(
      [&](const std::vector<Tensor>& in) { return m->forward(in[0], lengths); }, {x});
  testing::require_gradcheck(
      [&](const std::vector<Tensor>& in) { return m->forward(in[0], Tensor()); }, {x});
}

TEST_CASE("mlp_mixer's parameter gradients match finite differences in float64", "[cpu][layers]") {
  ModelConfig c = tiny_config();
  c.d_model = 4;
  SECTION("prenorm, layer norm") {}
  SECTION("postnorm, rms norm, last pooling") {
    c.prenorm = false;
    c.norm = "rms";
    c.pooling = "last";
  }
  auto m = build(c, {.d_input = 3, .num_classes = 3, .dtype = DType::Float64}, 8);
  const Tensor x = random_tensor({3, 6, 3}, 10, -1, 1, DType::Float64, false);
  const Tensor lengths = lengths_of({6, 2, 5});
  const Tensor y = Tensor::from_vector<std::int64_t>({0, 2, 1}, {3});
  const auto loss = [&] { return cross_entropy(m->forward(x, lengths), y); };
  backward(loss());
  const double eps = 1e-6;
  for (const auto& p : m->named_parameters()) {
    INFO(p.name);
    const Tensor g = p.tensor.grad();
    REQUIRE(g.defined());
    const auto gv = g.to_vector<double>();
    CHECK(std::any_of(gv.begin(), gv.end(), [](double v) { return v != 0.0; }));
    double* data = p.tensor.data<double>();
    const std::int64_t n = p.tensor.numel();
    for (std::int64_t i : {std::int64_t{0}, n / 2, n - 1}) {
      NoGradGuard no_grad;
      const double saved = data[i];
      data[i] = saved + eps;
      const double up = loss().item<double>();
      data[i] = saved - eps;
      const double down = loss().item<double>();
      data[i] = saved;
      const double numeric = (up - down) / (2 * eps);
      INFO("element " << i);
      CHECK(gv[i] == Approx(numeric).margin(1e-7).epsilon(1e-5));
    }
  }
}

// ---------------------------------------------------------------- pooling

TEST_CASE("mlp_mixer pools over valid positions only", "[cpu][layers]") {
  ModelConfig c = tiny_config();
  SECTION("mean") {}
  SECTION("last") { c.pooling = "last"; }
  SECTION("last, postnorm") {
    c.pooling = "last";
    c.prenorm = false;
  }
  auto m = build(c, {.d_input = 3, .num_classes = 4}, 12);
  const std::vector<std::int64_t> len = {7, 4, 1};
  const Tensor lengths = lengths_of(len);
  const Tensor x = random_tensor({3, 7, 3}, 13, -1, 1, DType::Float32, false);  // (3, 7, 3)
  const Tensor logits = eval_logits(*m, x, lengths);                            // (3, 4)
  REQUIRE(logits.shape() == Shape{3, 4});

  // Changing the padding does not change the logits.
  Tensor x2 = x.clone();
  for (std::int64_t b = 0; b < 3; ++b) {
    if (len[b] < 7) x2.narrow(0, b, 1).narrow(1, len[b], 7 - len[b]).fill_(5.0);
  }
  require_close(eval_logits(*m, x2, lengths), logits, 1e-6, 1e-5);

  // Each row equals the model applied to the unpadded sequence alone, which
  // pools over every position ("last": position length - 1).
  for (std::int64_t b = 0; b < 3; ++b) {
    INFO("example " << b);
    const Tensor alone = x.narrow(0, b, 1).narrow(1, 0, len[b]).contiguous();  // (1, len, 3)
    require_close(eval_logits(*m, alone), logits.narrow(0, b, 1), 1e-5, 1e-5);
  }

  // Changing a valid position does change them (the check above is not vacuous).
  Tensor x3 = x.clone();
  x3.narrow(0, 1, 1).narrow(1, 3, 1).fill_(5.0);  // position length - 1 of example 1
  const auto l3 = eval_logits(*m, x3, lengths).to_vector<double>();
  const auto l0 = logits.to_vector<double>();
  CHECK(std::abs(l3[4] - l0[4]) + std::abs(l3[5] - l0[5]) > 1e-4);

  const std::string msg = error_message([&] { eval_logits(*m, x, lengths_of({7, 8, 1})); });
  CHECK(msg.find("[mlp_mixer] lengths[1] = 8 lies outside [1, 7]") != std::string::npos);
}

TEST_CASE("mean and last pooling differ and last reads position length - 1", "[cpu][layers]") {
  ModelConfig c = tiny_config();
  auto mean_model = build(c, {.d_input = 3, .num_classes = 4}, 12);
  c.pooling = "last";
  auto last_model = build(c, {.d_input = 3, .num_classes = 4}, 12);  // same weights
  const Tensor x = random_tensor({1, 6, 3}, 14, -1, 1, DType::Float32, false);
  const Tensor lengths = lengths_of({4});
  CHECK_FALSE(
      all_equal(eval_logits(*mean_model, x, lengths), eval_logits(*last_model, x, lengths)));
  // last with length 4 == last without lengths over the first 4 positions, and
  // differs from the last position of the full sequence.
  const Tensor prefix = x.narrow(1, 0, 4).contiguous();
  require_close(eval_logits(*last_model, x, lengths), eval_logits(*last_model, prefix), 1e-5, 1e-5);
  CHECK_FALSE(all_equal(eval_logits(*last_model, x, lengths), eval_logits(*last_model, x)));
}

// ---------------------------------------------------------------- registry

TEST_CASE("make_model checks the name, io and config ranges", "[cpu][layers]") {
  const auto names = model_names();
  CHECK(std::find(names.begin(), names.end(), "mlp_mixer") != names.end());
  const ModelIO io{.d_input = 3, .num_classes = 4};
  ModelConfig c = tiny_config();
  auto msg = [&](const ModelConfig& cfg, const ModelIO& i) {
    return error_message([&] { build(cfg, i, 0); });
  };
  ModelConfig unknown = c;
  unknown.name = "nope";
  const std::string m0 = msg(unknown, io);
  CHECK(m0.find("[make_model] unknown model 'nope'") != std::string::npos);
  CHECK(m0.find("known models: mlp_mixer") != std::string::npos);

  CHECK(msg(c, {.d_input = 0, .num_classes = 4}).find("[mlp_mixer] d_input must be >= 1") !=
        std::string::npos);
  CHECK(msg(c, {.d_input = 3, .num_classes = 1}).find("[mlp_mixer] num_classes must be >= 2") !=
        std::string::npos);
  CHECK(msg(c, {.d_input = 3, .num_classes = 4, .dtype = DType::Int64}).find("float64") !=
        std::string::npos);
  const std::vector<std::pair<std::string, std::function<void(ModelConfig&)>>> bad = {
      {"model.d_model", [](ModelConfig& k) { k.d_model = 0; }},
      {"model.n_layers", [](ModelConfig& k) { k.n_layers = 0; }},
      {"model.d_state", [](ModelConfig& k) { k.d_state = 0; }},
      {"model.dropout", [](ModelConfig& k) { k.dropout = 1.0; }},
      {"model.dropout = 0.1 needs a dropout generator", [](ModelConfig& k) { k.dropout = 0.1; }},
      {"model.norm must be layer or rms, got 'batch'", [](ModelConfig& k) { k.norm = "batch"; }},
      {"model.pooling must be mean or last, got 'max'", [](ModelConfig& k) { k.pooling = "max"; }},
      {"model.expand", [](ModelConfig& k) { k.expand = 0.0; }},
      {"model.expand * model.d_model", [](ModelConfig& k) { k.expand = 0.01; }},
  };
  for (const auto& [what, change] : bad) {
    ModelConfig k = c;
    change(k);
    const std::string m = msg(k, io);
    INFO(what << " -> " << m);
    CHECK(m.starts_with("[mlp_mixer] "));
    CHECK(m.find(what) != std::string::npos);
  }
  // Inputs of the wrong shape or dtype are named too.
  auto m = build(c, io, 0);
  const std::string mx = error_message([&] {
    eval_logits(*m, random_tensor({2, 5, 4}, 1, -1, 1, DType::Float32, false));
  });
  CHECK(mx.find("[mlp_mixer] expected x (B, L, 3) float32, got (2, 5, 4)") != std::string::npos);
  CHECK(error_message([&] {
          eval_logits(*m, random_tensor({2, 5, 3}, 1));
        }).find("float64") != std::string::npos);
}

// ---------------------------------------------------------------- training

TEST_CASE("mlp_mixer learns the templates task with plain SGD in 100 steps", "[cpu][layers]") {
  data::TemplatesOptions o;
  o.num_classes = 4;
  o.seq_len = 16;
  o.d_input = 4;
  o.noise = 0.5;
  auto train_set = std::make_shared<data::TemplatesDataset>(o, 256, 0);
  data::DataLoader loader(train_set, 32, true, false, 5);

  ModelConfig c = tiny_config();
  c.d_model = 16;  // mean pooling, prenorm, layer norm
  auto m = build(c, {.d_input = 4, .num_classes = 4}, 6);
  const double lr = 0.3;

  auto accuracy = [&] {
    NoGradGuard no_grad;
    m->eval();
    data::DataLoader all(train_set, 256, false, false, 0);
    data::Batch batch;
    REQUIRE(all.next(batch));
    const auto pred = max_with_index(m->forward(batch.x, batch.lengths), 1).second;
    const auto p = pred.to_vector<std::int64_t>(), y = batch.y.to_vector<std::int64_t>();
    std::int64_t correct = 0;
    for (std::size_t i = 0; i < p.size(); ++i) correct += p[i] == y[i];
    m->train();
    return static_cast<double>(correct) / static_cast<double>(p.size());
  };
  const double before = accuracy();

  data::Batch batch;
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 100; ++step) {
    if (!loader.next(batch)) REQUIRE(loader.next(batch));
    const Tensor loss = cross_entropy(m->forward(batch.x, batch.lengths), batch.y);
    (step == 0 ? first_loss : last_loss) = loss.item<double>();
    backward(loss);
    NoGradGuard no_grad;
    for (const Tensor& p : m->parameters()) {  // p <- p - lr * grad
      p.copy_(sub(p.detach(), mul(p.grad(), lr)));
      p.zero_grad();
    }
  }
  const double after = accuracy();
  INFO("accuracy " << before << " -> " << after << ", loss " << first_loss << " -> " << last_loss);
  CHECK(before < 0.5);
  CHECK(after > 0.9);
  CHECK(last_loss < first_loss);
  CHECK(tape_size() == 0);
}
