#include "layers/dropout.h"

#include "autograd/ops.h"

namespace ssm {

Dropout::Dropout(double p, Generator* gen) : p_(p), gen_(gen) {
  SSM_CHECK(p >= 0.0 && p <= 1.0, "Dropout", "p must lie in [0, 1], got ", p);
  SSM_CHECK(p == 0.0 || gen != nullptr, "Dropout", "p = ", p, " needs a generator");
}

Tensor Dropout::forward(const Tensor& x) const {
  if (p_ == 0.0) return x;
  return dropout(x, p_, is_training(), *gen_);
}

}  // namespace ssm
