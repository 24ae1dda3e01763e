// CPU-versus-CUDA parity of the loss family (kernels/loss.h): cross_entropy
// (mean / sum / none, ignore_index, label smoothing, spatial dims, 1-D
// scores), nll_loss and mse_loss, forward and backward, with int64 and int32
// targets, size-1 and empty batches, and transposed / broadcast views built
// inside f.
#include "tests/cuda/parity.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::ParityCase;
using ssm::testing::ParityInput;
using ssm::testing::run_parity_table;

namespace {

using Vec = std::vector<Tensor>;
using ViewFn = std::function<Tensor(const Tensor&)>;

ParityInput scores(const Shape& s, double lo = -3.0, double hi = 3.0) {
  return ParityInput{s, lo, hi, false, true};
}
// Targets: integers in [lo, hi), no gradient.
ParityInput targets(const Shape& s, double lo, double hi) {
  return ParityInput{s, lo, hi, true, false};
}

// The target shape of scores (N, C, d...) (or () for (C)).
Shape target_shape(const Shape& s) {
  Shape t = s;
  t.erase(t.begin() + (s.size() == 1 ? 0 : 1));
  return t;
}
std::int64_t classes_of(const Shape& s) { return s.size() == 1 ? s[0] : s[1]; }

struct ClassCase {
  std::string what;
  Shape shape;  // the scores as the op sees them
  std::string reduction = "mean";
  double eps = 0.0;         // label smoothing (cross-entropy; nll_loss ignores it)
  bool ignore = false;      // targets drawn from [-1, C) with ignore_index -1
  bool int32 = false;       // int32 targets
  bool transposed = false;  // 2-D scores given as a transposed (C, N) view
  double tol = 1e-5;
};

std::string describe(bool nll, const ClassCase& k) {
  std::string s = std::string(nll ? "nll_loss " : "cross_entropy ") + k.what + " " + k.reduction;
  if (k.eps != 0.0 && !nll) s += " label_smoothing " + std::to_string(k.eps);
  if (k.ignore) s += " ignore_index -1";
  s += k.int32 ? " int32" : " int64";
  if (k.transposed) s += " transposed";
  return s;
}

ParityCase class_case(bool nll, const ClassCase& k) {
  ParityCase c;
  c.name = describe(nll, k);
  const std::int64_t C = classes_of(k.shape);
  const Shape given = k.transposed ? Shape{k.shape[1], k.shape[0]} : k.shape;
  c.inputs = {nll ? scores(given, -6.0, 0.0) : scores(given),
              targets(target_shape(k.shape), k.ignore ? -1.0 : 0.0, static_cast<double>(C))};
  c.f = [=](const Vec& v) {
    const Tensor x = k.transposed ? transpose(v[0], 0, 1) : v[0];
    const Tensor t = k.int32 ? v[1].to(DType::Int32) : v[1];
    const std::int64_t ignore_index = k.ignore ? -1 : -100;
    if (nll) return Vec{nll_loss(x, t, ignore_index, k.reduction)};
    CrossEntropyOptions o;
    o.ignore_index = ignore_index;
    o.label_smoothing = k.eps;
    o.reduction = k.reduction;
    return Vec{cross_entropy(x, t, o)};
  };
  c.tol = k.tol;
  return c;
}

std::vector<ClassCase> class_cases() {
  return {
      {"(3, 1)", {3, 1}},
      {"(1, 5)", {1, 5}},
      {"(33, 10)", {33, 10}},
      {"(33, 10)", {33, 10}, "mean", 0.0, false, true},
      {"(257, 1000)", {257, 1000}, "mean", 0.1},
      {"(257, 1000)", {257, 1000}, "sum"},
      // One block per row; 4097 exps summed in float in another order: 2e-5.
      {"(4, 4097)", {4, 4097}, "sum", 0.0, false, false, false, 2e-5},
      {"(3, 4097)", {3, 4097}, "mean", 0.25, true, true, false, 2e-5},
      {"(1000, 33)", {1000, 33}, "none"},
      {"(1000, 33)", {1000, 33}, "none", 0.3, true},
      {"(65, 17)", {65, 17}, "mean", 0.0, true},
      {"(65, 17)", {65, 17}, "sum", 0.1, true, true},
      {"(5, 7, 33)", {5, 7, 33}, "mean", 0.2},
      {"(5, 7, 33)", {5, 7, 33}, "none", 0.0, true, true},
      {"(2, 3, 4, 5)", {2, 3, 4, 5}, "sum"},
      {"(3, 257, 9)", {3, 257, 9}, "mean", 0.0, false, true},
      {"(33)", {33}, "mean"},
      {"(33)", {33}, "sum", 0.5, false, true},
      {"(1000, 7)", {1000, 7}, "mean", 0.0, false, false, true},
      {"(33, 300)", {33, 300}, "sum", 0.1, true, true, true},
      {"(0, 5)", {0, 5}, "sum"},
      {"(0, 5)", {0, 5}, "mean"},
      {"(0, 5)", {0, 5}, "none"},
      {"(2, 5, 0)", {2, 5, 0}, "sum"},
  };
}

// ---------------------------------------------------------------- mse_loss

ParityCase mse(const std::string& what, const Shape& shape, const std::string& reduction,
               const std::string& view = "") {
  ParityCase c;
  c.name = "mse_loss " + what + " " + reduction + (view.empty() ? "" : " " + view);
  if (view == "transposed") {
    c.inputs = {scores({shape[1], shape[0]}), scores(shape)};
  } else if (view == "broadcast target") {
    c.inputs = {scores(shape), scores({1, shape[1]})};
  } else {
    c.inputs = {scores(shape), scores(shape)};
  }
  c.f = [=](const Vec& v) {
    Tensor x = v[0], t = v[1];
    if (view == "transposed") x = transpose(x, 0, 1);
    if (view == "broadcast target") t = expand(t, shape);
    return Vec{mse_loss(x, t, reduction)};
  };
  return c;
}

std::vector<ParityCase> loss_cases() {
  std::vector<ParityCase> cases;
  for (const ClassCase& k : class_cases()) {
    cases.push_back(class_case(false, k));
    cases.push_back(class_case(true, k));
  }
  // Long rows (one block per row, four classes per load when aligned) read
  // from a contiguous view that starts one float into its buffer: the rows are
  // not 16-byte aligned, so the kernels must take their scalar path.
  for (const bool misaligned : {false, true}) {
    ParityCase c;
    c.name = std::string("cross_entropy (5, 1200) mean eps 0.1") +
             (misaligned ? " misaligned view" : " aligned view");
    c.inputs = {scores({1 + 5 * 1200}), targets({5}, 0.0, 1200.0)};
    c.f = [misaligned](const Vec& v) {
      const Tensor x = narrow(v[0], 0, misaligned ? 1 : 0, 5 * 1200).reshape({5, 1200});
      CrossEntropyOptions o;
      o.label_smoothing = 0.1;
      return Vec{cross_entropy(x, v[1], o)};
    };
    cases.push_back(c);
  }
  for (const std::string r : {"mean", "sum", "none"}) {
    cases.push_back(mse("(1)", {1}, r));
    cases.push_back(mse("(33, 257)", {33, 257}, r));
    cases.push_back(mse("(4097, 33)", {4097, 33}, r));
    cases.push_back(mse("(3, 5, 7)", {3, 5, 7}, r));
    cases.push_back(mse("(0, 3)", {0, 3}, r));
    cases.push_back(mse("(33, 1000)", {33, 1000}, r, "transposed"));
    cases.push_back(mse("(5, 33)", {5, 33}, r, "broadcast target"));
  }
  return cases;
}

}  // namespace

TEST_CASE("parity: cross_entropy, nll_loss and mse_loss on CUDA equal the CPU", "[cuda][parity]") {
  run_parity_table(loss_cases());
}
