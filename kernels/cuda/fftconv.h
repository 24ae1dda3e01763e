#pragma once
// CUDA FFT convolution (kernels/cuda/fftconv.cu): the entry points of
// kernels/fftconv.h for CUDA tensors, with the same arguments and results,
// float32 only. Also the batched cuFFT transforms that the RTF kernels
// (kernels/cuda/rtf.cu) share.
#include <cstdint>

#include "core/tensor.h"
#include "kernels/fftconv.h"

namespace ssm::kernels::cuda {

Tensor fft_conv_forward(const Tensor& u, const Tensor& k, const Tensor& D, const Tensor& k_rev);

FftConvGrads fft_conv_backward(const Tensor& grad_y, const Tensor& u, const Tensor& k,
                               const Tensor& D, const Tensor& k_rev, bool need_u, bool need_k,
                               bool need_D, bool need_k_rev);

// Batched 1-D real FFTs of length n over `rows` contiguous rows on the
// current device (the device of `dev`), float32, on the legacy default
// stream. Plans are cached per (device, kind, n, rows); their work areas are
// taken from the caching allocator at each call.
//   fft_r2c: x (rows, n) real -> X (rows, n / 2 + 1) complex (interleaved re, im),
//            unnormalised (as fft::rfft).
//   fft_c2r: X (rows, n / 2 + 1) complex -> x (rows, n) real, unnormalised (n times
//            fft::irfft); X is overwritten (cuFFT's complex-to-real transforms
//            use their input as scratch).
// Both pointers must be 8-byte aligned (buffers from Tensor::empty, at offsets of whole rows).
void fft_r2c(const float* x, float* X, std::int64_t n, std::int64_t rows, Device dev);
void fft_c2r(float* X, float* x, std::int64_t n, std::int64_t rows, Device dev);

}  // namespace ssm::kernels::cuda
