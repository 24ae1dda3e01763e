// CPU-versus-CUDA parity of the convolution kernels (kernels/cuda/conv.cu):
// causal_conv1d (bias, fused SiLU) forward and backward, its one-step update,
// conv2d (im2col + cuBLAS; strides, padding, 1x1 kernels) forward and
// backward, and glu, with shapes that are not multiples of the block size,
// size-1 and empty dims, and transposed and broadcast views built inside f.
// Skipped when no GPU is visible.
#include "tests/testing.h"

#include "tests/cuda/parity.h"

using namespace ssm;
using ssm::testing::ParityCase;
using ssm::testing::ParityInput;
using ssm::testing::run_parity_table;

namespace {

// A float input that gets a gradient, uniform in [-1, 1).
ParityInput in(const Shape& shape) {
  ParityInput p;
  p.shape = shape;
  return p;
}

ParityCase make(std::string name, std::vector<ParityInput> inputs, ssm::testing::ParityFn f,
                double tol = 1e-5, bool backward = true) {
  ParityCase c;
  c.name = std::move(name);
  c.inputs = std::move(inputs);
  c.f = std::move(f);
  c.tol = tol;
  c.backward = backward;
  return c;
}

// ---------------------------------------------------------------- causal_conv1d

std::vector<ParityCase> causal_conv1d_cases() {
  std::vector<ParityCase> cs;
  // inputs: x, weight[, bias]
  const auto conv = [](bool silu) {
    return [silu](const std::vector<Tensor>& x) {
      return std::vector<Tensor>{causal_conv1d(x[0], x[1], x.size() > 2 ? x[2] : Tensor(), silu)};
    };
  };
  cs.push_back(make("causal_conv1d (2, 3, 257) K 4, bias, silu",
                    {in({2, 3, 257}), in({3, 4}), in({3})}, conv(true)));
  cs.push_back(make("causal_conv1d (1, 33, 1000) weight (33, 1, 4), no bias",
                    {in({1, 33, 1000}), in({33, 1, 4})}, conv(false)));
  cs.push_back(make("causal_conv1d (3, 1, 4097) K 3, bias, silu",
                    {in({3, 1, 4097}), in({1, 3}), in({1})}, conv(true)));
  cs.push_back(make("causal_conv1d bias without silu (2, 5, 33) K 4",
                    {in({2, 5, 33}), in({5, 4}), in({5})}, conv(false)));
  cs.push_back(make("causal_conv1d L 1 < K 4 (2, 5, 1), silu", {in({2, 5, 1}), in({5, 4}), in({5})},
                    conv(true)));
  cs.push_back(make("causal_conv1d K 1 (2, 3, 10), silu", {in({2, 3, 10}), in({3, 1}), in({3})},
                    conv(true)));
  cs.push_back(
      make("causal_conv1d transposed x (2, 65, 8)->(2, 8, 65), transposed weight, "
           "broadcast bias, silu",
           {in({2, 65, 8}), in({4, 8}), in({1})}, [](const std::vector<Tensor>& x) {
             return std::vector<Tensor>{causal_conv1d(transpose(x[0], 1, 2), transpose(x[1], 0, 1),
                                                      expand(x[2], {8}), true)};
           }));
  cs.push_back(make("causal_conv1d empty batch (0, 3, 10)", {in({0, 3, 10}), in({3, 4}), in({3})},
                    conv(true)));
  cs.push_back(make("causal_conv1d empty length (2, 3, 0)", {in({2, 3, 0}), in({3, 4}), in({3})},
                    conv(true)));

  // causal_conv1d_update, no gradient: inputs x (B, D, T), the initial state
  // stored as (B, K, D) (so that the state is a transposed view, updated in
  // place through its strides), weight[, bias]. Steps through x[..., t] and
  // returns every y_t and the final state. The state is a clone, so that the
  // inputs are not modified.
  const auto update = [](bool silu) {
    return [silu](const std::vector<Tensor>& x) {
      Tensor state = x[1].clone().transpose(1, 2);  // (B, D, K)
      const Tensor bias = x.size() > 3 ? x[3] : Tensor();
      std::vector<Tensor> ys;
      for (std::int64_t t = 0; t < x[0].size(2); ++t) {
        ys.push_back(causal_conv1d_update(x[0].select(2, t), state, x[2], bias, silu));
      }
      ys.push_back(state.contiguous());
      return ys;
    };
  };
  cs.push_back(make("causal_conv1d_update B 2 D 33 K 4, 5 steps, bias, silu",
                    {in({2, 33, 5}), in({2, 4, 33}), in({33, 4}), in({33})}, update(true), 1e-5,
                    false));
  cs.push_back(make("causal_conv1d_update B 1 D 257 K 3, weight (D, 1, K), 3 steps",
                    {in({1, 257, 3}), in({1, 3, 257}), in({257, 1, 3})}, update(false), 1e-5,
                    false));
  cs.push_back(make("causal_conv1d_update B 3 D 5 K 1, 2 steps, silu",
                    {in({3, 5, 2}), in({3, 1, 5}), in({5, 1}), in({5})}, update(true), 1e-5,
                    false));
  return cs;
}

// ---------------------------------------------------------------- conv2d

std::vector<ParityCase> conv2d_cases() {
  std::vector<ParityCase> cs;
  // inputs: x, weight[, bias]
  const auto conv = [](std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding) {
    return [stride, padding](const std::vector<Tensor>& x) {
      return std::vector<Tensor>{
          conv2d(x[0], x[1], x.size() > 2 ? x[2] : Tensor(), stride, padding)};
    };
  };
  cs.push_back(make("conv2d (2, 3, 9, 11) w (4, 3, 3, 3) stride 1 pad 1, bias",
                    {in({2, 3, 9, 11}), in({4, 3, 3, 3}), in({4})}, conv({1, 1}, {1, 1})));
  cs.push_back(make("conv2d patch embedding (1, 4, 16, 16) w (8, 4, 4, 4) stride 4",
                    {in({1, 4, 16, 16}), in({8, 4, 4, 4})}, conv({4, 4}, {0, 0})));
  cs.push_back(make("conv2d 1x1 (3, 5, 7, 7) w (6, 5, 1, 1), bias",
                    {in({3, 5, 7, 7}), in({6, 5, 1, 1}), in({6})}, conv({1, 1}, {0, 0})));
  cs.push_back(make("conv2d 1x1 on a permuted x (2, 7, 7, 5)->(2, 5, 7, 7)",
                    {in({2, 7, 7, 5}), in({3, 5, 1, 1})}, [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{
                          conv2d(permute(x[0], {0, 3, 1, 2}), x[1], Tensor(), {1, 1}, {0, 0})};
                    }));
  cs.push_back(make("conv2d stride (2, 3) pad (1, 2) (2, 2, 13, 10) w (3, 2, 3, 5), bias",
                    {in({2, 2, 13, 10}), in({3, 2, 3, 5}), in({3})}, conv({2, 3}, {1, 2})));
  cs.push_back(make("conv2d (1, 1, 1, 1) w (1, 1, 1, 1), bias",
                    {in({1, 1, 1, 1}), in({1, 1, 1, 1}), in({1})}, conv({1, 1}, {0, 0})));
  cs.push_back(make("conv2d kernel larger than the image (1, 2, 2, 3) w (2, 2, 4, 5) pad 1",
                    {in({1, 2, 2, 3}), in({2, 2, 4, 5}), in({2})}, conv({1, 1}, {1, 1})));
  cs.push_back(make("conv2d transposed weight (3, 4, 3, 3)->(4, 3, 3, 3), broadcast bias",
                    {in({2, 3, 6, 5}), in({3, 4, 3, 3}), in({1})},
                    [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{
                          conv2d(x[0], transpose(x[1], 0, 1), expand(x[2], {4}), {1, 1}, {1, 1})};
                    }));
  // The weight gradient sums 33 images x 16 positions of float32 GEMM
  // products, in cuBLAS's order on the GPU and OpenBLAS's on the CPU: 1e-4.
  cs.push_back(make("conv2d 33 images (33, 3, 8, 8) w (5, 3, 3, 3) stride 2 pad 1, bias",
                    {in({33, 3, 8, 8}), in({5, 3, 3, 3}), in({5})}, conv({2, 2}, {1, 1}), 1e-4));
  cs.push_back(make("conv2d empty batch (0, 3, 5, 5) w (2, 3, 3, 3), bias",
                    {in({0, 3, 5, 5}), in({2, 3, 3, 3}), in({2})}, conv({1, 1}, {0, 0})));
  return cs;
}

// ---------------------------------------------------------------- glu

std::vector<ParityCase> glu_cases() {
  std::vector<ParityCase> cs;
  const auto g = [](std::int64_t dim) {
    return [dim](const std::vector<Tensor>& x) { return std::vector<Tensor>{glu(x[0], dim)}; };
  };
  cs.push_back(make("glu (4, 66) dim -1", {in({4, 66})}, g(-1)));
  cs.push_back(make("glu (2, 514, 3) dim 1", {in({2, 514, 3})}, g(1)));
  cs.push_back(make("glu 1-D (8194) dim 0", {in({8194})}, g(0)));
  cs.push_back(make("glu (3, 2) dim 1 (halves of 1)", {in({3, 2})}, g(1)));
  cs.push_back(
      make("glu transposed (10, 6)^T dim 0", {in({10, 6})}, [](const std::vector<Tensor>& x) {
        return std::vector<Tensor>{glu(transpose(x[0], 0, 1), 0)};
      }));
  cs.push_back(
      make("glu broadcast (1, 8)->(5, 8) dim 1", {in({1, 8})}, [](const std::vector<Tensor>& x) {
        return std::vector<Tensor>{glu(expand(x[0], {5, 8}), 1)};
      }));
  cs.push_back(make("glu empty (0, 4) dim 1", {in({0, 4})}, g(1)));
  return cs;
}

}  // namespace

TEST_CASE("cuda parity: causal_conv1d", "[cuda][parity]") {
  run_parity_table(causal_conv1d_cases());
}
TEST_CASE("cuda parity: conv2d", "[cuda][parity]") { run_parity_table(conv2d_cases()); }
TEST_CASE("cuda parity: glu", "[cuda][parity]") { run_parity_table(glu_cases()); }
