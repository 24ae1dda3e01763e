// train: trains the model a YAML config describes.
//   train --config configs/smoke.yaml [--set key.path=value ...] [--resume PATH|auto]
//         [--device cpu|cuda|auto]
// Bad input (config, flags, checkpoint) prints one line and exits with status 2.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "apps/omp_defaults.h"
#include "train/config.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  CLI::App app{
      "Trains the model a YAML config describes; writes config.yaml, metrics.jsonl and HDF5 "
      "checkpoints (last.h5, best.h5) to run.output_dir/run.name.",
      "train"};
  std::string config_path, resume, device;
  std::vector<std::string> overrides;
  app.add_option("--config", config_path, "YAML config file")->required();
  app.add_option("--set", overrides, "override a config key: key.path=value (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--resume", resume,
                 "continue from a checkpoint: a path, or 'auto' for the newest valid one in the "
                 "run folder (a fresh start when there is none)");
  app.add_option("--device", device, "cpu, cuda or auto (overrides train.device)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "train: %s (see --help)\n", e.what());
    return 2;
  }
  const bool terminal = isatty(STDOUT_FILENO) != 0;
  try {
    const ssm::Config config = ssm::load_config(config_path, overrides);
    ssm::TrainOptions options;
    options.resume = resume;
    options.device = device;
    options.progress_bar = terminal;
    ssm::train(config, options);
    return 0;
  } catch (const std::exception& e) {
    std::cout << (terminal ? "\n" : "") << std::flush;  // ends a progress bar line
    std::fprintf(stderr, "train: %s\n", e.what());
    return 2;
  }
}
