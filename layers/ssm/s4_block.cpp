#include "layers/ssm/s4_block.h"

#include "autograd/ops.h"

namespace ssm {

S4Block::S4Block(std::shared_ptr<SSMKernel> kernel, const S4BlockOptions& options, Generator& gen,
                 Generator* dropout_gen, DType dtype)
    : kernel_(std::move(kernel)), options_(options), D_(register_parameter("D", [&] {
        SSM_CHECK(options.channels >= 1, "S4Block", "channels must be >= 1, got ",
                  options.channels);
        Tensor d = Tensor::empty({options.channels, kernel_ ? kernel_->d_model() : 1}, dtype);
        normal_(d, 0.0, 1.0, gen);
        return d;
      }())) {
  SSM_CHECK(kernel_ != nullptr, "S4Block", "kernel is null");
  const std::int64_t C = options.channels, H = kernel_->d_model();
  const std::int64_t want = options.bidirectional ? 2 * C : C;
  SSM_CHECK(kernel_->channels() == want, "S4Block", "the kernel has ", kernel_->channels(),
            " channels, expected ", want, " (channels ", C,
            options.bidirectional ? ", bidirectional)" : ")");
  register_module("kernel", kernel_);
  dropout_ = register_module("dropout", std::make_shared<Dropout>(options.dropout, dropout_gen));
  output_linear_ =
      register_module("output_linear", std::make_shared<Linear>(C * H, 2 * H, true, gen, dtype));
}

Tensor S4Block::output(const Tensor& y) {
  const std::int64_t B = y.size(0), C = y.size(1), H = y.size(2), L = y.size(3);
  Tensor z = dropout_->forward(gelu(y));                 // (B, C, H, L)
  z = reshape(permute(z, {0, 3, 1, 2}), {B, L, C * H});  // (B, L, C H)
  return glu(output_linear_->forward(z), -1);            // (B, L, H)
}

Tensor S4Block::forward(const Tensor& x) {
  SSM_CHECK(x.dim() == 3 && x.size(2) == kernel_->d_model(), "S4Block", "expected x (B, L, ",
            kernel_->d_model(), "), got ", x.desc());
  const std::int64_t L = x.size(1), C = options_.channels;
  const Tensor u = contiguous(transpose(x, 1, 2));  // (B, H, L)
  const Tensor k = kernel_->forward(L);             // (C or 2C, H, L)
  Tensor y;                                         // (B, C, H, L)
  if (options_.bidirectional) {
    y = fft_conv(u, narrow(k, 0, 0, C), D_, narrow(k, 0, C, C));
  } else {
    y = fft_conv(u, k, D_);
  }
  return output(y);
}

void S4Block::setup_step() { kernel_->setup_step(); }

Tensor S4Block::default_state(std::int64_t batch) const { return kernel_->default_state(batch); }

Tensor S4Block::step(const Tensor& x_t, Tensor& state) {
  SSM_CHECK(!options_.bidirectional, "S4Block::step",
            "a bidirectional layer has no causal step mode (it reads the future); use "
            "forward_recurrent or forward");
  SSM_CHECK(x_t.dim() == 2 && x_t.size(1) == kernel_->d_model(), "S4Block::step",
            "expected x_t (B, ", kernel_->d_model(), "), got ", x_t.desc());
  NoGradGuard no_grad;
  const Tensor y = kernel_->step(x_t, state) + D_ * unsqueeze(x_t, 1);  // (B, C, H)
  return squeeze(output(unsqueeze(y, 3)), 1);                           // (B, H)
}

Tensor S4Block::forward_recurrent(const Tensor& x) {
  SSM_CHECK(x.dim() == 3 && x.size(2) == kernel_->d_model(), "S4Block::forward_recurrent",
            "expected x (B, L, ", kernel_->d_model(), "), got ", x.desc());
  NoGradGuard no_grad;
  const std::int64_t B = x.size(0), L = x.size(1), C = options_.channels;
  kernel_->set_step_length(L);
  kernel_->setup_step();
  // Runs the kernel's recurrence over x (time reversed when `reverse`) and
  // returns its outputs in the original time order: (B, C_kernel, H, L).
  auto run = [&](bool reverse) {
    Tensor state = kernel_->default_state(B);
    std::vector<Tensor> ys(static_cast<std::size_t>(L));
    for (std::int64_t t = 0; t < L; ++t) {
      const std::int64_t src = reverse ? L - 1 - t : t;
      ys[static_cast<std::size_t>(src)] = kernel_->step(x.select(1, src).contiguous(), state);
    }
    return stack(ys, 3);
  };
  Tensor y = run(false);
  if (options_.bidirectional) {
    y = narrow(y, 1, 0, C) + narrow(run(true), 1, C, C);
  }
  y = y + unsqueeze(D_, 2) * unsqueeze(transpose(x, 1, 2), 1);  // + D u
  return output(y);
}

}  // namespace ssm
