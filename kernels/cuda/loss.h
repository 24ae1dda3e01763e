#pragma once
// CUDA loss kernels (kernels/cuda/loss.cu): the same entry points and
// semantics as kernels/loss.h, float32 scores with int32 / int64 targets.
#include <cstdint>
#include <utility>

#include "core/tensor.h"
#include "kernels/loss.h"

namespace ssm::kernels::cuda {

CrossEntropyResult cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                         const ClassLossParams& params);
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target,
                              const CrossEntropyResult& saved, const ClassLossParams& params);

std::pair<Tensor, std::int64_t> nll_loss_forward(const Tensor& log_probs, const Tensor& target,
                                                 const ClassLossParams& params);
Tensor nll_loss_backward(const Tensor& grad, const Shape& log_probs_shape, const Tensor& target,
                         std::int64_t count, const ClassLossParams& params);

Tensor mse_loss_forward(const Tensor& input, const Tensor& target, Reduction reduction);
std::pair<Tensor, Tensor> mse_loss_backward(const Tensor& grad, const Tensor& input,
                                            const Tensor& target, Reduction reduction,
                                            bool need_input, bool need_target);

}  // namespace ssm::kernels::cuda
