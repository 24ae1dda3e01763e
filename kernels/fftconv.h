#pragma once
// FFT convolution: the long convolution of S4 and its family (S4, S4D, DSS,
// ...), causal or bidirectional, with the skip term D. Raw compute; the
// differentiable op is ssm::fft_conv in autograd/ops/fftconv.h.
#include <cstdint>

#include "core/tensor.h"

namespace ssm::kernels {

// y[b, c, h, t] = sum_{s<=t} k[c, h, s] u[b, h, t-s]
//               + sum_{s<=L-1-t} k_rev[c, h, s] u[b, h, t+s]   (k_rev defined)
//               + D[c, h] u[b, h, t]                            (D defined)
// u (B, H, L); k (C, H, L); D (C, H) or undefined; k_rev (C, H, L) or
// undefined; any layout, all float32 or all float64. Returns y (B, C, H, L).
// Computed with FFTs of length fft_conv_size(L) (zero padding makes the
// convolution linear, not circular), O(L log L) per row.
Tensor fft_conv_forward(const Tensor& u, const Tensor& k, const Tensor& D, const Tensor& k_rev);

struct FftConvGrads {
  Tensor u;      // (B, H, L)
  Tensor k;      // (C, H, L)
  Tensor D;      // (C, H)
  Tensor k_rev;  // (C, H, L)
};
// Gradients of fft_conv_forward for the inputs whose need_ flag is set (the
// others are undefined); grad_y (B, C, H, L). Backward needs only the
// forward's inputs: the spectra of u and of the kernels are recomputed.
// need_D / need_k_rev need D / k_rev to be defined.
FftConvGrads fft_conv_backward(const Tensor& grad_y, const Tensor& u, const Tensor& k,
                               const Tensor& D, const Tensor& k_rev, bool need_u, bool need_k,
                               bool need_D, bool need_k_rev);

// The FFT length used for sequences of length L >= 1: the smallest power of
// two >= 2L.
std::int64_t fft_conv_size(std::int64_t L);

}  // namespace ssm::kernels
