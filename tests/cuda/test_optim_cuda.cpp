// The optimizer and gradient clipping on CUDA parameters equal the CPU ones:
// the Adam(W) kernel does the CPU's arithmetic (the same fused multiply-adds,
// IEEE division and square root), so parameters and moments agree bit for
// bit after several steps; the gradient norm is summed in float64 on both.
#include "tests/testing.h"
#include "train/optim.h"

using namespace ssm;
using ssm::testing::cuda_or_skip;
using ssm::testing::random_tensor;

namespace {

struct Params {
  std::vector<NamedParameter> named;
  std::vector<Tensor> tensors;
};

Params make_params(Device device) {
  Params p;
  const std::vector<Shape> shapes = {{64, 33}, {33}, {1}, {70000}, {3, 5, 7}};
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    Tensor t = random_tensor(shapes[i], 100 + i, -1, 1, DType::Float32, false).to(device);
    t.set_requires_grad(true);
    p.named.push_back({std::string("p").append(std::to_string(i)), t, {}});
    p.tensors.push_back(t);
  }
  return p;
}

void set_grads(Params& p, int step) {
  for (std::size_t i = 0; i < p.tensors.size(); ++i) {
    if (step == 1 && i == 2) continue;  // a parameter without a gradient this step
    const Tensor& t = p.tensors[i];
    Tensor g = random_tensor(t.shape(), 1000 * step + i, -2, 2, DType::Float32, false);
    t.set_grad(g.to(t.device()));
  }
}

}  // namespace

TEST_CASE("AdamW and Adam on CUDA parameters equal the CPU step for step", "[cuda][optim]") {
  if (!cuda_or_skip()) return;
  for (const std::string name : {"adamw", "adam"}) {
    INFO(name);
    OptimizerConfig c;
    c.name = name;
    c.lr = 3e-3;
    c.weight_decay = 0.1;
    Params cpu = make_params(Device::cpu()), gpu = make_params(Device::cuda());
    auto oc = make_optimizer(cpu.named, c), og = make_optimizer(gpu.named, c);
    for (int step = 0; step < 4; ++step) {
      set_grads(cpu, step);
      set_grads(gpu, step);
      CHECK(clip_grad_norm(gpu.tensors, 5.0) ==
            Approx(clip_grad_norm(cpu.tensors, 5.0)).epsilon(1e-12));
      oc->step();
      og->step();
      oc->zero_grad();
      og->zero_grad();
    }
    for (std::size_t i = 0; i < cpu.tensors.size(); ++i) {
      CHECK(gpu.tensors[i].to(Device::cpu()).to_vector<float>() ==
            cpu.tensors[i].to_vector<float>());
    }
    const OptimizerState sc = oc->state(), sg = og->state();
    REQUIRE(sc.tensors.size() == sg.tensors.size());
    for (std::size_t k = 0; k < sc.tensors.size(); ++k) {
      INFO(sc.tensors[k].first);
      CHECK(sg.tensors[k].second.to_vector<float>() == sc.tensors[k].second.to_vector<float>());
    }
    CHECK(sg.counters == sc.counters);
  }
}

TEST_CASE("SGD on CUDA parameters is refused with a clear error", "[cuda][optim]") {
  if (!cuda_or_skip()) return;
  OptimizerConfig c;
  c.name = "sgd";
  Params gpu = make_params(Device::cuda());
  auto o = make_optimizer(gpu.named, c);
  set_grads(gpu, 0);
  CHECK_THROWS_WITH(o->step(), Catch::Contains("[sgd]") && Catch::Contains("CUDA"));
}

TEST_CASE("train --device cuda runs the smoke config and evaluate reads it back",
          "[cuda][train][cli]") {
  if (!cuda_or_skip()) return;
  ssm::testing::TempDir tmp("train_cuda");
  const std::string bin = SSM_BIN_DIR;
  const auto log = tmp.path() / "out.txt";
  const std::string cfg = std::string(SSM_SOURCE_DIR) + "/configs/smoke.yaml";
  const auto [rc, out] = ssm::testing::run_command(
      bin + "/train --config " + cfg +
          " --device cuda --set train.epochs=2 --set run.output_dir=" + tmp.path().string(),
      log);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("on cuda") != std::string::npos);
  const auto [rc2, out2] =
      ssm::testing::run_command(bin + "/evaluate --config " + cfg + " --device cuda --checkpoint " +
                                    (tmp.path() / "smoke" / "best.h5").string(),
                                log);
  INFO(out2);
  CHECK(rc2 == 0);
}
