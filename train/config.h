#pragma once
// The training configuration: a YAML file mapped onto typed structs.
//
//   Config cfg = load_config("configs/smoke.yaml", {"optimizer.lr=0.01"});
//
// Every key is checked: an unknown key, a wrong type, a missing required
// value or a value out of range throws ConfigError, whose message is
// `file:line:col: message` (line and column 1-based, pointing at the key or
// value at fault). An override `key.path=value` is parsed as YAML and checked
// the same way; its errors read `--set key.path=value: message`.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/registry.h"        // DataConfig
#include "layers/models/model.h"  // ModelConfig

namespace ssm {

class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error(what) {}
};

using data::DataConfig;

struct OptimizerConfig {
  std::string name = "adamw";  // adamw | adam | sgd
  double lr = 1e-3;
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw
  double momentum = 0.0;                          // sgd
  bool nesterov = false;                          // sgd (needs momentum > 0)
  // Parameters tagged "ssm": their own learning rate (default: lr) and weight decay.
  std::optional<double> ssm_lr;
  double ssm_weight_decay = 0.0;
};

struct SchedulerConfig {
  std::string name = "constant";  // constant | cosine | step
  std::int64_t warmup_steps = 0;  // linear warmup from 0 (all schedulers)
  double min_lr_ratio = 0.0;      // cosine: floor as a fraction of the base lr
  std::int64_t step_size = 1000;  // step: decay every step_size steps
  double gamma = 0.1;             // step: decay factor
};

struct TrainConfig {
  std::int64_t epochs = 1;     // used when max_steps is 0
  std::int64_t max_steps = 0;  // optimizer steps; 0: epochs decide
  std::int64_t batch_size = 32;
  std::int64_t grad_accum = 1;        // micro-batches per optimizer step
  double grad_clip = 0.0;             // global-norm clipping; 0: off
  std::int64_t log_every = 10;        // optimizer steps between logged lines
  std::int64_t eval_every = 0;        // optimizer steps between evaluations; 0: once per epoch
  std::int64_t checkpoint_every = 0;  // steps between last.h5 writes; 0: at each evaluation
  std::int64_t keep_every = 0;        // also keep step_<N>.h5 every N steps; 0: never
  std::uint64_t seed = 0;
  std::string device = "auto";  // cpu | cuda | auto
  bool skip_nonfinite = false;  // skip steps with NaN/Inf loss or gradients instead of stopping
  bool drop_last = false;
};

struct RunConfig {
  std::string name = "run";
  std::string output_dir = "runs";  // the run folder is output_dir/name
};

struct Config {
  ModelConfig model;
  DataConfig data;
  OptimizerConfig optimizer;
  SchedulerConfig scheduler;
  TrainConfig train;
  RunConfig run;
  std::string source;  // the file it was read from ("<string>" for load_config_string)
};

// Reads and checks a config file, then applies overrides in order.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same for YAML text; `name` stands in for the file name in messages.
Config load_config_string(const std::string& yaml, const std::string& name = "<string>",
                          const std::vector<std::string>& overrides = {});
// The resolved config as YAML (every key, defaults filled in); loading it
// back gives an equal Config.
std::string to_yaml(const Config& config);

}  // namespace ssm
