// The Mamba-family sequence models: the shared backbone (models/backbone.h)
// with a Mamba block (layers/ssm/mamba.h) as every block's mixer; with
// model.bidirectional, Vision Mamba's bidirectional "v2" block. Keys:
// d_state (N, default 64 in the config; the Mamba paper uses 16), expand,
// d_conv (0: 4), dt_min, dt_max, bidirectional. out_proj starts scaled by
// 1/sqrt(n_layers), the reference's rescaled pre-norm residual init.
#include "layers/models/mamba_family.h"

#include <cmath>

#include "layers/models/backbone.h"
#include "layers/models/model.h"
#include "layers/ssm/gated_cnn.h"
#include "layers/ssm/mamba.h"

namespace ssm {

std::shared_ptr<Model> make_mamba_model(const ModelConfig& config, const ModelIO& io,
                                        Generator& init_gen, Generator* dropout_gen) {
  check_model_args(config.name, config, io, dropout_gen);
  MambaOptions o;
  o.d_state = config.d_state;
  o.d_conv = config.d_conv > 0 ? config.d_conv : 4;
  o.expand = config.expand;
  o.dt_min = config.dt_min;
  o.dt_max = config.dt_max;
  o.bidirectional = config.bidirectional;
  o.out_proj_scale = 1.0 / std::sqrt(static_cast<double>(config.n_layers));
  return std::make_shared<SequenceClassifier>(
      config.name, config, io, init_gen, dropout_gen,
      [&](std::int64_t) { return std::make_shared<Mamba>(config.d_model, o, init_gen, io.dtype); });
}

}  // namespace ssm

namespace ssm {

// MambaOut's SSM-free baseline for sequences: every block's mixer is the
// gated CNN (layers/ssm/gated_cnn.h) without its own norm and residual (the
// backbone's block supplies both): fc1 -> gate, identity, conv parts; a
// centred depthwise conv of kernel d_conv (0: 7) on the conv part;
// fc2(GELU(gate) * cat(identity, conv)). expand is the expansion ratio
// (MambaOut uses 8/3). Padding is masked out of the convolution.
std::shared_ptr<Model> make_mambaout_model(const ModelConfig& config, const ModelIO& io,
                                           Generator& init_gen, Generator* dropout_gen) {
  check_model_args(config.name, config, io, dropout_gen);
  GatedCNNBlock1dOptions o;
  o.expansion_ratio = config.expand;
  o.kernel_size = config.d_conv > 0 ? config.d_conv : 7;
  SSM_CHECK(o.kernel_size % 2 == 1, "mambaout", "model.d_conv must be odd (a centred kernel), got ",
            o.kernel_size);
  o.causal = false;
  return std::make_shared<SequenceClassifier>(
      config.name, config, io, init_gen, dropout_gen, [&](std::int64_t) {
        return std::make_shared<GatedCNNMixer1d>(config.d_model, o, init_gen, io.dtype);
      });
}

}  // namespace ssm
