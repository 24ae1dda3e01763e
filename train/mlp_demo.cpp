#include "train/mlp_demo.h"

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "data/toy.h"

namespace ssm {

namespace {

struct Mlp {
  Tensor w1, b1, w2, b2;  // (H, 2), (H), (2, H), (2): PyTorch's nn.Linear layout

  Tensor forward(const Tensor& x) const {  // x (N, 2) -> logits (N, 2)
    return linear(relu(linear(x, w1, b1)), w2, b2);
  }
  std::vector<Tensor> params() const { return {w1, b1, w2, b2}; }
};

// nn.Linear's default init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
Tensor init_uniform(const Shape& shape, std::int64_t fan_in, Generator& gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  Tensor t = Tensor::empty(shape);
  uniform_(t, -bound, bound, gen);
  t.set_requires_grad(true);
  return t;
}

// Loss and accuracy on the whole data set, without recording.
std::pair<double, double> evaluate(const Mlp& mlp, const data::ToyProblem& d) {
  NoGradGuard no_grad;
  const Tensor logits = mlp.forward(d.x);
  const double loss = cross_entropy(logits, d.y).item<double>();
  const auto pred = max_with_index(logits, 1).second.to_vector<std::int64_t>();
  const auto label = d.y.to_vector<std::int64_t>();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) correct += pred[i] == label[i];
  return {loss, static_cast<double>(correct) / static_cast<double>(pred.size())};
}

}  // namespace

MlpDemoResult run_mlp_demo(const MlpDemoOptions& o,
                           const std::function<void(std::int64_t, double, double)>& on_epoch) {
  SSM_CHECK(o.samples > 0 && o.hidden > 0 && o.batch > 0 && o.epochs >= 0 && o.lr > 0,
            "mlp_demo", "options must be positive");
  const data::ToyProblem d = data::make_xor_problem(o.samples, o.seed);
  Generator gen(o.seed + 1);
  Mlp mlp{init_uniform({o.hidden, 2}, 2, gen), init_uniform({o.hidden}, 2, gen),
          init_uniform({2, o.hidden}, o.hidden, gen), init_uniform({2}, o.hidden, gen)};
  MlpDemoResult r;
  r.initial_loss = evaluate(mlp, d).first;
  for (std::int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    for (std::int64_t start = 0; start < o.samples; start += o.batch) {
      const std::int64_t n = std::min(o.batch, o.samples - start);
      const Tensor xb = d.x.narrow(0, start, n);  // (n, 2)
      const Tensor yb = d.y.narrow(0, start, n);  // (n)
      backward(cross_entropy(mlp.forward(xb), yb));
      NoGradGuard no_grad;
      for (const Tensor& p : mlp.params()) {  // p <- p - lr * grad
        p.copy_(sub(p.detach(), mul(p.grad(), o.lr)));
        p.zero_grad();
      }
      ++r.steps;
    }
    if (on_epoch) {
      const auto [loss, acc] = evaluate(mlp, d);
      on_epoch(epoch, loss, acc);
    }
  }
  std::tie(r.final_loss, r.accuracy) = evaluate(mlp, d);
  return r;
}

}  // namespace ssm
