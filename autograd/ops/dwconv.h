#pragma once
// Differentiable depthwise convolutions with "same" zero padding (odd kernel
// sizes, padding k / 2): the token mixer of MambaOut's Gated CNN block (Yu &
// Wang 2024). All tensors of one call share dtype (float32 or float64) and
// device. The causal depthwise conv1d is autograd/ops/conv.h's causal_conv1d.
#include "core/tensor.h"

namespace ssm {

// y[b, c, t] = bias[c] + sum_{k<K} w[c, k] x[b, c, t - K/2 + k] (x = 0 outside [0, L)),
// K odd: PyTorch's conv1d(x, w, bias, padding=K//2, groups=C).
// x (B, C, L); weight (C, K) or nn.Conv1d's (C, 1, K); bias (C) or undefined.
// Returns (B, C, L).
Tensor dwconv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// y[b, c, i, j] = bias[c] + sum_{p, q} w[c, 0, p, q] x[b, c, i - kh/2 + p, j - kw/2 + q]
// (x = 0 outside the image), kh and kw odd: PyTorch's
// conv2d(x, w, bias, padding=(kh//2, kw//2), groups=C).
// x (B, C, H, W); weight (C, 1, kh, kw); bias (C) or undefined. Returns (B, C, H, W).
Tensor dwconv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace ssm
