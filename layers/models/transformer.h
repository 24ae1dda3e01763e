#pragma once
// transformer: the attention baseline. The sequence classifier backbone
// (layers/models/backbone.h) whose blocks are Transformer encoder layers,
// PyTorch's TransformerEncoderLayer(norm_first = model.prenorm, GELU): the
// mixer is multi-head self-attention (layers/attention.h), the feed-forward
// sublayer a position-wise MLP; a position encoding is added to the encoder's
// output. Keys: n_heads (divides d_model), causal, positions (learned |
// sinusoidal), expand (d_ff = int(expand * d_model)), dropout, norm, prenorm,
// pooling.
//
// Parameters with n_layers = N, D = d_model, F = d_ff, C = num_classes:
//   encoder.*                                         as the backbone
//   layers.<i>.norm.*, layers.<i>.ff_norm.*           LayerNorm (or RMSNorm)
//   layers.<i>.mixer.self_attn.in_proj_weight (3D, D), .in_proj_bias (3D)
//   layers.<i>.mixer.self_attn.out_proj.weight (D, D), .out_proj.bias (D)
//   layers.<i>.ff.linear1.weight (F, D), .linear1.bias (F)
//   layers.<i>.ff.linear2.weight (D, F), .linear2.bias (D)
//   norm_f.*, decoder.*                               as the backbone
//   pos_embedding (max_len, D)      positions: learned, N(0, 0.02), tag "no_decay"
// max_len is io.max_len (the data's longest sequence); a longer input throws.
// sinusoidal positions (Vaswani et al.) have no parameters:
//   PE[t, 2i] = sin(t / 10000^(2i/D)),  PE[t, 2i+1] = cos(t / 10000^(2i/D)).
#include <cstdint>
#include <memory>

#include "layers/attention.h"
#include "layers/linear.h"
#include "layers/models/backbone.h"

namespace ssm {

// The attention mixer: forward_padded masks keys at positions >= length, so
// padding never changes real positions' outputs.
class AttentionMixer : public SequenceMixer {
 public:
  AttentionMixer(std::int64_t d_model, const AttentionOptions& options, Generator& gen,
                 DType dtype = DType::Float32, Generator* dropout_gen = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor forward_padded(const Tensor& x, const Tensor& lengths) override;
  MultiheadAttention& self_attn() { return *self_attn_; }

 private:
  std::shared_ptr<MultiheadAttention> self_attn_;
};

// The position-wise MLP: linear2(gelu(linear1(x))).
class FeedForward : public SequenceMixer {
 public:
  FeedForward(std::int64_t d_model, std::int64_t d_ff, Generator& gen,
              DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<Linear> linear1_;  // (F, D), (F)
  std::shared_ptr<Linear> linear2_;  // (D, F), (D)
};

// (L, D) sinusoidal position encodings of Vaswani et al. in dtype.
Tensor sinusoidal_positions(std::int64_t L, std::int64_t D, DType dtype);

class TransformerClassifier : public SequenceClassifier {
 public:
  TransformerClassifier(const ModelConfig& config, const ModelIO& io, Generator& init_gen,
                        Generator* dropout_gen);

 protected:
  Tensor encode(const Tensor& x) const override;

 private:
  Tensor* pos_embedding_ = nullptr;  // (max_len, D), learned positions only
};

// The registry's builder for "transformer" (make_model).
std::shared_ptr<Model> make_transformer_model(const ModelConfig& config, const ModelIO& io,
                                              Generator& init_gen, Generator* dropout_gen);

}  // namespace ssm
