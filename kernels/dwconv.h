#pragma once
// Depthwise convolutions with "same" zero padding: every channel convolved
// with its own kernel, odd kernel sizes, padding k / 2, so the output has the
// input's size. The token mixer of MambaOut's Gated CNN block (Yu & Wang
// 2024, nn.Conv2d(C, C, 7, padding=3, groups=C)) and of its 1-D (sequence)
// form. Raw compute; the differentiable ops live in autograd/ops/dwconv.h.
// The causal 1-D depthwise conv is kernels/conv.h's causal_conv1d.
#include "core/tensor.h"

namespace ssm::kernels {

// Gradients of a depthwise conv, for the inputs whose need_ flag was set
// (the others are undefined).
struct DwConvGrads {
  Tensor x;       // x's shape
  Tensor weight;  // weight's shape
  Tensor bias;    // (C)
};

// ---------------------------------------------------------------- dwconv1d

// y[b, c, t] = bias[c] + sum_{k<K} w[c, k] x[b, c, t - K/2 + k]  (x = 0 outside [0, L)),
// K odd: PyTorch's conv1d(x, w, bias, padding=K//2, groups=C).
// x (B, C, L); weight (C, K) or nn.Conv1d's (C, 1, K); bias (C) or undefined.
// Returns y (B, C, L).
Tensor dwconv1d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias);

// gx[b, c, s] = sum_k w[c, k] g[b, c, s + K/2 - k];  gw[c, k] = sum_{b, t} g[b, c, t]
// x[b, c, t - K/2 + k];  gb[c] = sum_{b, t} g[b, c, t]. grad (B, C, L).
DwConvGrads dwconv1d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                              bool need_x, bool need_weight, bool need_bias);

// ---------------------------------------------------------------- dwconv2d

// y[b, c, i, j] = bias[c] + sum_{p<kh, q<kw} w[c, 0, p, q] x[b, c, i - kh/2 + p, j - kw/2 + q]
// (x = 0 outside the image), kh and kw odd: PyTorch's
// conv2d(x, w, bias, padding=(kh//2, kw//2), groups=C).
// x (B, C, H, W); weight (C, 1, kh, kw) (nn.Conv2d's layout); bias (C) or
// undefined. Returns y (B, C, H, W).
Tensor dwconv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias);

// gx[b, c, h, v] = sum_{p, q} w[c, p, q] g[b, c, h + kh/2 - p, v + kw/2 - q];
// gw[c, p, q] = sum_{b, i, j} g[b, c, i, j] x[b, c, i - kh/2 + p, j - kw/2 + q];
// gb[c] = sum_{b, i, j} g[b, c, i, j]. grad (B, C, H, W).
DwConvGrads dwconv2d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                              bool need_x, bool need_weight, bool need_bias);

}  // namespace ssm::kernels
