// evaluate: loss and accuracy of a checkpoint on a split of the config's data.
//   evaluate --config configs/smoke.yaml --checkpoint runs/smoke/best.h5
//            [--split val|test] [--json] [--device cpu|cuda|auto]
//            [--dump FILE.h5 [--dump-count N]]
// --dump writes the first N evaluated examples (default 256) to an HDF5 file:
// x (N, L, D) float32 or (N, L) int64 tokens, zero-padded to the longest
// (`lengths` (N) says how much of each is real), labels (N) int64, logits
// (N, C) float32, with the checkpoint, split and config as attributes.
// Bad input prints one line and exits with status 2.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/omp_defaults.h"
#include "autograd/ops/shape.h"
#include "autograd/tape.h"
#include "data/registry.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"

namespace {

// The first n examples of ds in loader order, their logits from `model`
// (and, for a sequence-output task, the target tokens as labels).
ssm::StateDict dump_examples(ssm::Model& model, const ssm::data::Dataset& ds,
                             std::int64_t batch_size, ssm::Device device, std::int64_t n) {
  using namespace ssm;
  NoGradGuard no_grad;
  model.eval();
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = false;
  lo.pad = data::Pad::Longest;
  data::DataLoader loader(std::shared_ptr<const data::Dataset>(&ds, [](auto*) {}), lo);
  std::vector<data::Batch> batches;
  std::vector<Tensor> logits;
  std::int64_t got = 0, longest = 0;
  data::Batch b;
  while (got < n && loader.next(b)) {
    const std::int64_t take = std::min(b.size(), n - got);
    data::Batch part;
    part.x = b.x.narrow(0, 0, take);
    // Sequence-output tasks: the labels are the target tokens (B, n) and the
    // logits those of the last n positions (B, n, C).
    const bool seq = ds.x2_is_target();
    part.y = (seq ? b.x2 : b.y).narrow(0, 0, take);
    part.lengths = b.lengths.narrow(0, 0, take);
    Tensor out;
    if (seq) {
      out = model.forward_outputs(b.x.to(device), b.lengths.to(device), b.x2.size(1));  // (B, n, C)
    } else if (b.x2.defined()) {  // a paired task: the two-tower head
      out = model.forward_pair(b.x.to(device), b.lengths.to(device), b.x2.to(device),
                               b.lengths2.to(device));  // (B, C)
    } else {
      out = model.forward(b.x.to(device), b.lengths.to(device));  // (B, C)
    }
    logits.push_back(out.narrow(0, 0, take).to(Device::cpu()));
    longest = std::max(longest, part.x.size(1));
    batches.push_back(part);
    got += take;
  }
  SSM_CHECK(got > 0, "evaluate", "the split has no examples to dump");
  Shape xs = batches.front().x.shape();
  xs[0] = got;
  xs[1] = longest;
  Tensor x = Tensor::zeros(xs, batches.front().x.dtype());  // (N, L[, D])
  std::int64_t at = 0;
  for (const auto& p : batches) {
    x.narrow(0, at, p.x.size(0)).narrow(1, 0, p.x.size(1)).copy_(p.x);
    at += p.x.size(0);
  }
  std::vector<Tensor> ys, ls;
  for (const auto& p : batches) {
    ys.push_back(p.y);
    ls.push_back(p.lengths);
  }
  return {{"x", x}, {"lengths", cat(ls, 0)}, {"labels", cat(ys, 0)}, {"logits", cat(logits, 0)}};
}

}  // namespace

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  CLI::App app{"Prints the loss and accuracy of a checkpoint on a split of the config's data.",
               "evaluate"};
  std::string config_path, checkpoint, split = "test", device;
  std::vector<std::string> overrides;
  bool as_json = false;
  std::string dump;
  std::int64_t dump_count = 256;
  app.add_option("--config", config_path, "YAML config file the checkpoint was trained with")
      ->required();
  app.add_option("--checkpoint", checkpoint, "HDF5 checkpoint (e.g. runs/<name>/best.h5)")
      ->required();
  app.add_option("--split", split, "val or test (default test)")
      ->check(CLI::IsMember({"val", "test"}));
  app.add_option("--set", overrides, "override a config key: key.path=value (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_flag("--json", as_json, "print one JSON object");
  app.add_option("--dump", dump,
                 "write the first --dump-count examples (x, lengths, labels, logits) to this HDF5 "
                 "file");
  app.add_option("--dump-count", dump_count, "examples to dump (default 256)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
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
    if (!dump.empty()) {
      const ssm::StateDict d = dump_examples(*model, *ds, config.train.batch_size, dev, dump_count);
      ssm::write_hdf5_tensors(dump, d,
                              {{"checkpoint", checkpoint},
                               {"split", split},
                               {"step", std::to_string(ck.step)},
                               {"config", ssm::to_yaml(config)}});
    }
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
