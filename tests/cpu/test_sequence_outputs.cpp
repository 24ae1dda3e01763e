// Sequence-output tasks (selective copying): the backbone's per-position
// outputs (forward_outputs), the per-token loss and accuracy of batch_loss,
// and a short training run on selective copying through train().
#include <cmath>
#include <filesystem>
#include <sstream>

#include "autograd/ops.h"
#include "layers/models/model.h"
#include "tests/testing.h"
#include "train/config.h"
#include "train/trainer.h"

using namespace ssm;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<Model> small_model(const std::string& name, std::int64_t vocab) {
  ModelConfig c;
  c.name = name;
  c.d_model = 8;
  c.n_layers = 2;
  c.d_state = 4;
  ModelIO io;
  io.vocab_size = vocab;
  io.num_classes = vocab;
  io.max_len = 32;
  Generator gen(3);
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

TEST_CASE("forward_outputs gives the decoder at each of the last n positions", "[cpu][train]") {
  for (const std::string name : {"mamba", "s4d", "transformer"}) {
    INFO(name);
    auto model = small_model(name, 10);
    model->eval();
    NoGradGuard ng;
    const Tensor x = tokens(3, 20, 10, 1);                       // (B, L)
    const Tensor all = model->forward_outputs(x, Tensor(), 20);  // (B, L, C)
    REQUIRE(all.shape() == Shape{3, 20, 10});
    const Tensor last5 = model->forward_outputs(x, Tensor(), 5);  // (B, 5, C)
    REQUIRE(last5.shape() == Shape{3, 5, 10});
    CHECK(ssm::testing::max_abs(sub(last5, all.narrow(1, 15, 5).contiguous())) < 1e-5);
    // Full lengths are accepted; padding and n out of range are refused.
    const Tensor full = Tensor::from_vector<std::int64_t>({20, 20, 20}, {3});
    CHECK(ssm::testing::max_abs(sub(model->forward_outputs(x, full, 5), last5)) == 0.0);
    const Tensor padded = Tensor::from_vector<std::int64_t>({20, 19, 20}, {3});
    CHECK(ssm::testing::error_message([&] {
            model->forward_outputs(x, padded, 5);
          }).find("unpadded") != std::string::npos);
    CHECK(ssm::testing::error_message([&] {
            model->forward_outputs(x, Tensor(), 21);
          }).find("outputs") != std::string::npos);
  }
}

TEST_CASE("batch_loss on sequence targets: mean cross-entropy and accuracy per target token",
          "[cpu][train]") {
  auto model = small_model("mamba", 7);
  data::Batch b;
  b.x = tokens(4, 12, 7, 2);               // (B, L)
  b.y = Tensor::zeros({4}, DType::Int64);  // unused
  b.lengths = Tensor::from_vector<std::int64_t>({12, 12, 12, 12}, {4});
  b.x2 = tokens(4, 3, 7, 3);  // (B, n) targets
  b.lengths2 = Tensor::from_vector<std::int64_t>({3, 3, 3, 3}, {4});
  const BatchLoss r = batch_loss(*model, b, true, Device::cpu());
  CHECK(r.count == 12);
  const Tensor logits = model->forward_outputs(b.x, b.lengths, 3);  // (B, 3, C)
  const auto lv = logits.to_vector<float>();
  const auto yv = b.x2.to_vector<std::int64_t>();
  double loss = 0.0;
  std::int64_t correct = 0;
  for (std::int64_t k = 0; k < 12; ++k) {
    const float* row = lv.data() + k * 7;
    float m = row[0];
    std::int64_t arg = 0;
    for (std::int64_t c = 1; c < 7; ++c) {
      if (row[c] > m) m = row[c], arg = c;
    }
    double s = 0.0;
    for (std::int64_t c = 0; c < 7; ++c) s += std::exp(static_cast<double>(row[c] - m));
    loss += std::log(s) + m - row[yv[static_cast<std::size_t>(k)]];
    correct += arg == yv[static_cast<std::size_t>(k)];
  }
  CHECK(std::abs(r.loss.item<double>() - loss / 12.0) < 1e-5);
  CHECK(r.correct == correct);
  CHECK(r.loss.requires_grad());
  // Targets of different lengths are refused.
  b.lengths2 = Tensor::from_vector<std::int64_t>({3, 2, 3, 3}, {4});
  CHECK(ssm::testing::error_message([&] {
          batch_loss(*model, b, true, Device::cpu());
        }).find("different lengths") != std::string::npos);
}

TEST_CASE("train learns selective copying (per-token outputs) on a short sequence",
          "[cpu][train]") {
  ssm::testing::TempDir tmp("selective_copying");
  const std::string yaml = R"(
model:
  name: mamba
  d_model: 32
  n_layers: 2
  d_state: 8
  norm: rms
data:
  name: selective_copying
  seq_len: 24
  num_tokens: 2
  vocab_size: 6
  train_size: 8192
  val_size: 128
  test_size: 128
optimizer:
  name: adamw
  lr: 0.005
  weight_decay: 0.0
train:
  epochs: 1
  batch_size: 32
  log_every: 64
  eval_every: 128
  checkpoint_every: 256
  seed: 0
run:
  name: sc
)";
  const Config c = load_config_string(yaml, "sc.yaml", {"run.output_dir=" + tmp.path().string()});
  std::ostringstream sink;
  TrainOptions o;
  o.out = &sink;
  const TrainResult r = train(c, o);
  INFO(sink.str());
  // Chance is 1/6 per token; the model copies the two marked tokens.
  CHECK(r.test.accuracy > 0.9);
  CHECK(r.test.examples == 128);
}
