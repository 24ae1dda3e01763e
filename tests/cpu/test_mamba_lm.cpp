// mamba_lm: the reference MambaLMHeadModel's parameter names, the tied head,
// the classification view (logits at the last valid position), and greedy
// generation in recurrent mode equal to re-running the whole sequence.
#include <set>

#include "autograd/ops.h"
#include "layers/models/mamba_lm.h"
#include "tests/testing.h"

using namespace ssm;

namespace {

std::shared_ptr<Model> small_lm(std::int64_t vocab = 11, const std::string& norm = "rms") {
  ModelConfig c;
  c.name = "mamba_lm";
  c.d_model = 16;
  c.n_layers = 2;
  c.d_state = 4;
  c.norm = norm;
  ModelIO io;
  io.vocab_size = vocab;
  io.num_classes = vocab;
  Generator gen(9);
  return make_model(c, io, gen, nullptr);
}

Tensor tokens(std::int64_t B, std::int64_t L, std::int64_t vocab, std::uint64_t seed) {
  Generator gen(seed);
  const auto u = rand({B * L}, DType::Float32, Device::cpu(), gen).to_vector<float>();
  std::vector<std::int64_t> t(u.size());
  for (std::size_t i = 0; i < u.size(); ++i) {
    t[i] = static_cast<std::int64_t>(u[i] * static_cast<float>(vocab)) % vocab;
  }
  return Tensor::from_vector<std::int64_t>(t, {B, L});
}

}  // namespace

TEST_CASE("mamba_lm: the reference LM's parameter names; the head is the embedding",
          "[cpu][mamba_lm]") {
  auto lm = small_lm();
  std::set<std::string> names;
  for (const NamedParameter& p : lm->named_parameters()) names.insert(p.name);
  const std::set<std::string> mixer = {
      "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",  "dt_proj.weight",
      "dt_proj.bias",   "A_log",         "D",           "out_proj.weight"};
  std::set<std::string> want = {"backbone.embedding.weight", "backbone.norm_f.weight"};
  for (const std::string i : {"0", "1"}) {
    want.insert("backbone.layers." + i + ".norm.weight");
    for (const std::string& m : mixer) want.insert("backbone.layers." + i + ".mixer." + m);
  }
  CHECK(names == want);
  // Tied head: logits = norm_f(h) E^T, so zeroing the embedding row of
  // token 3 zeroes its logit at every position (and no other's).
  Tensor emb;
  for (const NamedParameter& p : lm->named_parameters()) {
    if (p.name == "backbone.embedding.weight") emb = p.tensor;
  }
  {
    NoGradGuard ng;
    emb.select(0, 3).fill_(0.0);
  }
  const Tensor x = tokens(2, 9, 11, 1);
  NoGradGuard ng;
  const Tensor logits = lm_logits(*lm, x);  // (B, L, V)
  REQUIRE(logits.shape() == Shape{2, 9, 11});
  CHECK(ssm::testing::max_abs(logits.select(2, 3).contiguous()) == 0.0);
  CHECK(ssm::testing::max_abs(logits.select(2, 4).contiguous()) > 0.0);
}

TEST_CASE("mamba_lm: forward is the next-token logits at the last valid position",
          "[cpu][mamba_lm]") {
  auto lm = small_lm(7, "layer");
  const Tensor x = tokens(3, 10, 7, 2);
  NoGradGuard ng;
  const Tensor all = lm_logits(*lm, x);  // (B, L, V)
  CHECK(ssm::testing::max_abs(sub(lm->forward(x, Tensor()), all.select(1, 9).contiguous())) == 0.0);
  const Tensor lengths = Tensor::from_vector<std::int64_t>({10, 4, 7}, {3});
  const Tensor at = lm->forward(x, lengths);  // (B, V)
  for (const auto& [b, t] : std::vector<std::pair<int, int>>{{0, 9}, {1, 3}, {2, 6}}) {
    CHECK(ssm::testing::max_abs(sub(at.select(0, b), all.select(0, b).select(0, t))) == 0.0);
  }
  CHECK(ssm::testing::max_abs(
            sub(lm->forward_outputs(x, Tensor(), 4), all.narrow(1, 6, 4).contiguous())) == 0.0);
  // The head is tied: the task's classes must be its tokens.
  ModelConfig c;
  c.name = "mamba_lm";
  ModelIO io;
  io.vocab_size = 7;
  io.num_classes = 3;
  Generator gen(1);
  CHECK(ssm::testing::error_message([&] { make_model(c, io, gen, nullptr); }).find("num_classes") !=
        std::string::npos);
}

TEST_CASE("mamba_lm: greedy generation in recurrent mode equals re-running the sequence",
          "[cpu][mamba_lm]") {
  auto lm = small_lm();
  const Tensor prompt = tokens(3, 5, 11, 4);  // (B, P)
  const Tensor gen = lm_generate(*lm, prompt, 6);
  REQUIRE(gen.shape() == Shape{3, 11});
  CHECK(ssm::testing::max_abs(
            sub(gen.narrow(1, 0, 5).to(DType::Float64), prompt.to(DType::Float64))) == 0.0);
  // The oracle: the whole sequence through the scan at every step.
  NoGradGuard ng;
  Tensor seq = prompt;
  for (int k = 0; k < 6; ++k) {
    const Tensor last = lm_logits(*lm, seq).select(1, seq.size(1) - 1);  // (B, V)
    const Tensor next = max_with_index(last, 1).second.reshape({3, 1});
    seq = cat({seq, next}, 1);
  }
  CHECK(seq.to_vector<std::int64_t>() == gen.to_vector<std::int64_t>());
}
