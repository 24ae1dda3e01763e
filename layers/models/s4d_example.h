#pragma once
// s4d_example: the S4D classifier of the reference S4 repository's
// standalone example (its S4Model over S4D layers, `example.py` with
// `models/s4/s4d.py`), with the same structure and parameter names, so that
// an ssmkit checkpoint loads into that PyTorch code (and back) by name
// (scripts/reference/s4d_example_check.py checks the logits). H = d_model,
// N = d_state (even), N2 = N / 2:
//
//   encoder.weight (H, d_input), encoder.bias (H)            nn.Linear
//   s4_layers.<i>.kernel.log_dt (H)            tag ssm      dt = exp(log_dt)
//   s4_layers.<i>.kernel.C (H, N2, 2)                        complex C, (re, im)
//   s4_layers.<i>.kernel.log_A_real (H, N2)    tag ssm      Re A = -exp(log_A_real)
//   s4_layers.<i>.kernel.A_imag (H, N2)        tag ssm      Im A = A_imag
//   s4_layers.<i>.D (H)
//   s4_layers.<i>.output_linear.0.weight (2H, H, 1), .bias (2H)   nn.Conv1d(H, 2H, 1)
//   norms.<i>.weight (H), norms.<i>.bias (H)                 nn.LayerNorm
//   decoder.weight (C, H), decoder.bias (C)                  nn.Linear
//
// Layer (u (B, H, L)): K = 2 Re sum_n C_n (exp(dt A_n) - 1) / A_n exp(dt A_n l) (ZOH, B = 1),
// y = K * u + D u (FFT convolution), y = dropout(GELU(y)) (exact GELU),
// y = GLU over channels of output_linear(y).
// Model (x (B, L, d_input)): x = encoder(x); per layer, z = x, prenorm: z = norm(z);
// z = dropout(layer(z)); x = x + z; postnorm (the example's default, model.prenorm false):
// x = norm(x); then the mean over positions (valid ones, given lengths) and decoder.
// Init as the reference: log_dt ~ U[log dt_min, log dt_max), C complex normal,
// log_A_real = log 0.5, A_imag = pi n (S4D-Lin), D ~ N(0, 1), Conv1d / Linear
// U(+-1/sqrt(fan_in)). Dropout here is elementwise (the reference drops whole
// channels); with dropout 0, and always in eval mode, the two compute the same.
#include <memory>

#include "layers/models/model.h"

namespace ssm {

std::shared_ptr<Model> make_s4d_example_model(const ModelConfig& config, const ModelIO& io,
                                              Generator& init_gen, Generator* dropout_gen);

}  // namespace ssm
