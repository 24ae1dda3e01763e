// Every config in configs/ trains one step with tiny overrides (small
// synthetic splits, batch 4, no intermediate evaluation) and the run finishes
// with a test metric, so that no config rots as the code moves. File datasets
// (sFashion-MNIST) read the real files that scripts/install_deps.sh installs.
// Configs whose data files are not on this machine (the published recipes on
// sCIFAR, MNIST, LRA) are skipped with a WARN naming the missing file, but
// only when the run stopped at the data loader's missing-file message: the
// config itself must have loaded (no config error "file:line:col" or
// "--set ..." in the output).
#include <filesystem>
#include <string>

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
    // The data loaders' wording for a file that is not there: "<path> not
    // found" (CIFAR, MNIST IDX, Pathfinder metadata) or "missing file <path>"
    // (the LRA TSV files).
    const std::size_t missing = out.find("missing file ") != std::string::npos
                                    ? out.find("missing file ")
                                    : out.find(" not found");
    const bool config_error = out.find(cfg.string() + ":") != std::string::npos ||
                              out.find(": --set ") != std::string::npos;
    if (rc != 0 && missing != std::string::npos && !config_error) {
      const std::size_t line_start = out.rfind('\n', missing);
      const std::size_t from = line_start == std::string::npos ? 0 : line_start + 1;
      const std::size_t line_end = out.find('\n', missing);
      const std::string line =
          out.substr(from, line_end == std::string::npos ? std::string::npos : line_end - from);
      WARN("skipped " << cfg.filename().string() << ": its data is not on this machine (" << line
                      << ")");
      continue;
    }
    CHECK_FALSE(config_error);
    CHECK(rc == 0);
    CHECK(out.find("done: 1 steps") != std::string::npos);
    CHECK(out.find("test (") != std::string::npos);
  }
}
