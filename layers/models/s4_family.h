#pragma once
// The S4-family sequence models: the shared backbone (models/backbone.h)
// with an S4Block (layers/ssm/s4_block.h) as every block's mixer, around the
// kernel of the family:
//   s4d   diagonal SSM, Vandermonde kernel (S4D)          layers/ssm/s4d.h
//   s4    DPLR SSM, Cauchy kernel + Woodbury (S4)         layers/ssm/s4.h
//   lssl  dense HiPPO SSM, Krylov kernel (LSSL)           layers/ssm/lssl.h
//   rtf   rational transfer function (RTF)                layers/ssm/rtf.h
// Config keys (ModelConfig): d_state (N; RTF's order n), init, disc, alpha,
// dt_min, dt_max, channels, bidirectional, learn_a, rank; each family checks
// the ones it reads and says which values it accepts.
#include <memory>

#include "layers/models/model.h"
#include "layers/ssm/s4_block.h"

namespace ssm {

// One S4Block of family config.name (s4d | s4 | lssl | rtf) with
// d_model = config.d_model features. Throws "[<family>] ..." for a value it
// does not accept.
std::shared_ptr<S4Block> make_s4_block(const ModelConfig& config, Generator& gen,
                                       Generator* dropout_gen, DType dtype = DType::Float32);

// The sequence classifiers (registry entries s4d, s4, lssl, rtf).
std::shared_ptr<Model> make_s4_family_model(const ModelConfig& config, const ModelIO& io,
                                            Generator& init_gen, Generator* dropout_gen);

}  // namespace ssm
