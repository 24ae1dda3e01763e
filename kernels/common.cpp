#include "kernels/common.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ssm::kernels {

void require_cpu(const char* op, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) {
    if (t && t->defined() && !t->device().is_cpu()) {
      fail(op, "has no CUDA implementation yet (got ", t->desc(),
           "); move the tensors to the CPU with .to(Device::cpu())");
    }
  }
}

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

}  // namespace ssm::kernels
