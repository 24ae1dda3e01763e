#pragma once
// CPU FFTs (FFTW3) on raw arrays, for the SSM kernels: the FFT convolution,
// the S4 generating-function kernel and the RTF transfer-function kernel.
//
// Conventions are numpy's / PyTorch's (norm="backward"):
//   rfft:  X[k] = sum_{j<n} x[j] exp(-2 pi i j k / n),   k = 0 .. n/2   (n/2 + 1 values)
//   irfft: x[j] = (1/n) sum_{k<n} X[k] exp(+2 pi i j k / n), X[n-k] = conj(X[k]); the
//          imaginary parts of X[0] and (n even) X[n/2] are ignored.
//   fft / ifft: the complex transforms, ifft scaled by 1/n.
// Any n >= 1 works; FFTW is fastest for products of small primes (the SSM
// code uses powers of two). Plans are made once per (transform, n, type) with
// FFTW_ESTIMATE (deterministic: no timing enters the plan) and cached; the
// calls are thread-safe and may run inside OpenMP loops. Input and output may
// have any alignment (misaligned arrays go through aligned per-thread
// scratch); input and output must not overlap, and inputs are not modified.
#include <complex>
#include <cstdint>

namespace ssm::kernels::fft {

void rfft(const float* x, std::complex<float>* X, std::int64_t n);
void rfft(const double* x, std::complex<double>* X, std::int64_t n);
void irfft(const std::complex<float>* X, float* x, std::int64_t n);
void irfft(const std::complex<double>* X, double* x, std::int64_t n);
void fft(const std::complex<float>* x, std::complex<float>* X, std::int64_t n);
void fft(const std::complex<double>* x, std::complex<double>* X, std::int64_t n);
void ifft(const std::complex<float>* X, std::complex<float>* x, std::int64_t n);
void ifft(const std::complex<double>* X, std::complex<double>* x, std::int64_t n);

// Smallest power of two >= n (n >= 1).
std::int64_t next_pow2(std::int64_t n);

}  // namespace ssm::kernels::fft
