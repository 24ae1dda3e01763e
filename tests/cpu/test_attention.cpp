// Multi-head self-attention (layers/attention.h) and the transformer model
// (layers/models/transformer.h), each against an oracle: a naive float64
// loop implementation of the attention formula (with and without causal,
// with a key padding mask); causality (later inputs never change earlier
// outputs); padding (a padded batch's real positions equal each sequence run
// alone, through the whole classifier); gradcheck of the functional form in
// every input and weight; a short training run on the templates task; and
// the config errors.
#include <cmath>
#include <limits>
#include <map>

#include "autograd/ops.h"
#include "data/dataset.h"
#include "data/templates.h"
#include "layers/attention.h"
#include "layers/models/model.h"
#include "layers/models/transformer.h"
#include "tests/testing.h"
#include "train/config.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_close;
using ssm::testing::require_gradcheck;

namespace {

Tensor lengths_of(const std::vector<std::int64_t>& v) {
  return Tensor::from_vector<std::int64_t>(v, {static_cast<std::int64_t>(v.size())});
}

// softmax(Q K^T / sqrt(dh)) V per head, then the output projection, written
// directly from the formula in float64 loops. len empty: no key padding.
std::vector<double> naive_attention(const std::vector<double>& x, std::int64_t B, std::int64_t L,
                                    std::int64_t E, std::int64_t H, const std::vector<double>& w,
                                    const std::vector<double>& b, const std::vector<double>& wo,
                                    const std::vector<double>& bo, bool causal,
                                    const std::vector<std::int64_t>& len) {
  const std::int64_t dh = E / H;
  auto X = [&](std::int64_t bb, std::int64_t t, std::int64_t e) { return x[(bb * L + t) * E + e]; };
  // proj[bb][t][r] = sum_e w[r][e] x[bb][t][e] + b[r], r in [0, 3E)
  std::vector<double> proj(static_cast<std::size_t>(B * L * 3 * E));
  for (std::int64_t bb = 0; bb < B; ++bb) {
    for (std::int64_t t = 0; t < L; ++t) {
      for (std::int64_t r = 0; r < 3 * E; ++r) {
        double s = b[r];
        for (std::int64_t e = 0; e < E; ++e) s += w[r * E + e] * X(bb, t, e);
        proj[(bb * L + t) * 3 * E + r] = s;
      }
    }
  }
  auto P = [&](std::int64_t bb, std::int64_t t, std::int64_t r) {
    return proj[(bb * L + t) * 3 * E + r];
  };
  std::vector<double> ctx(static_cast<std::size_t>(B * L * E), 0.0);
  for (std::int64_t bb = 0; bb < B; ++bb) {
    const std::int64_t n = len.empty() ? L : len[bb];
    for (std::int64_t h = 0; h < H; ++h) {
      for (std::int64_t t = 0; t < L; ++t) {
        std::vector<double> score(static_cast<std::size_t>(L));
        double mx = -std::numeric_limits<double>::infinity();
        for (std::int64_t s = 0; s < L; ++s) {
          if (s >= n || (causal && s > t)) {
            score[s] = -std::numeric_limits<double>::infinity();
            continue;
          }
          double d = 0.0;
          for (std::int64_t k = 0; k < dh; ++k) {
            d += P(bb, t, h * dh + k) * P(bb, s, E + h * dh + k);
          }
          score[s] = d / std::sqrt(static_cast<double>(dh));
          mx = std::max(mx, score[s]);
        }
        double z = 0.0;
        for (std::int64_t s = 0; s < L; ++s) {
          score[s] = std::isinf(score[s]) ? 0.0 : std::exp(score[s] - mx);
          z += score[s];
        }
        for (std::int64_t k = 0; k < dh; ++k) {
          double acc = 0.0;
          for (std::int64_t s = 0; s < L; ++s) acc += score[s] / z * P(bb, s, 2 * E + h * dh + k);
          ctx[(bb * L + t) * E + h * dh + k] = acc;
        }
      }
    }
  }
  std::vector<double> y(static_cast<std::size_t>(B * L * E));
  for (std::int64_t i = 0; i < B * L; ++i) {
    for (std::int64_t o = 0; o < E; ++o) {
      double s = bo[o];
      for (std::int64_t e = 0; e < E; ++e) s += wo[o * E + e] * ctx[i * E + e];
      y[i * E + o] = s;
    }
  }
  return y;
}

ModelConfig transformer_config() {
  ModelConfig c;
  c.name = "transformer";
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.expand = 2.0;
  return c;
}

}  // namespace

TEST_CASE("attention equals a naive float64 implementation of the formula", "[cpu][attention]") {
  const std::int64_t B = 2, L = 5, E = 6, H = 3;
  for (const bool causal : {false, true}) {
    for (const bool padded : {false, true}) {
      INFO("causal " << causal << ", padded " << padded);
      Generator gen(11);
      AttentionOptions o;
      o.num_heads = H;
      o.causal = causal;
      MultiheadAttention attn(E, o, gen, DType::Float64);
      {  // nonzero biases, so that they are checked too
        NoGradGuard no_grad;
        attn.in_proj_bias().copy_(random_tensor({3 * E}, 3));
        attn.out_proj().bias().copy_(random_tensor({E}, 4));
      }
      const Tensor x = random_tensor({B, L, E}, 5);
      const std::vector<std::int64_t> len =
          padded ? std::vector<std::int64_t>{3, 5} : std::vector<std::int64_t>{};
      NoGradGuard no_grad;
      const Tensor y = attn.forward(x, padded ? lengths_of(len) : Tensor());
      const auto want = naive_attention(
          x.to_vector<double>(), B, L, E, H, attn.in_proj_weight().to_vector<double>(),
          attn.in_proj_bias().to_vector<double>(), attn.out_proj().weight().to_vector<double>(),
          attn.out_proj().bias().to_vector<double>(), causal, len);
      require_close(y, Tensor::from_vector(want, {B, L, E}, DType::Float64), 1e-12, 1e-10);
    }
  }
}

TEST_CASE("attention parameters have nn.MultiheadAttention's names, shapes and inits",
          "[cpu][attention]") {
  Generator gen(1);
  AttentionOptions o;
  o.num_heads = 4;
  MultiheadAttention attn(16, o, gen);
  std::map<std::string, Shape> want = {{"in_proj_weight", {48, 16}},
                                       {"in_proj_bias", {48}},
                                       {"out_proj.weight", {16, 16}},
                                       {"out_proj.bias", {16}}};
  const auto params = attn.named_parameters();
  REQUIRE(params.size() == want.size());
  for (const auto& p : params) {
    INFO(p.name);
    REQUIRE(want.count(p.name) == 1);
    CHECK(p.tensor.shape() == want[p.name]);
  }
  CHECK(ssm::testing::max_abs(attn.in_proj_bias()) == 0.0);
  CHECK(ssm::testing::max_abs(attn.out_proj().bias()) == 0.0);
  const double xavier = std::sqrt(6.0 / 64.0);
  CHECK(ssm::testing::max_abs(attn.in_proj_weight()) <= xavier);
  CHECK(ssm::testing::max_abs(attn.in_proj_weight()) > 0.8 * xavier);
  CHECK_THAT(error_message([&] { MultiheadAttention(10, o, gen); }),
             Catch::Matchers::Contains("num_heads (4) must divide embed_dim (10)"));
}

TEST_CASE("causal attention: later inputs never change earlier outputs", "[cpu][attention]") {
  const std::int64_t B = 2, L = 7, E = 8;
  Generator gen(3);
  AttentionOptions o;
  o.num_heads = 2;
  o.causal = true;
  MultiheadAttention attn(E, o, gen, DType::Float64);
  const Tensor x = random_tensor({B, L, E}, 7);
  NoGradGuard no_grad;
  const Tensor y = attn.forward(x);
  for (std::int64_t t = 0; t < L - 1; ++t) {
    INFO("t = " << t);
    Tensor x2 = x.clone();
    x2.narrow(1, t + 1, L - t - 1).copy_(random_tensor({B, L - t - 1, E}, 100 + t, -3.0, 3.0));
    const Tensor y2 = attn.forward(x2);
    require_close(y2.narrow(1, 0, t + 1).contiguous(), y.narrow(1, 0, t + 1).contiguous(), 1e-13,
                  1e-12);
    // The later outputs do change (the check above is not vacuous).
    CHECK(ssm::testing::max_abs(
              sub(y2.narrow(1, t + 1, L - t - 1), y.narrow(1, t + 1, L - t - 1))) > 1e-6);
  }
  // Without causal, position 0 reads the last input.
  AttentionOptions full = o;
  full.causal = false;
  Generator gen2(3);
  MultiheadAttention attn2(E, full, gen2, DType::Float64);
  Tensor x3 = x.clone();
  x3.narrow(1, L - 1, 1).fill_(2.0);
  CHECK(ssm::testing::max_abs(
            sub(attn2.forward(x3).narrow(1, 0, 1), attn2.forward(x).narrow(1, 0, 1))) > 1e-6);
}

TEST_CASE("transformer: a padded batch's real positions equal each sequence run alone",
          "[cpu][attention]") {
  const std::int64_t L = 9, D = 3;
  const std::vector<std::int64_t> len = {5, 9, 1};
  for (const std::string positions : {"learned", "sinusoidal"}) {
    for (const std::string pooling : {"mean", "last"}) {
      for (const bool causal : {false, true}) {
        INFO(positions << ", " << pooling << ", causal " << causal);
        ModelConfig c = transformer_config();
        c.positions = positions;
        c.pooling = pooling;
        c.causal = causal;
        Generator gen(21);
        auto m =
            make_model(c, {.d_input = D, .num_classes = 3, .dtype = DType::Float64, .max_len = L},
                       gen, nullptr);
        m->eval();
        Tensor x = random_tensor({3, L, D}, 8);
        NoGradGuard no_grad;
        const Tensor batch = m->forward(x, lengths_of(len));  // (3, C)
        // Different values in the padding change nothing.
        for (std::int64_t b = 0; b < 3; ++b) {
          if (len[b] < L) x.narrow(0, b, 1).narrow(1, len[b], L - len[b]).fill_(7.0);
        }
        require_close(m->forward(x, lengths_of(len)), batch, 1e-13, 1e-11);
        for (std::int64_t b = 0; b < 3; ++b) {
          INFO("sequence " << b);
          const Tensor alone = m->forward(x.narrow(0, b, 1).narrow(1, 0, len[b]).contiguous(),
                                          Tensor());  // (1, C)
          require_close(batch.narrow(0, b, 1).contiguous(), alone, 1e-12, 1e-10);
        }
      }
    }
  }
}

TEST_CASE("attention passes gradcheck in float64 w.r.t. input and every weight",
          "[cpu][attention]") {
  const std::int64_t B = 2, L = 4, E = 4;
  for (const bool causal : {false, true}) {
    INFO("causal " << causal);
    AttentionOptions o;
    o.num_heads = 2;
    o.causal = causal;
    const Tensor lengths = lengths_of({3, 4});
    std::vector<Tensor> inputs = {random_tensor({B, L, E}, 1), random_tensor({3 * E, E}, 2),
                                  random_tensor({3 * E}, 3), random_tensor({E, E}, 4),
                                  random_tensor({E}, 5)};
    for (Tensor& t : inputs) t.set_requires_grad(true);
    require_gradcheck(
        [&](const std::vector<Tensor>& in) {
          // Padded query rows are free (they hold anything): compare real rows only.
          const Tensor y = multi_head_attention(in[0], in[1], in[2], in[3], in[4], o, lengths);
          return mul(y, Tensor::from_vector(std::vector<double>{1, 1, 1, 0, 1, 1, 1, 1}, {B, L, 1},
                                            DType::Float64));
        },
        inputs);
  }
}

TEST_CASE("transformer: parameter names and shapes; the model's input gradient passes gradcheck",
          "[cpu][attention]") {
  ModelConfig c = transformer_config();
  Generator gen(2);
  auto m = make_model(c, {.d_input = 3, .num_classes = 4, .dtype = DType::Float64, .max_len = 6},
                      gen, nullptr);
  std::map<std::string, Shape> shapes;
  for (const auto& p : m->named_parameters()) shapes[p.name] = p.tensor.shape();
  CHECK(shapes.at("pos_embedding") == Shape{6, 8});
  CHECK(shapes.at("layers.1.mixer.self_attn.in_proj_weight") == Shape{24, 8});
  CHECK(shapes.at("layers.1.mixer.self_attn.in_proj_bias") == Shape{24});
  CHECK(shapes.at("layers.1.mixer.self_attn.out_proj.weight") == Shape{8, 8});
  CHECK(shapes.at("layers.0.ff.linear1.weight") == Shape{16, 8});
  CHECK(shapes.at("layers.0.ff.linear2.weight") == Shape{8, 16});
  CHECK(shapes.at("layers.0.ff_norm.weight") == Shape{8});
  CHECK(shapes.count("layers.0.norm.weight") == 1);
  // A longer input than the data's max_len is an error.
  CHECK_THAT(error_message([&] {
               m->forward(random_tensor({1, 7, 3}, 1), Tensor());
             }),
             Catch::Matchers::Contains("exceeds the learned positions' max_len 6"));
  // Sinusoidal positions: no parameter, Vaswani et al.'s values.
  c.positions = "sinusoidal";
  Generator gen2(2);
  auto s = make_model(c, {.d_input = 3, .num_classes = 4, .dtype = DType::Float64}, gen2, nullptr);
  for (const auto& p : s->named_parameters()) CHECK(p.name != "pos_embedding");
  const Tensor pe = sinusoidal_positions(5, 8, DType::Float64);
  const auto v = pe.to_vector<double>();
  CHECK(v[3 * 8 + 4] == Approx(std::sin(3.0 / std::pow(10000.0, 4.0 / 8.0))));
  CHECK(v[3 * 8 + 5] == Approx(std::cos(3.0 / std::pow(10000.0, 4.0 / 8.0))));
  Tensor x = random_tensor({2, 5, 3}, 9);
  x.set_requires_grad(true);
  require_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return m->forward(in[0], lengths_of({5, 3}));
      },
      {x});
}

TEST_CASE("transformer learns the templates task in 100 steps", "[cpu][attention]") {
  data::TemplatesOptions o;
  o.num_classes = 4;
  o.seq_len = 16;
  o.d_input = 4;
  o.noise = 0.5;
  auto train_set = std::make_shared<data::TemplatesDataset>(o, 256, 0);
  data::DataLoader loader(train_set, 32, true, false, 5);
  ModelConfig c = transformer_config();
  c.d_model = 16;
  c.n_heads = 4;
  Generator gen(6);
  auto m = make_model(c, {.d_input = 4, .num_classes = 4, .max_len = 16}, gen, nullptr);
  const double lr = 0.1;
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
  CHECK(last_loss < first_loss);
  CHECK(after > 0.8);
  CHECK(tape_size() == 0);
}

TEST_CASE("transformer config errors are clear", "[cpu][attention]") {
  ModelConfig c = transformer_config();
  c.n_heads = 3;  // d_model 8
  Generator gen(1);
  CHECK_THAT(error_message([&] { make_model(c, {.d_input = 2, .max_len = 4}, gen, nullptr); }),
             Catch::Matchers::Contains("[transformer] model.n_heads (3) must divide "
                                       "model.d_model (8)"));
  c.n_heads = 2;
  c.positions = "rotary";
  CHECK_THAT(error_message([&] { make_model(c, {.d_input = 2, .max_len = 4}, gen, nullptr); }),
             Catch::Matchers::Contains("model.positions must be learned or sinusoidal"));
  c.positions = "learned";
  CHECK_THAT(error_message([&] { make_model(c, {.d_input = 2}, gen, nullptr); }),
             Catch::Matchers::Contains("max_len >= 1"));

  auto config_error = [](const std::string& model) {
    try {
      load_config_string(
          std::string("model:\n  name: transformer\n")
              .append(model)
              .append("data:\n  name: templates\noptimizer:\n  name: adamw\n  lr: 0.01\n"
                      "train:\n  batch_size: 8\n"),
          "bad.yaml");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK_THAT(config_error("  d_model: 32\n  n_heads: 5\n"),
             Catch::Matchers::Contains("model.n_heads: must divide model.d_model (32), got 5"));
  CHECK_THAT(config_error("  positions: rope\n"),
             Catch::Matchers::Contains(
                 "model.positions: expected one of learned, sinusoidal, got 'rope'"));
  CHECK(config_error("  d_model: 32\n  n_heads: 8\n  causal: true\n  positions: sinusoidal\n")
            .empty());
}
