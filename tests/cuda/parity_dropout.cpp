// CPU-versus-CUDA parity of dropout (kernels/dropout.h): the CUDA mask is
// drawn on the device from the generator's (seed, stream, offset) and must
// equal the CPU's bit for bit, leaving the generator in the same state.
// Each f makes its own seeded generator, so both devices start from the same
// state.
#include "kernels/dropout.h"
#include "tests/testing.h"

#include "tests/cuda/parity.h"

using namespace ssm;
using ssm::testing::ParityCase;
using ssm::testing::ParityInput;
using ssm::testing::run_parity_table;

namespace {

using Vec = std::vector<Tensor>;

// dropout(x, p) with Generator(seed) advanced by `skip` blocks first; with
// `twice`, a second dropout from the same generator (it must have advanced
// exactly as on the CPU).
ParityCase drop(const std::string& what, const Shape& shape, double p, std::uint64_t seed,
                std::uint64_t skip = 0, bool twice = false, bool transposed = false,
                bool training = true) {
  ParityCase c;
  c.name = "dropout " + what + " p " + std::to_string(p) + " seed " + std::to_string(seed) +
           (skip ? " offset " + std::to_string(skip) : "") + (twice ? " twice" : "") +
           (transposed ? " transposed" : "") + (training ? "" : " eval");
  c.inputs = {ParityInput{transposed ? Shape{shape[1], shape[0]} : shape, -2.0, 2.0, false, true}};
  c.f = [=](const Vec& v) {
    Generator gen(seed, 3);
    gen.advance(skip);
    const Tensor x = transposed ? transpose(v[0], 0, 1) : v[0];
    Vec out{dropout(x, p, training, gen)};
    if (twice) out.push_back(dropout(x, p, training, gen));
    return out;
  };
  c.tol = 0.0;  // the same mask, the same float products
  return c;
}

std::vector<ParityCase> dropout_cases() {
  return {
      drop("(1)", {1}, 0.5, 1),
      drop("(1000)", {1000}, 0.3, 7),
      drop("(33, 257)", {33, 257}, 0.5, 11),
      drop("(4097, 3)", {4097, 3}, 0.1, 12345),
      drop("(3, 5, 7)", {3, 5, 7}, 0.9, 2, 5),
      drop("(257, 33)", {257, 33}, 0.25, 42, 1, true),
      drop("(33, 1000)", {33, 1000}, 0.4, 9, 0, false, true),
      drop("(5, 5)", {5, 5}, 1.0, 3),  // zeros, nothing drawn
      drop("(5, 5)", {5, 5}, 0.0, 3),  // identity
      drop("(5, 5)", {5, 5}, 0.5, 3, 0, false, false, false),
      drop("(0, 3)", {0, 3}, 0.5, 4, 0, true),
  };
}

}  // namespace

TEST_CASE("parity: dropout on CUDA equals the CPU", "[cuda][parity]") {
  run_parity_table(dropout_cases());
}

TEST_CASE("parity: dropout's CUDA mask and generator state equal the CPU's bit for bit",
          "[cuda][parity]") {
  if (!ssm::testing::cuda_or_skip()) return;
  for (const double p : {0.1, 0.5, 0.75}) {
    for (const std::int64_t n : {1, 3, 4, 5, 257, 4097}) {
      INFO("p " << p << ", n " << n);
      const Tensor x = ssm::testing::random_tensor({n}, 17, -1.0, 1.0, DType::Float32, false);
      Generator g_cpu(99, 1), g_gpu(99, 1);
      g_cpu.advance(2);
      g_gpu.advance(2);
      const auto [y_cpu, m_cpu] = kernels::dropout_forward(x, p, g_cpu);
      const auto [y_gpu, m_gpu] = kernels::dropout_forward(x.to(Device::cuda()), p, g_gpu);
      REQUIRE(g_cpu.state() == g_gpu.state());
      const std::vector<float> mc = m_cpu.to_vector<float>(), mg = m_gpu.to_vector<float>();
      const std::vector<float> yc = y_cpu.to_vector<float>(), yg = y_gpu.to_vector<float>();
      REQUIRE(mg == mc);
      REQUIRE(yg == yc);
      const Tensor g = ssm::testing::random_tensor({n}, 23, -1.0, 1.0, DType::Float32, false);
      const std::vector<float> gc = kernels::dropout_backward(g, m_cpu).to_vector<float>();
      const std::vector<float> gg =
          kernels::dropout_backward(g.to(Device::cuda()), m_gpu).to_vector<float>();
      REQUIRE(gg == gc);
    }
  }
}
