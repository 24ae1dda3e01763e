#pragma once
// The differentiable FFT convolution: the long convolution of the S4 family
// (S4, S4D, DSS, ...), causal or bidirectional, with the skip term D.
// The kernels are kernels::fft_conv_forward / fft_conv_backward.
#include "core/tensor.h"

namespace ssm {

// y[b, c, h, t] = sum_{s<=t} k[c, h, s] u[b, h, t-s]              (causal)
//               + sum_{s<=L-1-t} k_rev[c, h, s] u[b, h, t+s]    (k_rev defined: bidirectional,
//                                                                 the anti-causal part)
//               + D[c, h] u[b, h, t]                             (D defined)
// u (B, H, L); k (C, H, L); D (C, H) or undefined; k_rev (C, H, L) or undefined.
// Returns y (B, C, H, L). Computed as irfft(rfft(u, n) * rfft(k, n), n)[:L] with n >= 2L (zero
// padding makes it causal, not circular); the reversed part is flip(k_rev * flip(u)).
// Any layout; all float32 or all float64, one device. n = kernels::fft_conv_size(L), the
// smallest power of two >= 2L. Backward recomputes the spectra of u and of the kernels instead
// of saving them (see kernels/cpu/fftconv.cpp).
Tensor fft_conv(const Tensor& u, const Tensor& k, const Tensor& D = Tensor(),
                const Tensor& k_rev = Tensor());

}  // namespace ssm
