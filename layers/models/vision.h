#pragma once
// Image models over square images that arrive as pixel sequences
// (B, S*S, channels) in row-major order (sequential Fashion-MNIST: S = 28,
// one channel; sCIFAR rgb: S = 32, three), for the image benchmarks
// (Fashion-MNIST and CIFAR-10 images):
//
// vim: Vision Mamba (Zhu et al. 2024, "Vision Mamba", hustvl/Vim), with its
// parameter names:
//   patch_embed.proj.weight (D, channels, p, p), .bias (D)   non-overlapping patches
//   cls_token (1, 1, D) ~ N(0, 0.02^2), inserted in the middle of the patch
//   sequence (position n / 2 of n + 1), pos_embed (1, n + 1, D) ~ N(0, 0.02^2)
//   layers.<i>.norm.weight (D) (RMSNorm), layers.<i>.mixer.* (the bidirectional
//   "v2" Mamba block), norm_f.weight (D), head.weight (C, D), head.bias (C)
//   h = patches + pos; h = h + drop_path_i(mixer(norm(h))) per block, the rate of
//   block i drop_path * i / (n_layers - 1); logits = head(norm_f(h)[:, n / 2]).
//   Keys: d_model, n_layers, d_state, expand, d_conv, patch_size, drop_path.
//
// mambaout_image: MambaOut's SSM-free gated CNN for images (Yu & Wang 2024):
//   stem.weight (D, channels, p, p), stem.bias (D)   patches, channels last
//   blocks.<i>.*  GatedCNNBlock2d (layers/ssm/gated_cnn.h: LayerNorm, fc1,
//                 depthwise conv k x k (model.d_conv, 0: 7), fc2, residual)
//   norm (LayerNorm), head: logits = head(norm(mean over patches)).
//   Keys: d_model, n_layers, expand (MambaOut's 8/3), d_conv, patch_size.
//   (MambaOut's four-stage downsampling pyramid and drop path are left out:
//   one stage at one resolution, the size of these small images.)
#include <memory>

#include "layers/models/model.h"

namespace ssm {

std::shared_ptr<Model> make_vim_model(const ModelConfig& config, const ModelIO& io,
                                      Generator& init_gen, Generator* dropout_gen);
std::shared_ptr<Model> make_mambaout_image_model(const ModelConfig& config, const ModelIO& io,
                                                 Generator& init_gen, Generator* dropout_gen);

}  // namespace ssm
