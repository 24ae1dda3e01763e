// The Mamba block and Vision Mamba's bidirectional block on the GPU: the
// same block (same seed) on the CPU is the oracle for the output and for the
// gradients of x and of every parameter; on the GPU the scan equals the
// recurrent view and the step-by-step view; gradients are bit-identical
// from run to run. Skipped with a message when no GPU is visible.
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "layers/ssm/mamba.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

struct BlockRun {
  Tensor y;                             // (B, L, d_model), on the CPU
  Tensor gx;                            // (B, L, d_model), on the CPU
  std::map<std::string, Tensor> grads;  // parameter name -> gradient, on the CPU
};

// One forward + backward of sum(y * r) through `block` on `device`.
BlockRun run_block(Mamba& block, const Tensor& x_host, const Tensor& r_host, Device device) {
  for (const NamedParameter& p : block.named_parameters()) p.tensor.zero_grad();
  Tensor x = x_host.to(device);
  if (device.is_cpu()) x = x_host.clone();
  x.set_requires_grad(true);
  const Tensor y = block.forward(x);
  backward(sum(mul(y, r_host.to(device))));
  BlockRun run{y.to(Device::cpu()), x.grad().to(Device::cpu()), {}};
  for (const NamedParameter& p : block.named_parameters()) {
    if (p.tensor.grad().defined()) run.grads[p.name] = p.tensor.grad().to(Device::cpu());
  }
  return run;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  const auto va = a.contiguous().to_vector<float>(), vb = b.contiguous().to_vector<float>();
  return va.size() == vb.size() &&
         std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("Mamba on CUDA: output and every gradient equal the CPU block's", "[cuda][mamba]") {
  if (!ssm::testing::cuda_or_skip()) return;
  for (const bool bidirectional : {false, true}) {
    INFO((bidirectional ? "bidirectional" : "causal"));
    MambaOptions o;
    o.bidirectional = bidirectional;
    Generator g_cpu(11), g_gpu(11);
    Mamba cpu_block(24, o, g_cpu);
    Mamba gpu_block(24, o, g_gpu);
    gpu_block.to(Device::cuda());
    Generator gen(3);
    const Tensor x = randn({3, 77, 24}, DType::Float32, Device::cpu(), gen);  // (B, L, D)
    const Tensor r = randn({3, 77, 24}, DType::Float32, Device::cpu(), gen);  // (B, L, D)
    const BlockRun cpu = run_block(cpu_block, x, r, Device::cpu());
    const BlockRun gpu = run_block(gpu_block, x, r, Device::cuda());
    CHECK(rel_error(gpu.y, cpu.y) < 1e-4);
    CHECK(rel_error(gpu.gx, cpu.gx) < 1e-3);
    REQUIRE(gpu.grads.size() == cpu.grads.size());
    for (const auto& [name, g] : cpu.grads) {
      INFO("gradient of " << name);
      REQUIRE(gpu.grads.count(name) == 1);
      CHECK(rel_error(gpu.grads.at(name), g) < 1e-3);
    }
  }
}

TEST_CASE("Mamba on CUDA: scan equals the recurrent and the step views", "[cuda][mamba]") {
  if (!ssm::testing::cuda_or_skip()) return;
  for (const bool bidirectional : {false, true}) {
    INFO((bidirectional ? "bidirectional" : "causal"));
    MambaOptions o;
    o.bidirectional = bidirectional;
    Generator gen(7);
    Mamba block(16, o, gen);
    block.to(Device::cuda());
    const Tensor x = randn({2, 64, 16}, DType::Float32, Device::cpu(), gen).to(Device::cuda());
    Tensor scan;
    {
      NoGradGuard ng;
      scan = block.forward(x);
    }
    NoGradGuard ng;
    const Tensor rec = block.forward_recurrent(x);
    CHECK(rel_error(rec.to(Device::cpu()), scan.to(Device::cpu())) < 1e-4);
    if (!bidirectional) {
      MambaState state = block.default_state(2);
      CHECK(state.ssm.device().is_cuda());
      for (std::int64_t t = 0; t < 8; ++t) {
        const Tensor y_t = block.step(x.select(1, t).contiguous(), state);
        CHECK(rel_error(y_t.to(Device::cpu()), scan.select(1, t).contiguous().to(Device::cpu())) <
              1e-4);
      }
    }
  }
}

TEST_CASE("Mamba on CUDA: gradients are bit-identical from run to run", "[cuda][mamba]") {
  if (!ssm::testing::cuda_or_skip()) return;
  MambaOptions o;
  Generator gen(5);
  Mamba block(32, o, gen);
  block.to(Device::cuda());
  const Tensor x = randn({4, 300, 32}, DType::Float32, Device::cpu(), gen);  // (B, L, D)
  const Tensor r = randn({4, 300, 32}, DType::Float32, Device::cpu(), gen);  // (B, L, D)
  const BlockRun first = run_block(block, x, r, Device::cuda());
  for (int k = 0; k < 3; ++k) {
    const BlockRun again = run_block(block, x, r, Device::cuda());
    CHECK(bit_equal(again.gx, first.gx));
    for (const auto& [name, g] : first.grads) {
      INFO("gradient of " << name);
      CHECK(bit_equal(again.grads.at(name), g));
    }
  }
}
