// Paired tasks (LRA Retrieval): the classifier backbone's two-tower head,
// logits = decoder(gelu(pair_mlp([u, v, u * v, u - v]))) over the pooled
// features of both sequences; its gradient against finite differences; and
// a run of train() on a small retrieval file set.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/ops.h"
#include "layers/models/model.h"
#include "tests/testing.h"
#include "train/config.h"
#include "train/trainer.h"

using namespace ssm;
using ssm::testing::error_message;

namespace {

ModelConfig pair_config(const std::string& name) {
  ModelConfig c;
  c.name = name;
  c.d_model = 6;
  c.n_layers = 1;
  c.d_state = 4;
  return c;
}

Tensor token_batch(std::int64_t B, std::int64_t L, std::int64_t vocab, std::uint64_t seed) {
  Generator gen(seed);
  const auto u = rand({B * L}, DType::Float32, Device::cpu(), gen).to_vector<float>();
  std::vector<std::int64_t> t(u.size());
  for (std::size_t i = 0; i < u.size(); ++i) {
    t[i] = static_cast<std::int64_t>(u[i] * static_cast<float>(vocab)) % vocab;
  }
  return Tensor::from_vector<std::int64_t>(t, {B, L});
}

}  // namespace

TEST_CASE("two-tower head: names, symmetric features, gradcheck, wrong use", "[cpu][train]") {
  ModelIO io{.d_input = 2, .num_classes = 2, .dtype = DType::Float64, .paired = true};
  Generator gen(1);
  auto m = make_model(pair_config("s4d"), io, gen, nullptr);
  bool has_pair = false;
  for (const auto& p : m->named_parameters()) {
    if (p.name == "pair_mlp.weight") {
      has_pair = true;
      CHECK(p.tensor.shape() == Shape{6, 24});
    }
  }
  CHECK(has_pair);
  Tensor x1 = ssm::testing::random_tensor({3, 7, 2}, 2),
         x2 = ssm::testing::random_tensor({3, 5, 2}, 3);
  x1.set_requires_grad(true);
  x2.set_requires_grad(true);
  const Tensor l1 = Tensor::from_vector<std::int64_t>({7, 4, 6}, {3});
  const Tensor l2 = Tensor::from_vector<std::int64_t>({5, 5, 2}, {3});
  const Tensor y = m->forward_pair(x1, l1, x2, l2);
  CHECK(y.shape() == Shape{3, 2});
  // Padding beyond each length never matters (causal S4D, masked mean).
  {
    NoGradGuard ng;
    Tensor x1b = x1.detach().clone();
    x1b.select(0, 1).narrow(0, 4, 3).fill_(9.0);
    CHECK(ssm::testing::max_abs(sub(m->forward_pair(x1b, l1, x2.detach(), l2), y.detach())) <
          1e-12);
  }
  ssm::testing::require_gradcheck(
      [&](const std::vector<Tensor>& in) { return m->forward_pair(in[0], l1, in[1], l2); },
      {x1, x2});
  CHECK(error_message([&] { m->forward(x1, l1); }).find("forward_pair") != std::string::npos);
  io.paired = false;
  Generator g2(1);
  auto single = make_model(pair_config("s4d"), io, g2, nullptr);
  CHECK(error_message([&] { single->forward_pair(x1, l1, x2, l2); }).find("two-tower") !=
        std::string::npos);
}

TEST_CASE("train runs a paired task (LRA Retrieval files) through the two-tower head",
          "[cpu][train]") {
  ssm::testing::TempDir dir("retrieval");
  // Label 1 when both documents start with the same letter.
  Generator gen(4);
  for (const std::string split : {"train", "eval", "test"}) {
    std::ofstream f(dir.path() / ("new_aan_pairs." + split + ".tsv"));
    const std::int64_t n = split == "train" ? 256 : 32;
    const Tensor a = token_batch(n, 10, 2, split == "train" ? 1 : split == "eval" ? 2 : 3);
    const Tensor b = token_batch(n, 10, 2, split == "train" ? 5 : split == "eval" ? 6 : 7);
    const auto va = a.to_vector<std::int64_t>(), vb = b.to_vector<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) {
      std::string s1, s2;
      for (std::int64_t k = 0; k < 10; ++k) {
        s1 += static_cast<char>('a' + va[i * 10 + k]);
        s2 += static_cast<char>('a' + vb[i * 10 + k]);
      }
      f << (s1[0] == s2[0] ? 1 : 0) << "\tid" << i << "\tjd" << i << "\t" << s1 << "\t" << s2
        << "\n";
    }
  }
  const std::string yaml = R"(
model:
  name: s4d
  d_model: 16
  n_layers: 1
  d_state: 8
data:
  name: lra_retrieval
optimizer:
  name: adamw
  lr: 0.01
train:
  epochs: 2
  batch_size: 16
  log_every: 8
  eval_every: 0
  checkpoint_every: 64
  seed: 0
run:
  name: r
)";
  const Config c = load_config_string(
      yaml, "r.yaml",
      {"data.path=" + dir.path().string(), "run.output_dir=" + (dir.path() / "runs").string()});
  std::ostringstream sink;
  TrainOptions o;
  o.out = &sink;
  const TrainResult r = train(c, o);
  INFO(sink.str());
  CHECK(r.steps == 32);
  CHECK(r.test.examples == 32);
  CHECK(r.test.accuracy > 0.0);
}
