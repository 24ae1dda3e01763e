// The training loop: end to end on the generated task, exact resume
// mid-epoch, gradient accumulation, the non-finite guard, evaluation, and the
// train / evaluate programs' exit codes and output.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/testing.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/progress.h"
#include "train/trainer.h"

using namespace ssm;
using namespace ssm::testing;
namespace fs = std::filesystem;
using json = nlohmann::json;
using ssm::testing::TempDir;

namespace {

// A small run: 160 training examples in batches of 16 (10 steps an epoch).
const char* kTinyYaml = R"(model:
  name: mlp_mixer
  d_model: 16
  n_layers: 2
  dropout: 0.1
data:
  name: templates
  seq_len: 12
  d_input: 3
  num_classes: 3
  train_size: 160
  val_size: 48
  test_size: 48
  noise: 1.0
optimizer:
  name: adamw
  lr: 0.03
scheduler:
  name: cosine
  warmup_steps: 3
train:
  epochs: 3
  batch_size: 16
  grad_clip: 1.0
  log_every: 1
  checkpoint_every: 4
  seed: 7
  device: cpu
run:
  name: tiny
)";

Config tiny_config(const fs::path& out, std::vector<std::string> overrides = {}) {
  overrides.push_back("run.output_dir=" + out.string());
  return load_config_string(kTinyYaml, "tiny.yaml", overrides);
}

std::vector<json> read_metrics(const fs::path& run_dir) {
  std::vector<json> out;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) out.push_back(json::parse(line));
  return out;
}

// (event, step, loss) of every line except wall-clock fields.
std::vector<std::tuple<std::string, std::int64_t, double>> losses(const std::vector<json>& m) {
  std::vector<std::tuple<std::string, std::int64_t, double>> out;
  for (const auto& j : m) {
    out.emplace_back(j["event"].get<std::string>(), j["step"].get<std::int64_t>(),
                     j["loss"].get<double>());
  }
  return out;
}

TrainResult quiet_train(const Config& c, TrainOptions o = {}) {
  std::ostringstream sink;
  o.out = &sink;
  return train(c, o);
}

}  // namespace

TEST_CASE("a run trains, logs, checkpoints and tests its best checkpoint", "[cpu][train]") {
  TempDir tmp("train_end_to_end");
  const Config c = tiny_config(tmp.path());
  const TrainResult r = quiet_train(c);
  const fs::path run = tmp.path() / "tiny";
  CHECK(r.steps == 30);
  CHECK(fs::exists(run / "config.yaml"));
  CHECK(fs::exists(run / "last.h5"));
  CHECK(fs::exists(run / "best.h5"));
  // The resolved config is stored and loads back to the same config.
  CHECK(load_config(run / "config.yaml").optimizer.lr == c.optimizer.lr);
  const auto m = read_metrics(run);
  int train_lines = 0, evals = 0, tests = 0;
  for (const auto& j : m) {
    const std::string ev = j["event"];
    train_lines += ev == "train";
    evals += ev == "eval";
    tests += ev == "test";
  }
  CHECK(train_lines == 30);  // log_every 1
  CHECK(evals == 3);         // once per epoch
  CHECK(tests == 1);
  // The first logged loss is near log(3) (an untrained 3-class model) and the
  // model learns: validation accuracy well above chance (1/3).
  CHECK(std::abs(m.front()["loss"].get<double>() - std::log(3.0)) < 0.5);
  CHECK(r.best_val_accuracy > 0.8);
  // The test metric logged is that of best.h5, as evaluate computes it.
  const Checkpoint best = read_checkpoint((run / "best.h5").string());
  const data::Splits splits = data::make_datasets(c.data);
  Generator g(0, 1);
  auto model = build_model(c, *splits.test, &g);
  model->load_state_dict(best.model);
  const EvalResult e = evaluate_model(*model, *splits.test, c.train.batch_size, Device::cpu());
  CHECK(e.loss == r.test.loss);
  CHECK(e.accuracy == r.test.accuracy);
  CHECK(m.back()["loss"].get<double>() == r.test.loss);
  // Every parameter group's learning rate is logged; warmup then cosine decay.
  CHECK(m.front()["lr"]["default"].get<double>() == Approx(0.03 / 3));
}

TEST_CASE("a run resumed mid-epoch ends bit-identical to the uninterrupted run", "[cpu][train]") {
  TempDir a("train_resume_a"), b("resume_b");
  const Config ca = tiny_config(a.path()), cb = tiny_config(b.path());
  quiet_train(ca);
  // Stopped after step 13 (mid-epoch 2); the newest checkpoint is step 12.
  TrainOptions stop;
  stop.stop_after_step = 13;
  CHECK(quiet_train(cb, stop).stopped_early);
  const fs::path rb = b.path() / "tiny";
  CHECK(read_checkpoint((rb / "last.h5").string()).step == 12);
  CHECK(read_checkpoint((rb / "last.h5").string()).data_index == 32);
  // A torn temporary file from the "crash" is ignored.
  std::ofstream(rb / "last.h5.tmp") << "torn";
  TrainOptions resume;
  resume.resume = "auto";
  const TrainResult r = quiet_train(cb, resume);
  CHECK(r.steps == 30);
  const Checkpoint la = read_checkpoint((a.path() / "tiny" / "last.h5").string());
  const Checkpoint lb = read_checkpoint((rb / "last.h5").string());
  REQUIRE(la.model.size() == lb.model.size());
  for (std::size_t i = 0; i < la.model.size(); ++i) {
    INFO(la.model[i].first);
    CHECK(la.model[i].first == lb.model[i].first);
    CHECK(la.model[i].second.to_vector<float>() == lb.model[i].second.to_vector<float>());
  }
  CHECK(la.rng == lb.rng);
  // The same logged losses, line for line, with no duplicates from the
  // steps the stopped run logged after its last checkpoint.
  CHECK(losses(read_metrics(a.path() / "tiny")) == losses(read_metrics(rb)));
}

TEST_CASE("gradient accumulation equals one large batch", "[cpu][train]") {
  TempDir a("train_accum_a"), b("accum_b");
  // SGD without dropout: 2 micro-batches of 8 == 1 batch of 16, up to rounding.
  const std::vector<std::string> common = {"optimizer.name=sgd",      "optimizer.lr=0.1",
                                           "model.dropout=0.0",       "train.max_steps=5",
                                           "train.grad_clip=0.0",     "scheduler.name=constant",
                                           "scheduler.warmup_steps=0"};
  auto oa = common, ob = common;
  oa.push_back("train.batch_size=16");
  ob.push_back("train.batch_size=8");
  ob.push_back("train.grad_accum=2");
  const TrainResult ra = quiet_train(tiny_config(a.path(), oa));
  const TrainResult rb = quiet_train(tiny_config(b.path(), ob));
  CHECK(ra.steps == 5);
  CHECK(rb.steps == 5);
  const Checkpoint la = read_checkpoint((a.path() / "tiny" / "last.h5").string());
  const Checkpoint lb = read_checkpoint((b.path() / "tiny" / "last.h5").string());
  for (std::size_t i = 0; i < la.model.size(); ++i) {
    INFO(la.model[i].first);
    require_close(lb.model[i].second, la.model[i].second, 1e-5, 1e-4);
  }
  const auto ma = read_metrics(a.path() / "tiny"), mb = read_metrics(b.path() / "tiny");
  CHECK(mb[0]["loss"].get<double>() == Approx(ma[0]["loss"].get<double>()).epsilon(1e-5));
}

namespace {

// The templates training split with NaN features in example `bad`.
class PoisonedDataset : public data::Dataset {
 public:
  PoisonedDataset(std::shared_ptr<const data::Dataset> base, std::int64_t bad)
      : base_(std::move(base)), bad_(bad) {}
  std::int64_t size() const override { return base_->size(); }
  data::Example get(std::int64_t i) const override {
    data::Example e = base_->get(i);
    if (i == bad_) {
      e.x = e.x.clone();
      e.x.fill_(std::nan(""));
    }
    return e;
  }
  std::int64_t num_classes() const override { return base_->num_classes(); }
  std::int64_t d_input() const override { return base_->d_input(); }
  std::string name() const override { return "poisoned"; }

 private:
  std::shared_ptr<const data::Dataset> base_;
  std::int64_t bad_;
};

}  // namespace

TEST_CASE("a non-finite loss stops the run naming the step, or the step is skipped",
          "[cpu][train]") {
  TempDir tmp("train_nonfinite");
  Config c = tiny_config(tmp.path(), {"train.epochs=1"});
  data::Splits s = data::make_datasets(c.data);
  s.train = std::make_shared<PoisonedDataset>(s.train, 5);
  TrainOptions o;
  o.datasets = s;
  // Which step sees example 5 depends on the shuffle; the message names it.
  const std::string msg = error_message([&] { quiet_train(c, o); });
  CHECK(msg.find("[train] step ") == 0);
  CHECK(msg.find("loss is nan") != std::string::npos);
  CHECK(msg.find("first parameter with a non-finite gradient: encoder.weight") !=
        std::string::npos);
  c.train.skip_nonfinite = true;
  const TrainResult r = quiet_train(c, o);
  CHECK(r.skipped_steps == 1);
  CHECK(r.steps == 10);
  // The skipped step changed nothing: every parameter is finite.
  const Checkpoint last = read_checkpoint((tmp.path() / "tiny" / "last.h5").string());
  for (const auto& [name, t] : last.model) {
    for (float v : t.to_vector<float>()) REQUIRE(std::isfinite(v));
  }
  int skipped_lines = 0;
  for (const auto& j : read_metrics(tmp.path() / "tiny")) skipped_lines += j.contains("skipped");
  CHECK(skipped_lines == 1);
}

TEST_CASE("resuming from a checkpoint of another model names the mismatched keys", "[cpu][train]") {
  TempDir tmp("train_mismatch");
  quiet_train(tiny_config(tmp.path(), {"train.max_steps=4"}));
  const Config wider = tiny_config(tmp.path(), {"train.max_steps=8", "model.d_model=24"});
  TrainOptions o;
  o.resume = (tmp.path() / "tiny" / "last.h5").string();
  const std::string msg = error_message([&] { quiet_train(wider, o); });
  CHECK(msg.find("[load_state_dict]") == 0);
  CHECK(msg.find("encoder.weight: expected (24, 3) float32, got (16, 3) float32") !=
        std::string::npos);
}

TEST_CASE("progress lines show step, loss, accuracy, rate and ETA", "[cpu][train]") {
  CHECK(format_duration(7) == "0:07");
  CHECK(format_duration(723) == "12:03");
  CHECK(format_duration(3723) == "1:02:03");
  CHECK(format_duration(-1) == "-");
  ProgressLine p;
  p.epoch = 2;
  p.epochs = 5;
  p.step = 120;
  p.total_steps = 300;
  p.epoch_step = 30;
  p.epoch_steps = 60;
  p.loss = 0.43125;
  p.accuracy = 0.875;
  p.lr = 1e-3;
  p.samples_per_s = 2310.4;
  p.eta_s = 12;
  CHECK(format_plain(p) ==
        "step 120/300 epoch 2 loss 0.4313 acc 0.875 lr 1.00e-03 2310 samples/s ETA 0:12");
  CHECK(format_bar(p, 10) ==
        "epoch 2/5 [#####-----]   30/60 loss 0.4313 acc 0.875 lr 1.00e-03 2310 samples/s ETA 0:12");
}

TEST_CASE("train and evaluate: help, bad input exits 2, evaluate matches the logged test metric",
          "[cpu][train][cli]") {
  TempDir tmp("train_cli");
  const std::string bin = SSM_BIN_DIR;
  const fs::path log = tmp.path() / "out.txt";
  {
    const auto [rc, out] = run_command(bin + "/train --help", log);
    CHECK(rc == 0);
    CHECK(out.find("--config") != std::string::npos);
    CHECK(out.find("--resume") != std::string::npos);
  }
  {
    const auto [rc, out] = run_command(bin + "/evaluate --help", log);
    CHECK(rc == 0);
    CHECK(out.find("--checkpoint") != std::string::npos);
  }
  const fs::path cfg = tmp.path() / "tiny.yaml";
  std::ofstream(cfg) << kTinyYaml;
  {
    const auto [rc, out] =
        run_command(bin + "/train --config " + cfg.string() +
                        " --set optimizer.lr=fast --set run.output_dir=" + tmp.path().string(),
                    log);
    CHECK(rc == 2);
    CHECK(out.find("--set optimizer.lr=fast") != std::string::npos);
  }
  {
    const auto [rc, out] =
        run_command(bin + "/train --config " + (tmp.path() / "nope.yaml").string(), log);
    CHECK(rc == 2);
    CHECK(out.find("nope.yaml") != std::string::npos);
  }
  {
    const auto [rc, out] = run_command(bin + "/train --confg x.yaml", log);
    CHECK(rc == 2);
  }
  const std::string set_out = " --set run.output_dir=" + tmp.path().string();
  {
    const auto [rc, out] = run_command(
        bin + "/train --config " + cfg.string() + set_out + " --set train.epochs=2", log);
    INFO(out);
    REQUIRE(rc == 0);
    CHECK(out.find("done: 20 steps") != std::string::npos);
  }
  const auto m = read_metrics(tmp.path() / "tiny");
  const json logged = m.back();
  REQUIRE(logged["event"] == "test");
  const fs::path best = tmp.path() / "tiny" / "best.h5";
  {
    const auto [rc, out] = run_command(bin + "/evaluate --json --config " + cfg.string() + set_out +
                                           " --set train.epochs=2 --checkpoint " + best.string(),
                                       log);
    INFO(out);
    REQUIRE(rc == 0);
    const json j = json::parse(out);
    CHECK(j["split"] == "test");
    CHECK(j["loss"].get<double>() == logged["loss"].get<double>());
    CHECK(j["accuracy"].get<double>() == logged["accuracy"].get<double>());
  }
  {
    std::ofstream(tmp.path() / "torn.h5") << "not a checkpoint";
    const auto [rc, out] = run_command(bin + "/evaluate --config " + cfg.string() +
                                           " --checkpoint " + (tmp.path() / "torn.h5").string(),
                                       log);
    CHECK(rc == 2);
    CHECK(out.find("torn.h5") != std::string::npos);
  }
}

TEST_CASE("evaluate --dump writes inputs, labels and the logits a fresh forward gives",
          "[cpu][train][cli]") {
  TempDir tmp("eval_dump");
  const std::string bin = SSM_BIN_DIR;
  const fs::path log = tmp.path() / "out.txt";
  const fs::path cfg = tmp.path() / "tiny.yaml";
  std::ofstream(cfg) << kTinyYaml;
  const std::string set_out = " --set run.output_dir=" + tmp.path().string();
  {
    const auto [rc, out] = run_command(
        bin + "/train --config " + cfg.string() + set_out + " --set train.epochs=1", log);
    INFO(out);
    REQUIRE(rc == 0);
  }
  const fs::path best = tmp.path() / "tiny" / "best.h5";
  const fs::path dump = tmp.path() / "dump.h5";
  const std::string eval = bin + "/evaluate --json --config " + cfg.string() + " --checkpoint " +
                           best.string() + " --dump " + dump.string();
  // All 48 test examples: the dumped logits give the accuracy evaluate prints.
  const auto [rc, out] = run_command(eval + " --dump-count 1000", log);
  INFO(out);
  REQUIRE(rc == 0);
  const json j = json::parse(out);
  StateDict d = read_hdf5_group(dump.string(), "/");
  std::map<std::string, Tensor> t(d.begin(), d.end());
  REQUIRE(t.count("x") == 1);
  CHECK(t["x"].shape() == Shape{48, 12, 3});
  CHECK(t["labels"].shape() == Shape{48});
  CHECK(t["lengths"].to_vector<std::int64_t>() == std::vector<std::int64_t>(48, 12));
  REQUIRE(t["logits"].shape() == Shape{48, 3});
  const auto logits = t["logits"].to_vector<float>();
  const auto labels = t["labels"].to_vector<std::int64_t>();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const float* row = logits.data() + 3 * i;
    const auto arg = std::max_element(row, row + 3) - row;
    correct += arg == labels[i];
  }
  CHECK(static_cast<double>(correct) / 48.0 == j["accuracy"].get<double>());
  // Oracle: the checkpoint loaded here, run on the dumped inputs.
  const Config c = tiny_config(tmp.path());
  const data::Splits splits = data::make_datasets(c.data);
  Generator g(c.train.seed, 1);
  auto model = build_model(c, *splits.test, &g);
  model->load_state_dict(read_checkpoint(best.string()).model);
  model->eval();
  NoGradGuard no_grad;
  // (One batch of 48 here, batches of 16 in evaluate: BLAS may block the
  // products differently, so equal to float32 rounding.)
  const Tensor fresh = model->forward(t["x"], t["lengths"]);
  require_close(fresh, t["logits"], 1e-5, 1e-5);
  // The first examples of the split, in order.
  CHECK(t["labels"].narrow(0, 0, 5).to_vector<std::int64_t>() ==
        std::vector<std::int64_t>{splits.test->get(0).label, splits.test->get(1).label,
                                  splits.test->get(2).label, splits.test->get(3).label,
                                  splits.test->get(4).label});
  // --dump-count 5 keeps five; a bad count exits 2.
  REQUIRE(run_command(eval + " --dump-count 5", log).first == 0);
  const StateDict five = read_hdf5_group(dump.string(), "/");
  REQUIRE(five.size() == 4);
  for (const auto& [name, tensor] : five) CHECK(tensor.size(0) == 5);
  CHECK(run_command(eval + " --dump-count 0", log).first == 2);
}
