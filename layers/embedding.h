#pragma once
// Embedding: PyTorch's nn.Embedding. weight (num_embeddings, dim) ~ N(0, 1).
#include <cstdint>

#include "core/rng.h"
#include "layers/module.h"

namespace ssm {

class Embedding : public Module {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t dim, Generator& gen,
            DType dtype = DType::Float32);
  // indices int32/int64 of any shape -> (*indices.shape, dim); an index
  // outside [0, num_embeddings) throws.
  Tensor forward(const Tensor& indices) const;

  std::int64_t num_embeddings() const { return num_; }
  std::int64_t dim() const { return dim_; }
  const Tensor& weight() const { return weight_; }  // (num_embeddings, dim)

 private:
  std::int64_t num_, dim_;
  Tensor& weight_;  // (num_embeddings, dim)
};

}  // namespace ssm
