#include "layers/embedding.h"

#include "autograd/ops.h"

namespace ssm {

namespace {

Tensor normal_init(std::int64_t num, std::int64_t dim, Generator& gen, DType dtype) {
  SSM_CHECK(num > 0 && dim > 0, "Embedding", "sizes must be positive, got ", num, " x ", dim);
  Tensor t = Tensor::empty({num, dim}, dtype);  // (num, dim)
  normal_(t, 0.0, 1.0, gen);
  return t;
}

}  // namespace

Embedding::Embedding(std::int64_t num_embeddings, std::int64_t dim, Generator& gen, DType dtype)
    : num_(num_embeddings),
      dim_(dim),
      weight_(register_parameter("weight", normal_init(num_embeddings, dim, gen, dtype))) {}

Tensor Embedding::forward(const Tensor& indices) const { return embedding(indices, weight_); }

}  // namespace ssm
