// CPU-versus-CUDA parity of the norm family (kernels/norm.h): layer_norm,
// rms_norm and batch_norm (training with and without running stats, eval),
// forward and backward for x, weight and bias, with and without weight /
// bias, rows of one warp and of one block, more rows than the weight-gradient
// chunks, size-1 and empty dims, and transposed views built inside f. Batch
// norm's updated running stats are compared as outputs.
#include "tests/testing.h"

#include "tests/cuda/parity.h"

using namespace ssm;
using ssm::testing::ParityCase;
using ssm::testing::ParityInput;
using ssm::testing::run_parity_table;

namespace {

using Vec = std::vector<Tensor>;

ParityInput in(const Shape& s, double lo = -2.0, double hi = 2.0) {
  return ParityInput{s, lo, hi, false, true};
}
ParityInput fixed(const Shape& s, double lo, double hi) {
  return ParityInput{s, lo, hi, false, false};
}

// ---------------------------------------------------------------- layer / RMS norm

struct RowsCase {
  std::string what;
  Shape x;           // as the op sees it
  Shape normalized;  // trailing dims of x
  bool weight = true, bias = true;
  bool transposed = false;  // 2-D x given as a transposed view
  double eps = 1e-5;
};

ParityCase rows_case(bool rms, const RowsCase& k) {
  ParityCase c;
  c.name = std::string(rms ? "rms_norm " : "layer_norm ") + k.what + (k.weight ? " weight" : "") +
           (k.bias && !rms ? " bias" : "") + (k.transposed ? " transposed" : "");
  c.inputs = {in(k.transposed ? Shape{k.x[1], k.x[0]} : k.x)};
  if (k.weight) c.inputs.push_back(in(k.normalized, 0.5, 1.5));
  const bool bias = k.bias && !rms;
  if (bias) c.inputs.push_back(in(k.normalized));
  c.f = [=](const Vec& v) {
    const Tensor x = k.transposed ? transpose(v[0], 0, 1) : v[0];
    const Tensor w = k.weight ? v[1] : Tensor();
    const Tensor b = bias ? v[k.weight ? 2 : 1] : Tensor();
    return Vec{rms ? rms_norm(x, k.normalized, w, k.eps)
                   : layer_norm(x, k.normalized, w, b, k.eps)};
  };
  return c;
}

std::vector<RowsCase> rows_cases() {
  return {
      {"(1, 1)", {1, 1}, {1}},
      {"(3, 33)", {3, 33}, {33}},
      {"(257, 1000)", {257, 1000}, {1000}},
      {"(5, 4097)", {5, 4097}, {4097}},     // one block per row
      {"(1000, 257)", {1000, 257}, {257}},  // more rows than weight-gradient chunks
      {"(4097, 3)", {4097, 3}, {3}},
      {"(4, 3, 5)", {4, 3, 5}, {3, 5}, true, false},
      {"(2, 3, 4, 5)", {2, 3, 4, 5}, {4, 5}},
      {"(33, 7)", {33, 7}, {7}, false, false},
      {"(33, 7)", {33, 7}, {7}, false, true},
      {"(7)", {7}, {7}},
      {"(9, 1)", {9, 1}, {1}, true, true, false, 1e-3},
      {"(0, 8)", {0, 8}, {8}},  // no rows: zero weight / bias gradients
      {"(4, 0)", {4, 0}, {0}},  // empty rows
      {"(5, 33)", {5, 33}, {33}, true, true, true},
      {"(1000, 65)", {1000, 65}, {65}, true, true, true},
      {"(6, 2000)", {6, 2000}, {2000}, true, false, true},
  };
}

// ---------------------------------------------------------------- batch norm

struct BatchCase {
  std::string what;
  Shape x;
  bool training = true;
  bool running = true;  // running stats given (and, in training, updated)
  bool affine = true;   // weight and bias
  bool transposed = false;
  double momentum = 0.1;
};

ParityCase batch_case(const BatchCase& k) {
  ParityCase c;
  c.name = "batch_norm " + k.what + (k.training ? " training" : " eval") +
           (k.running ? " running stats" : "") + (k.affine ? " affine" : "") +
           (k.transposed ? " transposed" : "");
  const std::int64_t C = k.x[1];
  c.inputs = {in(k.transposed ? Shape{k.x[1], k.x[0]} : k.x)};
  if (k.running) {
    c.inputs.push_back(fixed({C}, -0.5, 0.5));  // running_mean
    c.inputs.push_back(fixed({C}, 0.5, 2.0));   // running_var
  }
  if (k.affine) {
    c.inputs.push_back(in({C}, 0.5, 1.5));
    c.inputs.push_back(in({C}));
  }
  c.f = [=](const Vec& v) {
    const Tensor x = k.transposed ? transpose(v[0], 0, 1) : v[0];
    // Fresh copies: batch_norm updates them in place, and the harness runs f
    // more than once on the same host inputs.
    const Tensor rm = k.running ? v[1].clone() : Tensor();
    const Tensor rv = k.running ? v[2].clone() : Tensor();
    const std::size_t a = k.running ? 3 : 1;
    const Tensor w = k.affine ? v[a] : Tensor(), b = k.affine ? v[a + 1] : Tensor();
    Vec out{batch_norm(x, rm, rv, w, b, k.training, k.momentum, 1e-5)};
    if (k.running && k.training) {
      out.push_back(rm);
      out.push_back(rv);
    }
    return out;
  };
  return c;
}

std::vector<BatchCase> batch_cases() {
  return {
      {"(33, 7)", {33, 7}},
      {"(2, 1)", {2, 1}},
      {"(4, 3, 257)", {4, 3, 257}},
      {"(2, 5, 6, 7)", {2, 5, 6, 7}, true, true, true, false, 0.3},
      {"(1000, 33)", {1000, 33}},
      {"(3, 4, 4097)", {3, 4, 4097}},
      {"(33, 7)", {33, 7}, true, false, true},
      {"(8, 5, 9)", {8, 5, 9}, true, false, false},
      {"(8, 5, 9)", {8, 5, 9}, true, true, false},
      {"(33, 7)", {33, 7}, false, true, true},
      {"(4, 3, 257)", {4, 3, 257}, false, true, false},
      {"(1, 6, 1)", {1, 6, 1}, false, true, true},
      {"(0, 4, 5)", {0, 4, 5}},  // no elements: mean 0, var 0
      {"(7, 0)", {7, 0}},
      {"(33, 7)", {33, 7}, true, true, true, true},
      {"(257, 3)", {257, 3}, false, true, true, true},
  };
}

std::vector<ParityCase> norm_cases() {
  std::vector<ParityCase> cases;
  for (const RowsCase& k : rows_cases()) {
    cases.push_back(rows_case(false, k));
    cases.push_back(rows_case(true, k));
  }
  for (const BatchCase& k : batch_cases()) cases.push_back(batch_case(k));
  return cases;
}

}  // namespace

TEST_CASE("parity: layer_norm, rms_norm and batch_norm on CUDA equal the CPU", "[cuda][parity]") {
  run_parity_table(norm_cases());
}
