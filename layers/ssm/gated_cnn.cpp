#include "layers/ssm/gated_cnn.h"

#include <string>
#include <vector>

#include "autograd/ops.h"
#include "autograd/ops/dwconv.h"
#include "kernels/conv.h"

namespace ssm {

namespace {

// hidden = int(expansion_ratio dim), Cc = int(conv_ratio dim), as the
// reference computes them (truncation), checked to give a valid split.
struct GatedSizes {
  std::int64_t hidden, conv_channels;
};

GatedSizes gated_sizes(const char* op, std::int64_t dim, double expansion_ratio, double conv_ratio,
                       double norm_eps) {
  SSM_CHECK(dim >= 1, op, "dim must be >= 1, got ", dim);
  SSM_CHECK(expansion_ratio > 0.0 && conv_ratio > 0.0, op,
            "expansion_ratio and conv_ratio must be positive, got ", expansion_ratio, " and ",
            conv_ratio);
  SSM_CHECK(norm_eps > 0.0, op, "norm_eps must be positive, got ", norm_eps);
  const auto hidden = static_cast<std::int64_t>(expansion_ratio * static_cast<double>(dim));
  const auto cc = static_cast<std::int64_t>(conv_ratio * static_cast<double>(dim));
  SSM_CHECK(hidden >= 1, op, "hidden = int(expansion_ratio ", expansion_ratio, " * dim ", dim,
            ") = ", hidden, " must be >= 1");
  SSM_CHECK(cc >= 1 && cc <= hidden, op, "conv channels = int(conv_ratio ", conv_ratio, " * dim ",
            dim, ") = ", cc, " must lie in [1, hidden = ", hidden, "]");
  return {hidden, cc};
}

// fc1, split, conv, gate, fc2 on h (..., dim), channels last:
//   g, i, c = split(fc1(h), [hidden, hidden - Cc, Cc]);  out = fc2(gelu(g) * cat(i, conv(c))).
// conv maps c (..., Cc) to (..., Cc).
template <class Conv>
Tensor gated_mix(const Linear& fc1, const Linear& fc2, const GatedSizes& s, const Tensor& h,
                 Conv&& conv) {
  const std::vector<Tensor> parts =
      split(fc1.forward(h), {s.hidden, s.hidden - s.conv_channels, s.conv_channels}, -1);
  const Tensor c = conv(parts[2]);                                            // (..., Cc)
  const Tensor ic = s.hidden > s.conv_channels ? cat({parts[1], c}, -1) : c;  // (..., hidden)
  return fc2.forward(gelu(parts[0]) * ic);                                    // (..., dim)
}

void check_kernel_size(const char* op, std::int64_t k, bool causal) {
  SSM_CHECK(k >= 1, op, "kernel_size must be >= 1, got ", k);
  SSM_CHECK(causal || k % 2 == 1, op,
            "kernel_size must be odd for the centred conv (padding k / 2 on each side), got ", k);
}

}  // namespace

// ---------------------------------------------------------------- DepthwiseConv1d

DepthwiseConv1d::DepthwiseConv1d(std::int64_t channels, std::int64_t kernel_size, bool causal,
                                 Generator& gen, DType dtype)
    : causal_(causal),
      weight_(register_parameter(
          "weight",
          [&] {
            SSM_CHECK(channels >= 1, "DepthwiseConv1d", "channels must be >= 1, got ", channels);
            check_kernel_size("DepthwiseConv1d", kernel_size, causal);
            return uniform_fan_in({channels, 1, kernel_size}, kernel_size, gen, dtype);
          }())),
      bias_(register_parameter("bias", uniform_fan_in({channels}, kernel_size, gen, dtype),
                               {"no_decay"})) {}

Tensor DepthwiseConv1d::forward(const Tensor& x) const {
  return causal_ ? causal_conv1d(x, weight_, bias_) : dwconv1d(x, weight_, bias_);
}

// ---------------------------------------------------------------- DepthwiseConv2d

DepthwiseConv2d::DepthwiseConv2d(std::int64_t channels, std::int64_t kernel_size, Generator& gen,
                                 DType dtype)
    : weight_(register_parameter("weight",
                                 [&] {
                                   SSM_CHECK(channels >= 1, "DepthwiseConv2d",
                                             "channels must be >= 1, got ", channels);
                                   check_kernel_size("DepthwiseConv2d", kernel_size, false);
                                   return uniform_fan_in({channels, 1, kernel_size, kernel_size},
                                                         kernel_size * kernel_size, gen, dtype);
                                 }())),
      bias_(register_parameter("bias",
                               uniform_fan_in({channels}, kernel_size * kernel_size, gen, dtype),
                               {"no_decay"})) {}

Tensor DepthwiseConv2d::forward(const Tensor& x) const { return dwconv2d(x, weight_, bias_); }

// ---------------------------------------------------------------- GatedCNNBlock1d

GatedCNNBlock1d::GatedCNNBlock1d(std::int64_t dim, const GatedCNNBlock1dOptions& options,
                                 Generator& gen, DType dtype)
    : dim_(dim), options_(options) {
  const GatedSizes s = gated_sizes("GatedCNNBlock1d", dim, options.expansion_ratio,
                                   options.conv_ratio, options.norm_eps);
  hidden_ = s.hidden;
  conv_channels_ = s.conv_channels;
  check_kernel_size("GatedCNNBlock1d", options.kernel_size, options.causal);
  if (options.residual_and_norm) {
    norm_ = register_module("norm", std::make_shared<LayerNorm>(dim, options.norm_eps, dtype));
  }
  fc1_ = register_module("fc1", std::make_shared<Linear>(dim, 2 * hidden_, true, gen, dtype));
  conv_ =
      register_module("conv", std::make_shared<DepthwiseConv1d>(conv_channels_, options.kernel_size,
                                                                options.causal, gen, dtype));
  fc2_ = register_module("fc2", std::make_shared<Linear>(hidden_, dim, true, gen, dtype));
}

void GatedCNNBlock1d::check_input(const char* op, const Tensor& x) const {
  SSM_CHECK(x.defined() && x.dim() == 3 && x.size(2) == dim_, op, "expected x (B, L, ", dim_,
            "), got ", x.defined() ? x.desc() : std::string("undefined"));
}

Tensor GatedCNNBlock1d::run(const Tensor& x, const Tensor& pad_mask) {
  const Tensor h = norm_ ? norm_->forward(x) : x;  // (B, L, dim)
  const Tensor out = gated_mix(*fc1_, *fc2_, {hidden_, conv_channels_}, h, [&](const Tensor& c) {
    const Tensor cm = pad_mask.defined() ? masked_fill(c, pad_mask, 0.0) : c;  // (B, L, Cc)
    return transpose(conv_->forward(transpose(cm, 1, 2)), 1, 2);               // (B, L, Cc)
  });
  return norm_ ? out + x : out;
}

Tensor GatedCNNBlock1d::forward(const Tensor& x) {
  check_input("GatedCNNBlock1d", x);
  return run(x, Tensor());
}

Tensor GatedCNNBlock1d::forward_padded(const Tensor& x, const Tensor& lengths) {
  const char* op = "GatedCNNBlock1d::forward_padded";
  check_input(op, x);
  const std::int64_t B = x.size(0), L = x.size(1);
  SSM_CHECK(lengths.defined() && lengths.dim() == 1 && lengths.size(0) == B &&
                (lengths.dtype() == DType::Int64 || lengths.dtype() == DType::Int32),
            op, "expected lengths (", B, ") int64 or int32 for x ", x.desc(), ", got ",
            lengths.defined() ? lengths.desc() : std::string("undefined"));
  const auto len = lengths.to_vector<std::int64_t>();
  for (std::int64_t b = 0; b < B; ++b) {
    SSM_CHECK(len[b] >= 1 && len[b] <= L, op, "lengths[", b, "] = ", len[b], " lies outside [1, ",
              L, "]");
  }
  // A causal conv never reads later positions: padding cannot reach real ones.
  if (options_.causal) return run(x, Tensor());
  std::vector<double> mask(static_cast<std::size_t>(B * L), 0.0);  // 1 at padding
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t t = len[b]; t < L; ++t) mask[b * L + t] = 1.0;
  }
  const Tensor pad_mask = Tensor::from_vector(mask, {B, L, 1}, x.dtype()).to(x.device());
  return run(x, pad_mask);
}

Tensor GatedCNNBlock1d::default_state(std::int64_t batch) const {
  SSM_CHECK(batch >= 1, "GatedCNNBlock1d::default_state", "batch must be >= 1, got ", batch);
  const Tensor& w = conv_->weight();
  return Tensor::zeros({batch, conv_channels_, options_.kernel_size}, w.dtype(), w.device());
}

Tensor GatedCNNBlock1d::step(const Tensor& x_t, Tensor& state) {
  const char* op = "GatedCNNBlock1d::step";
  SSM_CHECK(options_.causal, op,
            "a centred conv reads later positions and has no step mode; build the block with "
            "causal = true");
  SSM_CHECK(x_t.defined() && x_t.dim() == 2 && x_t.size(1) == dim_, op, "expected x_t (B, ", dim_,
            "), got ", x_t.defined() ? x_t.desc() : std::string("undefined"));
  NoGradGuard no_grad;
  const Tensor h = norm_ ? norm_->forward(x_t) : x_t;  // (B, dim)
  const Tensor out = gated_mix(*fc1_, *fc2_, {hidden_, conv_channels_}, h, [&](const Tensor& c) {
    return kernels::causal_conv1d_update(c, state, conv_->weight(), conv_->bias(), false);
  });
  return norm_ ? out + x_t : out;
}

GatedCNNMixer1d::GatedCNNMixer1d(std::int64_t dim, const GatedCNNBlock1dOptions& options,
                                 Generator& gen, DType dtype)
    : GatedCNNBlock1d(
          dim,
          [&] {
            GatedCNNBlock1dOptions o = options;
            o.residual_and_norm = false;
            return o;
          }(),
          gen, dtype) {}

// ---------------------------------------------------------------- GatedCNNBlock2d

GatedCNNBlock2d::GatedCNNBlock2d(std::int64_t dim, const GatedCNNBlock2dOptions& options,
                                 Generator& gen, DType dtype)
    : dim_(dim) {
  const GatedSizes s = gated_sizes("GatedCNNBlock2d", dim, options.expansion_ratio,
                                   options.conv_ratio, options.norm_eps);
  hidden_ = s.hidden;
  conv_channels_ = s.conv_channels;
  check_kernel_size("GatedCNNBlock2d", options.kernel_size, false);
  norm_ = register_module("norm", std::make_shared<LayerNorm>(dim, options.norm_eps, dtype));
  fc1_ = register_module("fc1", std::make_shared<Linear>(dim, 2 * hidden_, true, gen, dtype));
  conv_ = register_module(
      "conv", std::make_shared<DepthwiseConv2d>(conv_channels_, options.kernel_size, gen, dtype));
  fc2_ = register_module("fc2", std::make_shared<Linear>(hidden_, dim, true, gen, dtype));
}

Tensor GatedCNNBlock2d::forward(const Tensor& x) {
  SSM_CHECK(x.defined() && x.dim() == 4 && x.size(3) == dim_, "GatedCNNBlock2d",
            "expected x (B, H, W, ", dim_, "), got ",
            x.defined() ? x.desc() : std::string("undefined"));
  const Tensor h = norm_->forward(x);  // (B, H, W, dim)
  const Tensor out = gated_mix(*fc1_, *fc2_, {hidden_, conv_channels_}, h, [&](const Tensor& c) {
    // (B, H, W, Cc) -> (B, Cc, H, W) -> conv -> (B, H, W, Cc)
    return permute(conv_->forward(permute(c, {0, 3, 1, 2})), {0, 2, 3, 1});
  });
  return out + x;
}

}  // namespace ssm
