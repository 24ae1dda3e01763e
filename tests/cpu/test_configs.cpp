// Every config in configs/ trains one step with tiny overrides (small
// synthetic splits, batch 4, no intermediate evaluation) and the run finishes
// with a test metric, so that no config rots as the code moves. File datasets
// (sFashion-MNIST) read the real files that scripts/install_deps.sh installs.
#include <filesystem>

#include "tests/testing.h"

namespace fs = std::filesystem;
using ssm::testing::run_command;
using ssm::testing::TempDir;

TEST_CASE("every config in configs/ trains one step and reports a test metric",
          "[cpu][configs][cli]") {
  const fs::path dir = fs::path(SSM_SOURCE_DIR) / "configs";
  std::vector<fs::path> configs;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".yaml") configs.push_back(e.path());
  }
  std::sort(configs.begin(), configs.end());
  REQUIRE(configs.size() >= 4);
  TempDir tmp("configs");
  const std::string bin = SSM_BIN_DIR;
  for (const fs::path& cfg : configs) {
    INFO(cfg.filename().string());
    const std::string cmd = bin + "/train --config " + cfg.string() +
                            " --set train.max_steps=1 --set train.batch_size=4"
                            " --set train.eval_every=0 --set train.log_every=1"
                            " --set data.train_size=8 --set data.val_size=8 --set data.test_size=8"
                            " --set run.output_dir=" +
                            tmp.path().string();
    const auto [rc, out] = run_command(cmd, tmp.path() / "out.txt");
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("done: 1 steps") != std::string::npos);
    CHECK(out.find("test (") != std::string::npos);
  }
}
