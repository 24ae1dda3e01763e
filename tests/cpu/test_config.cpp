// Training configs: values and defaults, positioned error messages, --set
// overrides, the to_yaml round trip, files, and the shipped configs/*.yaml.
#include <filesystem>
#include <fstream>
#include <limits>

#include "tests/testing.h"
#include "train/config.h"

using namespace ssm;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using ssm::testing::error_message;

namespace {

// The message of the ConfigError that loading throws ("" when it loads).
// Any other exception escapes and fails the test.
std::string config_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    load_config_string(yaml, "bad.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

void require_error(const std::string& message, const std::string& prefix, const std::string& part) {
  REQUIRE_THAT(message, StartsWith(prefix));
  REQUIRE_THAT(message, Contains(part));
}

// Every field of the two configs but `source`.
void check_same(const Config& a, const Config& b) {
  CHECK(a.model.name == b.model.name);
  CHECK(a.model.d_model == b.model.d_model);
  CHECK(a.model.n_layers == b.model.n_layers);
  CHECK(a.model.d_state == b.model.d_state);
  CHECK(a.model.dropout == b.model.dropout);
  CHECK(a.model.norm == b.model.norm);
  CHECK(a.model.prenorm == b.model.prenorm);
  CHECK(a.model.pooling == b.model.pooling);
  CHECK(a.model.expand == b.model.expand);

  CHECK(a.data.name == b.data.name);
  CHECK(a.data.path == b.data.path);
  CHECK(a.data.seq_len == b.data.seq_len);
  CHECK(a.data.d_input == b.data.d_input);
  CHECK(a.data.num_classes == b.data.num_classes);
  CHECK(a.data.train_size == b.data.train_size);
  CHECK(a.data.val_size == b.data.val_size);
  CHECK(a.data.test_size == b.data.test_size);
  CHECK(a.data.noise == b.data.noise);
  CHECK(a.data.seed == b.data.seed);
  CHECK(a.data.mode == b.data.mode);
  CHECK(a.data.permutation == b.data.permutation);
  CHECK(a.data.augment == b.data.augment);
  CHECK(a.data.max_len == b.data.max_len);
  CHECK(a.data.truncate == b.data.truncate);
  CHECK(a.data.vocab_size == b.data.vocab_size);
  CHECK(a.data.num_tokens == b.data.num_tokens);
  CHECK(a.data.pad == b.data.pad);
  CHECK(a.data.pad_length == b.data.pad_length);
  CHECK(a.data.prefetch == b.data.prefetch);

  CHECK(a.optimizer.name == b.optimizer.name);
  CHECK(a.optimizer.lr == b.optimizer.lr);
  CHECK(a.optimizer.weight_decay == b.optimizer.weight_decay);
  CHECK(a.optimizer.beta1 == b.optimizer.beta1);
  CHECK(a.optimizer.beta2 == b.optimizer.beta2);
  CHECK(a.optimizer.eps == b.optimizer.eps);
  CHECK(a.optimizer.momentum == b.optimizer.momentum);
  CHECK(a.optimizer.nesterov == b.optimizer.nesterov);
  CHECK(a.optimizer.ssm_lr == b.optimizer.ssm_lr);
  CHECK(a.optimizer.ssm_weight_decay == b.optimizer.ssm_weight_decay);

  CHECK(a.scheduler.name == b.scheduler.name);
  CHECK(a.scheduler.warmup_steps == b.scheduler.warmup_steps);
  CHECK(a.scheduler.min_lr_ratio == b.scheduler.min_lr_ratio);
  CHECK(a.scheduler.step_size == b.scheduler.step_size);
  CHECK(a.scheduler.gamma == b.scheduler.gamma);

  CHECK(a.train.epochs == b.train.epochs);
  CHECK(a.train.max_steps == b.train.max_steps);
  CHECK(a.train.batch_size == b.train.batch_size);
  CHECK(a.train.grad_accum == b.train.grad_accum);
  CHECK(a.train.grad_clip == b.train.grad_clip);
  CHECK(a.train.log_every == b.train.log_every);
  CHECK(a.train.eval_every == b.train.eval_every);
  CHECK(a.train.checkpoint_every == b.train.checkpoint_every);
  CHECK(a.train.keep_every == b.train.keep_every);
  CHECK(a.train.seed == b.train.seed);
  CHECK(a.train.device == b.train.device);
  CHECK(a.train.skip_nonfinite == b.train.skip_nonfinite);
  CHECK(a.train.drop_last == b.train.drop_last);

  CHECK(a.run.name == b.run.name);
  CHECK(a.run.output_dir == b.run.output_dir);
}

// The smallest valid config: the required keys only.
const char* const kMinimal = R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.001
train:
  batch_size: 8
)";

}  // namespace

TEST_CASE("a full config loads with every value", "[cpu][config]") {
  const Config c = load_config_string(R"(
model:
  name: s4d
  d_model: 128
  n_layers: 4
  d_state: 16
  dropout: 0.1
  norm: rms
  prenorm: false
  pooling: last
  expand: 1.5
data:
  name: copy
  path: /data/copy
  seq_len: 64
  d_input: 8
  num_classes: 10
  train_size: 2000
  val_size: 300
  test_size: 400
  noise: 0.5
  seed: 7
optimizer:
  name: sgd
  lr: 5e-2
  weight_decay: 0
  beta1: 0.8
  beta2: 0.95
  eps: 1.0e-6
  momentum: 0.9
  nesterov: true
  ssm_lr: 0.001
  ssm_weight_decay: 0.25
scheduler:
  name: cosine
  warmup_steps: 100
  min_lr_ratio: 0.1
  step_size: 50
  gamma: 0.5
train:
  epochs: 3
  max_steps: 1000
  batch_size: 16
  grad_accum: 2
  grad_clip: 1
  log_every: 5
  eval_every: 200
  checkpoint_every: 400
  keep_every: 800
  seed: 18446744073709551615
  device: cpu
  skip_nonfinite: true
  drop_last: true
run:
  name: s4d_copy
  output_dir: out/runs
)",
                                      "full.yaml");
  CHECK(c.source == "full.yaml");
  CHECK(c.model.name == "s4d");
  CHECK(c.model.d_model == 128);
  CHECK(c.model.n_layers == 4);
  CHECK(c.model.d_state == 16);
  CHECK(c.model.dropout == 0.1);
  CHECK(c.model.norm == "rms");
  CHECK_FALSE(c.model.prenorm);
  CHECK(c.model.pooling == "last");
  CHECK(c.model.expand == 1.5);
  CHECK(c.data.name == "copy");
  CHECK(c.data.path == "/data/copy");
  CHECK(c.data.seq_len == 64);
  CHECK(c.data.d_input == 8);
  CHECK(c.data.num_classes == 10);
  CHECK(c.data.train_size == 2000);
  CHECK(c.data.val_size == 300);
  CHECK(c.data.test_size == 400);
  CHECK(c.data.noise == 0.5);
  CHECK(c.data.seed == 7);
  CHECK(c.optimizer.name == "sgd");
  CHECK(c.optimizer.lr == 5e-2);
  CHECK(c.optimizer.weight_decay == 0.0);
  CHECK(c.optimizer.beta1 == 0.8);
  CHECK(c.optimizer.beta2 == 0.95);
  CHECK(c.optimizer.eps == 1e-6);
  CHECK(c.optimizer.momentum == 0.9);
  CHECK(c.optimizer.nesterov);
  REQUIRE(c.optimizer.ssm_lr.has_value());
  CHECK(*c.optimizer.ssm_lr == 0.001);
  CHECK(c.optimizer.ssm_weight_decay == 0.25);
  CHECK(c.scheduler.name == "cosine");
  CHECK(c.scheduler.warmup_steps == 100);
  CHECK(c.scheduler.min_lr_ratio == 0.1);
  CHECK(c.scheduler.step_size == 50);
  CHECK(c.scheduler.gamma == 0.5);
  CHECK(c.train.epochs == 3);
  CHECK(c.train.max_steps == 1000);
  CHECK(c.train.batch_size == 16);
  CHECK(c.train.grad_accum == 2);
  CHECK(c.train.grad_clip == 1.0);
  CHECK(c.train.log_every == 5);
  CHECK(c.train.eval_every == 200);
  CHECK(c.train.checkpoint_every == 400);
  CHECK(c.train.keep_every == 800);
  CHECK(c.train.seed == std::numeric_limits<std::uint64_t>::max());
  CHECK(c.train.device == "cpu");
  CHECK(c.train.skip_nonfinite);
  CHECK(c.train.drop_last);
  CHECK(c.run.name == "s4d_copy");
  CHECK(c.run.output_dir == "out/runs");
}

TEST_CASE("absent keys and sections keep the struct defaults", "[cpu][config]") {
  const Config c = load_config_string(kMinimal);
  CHECK(c.source == "<string>");
  Config expected;
  expected.model.name = "s4";
  expected.data.name = "templates";
  expected.optimizer.name = "adamw";
  expected.optimizer.lr = 0.001;
  expected.train.batch_size = 8;
  check_same(c, expected);
  CHECK_FALSE(c.optimizer.ssm_lr.has_value());

  // Empty optional sections and a null ssm_lr are the same as absent ones.
  const Config d = load_config_string(std::string(kMinimal) + "  \nscheduler:\nrun:\n", "<string>",
                                      {"optimizer.ssm_lr=null"});
  check_same(d, expected);
}

TEST_CASE("bad configs name file, line and column and say what was wrong", "[cpu][config]") {
  SECTION("a number that is not one") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: fast
train:
  batch_size: 8
)"),
                  "bad.yaml:7:7: ", "optimizer.lr: expected a number, got 'fast'");
  }
  SECTION("a number in quotes") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: "0.01"
train:
  batch_size: 8
)"),
                  "bad.yaml:7:7: ", "optimizer.lr: expected a number, got the string '0.01'");
  }
  SECTION("an unknown section") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimiser:
  name: adamw
  lr: 0.1
train:
  batch_size: 8
)"),
                  "bad.yaml:5:1: ",
                  "unknown key 'optimiser' (known: model, data, optimizer, scheduler, train, run)");
  }
  SECTION("an unknown key in a section") {
    require_error(config_error(R"(model:
  name: s4
  d_modle: 32
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 8
)"),
                  "bad.yaml:3:3: ", "unknown key 'model.d_modle' (known: name, d_model, n_layers");
  }
  SECTION("a name outside its set") {
    require_error(
        config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamax
  lr: 0.1
train:
  batch_size: 8
)"),
        "bad.yaml:6:9: ", "optimizer.name: expected one of adamw, adam, sgd, got 'adamax'");
  }
  SECTION("a size that must be positive") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 0
)"),
                  "bad.yaml:9:15: ", "train.batch_size: must be > 0, got 0");
  }
  SECTION("a fraction for an integer") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 1.5
)"),
                  "bad.yaml:9:15: ", "train.batch_size: expected an integer, got '1.5'");
  }
  SECTION("a negative seed") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
  seed: -1
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 8
)"),
                  "bad.yaml:5:9: ", "data.seed: expected a non-negative integer, got '-1'");
  }
  SECTION("a boolean that is not true or false") {
    require_error(config_error(R"(model:
  name: s4
  prenorm: yes
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 8
)"),
                  "bad.yaml:3:12: ", "model.prenorm: expected true or false, got 'yes'");
  }
  SECTION("a missing required key points at its section") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
train:
  batch_size: 8
)"),
                  "bad.yaml:6:3: ", "missing required key optimizer.lr");
  }
  SECTION("a missing required section points at the start") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
)"),
                  "bad.yaml:1:1: ", "missing required section train");
  }
  SECTION("YAML syntax errors") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1: 2
train:
  batch_size: 8
)"),
                  "bad.yaml:7:10: ", "YAML syntax error: ");
  }
  SECTION("a top level that is not a map") {
    require_error(config_error(R"(- model
- data
)"),
                  "bad.yaml:1:1: ", "expected a map of sections (model, data, optimizer");
  }
  SECTION("a section that is not a map") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
scheduler: cosine
train:
  batch_size: 8
)"),
                  "bad.yaml:8:12: ", "scheduler: expected a map of keys, got 'cosine'");
  }
  SECTION("a repeated key") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
  lr: 0.2
train:
  batch_size: 8
)"),
                  "bad.yaml:8:3: ", "duplicate key 'optimizer.lr' (first at bad.yaml:7:3)");
  }
  SECTION("a null name points at its key") {
    require_error(config_error(R"(model:
  name: s4
data:
  name:
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 8
)"),
                  "bad.yaml:4:3: ", "data.name: expected a string, got null");
  }
  SECTION("a list where a string belongs") {
    require_error(config_error(R"(model:
  name: [s4, s5]
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 8
)"),
                  "bad.yaml:2:9: ", "model.name: expected a string, got a list");
  }
  SECTION("a dropout of 1") {
    require_error(config_error(R"(model:
  name: s4
  dropout: 1.0
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 8
)"),
                  "bad.yaml:3:12: ", "model.dropout: must be in [0, 1), got 1.0");
  }
  SECTION("nesterov without sgd") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adam
  lr: 0.1
  nesterov: true
train:
  batch_size: 8
)"),
                  "bad.yaml:8:13: ",
                  "optimizer.nesterov: true needs name sgd and momentum > 0, got name 'adam'");
  }
  SECTION("zero epochs and no step limit") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 8
  epochs: 0
)"),
                  "bad.yaml:10:11: ", "train.epochs: must be > 0 when max_steps is 0, got 0");
  }
  SECTION("a run name with a slash") {
    require_error(config_error(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 8
run:
  name: a/b
)"),
                  "bad.yaml:11:9: ", "run.name: must be a non-empty name without '/', got 'a/b'");
  }
  SECTION("two documents") {
    require_error(config_error(R"(model:
  name: s4
---
data:
  name: templates
)"),
                  "bad.yaml:4:1: ", "expected one YAML document, got 2");
  }
  SECTION("the default name is <string>") {
    REQUIRE_THAT(error_message([] { load_config_string("model: 1"); }),
                 StartsWith("<string>:1:8: model: expected a map of keys, got '1'"));
  }
}

TEST_CASE("every range rule has its own message", "[cpu][config]") {
  // {override, message after "--set <override>: "}
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"model.name=''", "model.name: must be a non-empty name, got ''"},
      {"model.d_model=0", "model.d_model: must be > 0, got 0"},
      {"model.n_layers=-1", "model.n_layers: must be > 0, got -1"},
      {"model.d_state=0", "model.d_state: must be > 0, got 0"},
      {"model.dropout=-0.1", "model.dropout: must be in [0, 1), got -0.1"},
      {"model.norm=batch", "model.norm: expected one of layer, rms, got 'batch'"},
      {"model.pooling=max", "model.pooling: expected one of mean, last, got 'max'"},
      {"model.expand=0", "model.expand: must be > 0, got 0"},
      {"data.name=''", "data.name: must be a non-empty name, got ''"},
      {"data.seq_len=0", "data.seq_len: must be > 0, got 0"},
      {"data.d_input=0", "data.d_input: must be > 0, got 0"},
      {"data.num_classes=1", "data.num_classes: must be >= 2, got 1"},
      {"data.train_size=0", "data.train_size: must be > 0, got 0"},
      {"data.val_size=-1", "data.val_size: must be >= 0, got -1"},
      {"data.max_len=-1", "data.max_len: must be >= 0, got -1"},
      {"data.mode=hsv", "data.mode: expected one of rgb, gray, tokens, got 'hsv'"},
      {"data.test_size=0", "data.test_size: must be > 0, got 0"},
      {"data.noise=-1e-3", "data.noise: must be >= 0, got -1e-3"},
      {"optimizer.lr=0", "optimizer.lr: must be > 0, got 0"},
      {"optimizer.weight_decay=-1", "optimizer.weight_decay: must be >= 0, got -1"},
      {"optimizer.beta1=1", "optimizer.beta1: must be in [0, 1), got 1"},
      {"optimizer.beta2=-0.5", "optimizer.beta2: must be in [0, 1), got -0.5"},
      {"optimizer.eps=0", "optimizer.eps: must be > 0, got 0"},
      {"optimizer.momentum=-0.9", "optimizer.momentum: must be >= 0, got -0.9"},
      {"optimizer.ssm_lr=0", "optimizer.ssm_lr: must be > 0 when set, got 0"},
      {"optimizer.ssm_weight_decay=-2", "optimizer.ssm_weight_decay: must be >= 0, got -2"},
      {"scheduler.name=linear", "scheduler.name: expected one of constant, cosine, step, got"},
      {"scheduler.warmup_steps=-1", "scheduler.warmup_steps: must be >= 0, got -1"},
      {"scheduler.min_lr_ratio=1.5", "scheduler.min_lr_ratio: must be in [0, 1], got 1.5"},
      {"scheduler.step_size=0", "scheduler.step_size: must be > 0, got 0"},
      {"scheduler.gamma=0", "scheduler.gamma: must be in (0, 1], got 0"},
      {"scheduler.gamma=1.01", "scheduler.gamma: must be in (0, 1], got 1.01"},
      {"train.epochs=0", "train.epochs: must be > 0 when max_steps is 0, got 0"},
      {"train.max_steps=-5", "train.max_steps: must be >= 0, got -5"},
      {"train.grad_accum=0", "train.grad_accum: must be >= 1, got 0"},
      {"train.grad_clip=-1", "train.grad_clip: must be >= 0, got -1"},
      {"train.log_every=0", "train.log_every: must be >= 1, got 0"},
      {"train.eval_every=-1", "train.eval_every: must be >= 0, got -1"},
      {"train.checkpoint_every=-1", "train.checkpoint_every: must be >= 0, got -1"},
      {"train.keep_every=-1", "train.keep_every: must be >= 0, got -1"},
      {"train.device=gpu", "train.device: expected one of cpu, cuda, auto, got 'gpu'"},
      {"run.name=''", "run.name: must be a non-empty name without '/', got ''"},
      {"run.output_dir=''", "run.output_dir: must be a non-empty path, got ''"},
  };
  for (const auto& [arg, part] : cases) {
    INFO("--set " << arg);
    require_error(config_error(kMinimal, {arg}), "--set " + arg + ": " + part, part);
  }
  // The edges that are allowed.
  const Config c = load_config_string(
      kMinimal, "<string>",
      {"model.dropout=0", "data.noise=0", "data.num_classes=2", "optimizer.beta1=0",
       "optimizer.weight_decay=0", "scheduler.min_lr_ratio=1", "scheduler.gamma=1",
       "train.epochs=0", "train.max_steps=5", "train.log_every=1", "train.grad_accum=1"});
  CHECK(c.scheduler.min_lr_ratio == 1.0);
  CHECK(c.train.epochs == 0);
  CHECK(c.train.max_steps == 5);
  CHECK(load_config_string(
            kMinimal, "<string>",
            {"optimizer.name=sgd", "optimizer.momentum=0.9", "optimizer.nesterov=true"})
            .optimizer.nesterov);
  require_error(config_error(kMinimal, {"optimizer.name=sgd", "optimizer.nesterov=true"}),
                "--set optimizer.nesterov=true: ",
                "true needs name sgd and momentum > 0, got name 'sgd', momentum 0");
}

TEST_CASE("overrides replace file values and are checked the same way", "[cpu][config]") {
  const Config c =
      load_config_string(kMinimal, "<string>",
                         {"optimizer.lr=0.01", "train.max_steps=5", "run.name=smoke",
                          "scheduler.name=cosine", "optimizer.ssm_lr=2e-4", "train.max_steps=7"});
  CHECK(c.optimizer.lr == 0.01);
  CHECK(c.train.max_steps == 7);  // the last one wins
  CHECK(c.run.name == "smoke");
  CHECK(c.scheduler.name == "cosine");
  REQUIRE(c.optimizer.ssm_lr.has_value());
  CHECK(*c.optimizer.ssm_lr == 2e-4);
  CHECK(c.model.name == "s4");  // untouched

  // An override can supply what the file lacks, and replace what it got wrong.
  const Config d = load_config_string(R"(model:
  name: s4
data:
  name: templates
optimizer:
  name: adamw
  lr: fast
)",
                                      "<string>", {"optimizer.lr=0.5", "train.batch_size=4"});
  CHECK(d.optimizer.lr == 0.5);
  CHECK(d.train.batch_size == 4);

  SECTION("wrong types cite the override") {
    require_error(config_error(kMinimal, {"optimizer.lr=abc"}),
                  "--set optimizer.lr=abc: ", "optimizer.lr: expected a number, got 'abc'");
    require_error(config_error(kMinimal, {"train.batch_size=2.5"}), "--set train.batch_size=2.5: ",
                  "train.batch_size: expected an integer, got '2.5'");
    require_error(config_error(kMinimal, {"train.drop_last=1"}),
                  "--set train.drop_last=1: ", "expected true or false, got '1'");
    require_error(config_error(kMinimal, {"model.name={a: 1}"}),
                  "--set model.name={a: 1}: ", "model.name: expected a string, got a map");
  }
  SECTION("errors elsewhere in the file still cite the file") {
    require_error(config_error(R"(model:
  name: s4
  d_model: -4
data:
  name: templates
optimizer:
  name: adamw
  lr: 0.1
train:
  batch_size: 8
)",
                               {"optimizer.lr=0.2"}),
                  "bad.yaml:3:12: ", "model.d_model: must be > 0, got -4");
  }
  SECTION("unknown paths") {
    require_error(config_error(kMinimal, {"optimizer.lrr=1"}), "--set optimizer.lrr=1: ",
                  "unknown key 'optimizer.lrr' (known: name, lr, weight_decay");
    require_error(config_error(kMinimal, {"optimiser.lr=1"}), "--set optimiser.lr=1: ",
                  "unknown section 'optimiser' (known: model, data, optimizer");
    require_error(config_error(kMinimal, {"optimizer=1"}),
                  "--set optimizer=1: ", "expected a key path section.key, got 'optimizer'");
    require_error(config_error(kMinimal, {"optimizer.lr.x=1"}), "--set optimizer.lr.x=1: ",
                  "expected a key path section.key, got 'optimizer.lr.x'");
  }
  SECTION("malformed arguments") {
    require_error(config_error(kMinimal, {"optimizer.lr"}),
                  "--set optimizer.lr: ", "expected section.key=value, got no '='");
    require_error(config_error(kMinimal, {"=0.1"}),
                  "--set =0.1: ", "expected section.key=value, got an empty key path");
    require_error(config_error(kMinimal, {"optimizer.lr=[0.1"}),
                  "--set optimizer.lr=[0.1: ", "YAML syntax error: ");
  }
}

TEST_CASE("to_yaml writes every key and loads back to an equal config", "[cpu][config]") {
  Config c;
  c.model = {.name = "mamba",
             .d_model = 96,
             .n_layers = 6,
             .d_state = 8,
             .dropout = 0.1,
             .norm = "rms",
             .prenorm = false,
             .pooling = "last",
             .expand = 1.0 / 3.0};
  c.data = {.name = "listops",
            .path = "data dir/with: colon # and \"quotes\"",
            .seq_len = 2048,
            .d_input = 3,
            .num_classes = 10,
            .train_size = 96000,
            .val_size = 2000,
            .test_size = 2500,
            .noise = 0.30000000000000004,
            .seed = 99,
            .mode = "tokens",
            .permutation = "random",
            .augment = true,
            .max_len = 2000,
            .truncate = true,
            .vocab_size = 20,
            .num_tokens = 7,
            .pad = "fixed",
            .pad_length = 2048,
            .prefetch = 0};
  c.optimizer = {.name = "sgd",
                 .lr = 3e-4,
                 .weight_decay = 0.05,
                 .beta1 = 0.85,
                 .beta2 = 0.98,
                 .eps = 1.5e-9,
                 .momentum = 0.9,
                 .nesterov = true,
                 .ssm_lr = 1e-3 / 7.0,
                 .ssm_weight_decay = 1e-5};
  c.scheduler = {
      .name = "step", .warmup_steps = 250, .min_lr_ratio = 0.05, .step_size = 300, .gamma = 0.7};
  c.train = {.epochs = 20,
             .max_steps = 12345,
             .batch_size = 50,
             .grad_accum = 4,
             .grad_clip = 0.25,
             .log_every = 7,
             .eval_every = 500,
             .checkpoint_every = 1000,
             .keep_every = 5000,
             .seed = 12345678901234567890ull,
             .device = "cuda",
             .skip_nonfinite = true,
             .drop_last = true};
  c.run = {.name = "true", .output_dir = "/tmp/ssm runs"};

  const std::string yaml = to_yaml(c);
  INFO(yaml);
  const Config back = load_config_string(yaml);
  check_same(back, c);
  CHECK(to_yaml(back) == yaml);

  // The order is fixed, and an unset ssm_lr is left out.
  CHECK(yaml.find("model:") < yaml.find("data:"));
  CHECK(yaml.find("optimizer:") < yaml.find("scheduler:"));
  CHECK(yaml.find("train:") < yaml.find("run:"));
  const std::string defaults = to_yaml(load_config_string(kMinimal));
  CHECK(defaults.find("ssm_lr") == std::string::npos);
  CHECK_THAT(defaults, Contains("  warmup_steps: 0\n"));
  CHECK_THAT(defaults, Contains("  path: \"\"\n"));
  CHECK_THAT(defaults, Contains("  lr: 0.001\n"));
  check_same(load_config_string(defaults), load_config_string(kMinimal));
}

TEST_CASE("config files: errors carry the path, a missing file says so", "[cpu][config]") {
  const std::string missing = "/nonexistent/ssm/config.yaml";
  REQUIRE_THAT(error_message([&] { load_config(missing); }),
               Contains(missing + ": cannot open config file"));
  REQUIRE_THROWS_AS(load_config(missing), ConfigError);

  const auto dir = std::filesystem::temp_directory_path() / "ssm_test_config";
  std::filesystem::create_directories(dir);
  const std::string good = (dir / "good.yaml").string();
  const std::string bad = (dir / "bad.yaml").string();
  std::ofstream(good) << kMinimal;
  std::ofstream(bad) << "model:\n  name: s4\ndata:\n  name: templates\n"
                        "optimizer:\n  name: adamw\n  lr: fast\ntrain:\n  batch_size: 8\n";

  const Config c = load_config(good, {"train.batch_size=3"});
  CHECK(c.source == good);
  CHECK(c.train.batch_size == 3);
  CHECK(c.optimizer.lr == 0.001);
  require_error(error_message([&] { load_config(bad); }),
                bad + ":7:7: ", "optimizer.lr: expected a number, got 'fast'");
  REQUIRE_THAT(error_message([&] { load_config(dir.string()); }),
               StartsWith(dir.string() + ": cannot open config file"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("every configs/*.yaml in the source tree loads", "[cpu][config]") {
  const std::filesystem::path dir = std::filesystem::path(SSM_SOURCE_DIR) / "configs";
  REQUIRE(std::filesystem::is_directory(dir));
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    const std::string path = entry.path().string();
    INFO(path);
    const Config c = load_config(path);
    CHECK(c.source == path);
  }
}
