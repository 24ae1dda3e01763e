#pragma once
// Multi-head self-attention, PyTorch's nn.MultiheadAttention (batch_first,
// self-attention, same parameter names and layouts), built from the
// differentiable ops (linear, matmul, softmax, masked_fill):
//
//   in_proj_weight (3E, E)   xavier_uniform          [W_q; W_k; W_v]
//   in_proj_bias   (3E)      0, tag "no_decay"
//   out_proj.weight (E, E)   U(-1/sqrt(E), 1/sqrt(E)) (nn.Linear's default)
//   out_proj.bias   (E)      0, tag "no_decay"
//
// forward(x (B, L, E), lengths):
//   q, k, v = split(x in_proj_weight^T + in_proj_bias), each (B, H, L, E/H)
//   scores  = q k^T / sqrt(E/H)                       (B, H, L, L)
//   scores[b, :, t, s] = -inf (an added bias) where s >= lengths[b] (key padding) or, causal, s > t
//   y = out_proj(concat_heads(dropout(softmax(scores)) v))   (B, L, E)
// Every query row keeps key 0 (lengths >= 1), so no row is all -inf; rows of
// padded queries hold finite values that real rows never read.
#include <cstdint>
#include <memory>

#include "core/rng.h"
#include "layers/linear.h"
#include "layers/module.h"

namespace ssm {

struct AttentionOptions {
  std::int64_t num_heads = 1;  // divides E
  bool causal = false;         // position t attends to s <= t only
  double dropout = 0.0;        // on the attention weights, while training
};

// The functional form (what the module runs; gradcheck differentiates it in
// every weight). x (B, L, E); in_w (3E, E), in_b (3E), out_w (E, E), out_b
// (E), biases may be undefined; lengths (B) int64/int32 in [1, L] or
// undefined (no key padding). dropout_gen may be null when dropout is 0 or
// training is false.
Tensor multi_head_attention(const Tensor& x, const Tensor& in_w, const Tensor& in_b,
                            const Tensor& out_w, const Tensor& out_b,
                            const AttentionOptions& options, const Tensor& lengths = Tensor(),
                            bool training = false, Generator* dropout_gen = nullptr);

class MultiheadAttention : public Module {
 public:
  // Draws in_proj_weight, then out_proj.weight, from gen. dropout_gen (which
  // must outlive the module) may be null when options.dropout is 0.
  MultiheadAttention(std::int64_t embed_dim, const AttentionOptions& options, Generator& gen,
                     DType dtype = DType::Float32, Generator* dropout_gen = nullptr);

  // x (B, L, E) -> (B, L, E); lengths (B) or undefined (every key valid).
  Tensor forward(const Tensor& x, const Tensor& lengths = Tensor()) const;

  std::int64_t embed_dim() const { return embed_dim_; }
  const AttentionOptions& options() const { return options_; }
  const Tensor& in_proj_weight() const { return in_proj_weight_; }
  const Tensor& in_proj_bias() const { return in_proj_bias_; }
  Linear& out_proj() { return *out_proj_; }

 private:
  std::int64_t embed_dim_;
  AttentionOptions options_;
  Generator* dropout_gen_;
  Tensor& in_proj_weight_;  // (3E, E)
  Tensor& in_proj_bias_;    // (3E)
  std::shared_ptr<Linear> out_proj_;
};

}  // namespace ssm
