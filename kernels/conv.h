#pragma once
// Convolution kernels: Mamba's causal depthwise conv1d (with its one-step
// recurrent form), conv2d (im2col + GEMM, the ViT / Vision Mamba patch
// embedding), and GLU. Raw compute; the differentiable ops live in
// autograd/ops/conv.h.
#include <array>

#include "core/tensor.h"

namespace ssm::kernels {

// ---------------------------------------------------------------- causal_conv1d

// y[b, d, t] = bias[d] + sum_{k<K} w[d, k] x[b, d, t - (K-1) + k]  (x = 0 before t = 0),
// then y = silu(y) when `silu`. x (B, D, L); weight (D, K) or (D, 1, K) (nn.Conv1d's
// layout); bias (D) or undefined. Returns y (B, D, L).
Tensor causal_conv1d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool silu);

struct CausalConv1dGrads {
  Tensor x;       // (B, D, L)
  Tensor weight;  // weight's shape: (D, K) or (D, 1, K)
  Tensor bias;    // (D)
};
// Gradients of causal_conv1d_forward for the inputs whose need_ flag is set
// (the others are undefined). The pre-activation is recomputed from x when
// `silu`, so backward needs only the forward's inputs.
CausalConv1dGrads causal_conv1d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                                         const Tensor& bias, bool silu, bool need_x,
                                         bool need_weight, bool need_bias);

// One step of causal_conv1d for recurrent inference. conv_state (B, D, K)
// holds the last K inputs; it is updated in place (shifted left by one, x_t
// appended), then y_t[b, d] = bias[d] + sum_k w[d, k] conv_state[b, d, k]
// (silu'd when `silu`). x_t (B, D); returns y_t (B, D). Starting from a zero
// state, stepping through x[..., t] gives causal_conv1d_forward(x)[..., t].
Tensor causal_conv1d_update(const Tensor& x_t, Tensor& conv_state, const Tensor& weight,
                            const Tensor& bias, bool silu);

// ---------------------------------------------------------------- conv2d

// PyTorch's conv2d (groups = 1, dilation = 1):
// y[n, o, i, j] = bias[o] + sum_{c, p, q} w[o, c, p, q] x[n, c, i sh - ph + p, j sw - pw + q]
// (x = 0 outside the image). x (N, C, H, W); weight (O, C, kh, kw); bias (O) or
// undefined. Returns y (N, O, Ho, Wo), Ho = (H + 2 ph - kh) / sh + 1 (same for W).
Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding);

struct Conv2dGrads {
  Tensor x;       // (N, C, H, W)
  Tensor weight;  // (O, C, kh, kw)
  Tensor bias;    // (O)
};
Conv2dGrads conv2d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                            std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding,
                            bool need_x, bool need_weight, bool need_bias);

// ---------------------------------------------------------------- glu

// glu(x) = a * sigmoid(b), where a, b are the first and second halves of x
// along dim (its size must be even). Returns x's shape with that dim halved.
Tensor glu_forward(const Tensor& x, std::int64_t dim);
// ga = g sigmoid(b); gb = g a sigmoid(b) (1 - sigmoid(b)); returned as x's shape.
Tensor glu_backward(const Tensor& grad, const Tensor& x, std::int64_t dim);

}  // namespace ssm::kernels
