// make_model / model_names: the table of model families. A new family adds
// one line to kModels below.
#include <sstream>
#include <utility>

#include "layers/models/mamba_family.h"
#include "layers/models/mamba_lm.h"
#include "layers/models/mlp_mixer.h"
#include "layers/models/model.h"
#include "layers/models/s4_family.h"
#include "layers/models/s4d_example.h"
#include "layers/models/transformer.h"
#include "layers/models/vision.h"

namespace ssm {

namespace {

using ModelBuilder = std::shared_ptr<Model> (*)(const ModelConfig&, const ModelIO&, Generator&,
                                                Generator*);

const std::vector<std::pair<std::string, ModelBuilder>>& models() {
  static const std::vector<std::pair<std::string, ModelBuilder>> kModels = {
      {"mlp_mixer", &make_mlp_mixer},
      {"s4d", &make_s4_family_model},
      {"s4", &make_s4_family_model},
      {"lssl", &make_s4_family_model},
      {"rtf", &make_s4_family_model},
      {"mamba", &make_mamba_model},
      {"mambaout", &make_mambaout_model},
      {"transformer", &make_transformer_model},
      {"s4d_example", &make_s4d_example_model},
      {"mamba_lm", &make_mamba_lm_model},
      {"vim", &make_vim_model},
      {"mambaout_image", &make_mambaout_image_model},
  };
  return kModels;
}

}  // namespace

Tensor Model::forward_outputs(const Tensor& x, const Tensor& lengths, std::int64_t n) {
  (void)x;
  (void)lengths;
  (void)n;
  fail("model", "this model has no per-position outputs (sequence-output tasks need one)");
}

Tensor Model::forward_pair(const Tensor& x1, const Tensor& lengths1, const Tensor& x2,
                           const Tensor& lengths2) {
  (void)x1;
  (void)lengths1;
  (void)x2;
  (void)lengths2;
  fail("model", "this model has no two-tower head (paired tasks such as LRA Retrieval need one)");
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& [name, builder] : models()) names.push_back(name);
  return names;
}

std::shared_ptr<Model> make_model(const ModelConfig& config, const ModelIO& io, Generator& init_gen,
                                  Generator* dropout_gen) {
  for (const auto& [name, builder] : models()) {
    if (name == config.name) {
      check_model_args(name, config, io, dropout_gen);
      return builder(config, io, init_gen, dropout_gen);
    }
  }
  std::ostringstream known;
  for (const auto& name : model_names()) known << (known.tellp() > 0 ? ", " : "") << name;
  fail("make_model", "unknown model '", config.name, "'; known models: ", known.str());
}

}  // namespace ssm
