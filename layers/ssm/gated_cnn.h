#pragma once
// MambaOut's Gated CNN block (Yu & Wang 2024, "MambaOut: Do We Really Need
// Mamba for Vision?", GatedCNNBlock of models/mambaout.py; the gating of
// Dauphin et al. 2017), for sequences (1-D) and channels-last images (2-D):
//
//   shortcut = x                                   (B, L, dim) or (B, H, W, dim)
//   x = norm(x)                                    LayerNorm(dim, eps 1e-6)
//   g, i, c = split(fc1(x), [hidden, hidden - Cc, Cc])
//   c = conv(c)                                    depthwise, per channel: along L
//                                                  (1-D) or over (H, W) (2-D)
//   x = fc2(gelu(g) * cat(i, c))                   exact (erf) GELU
//   return x + shortcut                            (drop_path omitted)
//
// with hidden = int(expansion_ratio dim) and Cc = int(conv_ratio dim), as the
// reference truncates them. The conv is centred ("same" zero padding, k odd,
// padding k / 2), or causal in 1-D (Mamba's conv cut to L, any k >= 1).
//
// Parameters (PyTorch's names and layouts; nn.Linear / nn.Conv default inits,
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn in this order):
//   norm.weight (dim) = 1, norm.bias (dim) = 0         tag no_decay
//   fc1.weight (2 hidden, dim), fc1.bias (2 hidden)
//   conv.weight (Cc, 1, k) [1-D] or (Cc, 1, k, k) [2-D], conv.bias (Cc)
//   fc2.weight (dim, hidden), fc2.bias (dim)
// Biases carry the tag no_decay. (MambaOut's ImageNet models re-initialise
// weights with trunc_normal(std 0.02) and zero biases at the model level; the
// block itself keeps PyTorch's defaults.)
//
// In the sequence backbone (layers/models/backbone.h), whose residual block
// already holds the norm and the residual, the mixer is GatedCNNMixer1d: the
// same block with residual_and_norm = false (parameters fc1.*, conv.*, fc2.*).
#include <cstdint>
#include <memory>

#include "core/rng.h"
#include "layers/linear.h"
#include "layers/models/backbone.h"
#include "layers/norm.h"

namespace ssm {

// ---------------------------------------------------------------- depthwise convs

// A depthwise conv along the sequence, stored as nn.Conv1d(C, C, k, groups=C):
//   weight (C, 1, k), bias (C), both U(-1/sqrt(k), 1/sqrt(k)); bias tag no_decay.
// Centred: padding k / 2 on both sides (k odd), output t reads t - k/2 .. t + k/2.
// Causal: padding k - 1 on the left (Mamba's conv), output t reads t - k + 1 .. t.
class DepthwiseConv1d : public Module {
 public:
  DepthwiseConv1d(std::int64_t channels, std::int64_t kernel_size, bool causal, Generator& gen,
                  DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) const;  // (B, C, L) -> (B, C, L)

  bool causal() const { return causal_; }
  std::int64_t kernel_size() const { return weight_.size(2); }
  const Tensor& weight() const { return weight_; }  // (C, 1, k)
  const Tensor& bias() const { return bias_; }      // (C)

 private:
  bool causal_;
  Tensor& weight_;  // (C, 1, k)
  Tensor& bias_;    // (C)
};

// A depthwise conv over the image, nn.Conv2d(C, C, k, padding=k//2, groups=C)
// with k odd: weight (C, 1, k, k), bias (C), both U(-1/k, 1/k) (fan_in k k).
class DepthwiseConv2d : public Module {
 public:
  DepthwiseConv2d(std::int64_t channels, std::int64_t kernel_size, Generator& gen,
                  DType dtype = DType::Float32);
  Tensor forward(const Tensor& x) const;  // (B, C, H, W) -> (B, C, H, W)

  const Tensor& weight() const { return weight_; }  // (C, 1, k, k)
  const Tensor& bias() const { return bias_; }      // (C)

 private:
  Tensor& weight_;  // (C, 1, k, k)
  Tensor& bias_;    // (C)
};

// ---------------------------------------------------------------- 1-D block

struct GatedCNNBlock1dOptions {
  double expansion_ratio = 8.0 / 3.0;  // hidden = int(expansion_ratio dim)
  double conv_ratio = 1.0;             // Cc = int(conv_ratio dim), 1 <= Cc <= hidden
  std::int64_t kernel_size = 7;        // odd when centred
  bool causal = false;                 // causal depthwise conv instead of the centred one
  // false: no norm and no residual (fc1, conv, gate, fc2 only), the mixer of
  // the backbone's residual block; see GatedCNNMixer1d.
  bool residual_and_norm = true;
  double norm_eps = 1e-6;  // the reference's LayerNorm eps
};

class GatedCNNBlock1d : public SequenceMixer {
 public:
  // Draws fc1, conv, fc2 (weight, then bias, each) from gen. dtype: float32 or float64.
  GatedCNNBlock1d(std::int64_t dim, const GatedCNNBlock1dOptions& options, Generator& gen,
                  DType dtype = DType::Float32);

  // x (B, L, dim) -> (B, L, dim). Every sequence is taken to be L long.
  Tensor forward(const Tensor& x) override;
  // The same for padded sequences: lengths (B) int32/int64 in [1, L]. With a
  // centred conv the conv input is zeroed at t >= lengths[b] first, so the
  // outputs at t < lengths[b] equal those of the sequence run alone, unpadded,
  // and do not depend on the padding's values. (The causal conv needs nothing:
  // forward(x).) Outputs at padded positions are unspecified.
  Tensor forward_padded(const Tensor& x, const Tensor& lengths) override;

  // Recurrent inference, causal blocks only (a centred conv reads the future).
  // state = default_state(B) (B, Cc, k) zeros: the last k conv inputs;
  // step(x_t (B, dim), state) -> (B, dim), state updated in place. Stepping
  // through x[:, t] from a zero state gives forward(x)[:, t]. No gradient.
  Tensor default_state(std::int64_t batch) const;
  Tensor step(const Tensor& x_t, Tensor& state);

  std::int64_t dim() const { return dim_; }
  std::int64_t hidden() const { return hidden_; }
  std::int64_t conv_channels() const { return conv_channels_; }
  const GatedCNNBlock1dOptions& options() const { return options_; }
  LayerNorm* norm() const { return norm_.get(); }  // null without residual_and_norm
  Linear& fc1() const { return *fc1_; }
  DepthwiseConv1d& conv() const { return *conv_; }
  Linear& fc2() const { return *fc2_; }

 private:
  // The whole block, with the conv input zeroed where pad_mask (B, L, 1) != 0
  // (pad_mask undefined: nothing zeroed).
  Tensor run(const Tensor& x, const Tensor& pad_mask);
  void check_input(const char* op, const Tensor& x) const;

  std::int64_t dim_, hidden_, conv_channels_;
  GatedCNNBlock1dOptions options_;
  std::shared_ptr<LayerNorm> norm_;  // null without residual_and_norm
  std::shared_ptr<Linear> fc1_;      // dim -> 2 hidden
  std::shared_ptr<DepthwiseConv1d> conv_;
  std::shared_ptr<Linear> fc2_;  // hidden -> dim
};

// GatedCNNBlock1d with residual_and_norm = false (whatever options says):
// x (B, L, dim) -> fc2(gelu(g) * cat(i, conv(c))), parameters fc1.*, conv.*,
// fc2.*. The SequenceMixer for the backbone's residual block.
class GatedCNNMixer1d : public GatedCNNBlock1d {
 public:
  GatedCNNMixer1d(std::int64_t dim, const GatedCNNBlock1dOptions& options, Generator& gen,
                  DType dtype = DType::Float32);
};

// ---------------------------------------------------------------- 2-D block

struct GatedCNNBlock2dOptions {
  double expansion_ratio = 8.0 / 3.0;  // hidden = int(expansion_ratio dim)
  double conv_ratio = 1.0;             // Cc = int(conv_ratio dim), 1 <= Cc <= hidden
  std::int64_t kernel_size = 7;        // odd; padding kernel_size / 2
  double norm_eps = 1e-6;
};

class GatedCNNBlock2d : public Module {
 public:
  GatedCNNBlock2d(std::int64_t dim, const GatedCNNBlock2dOptions& options, Generator& gen,
                  DType dtype = DType::Float32);

  // x (B, H, W, dim), channels last as the reference -> (B, H, W, dim).
  Tensor forward(const Tensor& x);

  std::int64_t dim() const { return dim_; }
  std::int64_t hidden() const { return hidden_; }
  std::int64_t conv_channels() const { return conv_channels_; }
  LayerNorm& norm() const { return *norm_; }
  Linear& fc1() const { return *fc1_; }
  DepthwiseConv2d& conv() const { return *conv_; }
  Linear& fc2() const { return *fc2_; }

 private:
  std::int64_t dim_, hidden_, conv_channels_;
  std::shared_ptr<LayerNorm> norm_;
  std::shared_ptr<Linear> fc1_;  // dim -> 2 hidden
  std::shared_ptr<DepthwiseConv2d> conv_;
  std::shared_ptr<Linear> fc2_;  // hidden -> dim
};

}  // namespace ssm
