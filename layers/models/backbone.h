#pragma once
// The sequence classifier backbone that every sequence model shares; a model
// family only supplies its mixer (the one function `make_mixer`).
//
// Parameters, by dotted name (D = d_model, C = num_classes):
//   encoder.weight  (D, d_input), encoder.bias (D)   Linear, for float inputs
//   encoder.weight  (vocab_size, D)                   Embedding, when io.vocab_size > 0
//   layers.<i>.norm.weight (D) [, layers.<i>.norm.bias (D)]   LayerNorm (or RMSNorm: no bias)
//   layers.<i>.mixer.*                                the family's mixer
//   norm_f.weight (D) [, norm_f.bias (D)]
//   decoder.weight (C, D), decoder.bias (C)
// Each block `layers.<i>` also holds `dropout` (no parameters). With a
// feed-forward factory (the transformer), each block also has a second
// sublayer: layers.<i>.ff_norm.* and layers.<i>.ff.* (see ResidualBlock).
//
// forward(x, lengths):
//   h = encoder(x)                                            (B, L, D)
//   per block, prenorm:  h = h + dropout(mixer(norm(h)))
//              postnorm: h = norm(h + dropout(mixer(h)))
//   h = norm_f(h)                                             (B, L, D)
//   pooled = mean of h over positions < length (all positions without
//            lengths), or h at position length - 1 ("last")  (B, D)
//   logits = decoder(pooled)                                  (B, C)
//
// Paired tasks (io.paired, LRA Retrieval), the two-tower head of the LRA
// and S4 code: both sequences go through the same encoder and blocks, giving
// pooled u and v (B, D); then
//   logits = decoder(gelu(pair_mlp([u, v, u * v, u - v])))   pair_mlp: Linear 4D -> D
// with pair_mlp.weight (D, 4D), pair_mlp.bias (D) registered before decoder.
//
// Parameters are created in io.dtype (float32, or float64 for gradient
// checks); float inputs must have that dtype too. Initialisation draws from
// init_gen in registration order: encoder, each block's mixer, decoder.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/container.h"
#include "layers/dropout.h"
#include "layers/embedding.h"
#include "layers/linear.h"
#include "layers/models/model.h"
#include "layers/norm.h"

namespace ssm {

// A sequence mixer: x (B, L, D) -> (B, L, D). Padding sits at the end of a
// sequence, so a mixer must keep positions >= length from influencing the
// outputs at positions < length (every causal mixer does); the backbone's
// pooling relies on it.
class SequenceMixer : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  // The same with the valid length of each sequence: lengths (B) int64 in
  // [1, L]. A causal mixer needs nothing more (the default); a mixer whose
  // output at t reads later positions (a bidirectional scan, a centred
  // convolution) overrides this so that padding never reaches real positions.
  virtual Tensor forward_padded(const Tensor& x, const Tensor& lengths) {
    (void)lengths;
    return forward(x);
  }
};

// Builds the mixer of block `layer` (0-based). It draws its initial values
// from the same generator the backbone was given, in call order.
using MixerFactory = std::function<std::shared_ptr<SequenceMixer>(std::int64_t layer)>;

// One residual block `layers.<i>`: norm, mixer, dropout; optionally a second
// residual sublayer `ff` with its own norm `ff_norm` (a Transformer encoder
// layer: attention, then the position-wise MLP):
//   prenorm:  h = x + dropout(mixer(norm(x)));  h = h + dropout(ff(ff_norm(h)))
//   postnorm: h = norm(x + dropout(mixer(x)));  h = ff_norm(h + dropout(ff(h)))
class ResidualBlock : public Module {
 public:
  // ff and ff_norm: both null (one sublayer) or both set.
  ResidualBlock(std::shared_ptr<Norm> norm, std::shared_ptr<SequenceMixer> mixer, double dropout,
                Generator* dropout_gen, bool prenorm, std::shared_ptr<Norm> ff_norm = nullptr,
                std::shared_ptr<SequenceMixer> ff = nullptr);
  // (B, L, D) -> (B, L, D); lengths (B) or undefined (every sequence full).
  Tensor forward(const Tensor& x, const Tensor& lengths = Tensor());

  Norm& norm() { return *norm_; }
  SequenceMixer& mixer() { return *mixer_; }
  Dropout& dropout() { return *dropout_; }
  bool has_ff() const { return ff_ != nullptr; }

 private:
  std::shared_ptr<Norm> norm_;
  std::shared_ptr<SequenceMixer> mixer_;
  std::shared_ptr<Dropout> dropout_;
  std::shared_ptr<Norm> ff_norm_;      // null without ff
  std::shared_ptr<SequenceMixer> ff_;  // position-wise: ignores lengths
  bool prenorm_;
};

// Pooling over positions, padding excluded: h (B, L, D) with lengths (B) in
// [1, L] (or undefined: every position) -> (B, D), the mean over positions
// < lengths[b] (mean_pool) or h at position lengths[b] - 1. op names errors.
Tensor pool_positions(const Tensor& h, const Tensor& lengths, bool mean_pool, const char* op);
// Throws "[op] per-position outputs need unpadded sequences" unless every
// length is L (undefined lengths pass).
void require_unpadded(const Tensor& lengths, std::int64_t L, const char* op);

// Throws ssm::Error "[<name>] ..." unless the config and io are in range:
// d_model, n_layers, d_state >= 1, dropout in [0, 1) (and a dropout generator
// when it is > 0), norm layer | rms, pooling mean | last, expand > 0,
// d_input >= 1, num_classes >= 2, vocab_size >= 0, dtype float32 | float64.
void check_model_args(const std::string& name, const ModelConfig& config, const ModelIO& io,
                      const Generator* dropout_gen);

class SequenceClassifier : public Model {
 public:
  // name: the model family, used in error messages. Checks the arguments
  // (check_model_args), then builds encoder, blocks and decoder. make_ff
  // (optional) builds each block's feed-forward sublayer, called right after
  // make_mixer for the same block.
  SequenceClassifier(const std::string& name, const ModelConfig& config, const ModelIO& io,
                     Generator& init_gen, Generator* dropout_gen, const MixerFactory& make_mixer,
                     const MixerFactory& make_ff = nullptr);

  // x (B, L, d_input) in io.dtype, or (B, L) int32/int64 tokens; lengths (B)
  // int32/int64 in [1, L], or undefined. Returns logits (B, num_classes).
  Tensor forward(const Tensor& x, const Tensor& lengths) override;
  // The decoder applied at each of the last n positions instead of the
  // pooled features: (B, n, num_classes). 1 <= n <= L; no padding.
  Tensor forward_outputs(const Tensor& x, const Tensor& lengths, std::int64_t n) override;
  // The two-tower head (io.paired): logits (B, num_classes).
  Tensor forward_pair(const Tensor& x1, const Tensor& lengths1, const Tensor& x2,
                      const Tensor& lengths2) override;

  const std::string& name() const { return name_; }
  const ModelConfig& config() const { return config_; }
  const ModelIO& io() const { return io_; }
  std::int64_t num_blocks() const { return blocks_->size(); }
  ResidualBlock& block(std::int64_t i) { return (*blocks_)[i]; }

 protected:
  // x -> (B, L, D): the encoder; a family may add to it (positions).
  virtual Tensor encode(const Tensor& x) const;

 private:
  Tensor pool(const Tensor& h, const Tensor& lengths) const;  // (B, L, D) -> (B, D)
  Tensor features(const Tensor& x, const Tensor& lengths);    // pooled (B, D)
  void check_inputs(const Tensor& x, const Tensor& lengths) const;

  std::string name_;
  ModelConfig config_;
  ModelIO io_;
  std::shared_ptr<Linear> linear_encoder_;             // float inputs
  std::shared_ptr<Embedding> token_encoder_;           // token inputs
  std::shared_ptr<ModuleList<ResidualBlock>> blocks_;  // `layers`
  std::shared_ptr<Norm> norm_f_;
  std::shared_ptr<Linear> pair_mlp_;  // paired tasks only
  std::shared_ptr<Linear> decoder_;
};

}  // namespace ssm
