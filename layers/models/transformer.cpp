#include "layers/models/transformer.h"

#include <cmath>
#include <vector>

#include "autograd/ops.h"

namespace ssm {

// ---------------------------------------------------------------- mixers

AttentionMixer::AttentionMixer(std::int64_t d_model, const AttentionOptions& options,
                               Generator& gen, DType dtype, Generator* dropout_gen) {
  self_attn_ = register_module(
      "self_attn", std::make_shared<MultiheadAttention>(d_model, options, gen, dtype, dropout_gen));
}

Tensor AttentionMixer::forward(const Tensor& x) { return self_attn_->forward(x); }

Tensor AttentionMixer::forward_padded(const Tensor& x, const Tensor& lengths) {
  return self_attn_->forward(x, lengths);
}

FeedForward::FeedForward(std::int64_t d_model, std::int64_t d_ff, Generator& gen, DType dtype) {
  linear1_ = register_module("linear1", std::make_shared<Linear>(d_model, d_ff, true, gen, dtype));
  linear2_ = register_module("linear2", std::make_shared<Linear>(d_ff, d_model, true, gen, dtype));
}

Tensor FeedForward::forward(const Tensor& x) {
  return linear2_->forward(gelu(linear1_->forward(x)));
}

// ---------------------------------------------------------------- positions

Tensor sinusoidal_positions(std::int64_t L, std::int64_t D, DType dtype) {
  std::vector<double> pe(static_cast<std::size_t>(L * D));
  for (std::int64_t t = 0; t < L; ++t) {
    for (std::int64_t k = 0; k < D; ++k) {
      const std::int64_t i2 = k - k % 2;  // 2i
      const double angle = static_cast<double>(t) /
                           std::pow(10000.0, static_cast<double>(i2) / static_cast<double>(D));
      pe[static_cast<std::size_t>(t * D + k)] = k % 2 == 0 ? std::sin(angle) : std::cos(angle);
    }
  }
  return Tensor::from_vector(pe, {L, D}, dtype);
}

// ---------------------------------------------------------------- the model

namespace {

void check_transformer_args(const ModelConfig& c, const ModelIO& io) {
  const char* op = "transformer";
  SSM_CHECK(c.n_heads >= 1, op, "model.n_heads must be >= 1, got ", c.n_heads);
  SSM_CHECK(c.d_model % c.n_heads == 0, op, "model.n_heads (", c.n_heads,
            ") must divide model.d_model (", c.d_model, ")");
  SSM_CHECK(c.positions == "learned" || c.positions == "sinusoidal", op,
            "model.positions must be learned or sinusoidal, got '", c.positions, "'");
  SSM_CHECK(c.positions != "learned" || io.max_len >= 1, op,
            "positions: learned needs the data's longest sequence (max_len >= 1), got ",
            io.max_len);
  const auto d_ff = static_cast<std::int64_t>(c.expand * static_cast<double>(c.d_model));
  SSM_CHECK(d_ff >= 1, op, "model.expand * model.d_model must be >= 1, got ", c.expand, " * ",
            c.d_model);
}

}  // namespace

TransformerClassifier::TransformerClassifier(const ModelConfig& config, const ModelIO& io,
                                             Generator& init_gen, Generator* dropout_gen)
    : SequenceClassifier(
          "transformer", config, io, init_gen, dropout_gen,
          [&](std::int64_t) {
            check_transformer_args(config, io);
            AttentionOptions o;
            o.num_heads = config.n_heads;
            o.causal = config.causal;
            o.dropout = config.dropout;
            return std::make_shared<AttentionMixer>(config.d_model, o, init_gen, io.dtype,
                                                    dropout_gen);
          },
          [&](std::int64_t) {
            const auto d_ff =
                static_cast<std::int64_t>(config.expand * static_cast<double>(config.d_model));
            return std::make_shared<FeedForward>(config.d_model, d_ff, init_gen, io.dtype);
          }) {
  check_transformer_args(config, io);
  if (config.positions == "learned") {
    Tensor pe = randn({io.max_len, config.d_model}, io.dtype, Device::cpu(), init_gen);
    pos_embedding_ = &register_parameter("pos_embedding", mul(pe, 0.02).detach(), {"no_decay"});
  }
}

Tensor TransformerClassifier::encode(const Tensor& x) const {
  const Tensor h = SequenceClassifier::encode(x);  // (B, L, D)
  const std::int64_t L = h.size(1), D = h.size(2);
  if (pos_embedding_ != nullptr) {
    SSM_CHECK(L <= pos_embedding_->size(0), "transformer", "input length ", L,
              " exceeds the learned positions' max_len ", pos_embedding_->size(0),
              " (the longest sequence of the data the model was built for)");
    return h + unsqueeze(narrow(*pos_embedding_, 0, 0, L), 0);
  }
  return h + unsqueeze(sinusoidal_positions(L, D, h.dtype()).to(h.device()), 0);
}

std::shared_ptr<Model> make_transformer_model(const ModelConfig& config, const ModelIO& io,
                                              Generator& init_gen, Generator* dropout_gen) {
  check_model_args(config.name, config, io, dropout_gen);
  check_transformer_args(config, io);
  return std::make_shared<TransformerClassifier>(config, io, init_gen, dropout_gen);
}

}  // namespace ssm
