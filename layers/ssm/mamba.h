#pragma once
// Mamba (Gu & Dao 2023): the selective SSM block as the reference
// implementation (mamba_ssm/modules/mamba_simple.py) defines it, and Vision
// Mamba's bidirectional block (Zhu et al. 2024, bimamba "v2").
//
//   xz = in_proj(x)                       (B, L, 2 Di)   Di = expand * d_model
//   x, z = split(xz)                      (B, Di, L) each
//   x = silu(conv1d(x))                   causal depthwise, kernel d_conv, bias
//   dt, B, C = split(x_proj(x))           (B, L, dt_rank), (B, N, L), (B, N, L)
//   delta = dt_proj.weight dt             (B, Di, L)  (the bias goes into the scan)
//   y = selective_scan(x, delta, A = -exp(A_log), B, C, D, z,
//                      delta_bias = dt_proj.bias, softplus)
//   out = out_proj(y)                     (B, L, d_model)
// Bidirectional ("v2"): a second scan over the sequence read backwards
// (x and z flipped within each sequence's valid length) with its own
// conv1d_b, x_proj_b, dt_proj_b, A_b_log, D_b; in_proj, the gate z and
// out_proj are shared, and out = out_proj((y_fwd + flip(y_bwd)) / 2).
//
// Parameters (reference names and layouts):
//   in_proj.weight (2 Di, d_model); conv1d.weight (Di, 1, d_conv), conv1d.bias (Di);
//   x_proj.weight (dt_rank + 2 N, Di); dt_proj.weight (Di, dt_rank) ~ U(+-dt_rank^-0.5),
//   dt_proj.bias (Di) = softplus^-1(dt), dt ~ logU[dt_min, dt_max] floored at dt_init_floor;
//   A_log (Di, N) = log(1..N) (S4D-Real), tag no_decay; D (Di) = 1, tag no_decay;
//   out_proj.weight (d_model, Di), nn.Linear's init times out_proj_scale (1/sqrt(n_layers)
//   in a model, as the reference's rescaled pre-norm residual init).
#include <cstdint>
#include <memory>

#include "core/rng.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/models/backbone.h"

namespace ssm {

struct MambaOptions {
  std::int64_t d_state = 16;  // N, at most 256
  std::int64_t d_conv = 4;
  double expand = 2.0;
  std::int64_t dt_rank = 0;  // 0: ceil(d_model / 16)
  double dt_min = 1e-3;
  double dt_max = 1e-1;
  double dt_init_floor = 1e-4;
  bool bidirectional = false;  // Vision Mamba's v2 block
  double out_proj_scale = 1.0;
};

// The recurrent state of one Mamba block (per direction for the bidirectional one).
struct MambaState {
  Tensor conv;  // (B, Di, d_conv): the last d_conv inputs of conv1d
  Tensor ssm;   // (B, Di, N)
};

class Mamba : public SequenceMixer {
 public:
  Mamba(std::int64_t d_model, const MambaOptions& options, Generator& gen,
        DType dtype = DType::Float32);

  Tensor forward(const Tensor& x) override;  // (B, L, d_model) -> (B, L, d_model)
  // lengths (B): the backward direction reads each sequence's valid part
  // reversed, so padding never reaches real positions.
  Tensor forward_padded(const Tensor& x, const Tensor& lengths) override;

  // Recurrent inference (causal blocks): one position at a time, no gradient.
  MambaState default_state(std::int64_t batch) const;
  Tensor step(const Tensor& x_t, MambaState& state);  // (B, d_model) -> (B, d_model)
  // The recurrent view over a whole sequence (both directions for the
  // bidirectional block, the backward one over the reversed sequence).
  Tensor forward_recurrent(const Tensor& x);

  std::int64_t d_inner() const { return d_inner_; }
  std::int64_t dt_rank() const { return dt_rank_; }
  const MambaOptions& options() const { return opt_; }

 private:
  struct Direction {
    std::shared_ptr<CausalConv1d> conv1d;
    std::shared_ptr<Linear> x_proj, dt_proj;
    Tensor* A_log = nullptr;  // (Di, N)
    Tensor* D = nullptr;      // (Di)
  };
  Direction make_direction(const std::string& suffix, Generator& gen, DType dtype);
  // The SSM branch of one direction: x, z (B, Di, L) -> y (B, Di, L), gated.
  Tensor ssm_branch(const Direction& dir, const Tensor& x, const Tensor& z) const;
  // One step of one direction: x_t, z_t (B, Di) -> y_t (B, Di), gated.
  Tensor step_branch(const Direction& dir, const Tensor& x_t, const Tensor& z_t,
                     MambaState& state) const;
  Tensor run(const Tensor& x, const Tensor& lengths);

  std::int64_t d_model_, d_inner_, dt_rank_;
  MambaOptions opt_;
  std::shared_ptr<Linear> in_proj_, out_proj_;
  Direction fwd_, bwd_;
};

// x (B, L, ...) with each sequence's first lengths[b] positions reversed and
// the padding left in place (lengths undefined: the whole sequence reversed).
// Differentiable.
Tensor reverse_valid(const Tensor& x, const Tensor& lengths);

}  // namespace ssm
