// s4d_example: the reference S4 repository's standalone S4D classifier, with
// its parameter names and shapes and its initial values; and, where
// Debian's python3-torch is installed, the PyTorch model of
// scripts/reference/s4d_example_check.py loaded from an ssmkit checkpoint
// gives the logits `evaluate --dump` wrote.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>

#include "layers/models/model.h"
#include "tests/testing.h"

using namespace ssm;
namespace fs = std::filesystem;

TEST_CASE("s4d_example: the reference example's parameter names, shapes and init",
          "[cpu][s4d_example]") {
  ModelConfig c;
  c.name = "s4d_example";
  c.d_model = 8;
  c.n_layers = 2;
  c.d_state = 6;
  ModelIO io;
  io.d_input = 3;
  io.num_classes = 5;
  Generator gen(1);
  auto model = make_model(c, io, gen, nullptr);
  std::map<std::string, Shape> got;
  std::map<std::string, Tensor> tensors;
  for (const NamedParameter& p : model->named_parameters()) {
    got[p.name] = p.tensor.shape();
    tensors[p.name] = p.tensor;
  }
  std::map<std::string, Shape> want = {{"encoder.weight", {8, 3}},
                                       {"encoder.bias", {8}},
                                       {"decoder.weight", {5, 8}},
                                       {"decoder.bias", {5}}};
  for (const std::string i : {"0", "1"}) {
    const std::string l = "s4_layers." + i + ".";
    want[l + "kernel.log_dt"] = {8};
    want[l + "kernel.C"] = {8, 3, 2};
    want[l + "kernel.log_A_real"] = {8, 3};
    want[l + "kernel.A_imag"] = {8, 3};
    want[l + "D"] = {8};
    want[l + "output_linear.0.weight"] = {16, 8, 1};
    want[l + "output_linear.0.bias"] = {16};
    want["norms." + i + ".weight"] = {8};
    want["norms." + i + ".bias"] = {8};
  }
  CHECK(got == want);
  const auto log_a = tensors["s4_layers.0.kernel.log_A_real"].to_vector<double>();
  for (double v : log_a) CHECK(v == Approx(std::log(0.5)));
  const auto a_imag = tensors["s4_layers.1.kernel.A_imag"].to_vector<double>();
  for (std::size_t k = 0; k < a_imag.size(); ++k) {
    CHECK(a_imag[k] == Approx(std::numbers::pi * static_cast<double>(k % 3)));
  }
  for (double v : tensors["s4_layers.0.kernel.log_dt"].to_vector<double>()) {
    CHECK(v >= std::log(1e-3));
    CHECK(v < std::log(1e-1));
  }
  // The kernel's learning-rate group: log_dt, log_A_real, A_imag (not C), as the reference.
  for (const NamedParameter& p : model->named_parameters()) {
    const bool ssm = p.name.find("log_dt") != std::string::npos ||
                     p.name.find("log_A_real") != std::string::npos ||
                     p.name.find("A_imag") != std::string::npos;
    INFO(p.name);
    CHECK(p.has_tag("ssm") == ssm);
  }
  c.d_state = 5;
  Generator g2(1);
  CHECK(ssm::testing::error_message([&] { make_model(c, io, g2, nullptr); }).find("even") !=
        std::string::npos);
}

TEST_CASE("s4d_example: PyTorch's reference-structured model gives ssmkit's logits",
          "[cpu][s4d_example][cli]") {
  ssm::testing::TempDir tmp("s4d_example");
  const auto [has_torch, probe] = ssm::testing::run_command(
      "/usr/bin/python3 -c 'import torch, h5py'", tmp.path() / "probe.txt");
  (void)probe;
  if (has_torch != 0) {
    WARN(
        "skipped: /usr/bin/python3 with torch and h5py is not installed "
        "(scripts/install_deps.sh --bench)");
    return;
  }
  const fs::path cfg = tmp.path() / "c.yaml";
  std::ofstream(cfg) << R"(model:
  name: s4d_example
  d_model: 6
  n_layers: 2
  d_state: 8
  prenorm: false
data:
  name: templates
  seq_len: 30
  d_input: 2
  num_classes: 3
  train_size: 64
  val_size: 16
  test_size: 16
optimizer:
  name: adamw
  lr: 0.01
train:
  epochs: 1
  batch_size: 16
run:
  name: r
)";
  const std::string bin = SSM_BIN_DIR;
  const std::string run = (tmp.path() / "r").string();
  const auto [rc, out] = ssm::testing::run_command(
      bin + "/train --config " + cfg.string() + " --set run.output_dir=" + tmp.path().string(),
      tmp.path() / "train.txt");
  INFO(out);
  REQUIRE(rc == 0);
  const std::string dump = (tmp.path() / "dump.h5").string();
  const auto [rc2, out2] =
      ssm::testing::run_command(bin + "/evaluate --config " + cfg.string() + " --checkpoint " +
                                    run + "/last.h5 --dump " + dump,
                                tmp.path() / "eval.txt");
  INFO(out2);
  REQUIRE(rc2 == 0);
  const auto [rc3, out3] = ssm::testing::run_command(
      "/usr/bin/python3 " + std::string(SSM_SOURCE_DIR) +
          "/scripts/reference/s4d_example_check.py " + run + "/last.h5 " + dump,
      tmp.path() / "check.txt");
  INFO(out3);
  CHECK(rc3 == 0);
  CHECK(out3.find("-> ok") != std::string::npos);
}
