#pragma once
// Differentiable convolutions: Mamba's causal depthwise conv1d, conv2d (the
// patch embedding of ViT / Vision Mamba), and GLU. All tensors of one call
// share dtype (float32 or float64) and device. The one-step recurrent form of
// causal_conv1d (no gradient) is causal_conv1d_update.
#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace ssm {

// y[b, d, t] = bias[d] + sum_{k<K} w[d, k] x[b, d, t - (K-1) + k] (x = 0 before t = 0),
// i.e. PyTorch's conv1d(x, w, bias, padding=K-1, groups=D)[..., :L]; silu(y) when `silu`.
// x (B, D, L); weight (D, K) or nn.Conv1d's (D, 1, K); bias (D) or undefined.
// Returns (B, D, L).
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                     bool silu = false);

// One step of causal_conv1d for recurrent inference, without gradient:
// conv_state (B, D, K) holds the last K inputs and is updated in place;
// x_t (B, D) -> y_t (B, D) (see kernels::causal_conv1d_update).
Tensor causal_conv1d_update(const Tensor& x_t, Tensor& conv_state, const Tensor& weight,
                            const Tensor& bias = Tensor(), bool silu = false);

// PyTorch's conv2d (groups = dilation = 1). x (N, C, H, W); weight (O, C, kh, kw);
// bias (O) or undefined; stride and padding as (height, width).
// Returns (N, O, (H + 2 ph - kh) / sh + 1, (W + 2 pw - kw) / sw + 1).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              std::array<std::int64_t, 2> stride = {1, 1},
              std::array<std::int64_t, 2> padding = {0, 0});
// The same stride and padding for height and width.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, std::int64_t stride,
              std::int64_t padding = 0);

// a * sigmoid(b), where a and b are the two halves of x along dim (its size
// must be even). Returns x's shape with that dim halved.
Tensor glu(const Tensor& x, std::int64_t dim = -1);

}  // namespace ssm
