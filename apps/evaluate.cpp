// evaluate: loss and accuracy of a checkpoint on a split of the config's data.
//   evaluate --config configs/smoke.yaml --checkpoint runs/smoke/best.h5
//            [--split val|test] [--json] [--device cpu|cuda|auto]
// Bad input prints one line and exits with status 2.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/omp_defaults.h"
#include "data/registry.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  CLI::App app{"Prints the loss and accuracy of a checkpoint on a split of the config's data.",
               "evaluate"};
  std::string config_path, checkpoint, split = "test", device;
  std::vector<std::string> overrides;
  bool as_json = false;
  app.add_option("--config", config_path, "YAML config file the checkpoint was trained with")
      ->required();
  app.add_option("--checkpoint", checkpoint, "HDF5 checkpoint (e.g. runs/<name>/best.h5)")
      ->required();
  app.add_option("--split", split, "val or test (default test)")
      ->check(CLI::IsMember({"val", "test"}));
  app.add_option("--set", overrides, "override a config key: key.path=value (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_flag("--json", as_json, "print one JSON object");
  app.add_option("--device", device, "cpu, cuda or auto (overrides train.device)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "evaluate: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    const ssm::Config config = ssm::load_config(config_path, overrides);
    const ssm::Device dev = ssm::resolve_device(device.empty() ? config.train.device : device);
    const ssm::data::Splits splits = ssm::data::make_datasets(config.data);
    const auto& ds = split == "val" ? splits.val : splits.test;
    const ssm::Checkpoint ck = ssm::read_checkpoint(checkpoint);
    ssm::Generator dropout_gen(config.train.seed, 1);  // unused in eval mode
    auto model = ssm::build_model(config, *ds, &dropout_gen);
    model->to(dev);
    model->load_state_dict(ck.model);
    const ssm::EvalResult r = ssm::evaluate_model(*model, *ds, config.train.batch_size, dev);
    if (as_json) {
      const nlohmann::json j = {{"checkpoint", checkpoint}, {"step", ck.step},
                                {"split", split},           {"loss", r.loss},
                                {"accuracy", r.accuracy},   {"examples", r.examples}};
      std::cout << j.dump() << '\n';
    } else {
      std::printf("%s (step %lld) on %s: loss %.4f accuracy %.4f (%lld examples)\n",
                  checkpoint.c_str(), static_cast<long long>(ck.step), split.c_str(), r.loss,
                  r.accuracy, static_cast<long long>(r.examples));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evaluate: %s\n", e.what());
    return 2;
  }
}
