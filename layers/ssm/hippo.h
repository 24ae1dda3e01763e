#pragma once
// HiPPO matrices (Gu et al. 2020) and their normal-plus-low-rank form (S4,
// Gu et al. 2022), in float64, with the S4 code's conventions (A negative).
// See ../shared/SSM_MATH.md "HiPPO matrices" and "Normal plus low rank".
#include <complex>
#include <cstdint>
#include <string>
#include <vector>

namespace ssm::hippo {

using cdouble = std::complex<double>;

// measure: "legs", "legt", "lagt" (beta = 1), "fout". A (N, N) row-major, B (N).
struct Transition {
  std::int64_t N = 0;
  std::vector<double> A;  // (N, N)
  std::vector<double> B;  // (N)
};
Transition transition(const std::string& measure, std::int64_t N);

// Normal plus low rank: A = V diag(Lambda) V^* - P P^* with V unitary (the
// full N x N form), and the S4 storage: one eigenvalue of each conjugate
// pair (N/2 values, N even), P and B in the eigenbasis (V^* P, V^* B).
struct NPLR {
  std::int64_t N = 0, rank = 0;
  std::vector<cdouble> Lambda;       // (N/2)
  std::vector<cdouble> P;            // (rank, N/2)  V^* P, kept rows
  std::vector<cdouble> B;            // (N/2)        V^* B, kept rows
  std::vector<cdouble> V;            // (N, N)       all eigenvectors, columns
  std::vector<cdouble> Lambda_full;  // (N)     all eigenvalues (column order of V)
  std::vector<cdouble> P_full;       // (rank, N) P in the original basis (real values)
};
// measure "legs" (rank 1), "legt" (rank 2), "lagt" (rank 1), "fout" (rank 1).
NPLR nplr(const std::string& measure, std::int64_t N, std::int64_t rank = 1);

// S4D initialisations of the diagonal (Gu et al. 2022, "On the
// parameterization and initialization of diagonal SSMs"), N/2 values:
//   lin:  -1/2 + i pi n          inv: -1/2 + i (N/pi)(N/(2n+1) - 1)
//   legs: the NPLR Lambda above  real: -(n + 1)
std::vector<cdouble> s4d_lambda(const std::string& init, std::int64_t N);

}  // namespace ssm::hippo

namespace ssm::hippo {

// Online function approximation with HiPPO-LegS (the HiPPO paper's demo).
// u: the signal u_1 .. u_L, one value per unit time step.
//
// Scale-invariant (time-varying) LegS: x' = (1/t) A x + (1/t) B u, stepped
// with the bilinear rule at t = k: x_k = (I - A/(2k))^{-1} ((I + A/(2k)) x_{k-1} + B u_k / k).
// Returns x_L (N): u(s) ~ sum_n x_n sqrt(2n+1) P_n(2s/L - 1) on [0, L],
// with the error spread evenly over the history.
std::vector<double> legs_project(const std::vector<double>& u, std::int64_t N);
// The reconstruction of legs_project's x at s = 1 .. L.
std::vector<double> legs_reconstruct(const std::vector<double>& x, std::int64_t L);

// Time-invariant LegS as S4 uses it: x' = A x + B u with a fixed step dt
// (bilinear). The state is the scale-invariant one under the time warp
// t = exp(tau), so the input at lag delta (time units) is read back as
// u(t - delta) ~ sum_n x_n sqrt(2n+1) P_n(2 exp(-delta) - 1): recent input
// accurately, old input with a resolution that decays exponentially.
std::vector<double> legs_project_lti(const std::vector<double>& u, std::int64_t N, double dt);
// The reconstruction of legs_project_lti's x at steps 1 .. L (lag (L - k) dt).
std::vector<double> legs_reconstruct_lti(const std::vector<double>& x, std::int64_t L, double dt);

}  // namespace ssm::hippo
