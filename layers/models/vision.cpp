// vim and mambaout_image: see layers/models/vision.h.
#include "layers/models/vision.h"

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "layers/container.h"
#include "layers/linear.h"
#include "layers/models/backbone.h"
#include "layers/norm.h"
#include "layers/ssm/gated_cnn.h"
#include "layers/ssm/mamba.h"

namespace ssm {

namespace {

// The side S of the square images a (B, S*S, channels) input holds.
std::int64_t image_side(const char* name, const Tensor& x, const ModelIO& io, std::int64_t patch) {
  SSM_CHECK(x.dim() == 3 && x.size(2) == io.d_input && x.dtype() == io.dtype, name,
            "expected pixels (B, S*S, ", io.d_input, ") ", dtype_name(io.dtype), ", got ",
            x.desc());
  const std::int64_t L = x.size(1);
  const auto S = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(L))));
  SSM_CHECK(S * S == L, name, "expected a square image (S*S pixels), got ", L, " pixels");
  SSM_CHECK(S % patch == 0, name, "model.patch_size ", patch, " must divide the image side ", S);
  return S;
}

// Non-overlapping p x p patches: x (B, S*S, C) -> (B, n, D) through a
// stride-p convolution with weight (D, C, p, p) and bias (D); also returns
// the patch grid side S / p.
Tensor patchify(const Tensor& x, std::int64_t S, const Tensor& w, const Tensor& b, std::int64_t p) {
  const std::int64_t B = x.size(0), C = x.size(2);
  const Tensor img = permute(reshape(x, {B, S, S, C}), {0, 3, 1, 2});  // (B, C, S, S)
  const Tensor y = conv2d(img, w, b, p);                               // (B, D, S/p, S/p)
  return transpose(flatten(y, 2), 1, 2);                               // (B, n, D)
}

Tensor normal_002(const Shape& shape, Generator& gen, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  normal_(t, 0.0, 0.02, gen);
  return t;
}

// Stochastic depth: in training, each example's branch is dropped with
// probability p and kept ones scaled by 1 / (1 - p); identity in eval mode.
class DropPath : public Module {
 public:
  DropPath(double p, Generator* gen) : p_(p), gen_(gen) {}
  Tensor forward(const Tensor& x) const {  // (B, ...) -> (B, ...)
    if (!is_training() || p_ == 0.0) return x;
    Shape s(static_cast<std::size_t>(x.dim()), 1);
    s[0] = x.size(0);
    Tensor keep = Tensor::empty(s, x.dtype());
    bernoulli_(keep, 1.0 - p_, *gen_);
    return mul(x, mul(keep.to(x.device()), 1.0 / (1.0 - p_)));
  }

 private:
  double p_;
  Generator* gen_;
};

class PatchConv : public Module {  // a conv with PyTorch's Conv2d default init
 public:
  PatchConv(std::int64_t in, std::int64_t out, std::int64_t p, Generator& gen, DType dtype)
      : weight_(
            register_parameter("weight", uniform_fan_in({out, in, p, p}, in * p * p, gen, dtype))),
        bias_(register_parameter("bias", uniform_fan_in({out}, in * p * p, gen, dtype),
                                 {"no_decay"})) {}
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  Tensor& weight_;  // (out, in, p, p)
  Tensor& bias_;    // (out)
};

class PatchEmbed : public Module {
 public:
  PatchEmbed(std::int64_t in, std::int64_t out, std::int64_t p, Generator& gen, DType dtype)
      : proj_(register_module("proj", std::make_shared<PatchConv>(in, out, p, gen, dtype))) {}
  const PatchConv& proj() const { return *proj_; }

 private:
  std::shared_ptr<PatchConv> proj_;
};

class VimBlock : public Module {
 public:
  VimBlock(std::int64_t D, const MambaOptions& o, double drop_path, Generator& gen,
           Generator* dropout_gen, DType dtype)
      : norm_(register_module("norm", std::make_shared<RMSNorm>(D, 1e-5, dtype))),
        mixer_(register_module("mixer", std::make_shared<Mamba>(D, o, gen, dtype))),
        drop_path_(
            register_module("drop_path", std::make_shared<DropPath>(drop_path, dropout_gen))) {}
  Tensor forward(const Tensor& h) {
    return add(h, drop_path_->forward(mixer_->forward(norm_->forward(h))));
  }

 private:
  std::shared_ptr<RMSNorm> norm_;
  std::shared_ptr<Mamba> mixer_;
  std::shared_ptr<DropPath> drop_path_;
};

class VisionMamba : public Model {
 public:
  VisionMamba(const ModelConfig& c, const ModelIO& io, std::int64_t S, Generator& gen,
              Generator* dropout_gen)
      : config_(c),
        io_(io),
        side_(S),
        n_((S / c.patch_size) * (S / c.patch_size)),
        patch_embed_(register_module(
            "patch_embed",
            std::make_shared<PatchEmbed>(io.d_input, c.d_model, c.patch_size, gen, io.dtype))),
        cls_token_(register_parameter("cls_token", normal_002({1, 1, c.d_model}, gen, io.dtype),
                                      {"no_decay"})),
        pos_embed_(register_parameter(
            "pos_embed", normal_002({1, n_ + 1, c.d_model}, gen, io.dtype), {"no_decay"})),
        layers_(register_module("layers", std::make_shared<ModuleList<VimBlock>>())) {
    MambaOptions o;
    o.d_state = c.d_state;
    o.d_conv = c.d_conv > 0 ? c.d_conv : 4;
    o.expand = c.expand;
    o.dt_min = c.dt_min;
    o.dt_max = c.dt_max;
    o.bidirectional = true;
    o.out_proj_scale = 1.0 / std::sqrt(static_cast<double>(c.n_layers));
    for (std::int64_t i = 0; i < c.n_layers; ++i) {
      const double rate = c.n_layers > 1 ? c.drop_path * static_cast<double>(i) /
                                               static_cast<double>(c.n_layers - 1)
                                         : c.drop_path;
      layers_->append(std::make_shared<VimBlock>(c.d_model, o, rate, gen, dropout_gen, io.dtype));
    }
    norm_f_ = register_module("norm_f", std::make_shared<RMSNorm>(c.d_model, 1e-5, io.dtype));
    head_ = register_module(
        "head", std::make_shared<Linear>(c.d_model, io.num_classes, true, gen, io.dtype));
  }

  Tensor forward(const Tensor& x, const Tensor& lengths) override {
    const std::int64_t S = image_side("vim", x, io_, config_.patch_size);
    SSM_CHECK(S == side_, "vim", "built for ", side_, " x ", side_, " images, got ", S, " x ", S);
    (void)lengths;  // images are never padded
    const std::int64_t B = x.size(0), D = config_.d_model, m = n_ / 2;
    const Tensor t = patchify(x, S, patch_embed_->proj().weight(), patch_embed_->proj().bias(),
                              config_.patch_size);  // (B, n, D)
    const Tensor cls = expand(cls_token_, {B, 1, D});
    Tensor h = cat({narrow(t, 1, 0, m), cls, narrow(t, 1, m, n_ - m)}, 1);  // (B, n + 1, D)
    h = add(h, pos_embed_);
    for (const auto& block : *layers_) h = block->forward(h);
    h = norm_f_->forward(squeeze(narrow(h, 1, m, 1), 1));  // (B, D): the class token
    return head_->forward(h);                              // (B, C)
  }

 private:
  ModelConfig config_;
  ModelIO io_;
  std::int64_t side_, n_;
  std::shared_ptr<PatchEmbed> patch_embed_;
  Tensor& cls_token_;  // (1, 1, D)
  Tensor& pos_embed_;  // (1, n + 1, D)
  std::shared_ptr<ModuleList<VimBlock>> layers_;
  std::shared_ptr<RMSNorm> norm_f_;
  std::shared_ptr<Linear> head_;
};

class MambaOutImage : public Model {
 public:
  MambaOutImage(const ModelConfig& c, const ModelIO& io, Generator& gen)
      : config_(c),
        io_(io),
        stem_(register_module("stem", std::make_shared<PatchConv>(io.d_input, c.d_model,
                                                                  c.patch_size, gen, io.dtype))),
        blocks_(register_module("blocks", std::make_shared<ModuleList<GatedCNNBlock2d>>())) {
    GatedCNNBlock2dOptions o;
    o.expansion_ratio = c.expand;
    o.kernel_size = c.d_conv > 0 ? c.d_conv : 7;
    for (std::int64_t i = 0; i < c.n_layers; ++i) {
      blocks_->append(std::make_shared<GatedCNNBlock2d>(c.d_model, o, gen, io.dtype));
    }
    norm_ = register_module("norm", std::make_shared<LayerNorm>(c.d_model, 1e-6, io.dtype));
    head_ = register_module(
        "head", std::make_shared<Linear>(c.d_model, io.num_classes, true, gen, io.dtype));
  }

  Tensor forward(const Tensor& x, const Tensor& lengths) override {
    const std::int64_t S = image_side("mambaout_image", x, io_, config_.patch_size);
    (void)lengths;
    const std::int64_t B = x.size(0), g = S / config_.patch_size;
    Tensor h = reshape(patchify(x, S, stem_->weight(), stem_->bias(), config_.patch_size),
                       {B, g, g, config_.d_model});  // (B, g, g, D) channels last
    for (const auto& block : *blocks_) h = block->forward(h);
    return head_->forward(norm_->forward(mean(h, {1, 2})));  // (B, C)
  }

 private:
  ModelConfig config_;
  ModelIO io_;
  std::shared_ptr<PatchConv> stem_;
  std::shared_ptr<ModuleList<GatedCNNBlock2d>> blocks_;
  std::shared_ptr<LayerNorm> norm_;
  std::shared_ptr<Linear> head_;
};

void check_image_io(const char* name, const ModelIO& io) {
  SSM_CHECK(io.vocab_size == 0, name, "takes pixels (B, S*S, channels), not tokens");
}

// The image side from the data's longest sequence (io.max_len = S*S).
std::int64_t side_from_io(const char* name, const ModelIO& io, std::int64_t patch) {
  SSM_CHECK(io.max_len > 0, name, "needs the data's sequence length (S*S pixels)");
  const auto S =
      static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(io.max_len))));
  SSM_CHECK(S * S == io.max_len, name, "expected square images (S*S pixels), got sequences of ",
            io.max_len);
  SSM_CHECK(S % patch == 0, name, "model.patch_size ", patch, " must divide the image side ", S);
  return S;
}

}  // namespace

std::shared_ptr<Model> make_vim_model(const ModelConfig& config, const ModelIO& io,
                                      Generator& init_gen, Generator* dropout_gen) {
  check_model_args("vim", config, io, dropout_gen);
  check_image_io("vim", io);
  SSM_CHECK(config.drop_path == 0.0 || dropout_gen != nullptr, "vim",
            "drop_path needs a dropout generator");
  const std::int64_t S = side_from_io("vim", io, config.patch_size);
  return std::make_shared<VisionMamba>(config, io, S, init_gen, dropout_gen);
}

std::shared_ptr<Model> make_mambaout_image_model(const ModelConfig& config, const ModelIO& io,
                                                 Generator& init_gen, Generator* dropout_gen) {
  check_model_args("mambaout_image", config, io, dropout_gen);
  check_image_io("mambaout_image", io);
  SSM_CHECK(config.d_conv == 0 || config.d_conv % 2 == 1, "mambaout_image",
            "model.d_conv must be odd (a centred kernel), got ", config.d_conv);
  (void)side_from_io("mambaout_image", io, config.patch_size);
  return std::make_shared<MambaOutImage>(config, io, init_gen);
}

}  // namespace ssm
