#pragma once
// Dropout: inverted dropout (ssm::dropout) while the module is training, the
// identity in eval mode. No parameters.
#include "core/rng.h"
#include "layers/module.h"

namespace ssm {

class Dropout : public Module {
 public:
  // p in [0, 1]. gen (which must outlive the module) may be null only when p == 0.
  Dropout(double p, Generator* gen);
  Tensor forward(const Tensor& x) const;  // same shape as x
  double p() const { return p_; }

 private:
  double p_;
  Generator* gen_;
};

}  // namespace ssm
