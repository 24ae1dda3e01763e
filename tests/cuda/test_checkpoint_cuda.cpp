// Checkpoints of CUDA tensors: written from the device (contiguous and
// strided views), read back as CPU tensors with the same values bit for bit.
// Skipped with a message when no GPU is visible.
#include <filesystem>
#include <random>

#include "tests/testing.h"
#include "train/checkpoint.h"

using namespace ssm;
using ssm::testing::cuda_or_skip;
using ssm::testing::random_tensor;

TEST_CASE("CUDA tensors are saved through the host and read back as CPU tensors",
          "[cuda][checkpoint]") {
  if (!cuda_or_skip()) return;
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("ssm_checkpoint_cuda_" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  const Tensor w = random_tensor({4, 6}, 1, -1, 1, DType::Float32, false);
  const Tensor m = random_tensor({6, 4}, 2);
  Checkpoint ck;
  ck.model.emplace_back("w", w.to(Device::cuda()));
  ck.model.emplace_back("w_t", w.to(Device::cuda()).transpose(0, 1));  // strided device view
  ck.optimizer.tensors.emplace_back("w/exp_avg", m.to(Device::cuda()));
  const std::string path = (dir / "ck.h5").string();
  write_checkpoint(path, ck);
  const Checkpoint back = read_checkpoint(path);
  fs::remove_all(dir);
  REQUIRE(back.model.size() == 2);
  CHECK(back.model[0].second.device() == Device::cpu());
  CHECK(back.model[0].second.to_vector<float>() == w.to_vector<float>());
  CHECK(back.model[1].second.shape() == Shape{6, 4});
  CHECK(back.model[1].second.to_vector<float>() == w.transpose(0, 1).to_vector<float>());
  REQUIRE(back.optimizer.tensors.size() == 1);
  CHECK(back.optimizer.tensors[0].second.to_vector<double>() == m.to_vector<double>());
}
