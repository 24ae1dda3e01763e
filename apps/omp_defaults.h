#pragma once
// Called first thing in each program's main: makes OpenMP worker threads
// sleep, instead of spinning, when a parallel region ends, unless the user
// set OMP_WAIT_POLICY. Training alternates parallel kernels with serial work
// (the tape, small ops, the optimizer); with spinning workers the smoke
// config trained 4-5x slower on a 2-core machine (5 s instead of 1 s), while
// the large-op benchmarks do not change (bench/results).
//
// libgomp reads its environment once, before main, and offers no call to
// change the wait policy afterwards; so the program sets the variable and
// executes itself again (once: the variable is then set).
#include <unistd.h>

#include <cstdlib>

namespace ssm {

inline void use_passive_omp_threads(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  execv("/proc/self/exe", argv);
  // execv returned: it failed (no /proc); carry on with the default policy.
}

}  // namespace ssm
