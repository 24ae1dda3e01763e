// s4d_example: see layers/models/s4d_example.h.
#include "layers/models/s4d_example.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "autograd/ops.h"
#include "layers/container.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/models/backbone.h"
#include "layers/norm.h"
#include "layers/ssm/s4d.h"

namespace ssm {

namespace {

const char* kName = "s4d_example";

// The reference S4DKernel: K (H, L) from (log_dt, C, log_A_real, A_imag).
class ExampleKernel : public Module {
 public:
  ExampleKernel(std::int64_t H, std::int64_t N, double dt_min, double dt_max, Generator& gen,
                DType dtype)
      : log_dt_(register_parameter("log_dt", init_log_dt(H, dt_min, dt_max, gen, dtype), {"ssm"})),
        C_(register_parameter("C", init_complex_normal({H, N / 2, 2}, gen, dtype))),
        log_A_real_(register_parameter("log_A_real", Tensor::full({H, N / 2}, std::log(0.5), dtype),
                                       {"ssm"})),
        A_imag_(register_parameter("A_imag", a_imag(H, N / 2, dtype), {"ssm"})) {
    // B = 1 + 0i for every mode: a constant, not a parameter.
    std::vector<double> ones(static_cast<std::size_t>(H * (N / 2) * 2), 0.0);
    for (std::size_t k = 0; k < ones.size(); k += 2) ones[k] = 1.0;
    B_ = Tensor::from_vector(ones, {H, N / 2, 2}, dtype);  // (H, N2, 2)
  }

  Tensor forward(std::int64_t L) {
    if (B_.device() != C_.device()) B_ = B_.to(C_.device());
    const Tensor A = stack({neg(exp(log_A_real_)), A_imag_}, -1);     // (H, N2, 2)
    const Tensor C = unsqueeze(C_, 0);                                // (1, H, N2, 2)
    return squeeze(s4d_kernel(exp(log_dt_), A, B_, C, L, "zoh"), 0);  // (H, L)
  }

 private:
  static Tensor a_imag(std::int64_t H, std::int64_t N2, DType dtype) {
    std::vector<double> v(static_cast<std::size_t>(H * N2));
    for (std::int64_t h = 0; h < H; ++h) {
      for (std::int64_t n = 0; n < N2; ++n)
        v[h * N2 + n] = std::numbers::pi * static_cast<double>(n);
    }
    return Tensor::from_vector(v, {H, N2}, dtype);
  }

  Tensor& log_dt_;      // (H)
  Tensor& C_;           // (H, N2, 2)
  Tensor& log_A_real_;  // (H, N2)
  Tensor& A_imag_;      // (H, N2)
  Tensor B_;            // (H, N2, 2)
};

// nn.Conv1d(H, 2H, kernel_size=1) as the first entry of output_linear.
class PointwiseConv : public Module {
 public:
  PointwiseConv(std::int64_t in, std::int64_t out, Generator& gen, DType dtype)
      : weight_(register_parameter("weight", uniform_fan_in({out, in, 1}, in, gen, dtype))),
        bias_(register_parameter("bias", uniform_fan_in({out}, in, gen, dtype))) {}
  // x (B, L, in) -> (B, L, out)
  Tensor forward(const Tensor& x) const {
    return linear(x, reshape(weight_, {weight_.size(0), weight_.size(1)}), bias_);
  }

 private:
  Tensor& weight_;  // (out, in, 1)
  Tensor& bias_;    // (out)
};

// The reference S4D layer (transposed: u (B, H, L)).
class ExampleLayer : public Module {
 public:
  ExampleLayer(std::int64_t H, std::int64_t N, const ModelConfig& c, Generator& gen,
               Generator* dropout_gen, DType dtype)
      : kernel_(register_module(
            "kernel", std::make_shared<ExampleKernel>(H, N, c.dt_min, c.dt_max, gen, dtype))),
        D_(register_parameter("D", randn({H}, dtype, Device::cpu(), gen))),
        dropout_(register_module("dropout", std::make_shared<Dropout>(c.dropout, dropout_gen))),
        output_linear_(
            register_module("output_linear", std::make_shared<ModuleList<PointwiseConv>>())) {
    output_linear_->append(std::make_shared<PointwiseConv>(H, 2 * H, gen, dtype));
  }

  Tensor forward(const Tensor& u) {  // (B, H, L) -> (B, H, L)
    const std::int64_t B = u.size(0), H = u.size(1), L = u.size(2);
    const Tensor k = unsqueeze(kernel_->forward(L), 0);                 // (1, H, L)
    Tensor y = reshape(fft_conv(u, k, unsqueeze(D_, 0)), {B, H, L});    // (B, H, L)
    y = dropout_->forward(gelu(y));                                     // (B, H, L)
    const Tensor z = (*output_linear_)[0].forward(transpose(y, 1, 2));  // (B, L, 2H)
    return transpose(glu(z, -1), 1, 2);                                 // (B, H, L)
  }

 private:
  std::shared_ptr<ExampleKernel> kernel_;
  Tensor& D_;  // (H)
  std::shared_ptr<Dropout> dropout_;
  std::shared_ptr<ModuleList<PointwiseConv>> output_linear_;
};

class S4DExample : public Model {
 public:
  S4DExample(const ModelConfig& c, const ModelIO& io, Generator& gen, Generator* dropout_gen)
      : config_(c),
        io_(io),
        encoder_(register_module(
            "encoder", std::make_shared<Linear>(io.d_input, c.d_model, true, gen, io.dtype))),
        layers_(register_module("s4_layers", std::make_shared<ModuleList<ExampleLayer>>())),
        norms_(register_module("norms", std::make_shared<ModuleList<LayerNorm>>())),
        dropouts_(register_module("dropouts", std::make_shared<ModuleList<Dropout>>())) {
    for (std::int64_t i = 0; i < c.n_layers; ++i) {
      layers_->append(
          std::make_shared<ExampleLayer>(c.d_model, c.d_state, c, gen, dropout_gen, io.dtype));
      norms_->append(std::make_shared<LayerNorm>(c.d_model, 1e-5, io.dtype));
      dropouts_->append(std::make_shared<Dropout>(c.dropout, dropout_gen));
    }
    decoder_ = register_module(
        "decoder", std::make_shared<Linear>(c.d_model, io.num_classes, true, gen, io.dtype));
  }

  Tensor forward(const Tensor& x_in, const Tensor& lengths) override {
    SSM_CHECK(x_in.dim() == 3 && x_in.size(2) == io_.d_input && x_in.dtype() == io_.dtype, kName,
              "expected x (B, L, ", io_.d_input, ") ", dtype_name(io_.dtype), ", got ",
              x_in.desc());
    Tensor x = transpose(encoder_->forward(x_in), 1, 2);  // (B, H, L)
    auto norm = [&](std::int64_t i, const Tensor& t) {
      return transpose((*norms_)[i].forward(transpose(t, 1, 2)), 1, 2);
    };
    for (std::int64_t i = 0; i < layers_->size(); ++i) {
      Tensor z = config_.prenorm ? norm(i, x) : x;
      z = (*dropouts_)[i].forward((*layers_)[i].forward(z));
      x = add(z, x);
      if (!config_.prenorm) x = norm(i, x);
    }
    const Tensor h = transpose(x, 1, 2);                                // (B, L, H)
    return decoder_->forward(pool_positions(h, lengths, true, kName));  // (B, C)
  }

 private:
  ModelConfig config_;
  ModelIO io_;
  std::shared_ptr<Linear> encoder_;
  std::shared_ptr<ModuleList<ExampleLayer>> layers_;
  std::shared_ptr<ModuleList<LayerNorm>> norms_;
  std::shared_ptr<ModuleList<Dropout>> dropouts_;
  std::shared_ptr<Linear> decoder_;
};

}  // namespace

std::shared_ptr<Model> make_s4d_example_model(const ModelConfig& config, const ModelIO& io,
                                              Generator& init_gen, Generator* dropout_gen) {
  check_model_args(kName, config, io, dropout_gen);
  SSM_CHECK(io.vocab_size == 0, kName, "takes float inputs (B, L, d_input), not tokens");
  SSM_CHECK(config.d_state >= 2 && config.d_state % 2 == 0, kName,
            "model.d_state must be even (N / 2 complex modes), got ", config.d_state);
  return std::make_shared<S4DExample>(config, io, init_gen, dropout_gen);
}

}  // namespace ssm
