#include "layers/models/mlp_mixer.h"

#include "autograd/ops.h"

namespace ssm {

ConvMlpMixer::ConvMlpMixer(std::int64_t d_model, std::int64_t d_hidden, std::int64_t d_conv,
                           Generator& gen, DType dtype) {
  conv1d_ =
      register_module("conv1d", std::make_shared<CausalConv1d>(d_model, d_conv, true, gen, dtype));
  in_proj_ =
      register_module("in_proj", std::make_shared<Linear>(d_model, d_hidden, true, gen, dtype));
  out_proj_ =
      register_module("out_proj", std::make_shared<Linear>(d_hidden, d_model, true, gen, dtype));
}

Tensor ConvMlpMixer::forward(const Tensor& x) {
  const Tensor u = transpose(conv1d_->forward(transpose(x, 1, 2)), 1, 2);  // (B, L, D)
  return out_proj_->forward(gelu(in_proj_->forward(u)));                   // (B, L, D)
}

std::shared_ptr<Model> make_mlp_mixer(const ModelConfig& config, const ModelIO& io,
                                      Generator& init_gen, Generator* dropout_gen) {
  const char* name = "mlp_mixer";
  check_model_args(name, config, io, dropout_gen);
  const auto hidden =
      static_cast<std::int64_t>(config.expand * static_cast<double>(config.d_model));
  SSM_CHECK(hidden >= 1, name, "model.expand * model.d_model must be >= 1, got ", config.expand,
            " * ", config.d_model);
  return std::make_shared<SequenceClassifier>(
      name, config, io, init_gen, dropout_gen, [&](std::int64_t) {
        return std::make_shared<ConvMlpMixer>(config.d_model, hidden, 4, init_gen, io.dtype);
      });
}

}  // namespace ssm
