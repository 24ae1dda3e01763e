#pragma once
// Sequence classification models and the registry that builds them by name.
//
//   auto model = make_model(cfg.model, {.d_input = 4, .num_classes = 10}, init_gen, &dropout_gen);
//   Tensor logits = model->forward(x, lengths);  // (B, C)
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "layers/module.h"

namespace ssm {

// The `model:` section of a training config (train/config.h reads it).
struct ModelConfig {
  std::string name = "mlp_mixer";  // model family (model_names())
  std::int64_t d_model = 64;
  std::int64_t n_layers = 2;
  std::int64_t d_state = 64;   // SSM state size (SSM models)
  double dropout = 0.0;        // in [0, 1)
  std::string norm = "layer";  // layer | rms
  bool prenorm = true;
  std::string pooling = "mean";  // mean | last
  double expand = 2.0;           // hidden width of MLP / Mamba blocks, as a multiple of d_model
  // S4-family layers (s4, s4d, lssl, rtf); see configs/README.md.
  std::string init =
      "legs";  // s4d: legs | lin | inv | real; lssl: HiPPO measure legs | legt | lagt | fout
  // auto: the family's own (s4d zoh, s4 and lssl bilinear); s4d: zoh | bilinear;
  // lssl: bilinear | gbt (with alpha) | zoh; s4: bilinear
  std::string disc = "auto";
  double alpha = 0.5;    // lssl with disc gbt: 0 forward Euler, 0.5 bilinear, 1 backward Euler
  double dt_min = 1e-3;  // log_dt ~ U[log dt_min, log dt_max)
  double dt_max = 1e-1;
  std::int64_t channels = 1;  // SSM output channels per feature, mixed by the output linear
  bool bidirectional = false;
  bool learn_a = true;      // lssl: false = LSSL-fixed (A and B stay HiPPO)
  std::int64_t rank = 1;    // s4: rank of the low-rank term P P^*
  std::int64_t d_conv = 0;  // conv kernel: mamba (0: 4), mambaout (0: 7)
  // transformer: attention heads (divides d_model), causal attention, and the
  // position encoding added to the embedded input: learned | sinusoidal.
  std::int64_t n_heads = 4;
  bool causal = false;
  std::string positions = "learned";
  // Image models (vim, mambaout_image): square images arrive as sequences
  // (B, S*S, channels), row-major pixels (sfashion: 28 x 28 x 1); patch_size
  // divides S. drop_path: stochastic depth, the largest rate (vim: the rate
  // of block i grows linearly from 0 to drop_path).
  std::int64_t patch_size = 4;
  double drop_path = 0.0;
};

// What the data fixes about a model's ends.
struct ModelIO {
  std::int64_t d_input = 1;      // features per position (float inputs)
  std::int64_t vocab_size = 0;   // > 0: inputs are int64 tokens (B, L) embedded to d_model
  std::int64_t num_classes = 2;  // logits per example
  // Parameters and float inputs: float32, or float64 (gradient checks).
  DType dtype = DType::Float32;
  // Longest sequence the data holds (0: unknown). transformer with learned
  // positions sizes pos_embedding by it (and needs it >= 1).
  std::int64_t max_len = 0;
  // Each example is a pair of sequences (LRA Retrieval): the classifier
  // backbone adds its two-tower head (forward_pair).
  bool paired = false;
};

class Model : public Module {
 public:
  // x: (B, L, d_input) float32 (io.dtype), or (B, L) int64 tokens when vocab_size > 0.
  // lengths: (B) int64 valid lengths (positions >= length are padding), or
  // undefined when every sequence is full. Returns logits (B, num_classes).
  virtual Tensor forward(const Tensor& x, const Tensor& lengths) = 0;
  // Sequence-output tasks (selective copying): logits at the last n positions,
  // (B, n, num_classes), for unpadded x (lengths undefined or all L). The
  // default throws: a model without per-position outputs says so.
  virtual Tensor forward_outputs(const Tensor& x, const Tensor& lengths, std::int64_t n);
  // Paired tasks (io.paired): logits (B, num_classes) of the pair (x1, x2),
  // each (B, L_k[, d_input]) with lengths (B) or undefined. The default throws.
  virtual Tensor forward_pair(const Tensor& x1, const Tensor& lengths1, const Tensor& x2,
                              const Tensor& lengths2);
};

// Builds model config.name. Parameters are initialised from init_gen;
// dropout draws from *dropout_gen (which must outlive the model; may be null
// when config.dropout is 0). Throws ssm::Error listing the known names for an
// unknown one, and ssm::Error "[<name>] ..." for a config or io out of range.
std::shared_ptr<Model> make_model(const ModelConfig& config, const ModelIO& io, Generator& init_gen,
                                  Generator* dropout_gen);
std::vector<std::string> model_names();

}  // namespace ssm
