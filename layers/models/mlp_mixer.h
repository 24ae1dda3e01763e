#pragma once
// mlp_mixer: the sequence classifier backbone (layers/models/backbone.h) with
// a convolution + MLP mixer, the baseline the SSM models are compared with.
//
// Parameters with n_layers = N, D = d_model, E = int(expand * D), C = num_classes:
//   encoder.weight (D, d_input), encoder.bias (D)      [Embedding: encoder.weight (vocab, D)]
//   layers.<i>.norm.weight (D), layers.<i>.norm.bias (D)     (no bias with norm: rms)
//   layers.<i>.mixer.conv1d.weight (D, 1, 4), layers.<i>.mixer.conv1d.bias (D)
//   layers.<i>.mixer.in_proj.weight (E, D), layers.<i>.mixer.in_proj.bias (E)
//   layers.<i>.mixer.out_proj.weight (D, E), layers.<i>.mixer.out_proj.bias (D)
//   norm_f.weight (D), norm_f.bias (D)
//   decoder.weight (C, D), decoder.bias (C)
// for i in 0..N-1. Biases and norm weights carry the tag "no_decay".
//
// The mixer, x (B, L, D) -> (B, L, D):
//   u = causal depthwise conv1d along L (kernel 4, Mamba's layout)   token mixing
//   y = out_proj(gelu(in_proj(u)))                                    channel mixing
// The convolution is causal, so padding at the end never reaches a valid position.
#include <cstdint>
#include <memory>

#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/models/backbone.h"

namespace ssm {

class ConvMlpMixer : public SequenceMixer {
 public:
  ConvMlpMixer(std::int64_t d_model, std::int64_t d_hidden, std::int64_t d_conv, Generator& gen,
               DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) override;  // (B, L, D) -> (B, L, D)

 private:
  std::shared_ptr<CausalConv1d> conv1d_;  // weight (D, 1, d_conv), bias (D)
  std::shared_ptr<Linear> in_proj_;       // (E, D), (E)
  std::shared_ptr<Linear> out_proj_;      // (D, E), (D)
};

// The registry's builder for "mlp_mixer" (make_model).
std::shared_ptr<Model> make_mlp_mixer(const ModelConfig& config, const ModelIO& io,
                                      Generator& init_gen, Generator* dropout_gen);

}  // namespace ssm
