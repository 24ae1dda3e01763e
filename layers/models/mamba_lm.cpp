// mamba_lm: see layers/models/mamba_lm.h.
#include "layers/models/mamba_lm.h"

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "layers/container.h"
#include "layers/models/backbone.h"
#include "layers/norm.h"
#include "layers/ssm/mamba.h"

namespace ssm {

namespace {

const char* kName = "mamba_lm";

// nn.Embedding initialised as the reference LM does: N(0, 0.02^2).
class TokenEmbedding : public Module {
 public:
  TokenEmbedding(std::int64_t vocab, std::int64_t d, Generator& gen, DType dtype)
      : weight_(register_parameter("weight", scaled_normal(vocab, d, gen, dtype))) {}
  Tensor forward(const Tensor& tokens) const { return embedding(tokens, weight_); }
  const Tensor& weight() const { return weight_; }  // (V, D)

 private:
  static Tensor scaled_normal(std::int64_t vocab, std::int64_t d, Generator& gen, DType dtype) {
    Tensor t = Tensor::empty({vocab, d}, dtype);
    normal_(t, 0.0, 0.02, gen);
    return t;
  }
  Tensor& weight_;  // (V, D)
};

class Backbone : public Module {
 public:
  Backbone(const ModelConfig& c, const ModelIO& io, Generator& gen)
      : embedding_(register_module("embedding", std::make_shared<TokenEmbedding>(
                                                    io.vocab_size, c.d_model, gen, io.dtype))),
        layers_(register_module("layers", std::make_shared<ModuleList<ResidualBlock>>())) {
    MambaOptions o;
    o.d_state = c.d_state;
    o.d_conv = c.d_conv > 0 ? c.d_conv : 4;
    o.expand = c.expand;
    o.dt_min = c.dt_min;
    o.dt_max = c.dt_max;
    o.out_proj_scale = 1.0 / std::sqrt(static_cast<double>(c.n_layers));
    for (std::int64_t i = 0; i < c.n_layers; ++i) {
      auto mixer = std::make_shared<Mamba>(c.d_model, o, gen, io.dtype);
      layers_->append(std::make_shared<ResidualBlock>(make_norm(c.norm, c.d_model, 1e-5, io.dtype),
                                                      mixer, 0.0, nullptr, true));
      mixers_.push_back(mixer);
    }
    norm_f_ = register_module("norm_f", make_norm(c.norm, c.d_model, 1e-5, io.dtype));
  }

  // tokens (B, L) -> norm_f(h) (B, L, D)
  Tensor forward(const Tensor& tokens) {
    Tensor h = embedding_->forward(tokens);
    for (const auto& block : *layers_) h = block->forward(h);
    return norm_f_->forward(h);
  }

  // One token per sequence, tokens (B), through every block's recurrent step.
  Tensor step(const Tensor& tokens, std::vector<MambaState>& states) {
    Tensor h = embedding_->forward(tokens);  // (B, D)
    for (std::int64_t i = 0; i < layers_->size(); ++i) {
      const auto k = static_cast<std::size_t>(i);
      h = add(h, mixers_[k]->step((*layers_)[i].norm().forward(h), states[k]));
    }
    return norm_f_->forward(h);  // (B, D)
  }

  std::vector<MambaState> default_states(std::int64_t batch) const {
    std::vector<MambaState> s;
    for (const auto& m : mixers_) s.push_back(m->default_state(batch));
    return s;
  }

  const Tensor& embedding_weight() const { return embedding_->weight(); }

 private:
  std::shared_ptr<TokenEmbedding> embedding_;
  std::shared_ptr<ModuleList<ResidualBlock>> layers_;
  std::vector<std::shared_ptr<Mamba>> mixers_;  // the blocks' mixers, for step()
  std::shared_ptr<Norm> norm_f_;
};

}  // namespace

class MambaLM : public Model {
 public:
  MambaLM(const ModelConfig& c, const ModelIO& io, Generator& gen)
      : io_(io), backbone_(register_module("backbone", std::make_shared<Backbone>(c, io, gen))) {}

  Tensor logits(const Tensor& tokens) {  // (B, L) -> (B, L, V)
    check_tokens(tokens);
    return head(backbone_->forward(tokens));
  }

  Tensor forward(const Tensor& x, const Tensor& lengths) override {
    // The next-token logits at each sequence's last valid position.
    return pool_positions(logits(x), lengths, false, kName);  // (B, V)
  }

  Tensor forward_outputs(const Tensor& x, const Tensor& lengths, std::int64_t n) override {
    const std::int64_t L = x.size(1);
    SSM_CHECK(n >= 1 && n <= L, kName, "expected 1 <= outputs <= sequence length ", L, ", got ", n);
    require_unpadded(lengths, L, kName);
    return narrow(logits(x), 1, L - n, n);  // (B, n, V)
  }

  Tensor generate(const Tensor& prompt, std::int64_t n_new) {
    check_tokens(prompt);
    SSM_CHECK(n_new >= 0, kName, "expected n_new >= 0, got ", n_new);
    NoGradGuard no_grad;
    const std::int64_t B = prompt.size(0), P = prompt.size(1);
    const Device device = backbone_->embedding_weight().device();
    std::vector<MambaState> states = backbone_->default_states(B);
    const Tensor p = prompt.to(DType::Int64).to(device);
    Tensor h;
    for (std::int64_t t = 0; t < P; ++t) h = backbone_->step(p.select(1, t).contiguous(), states);
    std::vector<std::int64_t> out = prompt.to(DType::Int64).contiguous().to_vector<std::int64_t>();
    std::vector<std::int64_t> all(static_cast<std::size_t>(B * (P + n_new)));
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t t = 0; t < P; ++t) all[b * (P + n_new) + t] = out[b * P + t];
    }
    for (std::int64_t k = 0; k < n_new; ++k) {
      const Tensor next = max_with_index(head(h), 1).second;  // (B)
      const auto nv = next.to(Device::cpu()).to_vector<std::int64_t>();
      for (std::int64_t b = 0; b < B; ++b) all[b * (P + n_new) + P + k] = nv[b];
      if (k + 1 < n_new) h = backbone_->step(next.to(DType::Int64), states);
    }
    return Tensor::from_vector(all, {B, P + n_new}, DType::Int64);
  }

 private:
  Tensor head(const Tensor& h) const { return linear(h, backbone_->embedding_weight()); }
  void check_tokens(const Tensor& t) const {
    SSM_CHECK(
        t.dim() == 2 && t.size(1) >= 1 && (t.dtype() == DType::Int64 || t.dtype() == DType::Int32),
        kName, "expected tokens (B, L) int64 with L >= 1, got ", t.desc());
  }

  ModelIO io_;
  std::shared_ptr<Backbone> backbone_;
};

std::shared_ptr<Model> make_mamba_lm_model(const ModelConfig& config, const ModelIO& io,
                                           Generator& init_gen, Generator* dropout_gen) {
  check_model_args(kName, config, io, dropout_gen);
  SSM_CHECK(io.vocab_size > 0, kName, "is a language model: the data must be tokens");
  SSM_CHECK(io.num_classes == io.vocab_size, kName,
            "ties its output head to the embedding: the task's classes must be its tokens "
            "(num_classes ",
            io.num_classes, " != vocab_size ", io.vocab_size, ")");
  SSM_CHECK(config.dropout == 0.0, kName, "has no dropout (model.dropout must be 0)");
  return std::make_shared<MambaLM>(config, io, init_gen);
}

Tensor lm_logits(Model& model, const Tensor& tokens) {
  auto* lm = dynamic_cast<MambaLM*>(&model);
  SSM_CHECK(lm != nullptr, "lm_logits", "the model is not a mamba_lm");
  return lm->logits(tokens);
}

Tensor lm_generate(Model& model, const Tensor& prompt, std::int64_t n_new) {
  auto* lm = dynamic_cast<MambaLM*>(&model);
  SSM_CHECK(lm != nullptr, "lm_generate", "the model is not a mamba_lm");
  return lm->generate(prompt, n_new);
}

}  // namespace ssm
