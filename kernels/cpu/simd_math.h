#pragma once
// Vectorizable math for the CPU kernels. std::exp and std::erf are calls into
// libm that stop a loop from vectorizing; these are branch-free inline forms
// (selects, not jumps) that GCC turns into SIMD code, 8 floats at a time
// under AVX2. Each comes with its accuracy; tests/cpu/test_simd_math.cpp
// checks it against the double-precision libm functions.
//
// SSM_SIMD_CLONES compiles a function twice on x86-64 with GCC, for AVX2
// (x86-64-v3) and for the baseline (SSE2); the loader picks the clone for the
// running CPU. -DSSM_NO_SIMD_CLONES builds the baseline only.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(SSM_NO_SIMD_CLONES)
#define SSM_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SSM_SIMD_CLONES
#endif

// Forced inline: a call left in a loop body stops it from vectorizing.
// SSM_SIMD_FLATTEN inlines everything a loop function calls.
#if defined(__GNUC__)
#define SSM_SIMD_INLINE inline __attribute__((always_inline))
#define SSM_SIMD_FLATTEN __attribute__((flatten))
#else
#define SSM_SIMD_INLINE inline
#define SSM_SIMD_FLATTEN
#endif

namespace ssm::kernels::simd {

// exp(x) over the whole range, float or double.
//   exp(x) = 2^k exp(r),  k = round(x / ln 2),  r = x - k ln 2 in [-ln2/2, ln2/2]
// ln 2 is split in two (Cody-Waite) so that k ln 2 is exact; exp(r) is its
// Taylor polynomial (degree 7 for float, 13 for double); 2^k is built in the
// exponent bits as 2^(k/2) 2^(k - k/2) so that k = 128 (float) still fits.
// Within 2 ulp of the exact value. Results below the smallest normal number
// flush to 0 (exp(-inf) = 0); above the largest finite number they are +inf;
// NaN stays NaN.
template <class T>
SSM_SIMD_INLINE T exp(T x) {
  static_assert(std::is_floating_point_v<T>);
  constexpr bool f32 = std::is_same_v<T, float>;
  using Bits = std::conditional_t<f32, std::int32_t, std::int64_t>;
  // lo = ln(smallest normal), hi = ln(largest finite)
  constexpr T lo = f32 ? T(-87.33654475) : T(-708.3964185322641);
  constexpr T hi = f32 ? T(88.72283905) : T(709.782712893384);
  constexpr T log2e = T(1.44269504088896340736);
  constexpr T ln2_hi = f32 ? T(0.693359375) : T(6.93147180369123816490e-01);
  constexpr T ln2_lo = f32 ? T(-2.12194440e-4) : T(1.90821492927058770002e-10);
  // Adding 1.5 * 2^(mantissa bits) rounds to an integer held in the low bits.
  constexpr T round_magic = f32 ? T(12582912.0) : T(6755399441055744.0);
  constexpr int mantissa_bits = f32 ? 23 : 52;
  constexpr Bits exponent_bias = f32 ? 127 : 1023;

  T xc = x < lo ? lo : x;  // NaN compares false and passes through
  xc = xc > hi ? hi : xc;
  const T t = xc * log2e + round_magic;
  const T k = t - round_magic;
  const Bits ki = std::bit_cast<Bits>(t) - std::bit_cast<Bits>(round_magic);
  const T r = (xc - k * ln2_hi) - k * ln2_lo;
  T p;
  if constexpr (f32) {
    p = T(1.0 / 5040);
    p = p * r + T(1.0 / 720);
    p = p * r + T(1.0 / 120);
    p = p * r + T(1.0 / 24);
    p = p * r + T(1.0 / 6);
    p = p * r + T(0.5);
  } else {
    p = T(1.0 / 6227020800.0);
    p = p * r + T(1.0 / 479001600.0);
    p = p * r + T(1.0 / 39916800.0);
    p = p * r + T(1.0 / 3628800.0);
    p = p * r + T(1.0 / 362880.0);
    p = p * r + T(1.0 / 40320.0);
    p = p * r + T(1.0 / 5040.0);
    p = p * r + T(1.0 / 720.0);
    p = p * r + T(1.0 / 120.0);
    p = p * r + T(1.0 / 24.0);
    p = p * r + T(1.0 / 6.0);
    p = p * r + T(0.5);
  }
  p = p * r + T(1.0);
  p = p * r + T(1.0);
  const Bits k1 = ki >> 1, k2 = ki - k1;
  const T s1 = std::bit_cast<T>(static_cast<Bits>((k1 + exponent_bias) << mantissa_bits));
  const T s2 = std::bit_cast<T>(static_cast<Bits>((k2 + exponent_bias) << mantissa_bits));
  T y = p * s1 * s2;
  y = x < lo ? T(0) : y;
  y = x > hi ? std::numeric_limits<T>::infinity() : y;
  return y;
}

// sigmoid(x) = 1 / (1 + exp(-x)), stable for large |x|: exp is only taken of
// -|x|, and 1 - e/(1+e) is never formed. Within 4 ulp (float).
template <class T>
SSM_SIMD_INLINE T sigmoid(T x) {
  const T e = simd::exp(-std::abs(x));
  const T s = T(1) / (T(1) + e);
  return x >= T(0) ? s : e * s;
}

// erfc(z) for z >= 0 from the Chebyshev-fitted form in Numerical Recipes
// (Press et al., section 6.2): erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2),
// P a degree-9 polynomial; fractional error below 1.2e-7 for every z >= 0,
// so the far tail keeps its relative accuracy.
template <class T>
SSM_SIMD_INLINE T erfc_nonnegative(T z) {
  const T t = T(1) / (T(1) + T(0.5) * z);
  T p = T(0.17087277);
  p = p * t + T(-0.82215223);
  p = p * t + T(1.48851587);
  p = p * t + T(-1.13520398);
  p = p * t + T(0.27886807);
  p = p * t + T(-0.18628806);
  p = p * t + T(0.09678418);
  p = p * t + T(0.37409196);
  p = p * t + T(1.00002368);
  p = p * t + T(-1.26551223);
  return t * simd::exp(p - z * z);
}

// The standard normal CDF Phi(x) = erfc(-x / sqrt 2) / 2, float. Absolute
// error below 2e-7 everywhere; relative error below 2e-6 where Phi >= 1e-5,
// and below 3e-5 in the far lower tail (x^2 rounded to float inside the exp),
// where GELU's output is below 1e-5 |x|. NaN stays NaN.
SSM_SIMD_INLINE float normal_cdf(float x) {
  const float z = std::abs(x) * 0.70710678118654752f;
  const float c = 0.5f * erfc_nonnegative(z);  // Phi(-|x|)
  return x < 0.0f ? c : 1.0f - c;
}

}  // namespace ssm::kernels::simd
