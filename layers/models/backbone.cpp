#include "layers/models/backbone.h"

#include <vector>

#include "autograd/ops.h"

namespace ssm {

namespace {

bool is_index_dtype(DType t) { return t == DType::Int64 || t == DType::Int32; }

}  // namespace

// ---------------------------------------------------------------- ResidualBlock

ResidualBlock::ResidualBlock(std::shared_ptr<Norm> norm, std::shared_ptr<SequenceMixer> mixer,
                             double dropout, Generator* dropout_gen, bool prenorm,
                             std::shared_ptr<Norm> ff_norm, std::shared_ptr<SequenceMixer> ff)
    : prenorm_(prenorm) {
  SSM_CHECK((ff == nullptr) == (ff_norm == nullptr), "ResidualBlock",
            "ff and ff_norm must be both set or both null");
  norm_ = register_module("norm", std::move(norm));
  mixer_ = register_module("mixer", std::move(mixer));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(dropout, dropout_gen));
  if (ff) {
    ff_norm_ = register_module("ff_norm", std::move(ff_norm));
    ff_ = register_module("ff", std::move(ff));
  }
}

Tensor ResidualBlock::forward(const Tensor& x, const Tensor& lengths) {
  auto mix = [&](const Tensor& h) {
    return lengths.defined() ? mixer_->forward_padded(h, lengths) : mixer_->forward(h);
  };
  Tensor h = prenorm_ ? x + dropout_->forward(mix(norm_->forward(x)))
                      : norm_->forward(x + dropout_->forward(mix(x)));
  if (!ff_) return h;
  if (prenorm_) return h + dropout_->forward(ff_->forward(ff_norm_->forward(h)));
  return ff_norm_->forward(h + dropout_->forward(ff_->forward(h)));
}

// ---------------------------------------------------------------- checks

void check_model_args(const std::string& name, const ModelConfig& c, const ModelIO& io,
                      const Generator* dropout_gen) {
  const char* op = name.c_str();
  SSM_CHECK(c.d_model >= 1, op, "model.d_model must be >= 1, got ", c.d_model);
  SSM_CHECK(c.n_layers >= 1, op, "model.n_layers must be >= 1, got ", c.n_layers);
  SSM_CHECK(c.d_state >= 1, op, "model.d_state must be >= 1, got ", c.d_state);
  SSM_CHECK(c.dropout >= 0.0 && c.dropout < 1.0, op, "model.dropout must lie in [0, 1), got ",
            c.dropout);
  SSM_CHECK(c.dropout == 0.0 || dropout_gen != nullptr, op, "model.dropout = ", c.dropout,
            " needs a dropout generator");
  SSM_CHECK(c.norm == "layer" || c.norm == "rms", op, "model.norm must be layer or rms, got '",
            c.norm, "'");
  SSM_CHECK(c.pooling == "mean" || c.pooling == "last", op,
            "model.pooling must be mean or last, got '", c.pooling, "'");
  SSM_CHECK(c.expand > 0.0, op, "model.expand must be > 0, got ", c.expand);
  SSM_CHECK(io.d_input >= 1, op, "d_input must be >= 1, got ", io.d_input);
  SSM_CHECK(io.num_classes >= 2, op, "num_classes must be >= 2, got ", io.num_classes);
  SSM_CHECK(io.vocab_size >= 0, op, "vocab_size must be >= 0, got ", io.vocab_size);
  SSM_CHECK(io.dtype == DType::Float32 || io.dtype == DType::Float64, op,
            "parameter dtype must be float32 or float64, got ", dtype_name(io.dtype));
}

// ---------------------------------------------------------------- SequenceClassifier

SequenceClassifier::SequenceClassifier(const std::string& name, const ModelConfig& config,
                                       const ModelIO& io, Generator& init_gen,
                                       Generator* dropout_gen, const MixerFactory& make_mixer,
                                       const MixerFactory& make_ff)
    : name_(name), config_(config), io_(io) {
  check_model_args(name, config, io, dropout_gen);
  SSM_CHECK(make_mixer != nullptr, name_.c_str(), "no mixer factory");
  const std::int64_t d = config.d_model;
  if (io.vocab_size > 0) {
    token_encoder_ = register_module(
        "encoder", std::make_shared<Embedding>(io.vocab_size, d, init_gen, io.dtype));
  } else {
    linear_encoder_ = register_module(
        "encoder", std::make_shared<Linear>(io.d_input, d, true, init_gen, io.dtype));
  }
  blocks_ = register_module("layers", std::make_shared<ModuleList<ResidualBlock>>());
  for (std::int64_t i = 0; i < config.n_layers; ++i) {
    std::shared_ptr<SequenceMixer> mixer = make_mixer(i);
    SSM_CHECK(mixer != nullptr, name_.c_str(), "the mixer factory returned null for layer ", i);
    std::shared_ptr<SequenceMixer> ff = make_ff ? make_ff(i) : nullptr;
    SSM_CHECK(!make_ff || ff != nullptr, name_.c_str(),
              "the feed-forward factory returned null for layer ", i);
    std::shared_ptr<Norm> ff_norm = ff ? make_norm(config.norm, d, 1e-5, io.dtype) : nullptr;
    blocks_->append(std::make_shared<ResidualBlock>(
        make_norm(config.norm, d, 1e-5, io.dtype), std::move(mixer), config.dropout, dropout_gen,
        config.prenorm, std::move(ff_norm), std::move(ff)));
  }
  norm_f_ = register_module("norm_f", make_norm(config.norm, d, 1e-5, io.dtype));
  if (io.paired) {
    pair_mlp_ =
        register_module("pair_mlp", std::make_shared<Linear>(4 * d, d, true, init_gen, io.dtype));
  }
  decoder_ = register_module("decoder",
                             std::make_shared<Linear>(d, io.num_classes, true, init_gen, io.dtype));
}

void SequenceClassifier::check_inputs(const Tensor& x, const Tensor& lengths) const {
  const char* op = name_.c_str();
  SSM_CHECK(x.defined(), op, "input x is undefined");
  if (io_.vocab_size > 0) {
    SSM_CHECK(x.dim() == 2 && is_index_dtype(x.dtype()), op,
              "expected token ids x (B, L) int64 or int32, got ", x.desc());
  } else {
    SSM_CHECK(x.dim() == 3 && x.size(2) == io_.d_input && x.dtype() == io_.dtype, op,
              "expected x (B, L, ", io_.d_input, ") ", dtype_name(io_.dtype), ", got ", x.desc());
  }
  SSM_CHECK(x.size(0) >= 1 && x.size(1) >= 1, op, "x must have B >= 1 and L >= 1, got ", x.desc());
  if (lengths.defined()) {
    SSM_CHECK(lengths.dim() == 1 && lengths.size(0) == x.size(0) && is_index_dtype(lengths.dtype()),
              op, "expected lengths (", x.size(0), ") int64 or int32, got ", lengths.desc());
    // Checked before the blocks: a mixer's forward_padded relies on the range.
    const auto len = lengths.to_vector<std::int64_t>();
    for (std::size_t b = 0; b < len.size(); ++b) {
      SSM_CHECK(len[b] >= 1 && len[b] <= x.size(1), op, "lengths[", b, "] = ", len[b],
                " lies outside [1, ", x.size(1), "]");
    }
  }
}

Tensor SequenceClassifier::encode(const Tensor& x) const {
  return token_encoder_ ? token_encoder_->forward(x) : linear_encoder_->forward(x);
}

Tensor pool_positions(const Tensor& h, const Tensor& lengths, bool mean_pool, const char* op) {
  const std::int64_t B = h.size(0), L = h.size(1), D = h.size(2);
  if (!lengths.defined()) {
    if (mean_pool) return mean(h, {1});         // (B, D)
    return squeeze(narrow(h, 1, L - 1, 1), 1);  // (B, D)
  }
  const auto len = lengths.to(DType::Int64).to_vector<std::int64_t>();
  SSM_CHECK(static_cast<std::int64_t>(len.size()) == B, op, "expected lengths (", B, "), got ",
            lengths.desc());
  for (std::int64_t b = 0; b < B; ++b) {
    SSM_CHECK(len[b] >= 1 && len[b] <= L, op, "lengths[", b, "] = ", len[b], " lies outside [1, ",
              L, "]");
  }
  if (mean_pool) {
    // A weight 1/length on each valid position, 0 on padding.
    std::vector<double> w(static_cast<std::size_t>(B * L), 0.0);
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t t = 0; t < len[b]; ++t) {
        w[b * L + t] = 1.0 / static_cast<double>(len[b]);
      }
    }
    const Tensor weights =
        Tensor::from_vector(w, {B, L, 1}, h.dtype()).to(h.device());  // (B, L, 1)
    return sum(h * weights, {1});                                     // (B, D)
  }
  std::vector<std::int64_t> index(static_cast<std::size_t>(B * D));
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t k = 0; k < D; ++k) index[b * D + k] = len[b] - 1;
  }
  const Tensor idx =
      Tensor::from_vector(index, {B, 1, D}, DType::Int64).to(h.device());  // (B, 1, D)
  return squeeze(gather(h, 1, idx), 1);                                    // (B, D)
}

void require_unpadded(const Tensor& lengths, std::int64_t L, const char* op) {
  if (!lengths.defined()) return;
  for (const std::int64_t len : lengths.to(DType::Int64).to_vector<std::int64_t>()) {
    SSM_CHECK(len == L, op, "per-position outputs need unpadded sequences (every length ", L,
              "), got ", len);
  }
}

Tensor SequenceClassifier::pool(const Tensor& h, const Tensor& lengths) const {
  return pool_positions(h, lengths, config_.pooling == "mean", name_.c_str());
}

Tensor SequenceClassifier::features(const Tensor& x, const Tensor& lengths) {
  check_inputs(x, lengths);
  Tensor h = encode(x);  // (B, L, D)
  for (const auto& block : *blocks_) h = block->forward(h, lengths);
  h = norm_f_->forward(h);  // (B, L, D)
  return pool(h, lengths);  // (B, D)
}

Tensor SequenceClassifier::forward(const Tensor& x, const Tensor& lengths) {
  SSM_CHECK(!pair_mlp_, name_.c_str(),
            "was built for paired inputs (a two-tower head): use forward_pair");
  return decoder_->forward(features(x, lengths));  // (B, C)
}

Tensor SequenceClassifier::forward_pair(const Tensor& x1, const Tensor& lengths1, const Tensor& x2,
                                        const Tensor& lengths2) {
  SSM_CHECK(pair_mlp_ != nullptr, name_.c_str(),
            "has no two-tower head (build it with io.paired for a paired task)");
  SSM_CHECK(x1.defined() && x2.defined() && x1.size(0) == x2.size(0), name_.c_str(),
            "expected two batches of the same size, got ", x1.desc(), " and ", x2.desc());
  const Tensor u = features(x1, lengths1), v = features(x2, lengths2);  // (B, D) each
  const Tensor f = cat({u, v, mul(u, v), sub(u, v)}, 1);                // (B, 4D)
  return decoder_->forward(gelu(pair_mlp_->forward(f)));                // (B, C)
}

Tensor SequenceClassifier::forward_outputs(const Tensor& x, const Tensor& lengths, std::int64_t n) {
  check_inputs(x, lengths);
  const std::int64_t L = x.size(1);
  SSM_CHECK(n >= 1 && n <= L, name_.c_str(), "expected 1 <= outputs <= sequence length ", L,
            ", got ", n);
  require_unpadded(lengths, L, name_.c_str());
  Tensor h = encode(x);  // (B, L, D)
  for (const auto& block : *blocks_) h = block->forward(h, Tensor());
  h = norm_f_->forward(narrow(h, 1, L - n, n));  // (B, n, D)
  return decoder_->forward(h);                   // (B, n, C)
}

}  // namespace ssm
