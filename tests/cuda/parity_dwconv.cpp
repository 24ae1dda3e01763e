// CPU-versus-CUDA parity of the depthwise "same" convolutions
// (kernels/cuda/dwconv.cu): dwconv1d and dwconv2d forward and backward (x,
// weight and bias gradients), with sizes that are not multiples of the block
// size, planes smaller than the kernel, size-1 and empty dims, and transposed,
// permuted and broadcast views built inside f. Skipped when no GPU is visible.
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
                double tol = 1e-5) {
  ParityCase c;
  c.name = std::move(name);
  c.inputs = std::move(inputs);
  c.f = std::move(f);
  c.tol = tol;
  return c;
}

// inputs: x, weight[, bias]
std::vector<Tensor> dw1(const std::vector<Tensor>& x) {
  return {dwconv1d(x[0], x[1], x.size() > 2 ? x[2] : Tensor())};
}
std::vector<Tensor> dw2(const std::vector<Tensor>& x) {
  return {dwconv2d(x[0], x[1], x.size() > 2 ? x[2] : Tensor())};
}

std::vector<ParityCase> dwconv1d_cases() {
  std::vector<ParityCase> cs;
  cs.push_back(make("dwconv1d (2, 3, 257) K 7, bias", {in({2, 3, 257}), in({3, 7}), in({3})}, dw1));
  cs.push_back(
      make("dwconv1d (1, 33, 1000) weight (33, 1, 3)", {in({1, 33, 1000}), in({33, 1, 3})}, dw1));
  cs.push_back(
      make("dwconv1d (3, 1, 4097) K 5, bias", {in({3, 1, 4097}), in({1, 5}), in({1})}, dw1));
  cs.push_back(
      make("dwconv1d L 1 < K 5 (2, 4, 1), bias", {in({2, 4, 1}), in({4, 5}), in({4})}, dw1));
  cs.push_back(make("dwconv1d K 1 (2, 3, 33)", {in({2, 3, 33}), in({3, 1})}, dw1));
  cs.push_back(
      make("dwconv1d transposed x (2, 65, 8)->(2, 8, 65), transposed weight, "
           "broadcast bias",
           {in({2, 65, 8}), in({3, 8}), in({1})}, [](const std::vector<Tensor>& x) {
             return std::vector<Tensor>{
                 dwconv1d(transpose(x[0], 1, 2), transpose(x[1], 0, 1), expand(x[2], {8}))};
           }));
  cs.push_back(
      make("dwconv1d empty batch (0, 3, 5), bias", {in({0, 3, 5}), in({3, 3}), in({3})}, dw1));
  cs.push_back(
      make("dwconv1d empty length (2, 3, 0), bias", {in({2, 3, 0}), in({3, 3}), in({3})}, dw1));
  return cs;
}

std::vector<ParityCase> dwconv2d_cases() {
  std::vector<ParityCase> cs;
  cs.push_back(make("dwconv2d (2, 3, 9, 11) w (3, 1, 7, 7), bias",
                    {in({2, 3, 9, 11}), in({3, 1, 7, 7}), in({3})}, dw2));
  cs.push_back(
      make("dwconv2d (1, 8, 56, 33) w (8, 1, 3, 3)", {in({1, 8, 56, 33}), in({8, 1, 3, 3})}, dw2));
  cs.push_back(make("dwconv2d 1x1 planes (2, 2, 1, 1) w (2, 1, 3, 5), bias",
                    {in({2, 2, 1, 1}), in({2, 1, 3, 5}), in({2})}, dw2));
  cs.push_back(make("dwconv2d (1, 1, 65, 65) w (1, 1, 1, 1), bias",
                    {in({1, 1, 65, 65}), in({1, 1, 1, 1}), in({1})}, dw2));
  cs.push_back(make(
      "dwconv2d permuted x (2, 6, 7, 4)->(2, 4, 6, 7), broadcast bias",
      {in({2, 6, 7, 4}), in({4, 1, 3, 3}), in({1})}, [](const std::vector<Tensor>& x) {
        return std::vector<Tensor>{dwconv2d(permute(x[0], {0, 3, 1, 2}), x[1], expand(x[2], {4}))};
      }));
  cs.push_back(make("dwconv2d flipped weight view (3, 1, 5, 3)",
                    {in({2, 3, 8, 9}), in({3, 1, 5, 3})}, [](const std::vector<Tensor>& x) {
                      return std::vector<Tensor>{dwconv2d(x[0], flip(x[1], {2}), Tensor())};
                    }));
  // The weight gradient of a channel sums 4 images x 1000 positions (in
  // double on both devices, from float32 products): 1e-5 holds; bias likewise.
  cs.push_back(make("dwconv2d (4, 5, 25, 40) w (5, 1, 5, 5), bias",
                    {in({4, 5, 25, 40}), in({5, 1, 5, 5}), in({5})}, dw2));
  cs.push_back(make("dwconv2d empty batch (0, 2, 5, 5), bias",
                    {in({0, 2, 5, 5}), in({2, 1, 3, 3}), in({2})}, dw2));
  return cs;
}

}  // namespace

TEST_CASE("cuda parity: dwconv1d", "[cuda][parity]") { run_parity_table(dwconv1d_cases()); }
TEST_CASE("cuda parity: dwconv2d", "[cuda][parity]") { run_parity_table(dwconv2d_cases()); }
