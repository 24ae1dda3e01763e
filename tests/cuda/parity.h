#pragma once
// The CPU-versus-CUDA parity harness. A case names an op, the shapes and value
// ranges of its inputs, which inputs are indices, and a tolerance; run_parity
// builds the inputs once on the CPU (seeded), copies them to the GPU, runs the
// op forward on both devices, then backward from the same random upstream
// gradient R (the scalar sum(y * R) for every output y), and compares every
// output and every input gradient:
//   max |cuda - cpu| <= tol * max(1, max |cpu|).
// The CPU kernels are the oracle. Each family's table lives in
// tests/cuda/parity_<family>.cpp (ops are the ssm:: functions of autograd/ops/); a case list runs
// with one TEST_CASE so that the log names the failing case. Skipped with a message when no GPU is
// visible.
#include <algorithm>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "tests/testing.h"

namespace ssm::testing {

struct ParityInput {
  Shape shape;
  double lo = -1.0, hi = 1.0;  // uniform range (index inputs: integers in [lo, hi))
  bool index = false;          // int64 input (no gradient)
  bool grad = true;            // float input that gets a gradient
};

using ParityFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

struct ParityCase {
  std::string name;  // "op shape ..." as it should appear in the log
  std::vector<ParityInput> inputs;
  ParityFn f;
  double tol = 1e-5;
  bool backward = true;
};

inline std::vector<Tensor> make_parity_inputs(const ParityCase& c, std::uint64_t seed) {
  std::vector<Tensor> xs;
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    const ParityInput& in = c.inputs[i];
    Tensor t = random_tensor(in.shape, seed + 7919 * i, in.lo, in.hi, DType::Float64, false);
    if (in.index) {
      auto v = t.to_vector<double>();
      std::vector<std::int64_t> idx(v.size());
      for (std::size_t k = 0; k < v.size(); ++k)
        idx[k] = static_cast<std::int64_t>(std::floor(v[k]));
      xs.push_back(Tensor::from_vector<std::int64_t>(idx, in.shape));
    } else {
      xs.push_back(t.to(DType::Float32));
    }
  }
  return xs;
}

struct ParityRun {
  std::vector<Tensor> outputs;  // on the CPU
  std::vector<Tensor> grads;    // per input (undefined for index inputs)
};

inline ParityRun run_on(const ParityCase& c, const std::vector<Tensor>& host_inputs,
                        const std::vector<Tensor>& upstream, Device device) {
  std::vector<Tensor> xs;
  for (std::size_t i = 0; i < host_inputs.size(); ++i) {
    // A fresh leaf per run (to() of a CPU tensor to the CPU returns itself).
    Tensor t = device.is_cpu() ? host_inputs[i].clone() : host_inputs[i].to(device);
    if (!c.inputs[i].index && c.inputs[i].grad && c.backward) t.set_requires_grad(true);
    xs.push_back(t);
  }
  ParityRun r;
  const std::vector<Tensor> ys = c.f(xs);
  for (const Tensor& y : ys) r.outputs.push_back(y.to(Device::cpu()));
  if (!c.backward) return r;
  Tensor loss;
  for (std::size_t k = 0; k < ys.size(); ++k) {
    if (ys[k].dtype() != DType::Float32 || !ys[k].requires_grad()) continue;
    const Tensor term = sum(mul(ys[k], upstream[k].to(device)));
    loss = loss.defined() ? add(loss, term) : term;
  }
  if (loss.defined()) backward(loss);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Tensor g = xs[i].requires_grad() ? xs[i].grad() : Tensor();
    r.grads.push_back(g.defined() ? g.to(Device::cpu()) : Tensor());
  }
  return r;
}

inline double parity_error(const Tensor& cuda, const Tensor& cpu) {
  const Tensor a = cuda.to(DType::Float64), b = cpu.to(DType::Float64);
  const auto va = a.contiguous().to_vector<double>(), vb = b.contiguous().to_vector<double>();
  double err = 0.0, scale = 1.0;
  for (std::size_t k = 0; k < va.size(); ++k) {
    if (std::isnan(va[k]) != std::isnan(vb[k])) return INFINITY;
    if (!std::isnan(vb[k])) err = std::max(err, std::abs(va[k] - vb[k]));
    scale = std::max(scale, std::abs(vb[k]));
  }
  return err / scale;
}

// Runs one case on the CPU and on `device` and checks it; returns the number
// of comparisons made. (A CPU-only test runs the harness itself with
// device = CPU.)
inline int check_parity(const ParityCase& c, std::uint64_t seed = 1234,
                        Device device = Device::cuda()) {
  INFO("parity case: " << c.name);
  const std::vector<Tensor> host = make_parity_inputs(c, seed);
  // The upstream gradients: shapes from a CPU forward without recording.
  std::vector<Tensor> upstream;
  {
    NoGradGuard no_grad;
    const std::vector<Tensor> ys = c.f(host);
    for (std::size_t k = 0; k < ys.size(); ++k) {
      upstream.push_back(
          random_tensor(ys[k].shape(), seed + 104729 * (k + 1), -1, 1, DType::Float32, false));
    }
  }
  const ParityRun cpu = run_on(c, host, upstream, Device::cpu());
  const ParityRun gpu = run_on(c, host, upstream, device);
  int checks = 0;
  // CHECKs, not REQUIREs: a failing case is reported and the table goes on.
  CHECK(cpu.outputs.size() == gpu.outputs.size());
  for (std::size_t k = 0; k < std::min(cpu.outputs.size(), gpu.outputs.size()); ++k) {
    INFO("output " << k);
    CHECK(gpu.outputs[k].shape() == cpu.outputs[k].shape());
    CHECK(gpu.outputs[k].dtype() == cpu.outputs[k].dtype());
    if (gpu.outputs[k].shape() != cpu.outputs[k].shape()) continue;
    CHECK(parity_error(gpu.outputs[k], cpu.outputs[k]) <= c.tol);
    ++checks;
  }
  for (std::size_t i = 0; i < std::min(cpu.grads.size(), gpu.grads.size()); ++i) {
    INFO("gradient of input " << i);
    CHECK(cpu.grads[i].defined() == gpu.grads[i].defined());
    if (!cpu.grads[i].defined() || !gpu.grads[i].defined()) continue;
    CHECK(gpu.grads[i].shape() == cpu.grads[i].shape());
    if (gpu.grads[i].shape() != cpu.grads[i].shape()) continue;
    CHECK(parity_error(gpu.grads[i], cpu.grads[i]) <= c.tol);
    ++checks;
  }
  return checks;
}

// SSM_PARITY_DEVICE=cpu runs the tables CPU against CPU (no GPU needed): a
// check of the tables and of the CPU oracle on every case's shapes.
inline void run_parity_table(const std::vector<ParityCase>& cases) {
  const char* env = std::getenv("SSM_PARITY_DEVICE");
  const bool cpu = env && std::string(env) == "cpu";
  if (!cpu && !cuda_or_skip()) return;
  const Device device = cpu ? Device::cpu() : Device::cuda();
  int checks = 0;
  for (const ParityCase& c : cases) {
    // An op that throws fails its case only; the rest of the table still runs.
    try {
      checks += check_parity(c, 1234, device);
    } catch (const std::exception& e) {
      FAIL_CHECK("parity case " << c.name << " threw: " << e.what());
    }
  }
  WARN(cases.size() << " parity cases, " << checks << " comparisons");
}

}  // namespace ssm::testing
