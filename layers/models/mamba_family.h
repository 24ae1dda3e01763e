#pragma once
// The Mamba-family sequence classifiers (registry entries): mamba (Mamba
// blocks; Vision Mamba's bidirectional block with model.bidirectional) and
// mambaout (MambaOut's gated CNN, the SSM-free baseline). See
// layers/models/mamba_family.cpp for the config keys each reads.
#include <memory>

#include "layers/models/model.h"

namespace ssm {

std::shared_ptr<Model> make_mamba_model(const ModelConfig& config, const ModelIO& io,
                                        Generator& init_gen, Generator* dropout_gen);
std::shared_ptr<Model> make_mambaout_model(const ModelConfig& config, const ModelIO& io,
                                           Generator& init_gen, Generator* dropout_gen);

}  // namespace ssm
