#pragma once
// mamba_lm: the causal language model of the Mamba reference code
// (MambaLMHeadModel), with its parameter names, for the synthetic token
// tasks, and greedy generation in recurrent mode. D = d_model, V = vocab:
//
//   backbone.embedding.weight (V, D)            ~ N(0, 0.02^2)
//   backbone.layers.<i>.norm.weight (D)         RMSNorm (model.norm rms, the default here) or
//                                               LayerNorm (+ .bias)
//   backbone.layers.<i>.mixer.*                 a Mamba block (layers/ssm/mamba.h), out_proj
//                                               scaled by 1/sqrt(n_layers) at init
//   backbone.norm_f.weight (D)
//   lm_head: tied to backbone.embedding.weight (no parameter of its own; a
//   PyTorch state dict lists the same tensor under lm_head.weight too)
//
// h = embedding(x); per layer h = h + mixer(norm(h)); logits = norm_f(h) E^T.
// As a Model: forward gives the next-token logits at each sequence's last
// valid position (B, V) (induction heads, associative recall), and
// forward_outputs those of the last n positions (selective copying). The
// task's classes must be its tokens (num_classes == vocab_size).
#include <memory>

#include "layers/models/model.h"

namespace ssm {

class MambaLM;

std::shared_ptr<Model> make_mamba_lm_model(const ModelConfig& config, const ModelIO& io,
                                           Generator& init_gen, Generator* dropout_gen);

// Next-token logits at every position: tokens (B, L) int64 -> (B, L, V).
// Throws unless `model` is a mamba_lm.
Tensor lm_logits(Model& model, const Tensor& tokens);

// Greedy generation in recurrent mode (no gradient): the prompt (B, P)
// int64, P >= 1, is read one token at a time through every block's step(),
// then n_new tokens are appended, each the argmax of the last logits.
// Returns (B, P + n_new). Equals re-running the whole sequence through
// lm_logits at each step and taking the argmax of the last position.
Tensor lm_generate(Model& model, const Tensor& prompt, std::int64_t n_new);

}  // namespace ssm
