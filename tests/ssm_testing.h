#pragma once
// Test helpers for the SSM kernels (layers/ssm/kernel.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "layers/ssm/kernel.h"
#include "tests/testing.h"

namespace ssm::testing {

// The largest |y_step - y_conv| over max |y_conv| for a random input of L
// steps and Bsz sequences, where y_conv[b, c, h, t] = sum_{l<=t} K[c, h, l] u[b, h, t-l]
// is the direct convolution (in double) of the kernel K = forward(L) and y_step comes
// from stepping the recurrence from the zero state. Inputs in the kernel's dtype.
inline double conv_vs_recurrent(SSMKernel& kernel, std::int64_t L, std::int64_t Bsz,
                                std::uint64_t seed) {
  const std::int64_t H = kernel.d_model(), Cc = kernel.channels();
  Tensor Kt;
  {
    NoGradGuard no_grad;
    Kt = kernel.forward(L);  // (Cc, H, L)
  }
  const auto K = Kt.to_vector<double>();
  const Tensor u = random_tensor({L, Bsz, H}, seed, -1, 1, Kt.dtype(), false);  // u[t]: (B, H)
  const auto uv = u.to_vector<double>();
  kernel.setup_step();
  Tensor state = kernel.default_state(Bsz);
  double max_err = 0.0, max_ref = 0.0;
  for (std::int64_t t = 0; t < L; ++t) {
    const Tensor y_t = kernel.step(u.select(0, t), state);
    REQUIRE(y_t.shape() == Shape({Bsz, Cc, H}));
    const auto y = y_t.to_vector<double>();
    for (std::int64_t b = 0; b < Bsz; ++b) {
      for (std::int64_t c = 0; c < Cc; ++c) {
        for (std::int64_t h = 0; h < H; ++h) {
          const double* k = K.data() + (c * H + h) * L;
          double ref = 0.0;
          for (std::int64_t l = 0; l <= t; ++l) ref += k[l] * uv[((t - l) * Bsz + b) * H + h];
          max_err = std::max(max_err, std::abs(y[(b * Cc + c) * H + h] - ref));
          max_ref = std::max(max_ref, std::abs(ref));
        }
      }
    }
  }
  REQUIRE(max_ref > 0.0);
  return max_err / max_ref;
}

}  // namespace ssm::testing
