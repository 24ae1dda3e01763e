// CPU kernels of the S4 family: diagonal discretization, the S4D Vandermonde
// kernel (Gu, Gupta, Goel, Re 2022, "On the parameterization and
// initialization of diagonal state space models"), the S4 DPLR kernel (Gu,
// Goel, Re 2022, "Efficiently modeling long sequences with structured state
// spaces", Algorithm 1), and their one-step recurrences.
//
// Gradient rule: backward kernels return fresh gradient tensors (=); the
// tape does the accumulation. Every sum runs inside one feature h on one
// thread in a fixed order (OpenMP splits features only), so results do not
// depend on the thread count.
//
// Complex gradients (Wirtinger): a complex value z stored as (re, im) gets
// the gradient g = dL/dre + i dL/dim, so dL = Re(conj(g) dz). A holomorphic
// w = f(z) passes g_z = conj(f'(z)) g_w; w = c conj(z) passes g_z = conj(g_w) c;
// a real t with w = f(t) gets g_t = Re(conj(f'(t)) g_w).
#include "kernels/s4.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <vector>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cpu/simd_math.h"
#include "kernels/fft.h"
#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/s4.h"
#endif

namespace ssm::kernels {

namespace {

using cd = std::complex<double>;

// Plain complex arithmetic: std::complex's operator* and operator/ go through
// the C99 Annex G NaN recovery (__muldc3, __divdc3) that keeps loops scalar.
inline cd mul(cd a, cd b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}
inline cd inv(cd a) {
  const double s = 1.0 / (a.real() * a.real() + a.imag() * a.imag());
  return {a.real() * s, -a.imag() * s};
}
inline cd cj(cd a) { return {a.real(), -a.imag()}; }

template <class T>
inline cd load(const T* p, std::int64_t i) {
  return {static_cast<double>(p[2 * i]), static_cast<double>(p[2 * i + 1])};
}
template <class T>
inline void store(T* p, std::int64_t i, cd v) {
  p[2 * i] = static_cast<T>(v.real());
  p[2 * i + 1] = static_cast<T>(v.imag());
}

// Below this much work (complex multiply-adds) a kernel runs on one thread.
constexpr std::int64_t kParallelMin = 1 << 15;

// ---------------------------------------------------------------- argument checks

enum class Disc { Zoh, Bilinear };

Disc parse_method(const char* op, const std::string& method) {
  if (method == "zoh") return Disc::Zoh;
  if (method == "bilinear") return Disc::Bilinear;
  fail(op, "method must be \"zoh\" or \"bilinear\", got \"", method, "\"");
}

void check_defined(const char* op, const Tensor& t, const char* name) {
  SSM_CHECK(t.defined(), op, name, " is undefined");
}

// A leading dim of a complex tensor: none, one of any size >= 1 named
// `label`, or one of exactly `size`.
struct Lead {
  enum Kind { None, Any, Exact } kind = None;
  std::int64_t size = 0;
  const char* label = "";
};
constexpr Lead kNoLead{};
inline Lead any_lead(const char* label) { return {Lead::Any, 0, label}; }
inline Lead exact_lead(std::int64_t size) { return {Lead::Exact, size, ""}; }

// t must be a complex (lead, H, N2, 2) with the dtype and device of ref.
void check_complex(const char* op, const Tensor& t, const char* name, Lead lead, std::int64_t H,
                   std::int64_t N2, const Tensor& ref) {
  check_defined(op, t, name);
  check_same_device(op, ref, t);
  check_same_dtype(op, ref, t);
  const std::int64_t nd = lead.kind == Lead::None ? 0 : 1;
  bool ok = t.dim() == nd + 3 && t.size(-1) == 2 && t.size(-2) == N2 && t.size(-3) == H;
  if (ok && lead.kind == Lead::Any) ok = t.size(0) >= 1;
  if (ok && lead.kind == Lead::Exact) ok = t.size(0) == lead.size;
  std::string want = "(";
  if (lead.kind == Lead::Any) want += std::string(lead.label) + ", ";
  if (lead.kind == Lead::Exact) want += std::to_string(lead.size) + ", ";
  want += std::to_string(H) + ", " + std::to_string(N2) + ", 2)";
  SSM_CHECK(ok, op, name, " must be ", want, " (complex as a trailing dim 2), got ", t.desc());
}

// dt (H) and A (H, N2, 2), floating; returns (H, N2).
std::pair<std::int64_t, std::int64_t> check_dt_A(const char* op, const Tensor& dt, const Tensor& A,
                                                 const char* a_name) {
  check_defined(op, dt, "dt");
  check_defined(op, A, a_name);
  SSM_CHECK(dt.dtype() == DType::Float32 || dt.dtype() == DType::Float64, op,
            "expected float32 or float64 tensors, got dt ", dt.desc());
  SSM_CHECK(dt.dim() == 1, op, "dt must be (H), got ", dt.desc());
  SSM_CHECK(A.dim() == 3 && A.size(-1) == 2, op, a_name,
            " must be (H, N2, 2) (complex as a trailing dim 2), got ", A.desc());
  const std::int64_t H = dt.size(0), N2 = A.size(1);
  check_complex(op, A, a_name, kNoLead, H, N2, dt);
  return {H, N2};
}

void check_length(const char* op, std::int64_t L) {
  SSM_CHECK(L >= 1, op, "kernel length L must be positive, got ", L);
}

// ---------------------------------------------------------------- discretization math

// exp(z) - 1 without cancellation near 0: (expm1(x) cos y - 2 sin^2(y/2)) + i e^x sin y.
cd expm1c(cd z) {
  const double x = z.real(), y = z.imag();
  const double s = std::sin(0.5 * y);
  return {std::expm1(x) * std::cos(y) - 2.0 * s * s, std::exp(x) * std::sin(y)};
}

// phi(z) = (e^z - 1) / z = sum_k z^k / (k + 1)! (phi(0) = 1): the series below
// |z| = 1/2 (where 1/z could overflow), expm1c(z) / z above.
cd phi(cd z) {
  if (std::abs(z) < 0.5) {
    cd sum = 0.0, zk = 1.0;
    double fact = 1.0;  // (k + 1)!
    for (int k = 0; k < 24; ++k) {
      sum += zk * (1.0 / fact);
      zk = mul(zk, z);
      fact *= static_cast<double>(k + 2);
    }
    return sum;
  }
  return mul(expm1c(z), inv(z));
}

// psi(z) = phi'(z) = (z e^z - e^z + 1) / z^2 = sum_k (k + 1) z^k / (k + 2)!; the
// series below |z| = 1/2 (the closed form cancels there), the closed form above.
cd psi(cd z) {
  if (std::abs(z) < 0.5) {
    cd sum = 0.0, zk = 1.0;
    double fact = 2.0;  // (k + 2)!
    for (int k = 0; k < 24; ++k) {
      sum += zk * (static_cast<double>(k + 1) / fact);
      zk = mul(zk, z);
      fact *= static_cast<double>(k + 3);
    }
    return sum;
  }
  const cd iz = inv(z);
  return mul(mul(z, std::exp(z)) - expm1c(z), mul(iz, iz));
}

struct DiscPoint {
  cd dA, dB;
};
// (dA, dB) at one (dt, A); see diag_discretize_forward in kernels/s4.h.
DiscPoint disc_point(Disc disc, double dt, cd A) {
  const cd z = dt * A;
  if (disc == Disc::Zoh) return {std::exp(z), dt * phi(z)};
  const cd q = inv(1.0 - 0.5 * z);
  return {mul(1.0 + 0.5 * z, q), dt * q};
}

// The partial derivatives of (dA, dB) in A (holomorphic) and in dt (real):
//   zoh:      d dA/dA = dt e^z,  d dA/d dt = A e^z,   d dB/dA = dt^2 psi(z),  d dB/d dt = e^z
//   bilinear: d dA/dA = dt q^2,  d dA/d dt = A q^2,   d dB/dA = dt^2 q^2 / 2, d dB/d dt = q^2
// with z = dt A and q = 1 / (1 - z/2).
struct DiscDeriv {
  cd dA_A, dA_dt, dB_A, dB_dt;
};
DiscDeriv disc_deriv(Disc disc, double dt, cd A) {
  const cd z = dt * A;
  if (disc == Disc::Zoh) {
    const cd e = std::exp(z);
    return {dt * e, mul(A, e), dt * dt * psi(z), e};
  }
  const cd q = inv(1.0 - 0.5 * z);
  const cd q2 = mul(q, q);
  return {dt * q2, mul(A, q2), 0.5 * dt * dt * q2, q2};
}

// g_A and g_dt of one (h, n) from the gradients of dA and dB.
inline void disc_backward(const DiscDeriv& d, cd g_dA, cd g_dB, cd& g_A, double& g_dt) {
  g_A = mul(cj(d.dA_A), g_dA) + mul(cj(d.dB_A), g_dB);
  g_dt += (mul(cj(d.dA_dt), g_dA) + mul(cj(d.dB_dt), g_dB)).real();
}

}  // namespace

// ---------------------------------------------------------------- diag_discretize

DiagDiscrete diag_discretize_forward(const Tensor& dt, const Tensor& A, const std::string& method) {
  SSM_CUDA_DISPATCH(dt, cuda::diag_discretize_forward(dt, A, method));
  const char* op = "diag_discretize";
  require_cpu(op, {&dt, &A});
  const Disc disc = parse_method(op, method);
  const auto [H, N2] = check_dt_A(op, dt, A, "A");
  const Tensor dtc = dt.contiguous(), Ac = A.contiguous();
  DiagDiscrete out{Tensor::empty(A.shape(), A.dtype()), Tensor::empty(A.shape(), A.dtype())};
  dispatch_float(A.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pdt = dtc.data<T>();
    const T* pA = Ac.data<T>();
    T* pdA = out.dA.data<T>();
    T* pdB = out.dB.data<T>();
#pragma omp parallel for schedule(static) if (H * N2 > kParallelMin)
    for (std::int64_t i = 0; i < H * N2; ++i) {
      const DiscPoint d = disc_point(disc, static_cast<double>(pdt[i / N2]), load(pA, i));
      store(pdA, i, d.dA);
      store(pdB, i, d.dB);
    }
  });
  return out;
}

DiagDiscretizeGrads diag_discretize_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                             const Tensor& dt, const Tensor& A,
                                             const std::string& method, bool need_dt, bool need_A) {
  SSM_CUDA_DISPATCH(
      dt, cuda::diag_discretize_backward(grad_dA, grad_dB, dt, A, method, need_dt, need_A));
  const char* op = "diag_discretize_backward";
  require_cpu(op, {&grad_dA, &grad_dB, &dt, &A});
  const Disc disc = parse_method(op, method);
  const auto [H, N2] = check_dt_A(op, dt, A, "A");
  if (grad_dA.defined()) check_complex(op, grad_dA, "grad_dA", kNoLead, H, N2, dt);
  if (grad_dB.defined()) check_complex(op, grad_dB, "grad_dB", kNoLead, H, N2, dt);
  const Tensor dtc = dt.contiguous(), Ac = A.contiguous();
  const Tensor gAc = grad_dA.defined() ? grad_dA.contiguous() : Tensor();
  const Tensor gBc = grad_dB.defined() ? grad_dB.contiguous() : Tensor();
  DiagDiscretizeGrads out;
  if (need_dt) out.dt = Tensor::empty({H}, dt.dtype());
  if (need_A) out.A = Tensor::empty(A.shape(), A.dtype());
  if (!need_dt && !need_A) return out;
  dispatch_float(A.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pdt = dtc.data<T>();
    const T* pA = Ac.data<T>();
    const T* pgA = gAc.defined() ? gAc.data<T>() : nullptr;
    const T* pgB = gBc.defined() ? gBc.data<T>() : nullptr;
    T* odt = need_dt ? out.dt.data<T>() : nullptr;
    T* oA = need_A ? out.A.data<T>() : nullptr;
#pragma omp parallel for schedule(static) if (H * N2 > kParallelMin)
    for (std::int64_t h = 0; h < H; ++h) {
      const double dth = static_cast<double>(pdt[h]);
      double g_dt = 0.0;
      for (std::int64_t n = 0; n < N2; ++n) {
        const std::int64_t i = h * N2 + n;
        const DiscDeriv d = disc_deriv(disc, dth, load(pA, i));
        cd g_A;
        disc_backward(d, pgA ? load(pgA, i) : cd(0.0), pgB ? load(pgB, i) : cd(0.0), g_A, g_dt);
        if (oA) store(oA, i, g_A);
      }
      if (odt) odt[h] = static_cast<T>(g_dt);
    }
  });
  return out;
}

// ---------------------------------------------------------------- s4d_kernel

namespace {

struct S4DShapes {
  std::int64_t Cn, H, N2;
};

S4DShapes check_s4d(const char* op, const Tensor& dt, const Tensor& A, const Tensor& B,
                    const Tensor& C) {
  const auto [H, N2] = check_dt_A(op, dt, A, "A");
  check_complex(op, B, "B", kNoLead, H, N2, dt);
  check_complex(op, C, "C", any_lead("C"), H, N2, dt);
  return {C.size(0), H, N2};
}

// Per feature h: the powers' base z_n = dA[h, n], W_n = dB B, CW[c, n] = C W,
// as split re / im arrays in double.
struct S4DFeature {
  std::vector<double> zr, zi;    // (N2)
  std::vector<cd> dB, B, W;      // (N2)
  std::vector<cd> Cv;            // (Cn, N2)
  std::vector<double> cwr, cwi;  // (Cn, N2)
  std::vector<DiscDeriv> deriv;  // (N2), backward only
};

template <class T>
void load_s4d_feature(Disc disc, std::int64_t h, const S4DShapes& s, const T* dt, const T* A,
                      const T* B, const T* C, bool with_deriv, S4DFeature& f) {
  const std::int64_t N2 = s.N2;
  f.zr.resize(N2);
  f.zi.resize(N2);
  f.dB.resize(N2);
  f.B.resize(N2);
  f.W.resize(N2);
  f.Cv.resize(s.Cn * N2);
  f.cwr.resize(s.Cn * N2);
  f.cwi.resize(s.Cn * N2);
  if (with_deriv) f.deriv.resize(N2);
  const double dth = static_cast<double>(dt[h]);
  for (std::int64_t n = 0; n < N2; ++n) {
    const cd a = load(A, h * N2 + n);
    const DiscPoint d = disc_point(disc, dth, a);
    f.zr[n] = d.dA.real();
    f.zi[n] = d.dA.imag();
    f.dB[n] = d.dB;
    f.B[n] = load(B, h * N2 + n);
    f.W[n] = mul(d.dB, f.B[n]);
    if (with_deriv) f.deriv[n] = disc_deriv(disc, dth, a);
    for (std::int64_t c = 0; c < s.Cn; ++c) {
      const cd cv = load(C, (c * s.H + h) * N2 + n);
      const cd cw = mul(cv, f.W[n]);
      f.Cv[c * N2 + n] = cv;
      f.cwr[c * N2 + n] = cw.real();
      f.cwi[c * N2 + n] = cw.imag();
    }
  }
}

}  // namespace

Tensor s4d_kernel_forward(const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                          std::int64_t L, const std::string& method) {
  SSM_CUDA_DISPATCH(dt, cuda::s4d_kernel_forward(dt, A, B, C, L, method));
  const char* op = "s4d_kernel";
  require_cpu(op, {&dt, &A, &B, &C});
  const Disc disc = parse_method(op, method);
  check_length(op, L);
  const S4DShapes s = check_s4d(op, dt, A, B, C);
  const Tensor dtc = dt.contiguous(), Ac = A.contiguous(), Bc = B.contiguous();
  const Tensor Cc = C.contiguous();
  Tensor K = Tensor::empty({s.Cn, s.H, L}, A.dtype());
  dispatch_float(A.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* pK = K.data<T>();
    const std::int64_t N2 = s.N2;
#pragma omp parallel for schedule(static) if (s.H * s.Cn * N2 * L > kParallelMin)
    for (std::int64_t h = 0; h < s.H; ++h) {
      S4DFeature f;
      load_s4d_feature(disc, h, s, dtc.data<T>(), Ac.data<T>(), Bc.data<T>(), Cc.data<T>(), false,
                       f);
      // p_n = dA_n^l, carried by one complex multiply per step (relative
      // error about l * 1e-16 in double: 4e-13 at l = 4096).
      std::vector<double> pr(N2, 1.0), pi(N2, 0.0);
      for (std::int64_t l = 0; l < L; ++l) {
        for (std::int64_t c = 0; c < s.Cn; ++c) {
          const double* cwr = f.cwr.data() + c * N2;
          const double* cwi = f.cwi.data() + c * N2;
          double acc = 0.0;
          for (std::int64_t n = 0; n < N2; ++n) acc += cwr[n] * pr[n] - cwi[n] * pi[n];
          pK[(c * s.H + h) * L + l] = static_cast<T>(2.0 * acc);
        }
        for (std::int64_t n = 0; n < N2; ++n) {
          const double r = pr[n] * f.zr[n] - pi[n] * f.zi[n];
          pi[n] = pr[n] * f.zi[n] + pi[n] * f.zr[n];
          pr[n] = r;
        }
      }
    }
  });
  return K;
}

S4DKernelGrads s4d_kernel_backward(const Tensor& grad, const Tensor& dt, const Tensor& A,
                                   const Tensor& B, const Tensor& C, const std::string& method,
                                   bool need_dt, bool need_A, bool need_B, bool need_C) {
  SSM_CUDA_DISPATCH(
      dt, cuda::s4d_kernel_backward(grad, dt, A, B, C, method, need_dt, need_A, need_B, need_C));
  const char* op = "s4d_kernel_backward";
  require_cpu(op, {&grad, &dt, &A, &B, &C});
  const Disc disc = parse_method(op, method);
  const S4DShapes s = check_s4d(op, dt, A, B, C);
  check_defined(op, grad, "grad");
  check_same_device(op, dt, grad);
  check_same_dtype(op, dt, grad);
  SSM_CHECK(grad.dim() == 3 && grad.size(0) == s.Cn && grad.size(1) == s.H && grad.size(2) >= 1, op,
            "grad must be (", s.Cn, ", ", s.H, ", L), got ", grad.desc());
  const std::int64_t L = grad.size(2), N2 = s.N2;
  S4DKernelGrads out;
  if (need_dt) out.dt = Tensor::empty(dt.shape(), dt.dtype());
  if (need_A) out.A = Tensor::empty(A.shape(), A.dtype());
  if (need_B) out.B = Tensor::empty(B.shape(), B.dtype());
  if (need_C) out.C = Tensor::empty(C.shape(), C.dtype());
  if (!need_dt && !need_A && !need_B && !need_C) return out;
  const bool need_U = need_dt || need_A;  // only dA's gradient needs sum_l l G_l dA^(l-1)
  const bool need_W = need_dt || need_A || need_B;
  const Tensor gc = grad.contiguous(), dtc = dt.contiguous(), Ac = A.contiguous();
  const Tensor Bc = B.contiguous(), Cc = C.contiguous();
  dispatch_float(A.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pG = gc.data<T>();
    T* odt = need_dt ? out.dt.data<T>() : nullptr;
    T* oA = need_A ? out.A.data<T>() : nullptr;
    T* oB = need_B ? out.B.data<T>() : nullptr;
    T* oC = need_C ? out.C.data<T>() : nullptr;
#pragma omp parallel for schedule(static) if (s.H * s.Cn * N2 * L > kParallelMin)
    for (std::int64_t h = 0; h < s.H; ++h) {
      S4DFeature f;
      load_s4d_feature(disc, h, s, dtc.data<T>(), Ac.data<T>(), Bc.data<T>(), Cc.data<T>(), true,
                       f);
      // T[c, n] = sum_l G[c, h, l] z_n^l,  U[c, n] = sum_l l G[c, h, l] z_n^(l-1).
      const std::int64_t CN = s.Cn * N2;
      std::vector<double> Tr(CN, 0.0), Ti(CN, 0.0), Ur(CN, 0.0), Ui(CN, 0.0);
      std::vector<double> pr(N2, 1.0), pi(N2, 0.0), qr(N2, 0.0), qi(N2, 0.0);  // z^l, z^(l-1)
      for (std::int64_t l = 0; l < L; ++l) {
        for (std::int64_t c = 0; c < s.Cn; ++c) {
          const double g = static_cast<double>(pG[(c * s.H + h) * L + l]);
          double* tr = Tr.data() + c * N2;
          double* ti = Ti.data() + c * N2;
          for (std::int64_t n = 0; n < N2; ++n) {
            tr[n] += g * pr[n];
            ti[n] += g * pi[n];
          }
          if (need_U && l > 0) {
            const double gl = g * static_cast<double>(l);
            double* ur = Ur.data() + c * N2;
            double* ui = Ui.data() + c * N2;
            for (std::int64_t n = 0; n < N2; ++n) {
              ur[n] += gl * qr[n];
              ui[n] += gl * qi[n];
            }
          }
        }
        for (std::int64_t n = 0; n < N2; ++n) {
          qr[n] = pr[n];
          qi[n] = pi[n];
          pr[n] = qr[n] * f.zr[n] - qi[n] * f.zi[n];
          pi[n] = qr[n] * f.zi[n] + qi[n] * f.zr[n];
        }
      }
      double g_dt = 0.0;
      for (std::int64_t n = 0; n < N2; ++n) {
        cd g_W = 0.0, g_dA = 0.0;
        for (std::int64_t c = 0; c < s.Cn; ++c) {
          const std::int64_t i = c * N2 + n;
          const cd Tv{Tr[i], Ti[i]};
          if (oC) store(oC, (c * s.H + h) * N2 + n, 2.0 * cj(mul(f.W[n], Tv)));
          if (need_W) g_W += 2.0 * cj(mul(f.Cv[i], Tv));
          if (need_U) g_dA += 2.0 * cj(mul(mul(f.Cv[i], f.W[n]), cd{Ur[i], Ui[i]}));
        }
        if (oB) store(oB, h * N2 + n, mul(cj(f.dB[n]), g_W));
        if (need_U) {
          cd g_A;
          disc_backward(f.deriv[n], g_dA, mul(cj(f.B[n]), g_W), g_A, g_dt);
          if (oA) store(oA, h * N2 + n, g_A);
        }
      }
      if (odt) odt[h] = static_cast<T>(g_dt);
    }
  });
  return out;
}

// ---------------------------------------------------------------- s4_dplr_kernel

namespace {

struct DplrShapes {
  std::int64_t Cn, R, H, N2;
};

DplrShapes check_dplr(const char* op, const Tensor& dt, const Tensor& Lambda, const Tensor& P,
                      const Tensor& B, const Tensor& C) {
  const auto [H, N2] = check_dt_A(op, dt, Lambda, "Lambda");
  check_complex(op, P, "P", any_lead("R"), H, N2, dt);
  check_complex(op, B, "B", kNoLead, H, N2, dt);
  check_complex(op, C, "C", any_lead("C"), H, N2, dt);
  return {C.size(0), P.size(0), H, N2};
}

// x = M^{-1} b (or (M^H)^{-1} b when conj_transpose) for a small R x R
// complex M (row-major), by Gaussian elimination with partial pivoting.
// `a` is scratch of R * R values. A singular M gives non-finite values.
void small_solve(const std::vector<cd>& M, std::int64_t R, bool conj_transpose, std::vector<cd>& a,
                 std::vector<cd>& x) {
  for (std::int64_t i = 0; i < R; ++i) {
    for (std::int64_t j = 0; j < R; ++j)
      a[i * R + j] = conj_transpose ? cj(M[j * R + i]) : M[i * R + j];
  }
  for (std::int64_t k = 0; k < R; ++k) {
    std::int64_t piv = k;
    for (std::int64_t i = k + 1; i < R; ++i) {
      if (std::abs(a[i * R + k]) > std::abs(a[piv * R + k])) piv = i;
    }
    if (piv != k) {
      for (std::int64_t j = 0; j < R; ++j) std::swap(a[k * R + j], a[piv * R + j]);
      std::swap(x[k], x[piv]);
    }
    const cd d = inv(a[k * R + k]);
    for (std::int64_t i = k + 1; i < R; ++i) {
      const cd m = mul(a[i * R + k], d);
      for (std::int64_t j = k; j < R; ++j) a[i * R + j] -= mul(m, a[k * R + j]);
      x[i] -= mul(m, x[k]);
    }
  }
  for (std::int64_t k = R - 1; k >= 0; --k) {
    cd v = x[k];
    for (std::int64_t j = k + 1; j < R; ++j) v -= mul(a[k * R + j], x[j]);
    x[k] = mul(v, inv(a[k * R + k]));
  }
}

// The loops over the N2 modes of one node, compiled for AVX2 and the
// baseline (SSM_SIMD_CLONES). With a = (2/dt)(1 - omega), kap = 1 + omega:
// (ir, ii) = 1/d_n = 1/(a - kap Lambda_n), (br, bi) = 1/d'_n = 1/(a - kap conj Lambda_n).
SSM_SIMD_CLONES void cauchy_inverses(std::int64_t N2, double ar, double ai, double kr, double ki,
                                     const double* lr, const double* li, double* ir, double* ii,
                                     double* br, double* bi) {
#pragma omp simd
  for (std::int64_t n = 0; n < N2; ++n) {
    const double d1r = ar - (kr * lr[n] - ki * li[n]), d1i = ai - (kr * li[n] + ki * lr[n]);
    const double d2r = ar - (kr * lr[n] + ki * li[n]), d2i = ai - (ki * lr[n] - kr * li[n]);
    const double s1 = 1.0 / (d1r * d1r + d1i * d1i), s2 = 1.0 / (d2r * d2r + d2i * d2i);
    ir[n] = d1r * s1;
    ii[n] = -d1i * s1;
    br[n] = d2r * s2;
    bi[n] = -d2i * s2;
  }
}

// s_p = sum_n v_pn i_n + conj(v_pn) b_n for the pairs p < np (v (np, N2)):
//   Re s = sum vr (ir + br) + vi (bi - ii),  Im s = sum vr (ii + bi) + vi (ir - br).
SSM_SIMD_CLONES void cauchy_sums(std::int64_t np, std::int64_t N2, const double* vr,
                                 const double* vi, const double* ir, const double* ii,
                                 const double* br, const double* bi, double* sr, double* si) {
  for (std::int64_t p = 0; p < np; ++p) {
    const double* a = vr + p * N2;
    const double* b = vi + p * N2;
    double re = 0.0, im = 0.0;
#pragma omp simd reduction(+ : re, im)
    for (std::int64_t n = 0; n < N2; ++n) {
      re += a[n] * (ir[n] + br[n]) + b[n] * (bi[n] - ii[n]);
      im += a[n] * (ii[n] + bi[n]) + b[n] * (ir[n] - br[n]);
    }
    sr[p] = re;
    si[p] = im;
  }
}

// The backward of cauchy_sums for one pair with gradient g = (gr, gi):
//   g_v += g conj(i) + conj(g) b,  g_i += g conj(v),  g_b += g v.
SSM_SIMD_CLONES void cauchy_sum_backward(std::int64_t N2, double gr, double gi, const double* vr,
                                         const double* vi, const double* ir, const double* ii,
                                         const double* br, const double* bi, double* Gr, double* Gi,
                                         double* g1r, double* g1i, double* g2r, double* g2i) {
#pragma omp simd
  for (std::int64_t n = 0; n < N2; ++n) {
    Gr[n] += gr * (ir[n] + br[n]) + gi * (ii[n] + bi[n]);
    Gi[n] += gi * (ir[n] - br[n]) + gr * (bi[n] - ii[n]);
    g1r[n] += gr * vr[n] + gi * vi[n];
    g1i[n] += gi * vr[n] - gr * vi[n];
    g2r[n] += gr * vr[n] - gi * vi[n];
    g2i[n] += gr * vi[n] + gi * vr[n];
  }
}

// 1/d = 1/((2/dt)(1 - omega) - kap Lambda) is holomorphic in Lambda, 1/d'
// antiholomorphic: d(1/d)/dLambda = kap/d^2, d(1/d')/d conj(Lambda) = kap/d'^2;
// both move with dt as d(1/d)/d dt = c/d^2, c = 2 (1 - omega)/dt^2. From g_i, g_b:
//   g_Lambda += conj(kap i^2) g_i + conj(g_b) kap b^2
//   g_dt     += Re(conj(c i^2) g_i + conj(c b^2) g_b)   (per n, summed later)
SSM_SIMD_CLONES void cauchy_lambda_backward(std::int64_t N2, double kr, double ki, double cr,
                                            double ci, const double* ir, const double* ii,
                                            const double* br, const double* bi, const double* g1r,
                                            const double* g1i, const double* g2r, const double* g2i,
                                            double* gLr, double* gLi, double* gdt) {
#pragma omp simd
  for (std::int64_t n = 0; n < N2; ++n) {
    const double i2r = ir[n] * ir[n] - ii[n] * ii[n], i2i = 2.0 * ir[n] * ii[n];
    const double b2r = br[n] * br[n] - bi[n] * bi[n], b2i = 2.0 * br[n] * bi[n];
    const double ur = kr * i2r - ki * i2i, ui = kr * i2i + ki * i2r;  // kap i^2
    const double wr = kr * b2r - ki * b2i, wi = kr * b2i + ki * b2r;  // kap b^2
    gLr[n] += ur * g1r[n] + ui * g1i[n] + g2r[n] * wr + g2i[n] * wi;
    gLi[n] += ur * g1i[n] - ui * g1r[n] + g2r[n] * wi - g2i[n] * wr;
    const double er = cr * i2r - ci * i2i, ei = cr * i2i + ci * i2r;  // c i^2
    const double fr = cr * b2r - ci * b2i, fi = cr * b2i + ci * b2r;  // c b^2
    gdt[n] += er * g1r[n] + ei * g1i[n] + fr * g2r[n] + fi * g2i[n];
  }
}

// The nodes omega_k = exp(-2 pi i k / L), k = 0 .. L/2, as 1 - omega =
// 2 sin^2(t/2) + i sin t and 1 + omega = 2 cos^2(t/2) - i sin t (t = 2 pi k / L),
// which keeps both accurate where they are small.
struct Nodes {
  std::vector<cd> om1, kap;
  explicit Nodes(std::int64_t L) {
    const std::int64_t count = L / 2 + 1;
    om1.resize(count);
    kap.resize(count);
    for (std::int64_t k = 0; k < count; ++k) {
      const double t = 2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(L);
      const double sh = std::sin(0.5 * t), ch = std::cos(0.5 * t), st = std::sin(t);
      om1[k] = {2.0 * sh * sh, st};
      kap[k] = {2.0 * ch * ch, -st};
    }
  }
};

// One feature h of the DPLR kernel in double, laid out for loops over n that
// vectorize. The products v = a b of the Cauchy sums do not depend on the
// node, so they are formed once; the pairs are numbered
//   CB[c] = c,  CP[c][r] = Cn + c R + r,  PB[r] = Cn (1 + R) + r,
//   PP[r][q] = Cn (1 + R) + R + r R + q
// with v = C_c B, C_c P_r, conj(P_r) B, conj(P_r) P_q.
struct DplrFeature {
  std::int64_t Cn = 0, R = 0, N2 = 0, L = 0, pairs = 0;
  double dt = 0.0;
  std::vector<cd> B, P, C;     // (N2), (R, N2), (Cn, N2)
  std::vector<double> lr, li;  // (N2) Lambda
  std::vector<double> vr, vi;  // (pairs, N2)
  // At the current node:
  cd om1, kap;                         // 1 - omega, 1 + omega
  std::vector<double> ir, ii, br, bi;  // (N2)  1/d_n and 1/d'_n
  std::vector<cd> s;                   // (pairs)  the Cauchy sums s_ab
  std::vector<double> sr, si;          // (pairs)
  std::vector<cd> M, y, scratch;       // (R, R), (R), (R, R)

  std::int64_t cb(std::int64_t c) const { return c; }
  std::int64_t cp(std::int64_t c, std::int64_t r) const { return Cn + c * R + r; }
  std::int64_t pb(std::int64_t r) const { return Cn * (1 + R) + r; }
  std::int64_t pp(std::int64_t r, std::int64_t q) const { return Cn * (1 + R) + R + r * R + q; }

  template <class T>
  void load(std::int64_t h, const DplrShapes& sh, std::int64_t length, const T* dtp, const T* Lp,
            const T* Pp, const T* Bp, const T* Cp) {
    Cn = sh.Cn;
    R = sh.R;
    N2 = sh.N2;
    L = length;
    pairs = Cn * (1 + R) + R * (1 + R);
    dt = static_cast<double>(dtp[h]);
    B.resize(N2);
    P.resize(R * N2);
    C.resize(Cn * N2);
    lr.resize(N2);
    li.resize(N2);
    for (std::int64_t n = 0; n < N2; ++n) {
      const cd lam = kernels::load(Lp, h * N2 + n);
      lr[n] = lam.real();
      li[n] = lam.imag();
      B[n] = kernels::load(Bp, h * N2 + n);
      for (std::int64_t r = 0; r < R; ++r) {
        P[r * N2 + n] = kernels::load(Pp, (r * sh.H + h) * N2 + n);
      }
      for (std::int64_t c = 0; c < Cn; ++c) {
        C[c * N2 + n] = kernels::load(Cp, (c * sh.H + h) * N2 + n);
      }
    }
    vr.resize(pairs * N2);
    vi.resize(pairs * N2);
    for (std::int64_t n = 0; n < N2; ++n) {
      auto put = [&](std::int64_t pair, cd v) {
        vr[pair * N2 + n] = v.real();
        vi[pair * N2 + n] = v.imag();
      };
      for (std::int64_t c = 0; c < Cn; ++c) {
        put(cb(c), mul(C[c * N2 + n], B[n]));
        for (std::int64_t r = 0; r < R; ++r) put(cp(c, r), mul(C[c * N2 + n], P[r * N2 + n]));
      }
      for (std::int64_t r = 0; r < R; ++r) {
        put(pb(r), mul(cj(P[r * N2 + n]), B[n]));
        for (std::int64_t q = 0; q < R; ++q) {
          put(pp(r, q), mul(cj(P[r * N2 + n]), P[q * N2 + n]));
        }
      }
    }
    ir.resize(N2);
    ii.resize(N2);
    br.resize(N2);
    bi.resize(N2);
    s.resize(pairs);
    sr.resize(pairs);
    si.resize(pairs);
    M.resize(R * R);
    y.resize(R);
    scratch.resize(R * R);
  }

  // Node k (see Nodes): 1/d_n and 1/d'_n with d = (2/dt)(1 - omega) - kap Lambda,
  // d' = the same with conj Lambda.
  void set_node(const Nodes& nodes, std::int64_t k) {
    om1 = nodes.om1[k];
    kap = nodes.kap[k];
    cauchy_inverses(N2, 2.0 / dt * om1.real(), 2.0 / dt * om1.imag(), kap.real(), kap.imag(),
                    lr.data(), li.data(), ir.data(), ii.data(), br.data(), bi.data());
  }

  // The Cauchy sums s_ab = sum_n v_n / d_n + conj(v_n) / d'_n at the current
  // node, then M = I + kap s_PP and y = M^{-1} s_PB. With 1/d = i and 1/d' = b:
  //   Re s = sum vr (ir + br) + vi (bi - ii),  Im s = sum vr (ii + bi) + vi (ir - br).
  void sums() {
    cauchy_sums(pairs, N2, vr.data(), vi.data(), ir.data(), ii.data(), br.data(), bi.data(),
                sr.data(), si.data());
    for (std::int64_t p = 0; p < pairs; ++p) s[p] = {sr[p], si[p]};
    for (std::int64_t r = 0; r < R; ++r) {
      for (std::int64_t q = 0; q < R; ++q) {
        M[r * R + q] = (r == q ? cd(1.0) : cd(0.0)) + mul(kap, s[pp(r, q)]);
      }
      y[r] = s[pb(r)];
    }
    small_solve(M, R, false, scratch, y);
  }

  // K^ for channel c at the current node (after sums()).
  cd value(std::int64_t c) const {
    cd corr = 0.0;
    for (std::int64_t r = 0; r < R; ++r) corr += mul(s[cp(c, r)], y[r]);
    return 2.0 * (s[cb(c)] - mul(kap, corr));
  }
};

}  // namespace

Tensor s4_dplr_kernel_forward(const Tensor& dt, const Tensor& Lambda, const Tensor& P,
                              const Tensor& B, const Tensor& C, std::int64_t L) {
  SSM_CUDA_DISPATCH(dt, cuda::s4_dplr_kernel_forward(dt, Lambda, P, B, C, L));
  const char* op = "s4_dplr_kernel";
  require_cpu(op, {&dt, &Lambda, &P, &B, &C});
  check_length(op, L);
  const DplrShapes s = check_dplr(op, dt, Lambda, P, B, C);
  const Tensor dtc = dt.contiguous(), Lc = Lambda.contiguous(), Pc = P.contiguous();
  const Tensor Bc = B.contiguous(), Cc = C.contiguous();
  Tensor K = Tensor::empty({s.Cn, s.H, L}, dt.dtype());
  const std::int64_t nodes = L / 2 + 1;
  const Nodes node_table(L);
  dispatch_float(dt.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* pK = K.data<T>();
    const std::int64_t work = s.H * nodes * s.N2 * (s.Cn + s.R) * (1 + s.R);
#pragma omp parallel for schedule(static) if (work > kParallelMin)
    for (std::int64_t h = 0; h < s.H; ++h) {
      DplrFeature f;
      f.load(h, s, L, dtc.data<T>(), Lc.data<T>(), Pc.data<T>(), Bc.data<T>(), Cc.data<T>());
      std::vector<cd> X(s.Cn * nodes);  // (Cn, L/2 + 1)
      for (std::int64_t k = 0; k < nodes; ++k) {
        f.set_node(node_table, k);
        f.sums();
        for (std::int64_t c = 0; c < s.Cn; ++c) X[c * nodes + k] = f.value(c);
      }
      std::vector<double> row(L);
      for (std::int64_t c = 0; c < s.Cn; ++c) {
        fft::irfft(X.data() + c * nodes, row.data(), L);
        T* out = pK + (c * s.H + h) * L;
        for (std::int64_t l = 0; l < L; ++l) out[l] = static_cast<T>(row[l]);
      }
    }
  });
  return K;
}

S4DplrKernelGrads s4_dplr_kernel_backward(const Tensor& grad, const Tensor& dt,
                                          const Tensor& Lambda, const Tensor& P, const Tensor& B,
                                          const Tensor& C, bool need_dt, bool need_Lambda,
                                          bool need_P, bool need_B, bool need_C) {
  SSM_CUDA_DISPATCH(dt, cuda::s4_dplr_kernel_backward(grad, dt, Lambda, P, B, C, need_dt,
                                                      need_Lambda, need_P, need_B, need_C));
  const char* op = "s4_dplr_kernel_backward";
  require_cpu(op, {&grad, &dt, &Lambda, &P, &B, &C});
  const DplrShapes s = check_dplr(op, dt, Lambda, P, B, C);
  check_defined(op, grad, "grad");
  check_same_device(op, dt, grad);
  check_same_dtype(op, dt, grad);
  SSM_CHECK(grad.dim() == 3 && grad.size(0) == s.Cn && grad.size(1) == s.H && grad.size(2) >= 1, op,
            "grad must be (", s.Cn, ", ", s.H, ", L), got ", grad.desc());
  S4DplrKernelGrads out;
  if (need_dt) out.dt = Tensor::empty(dt.shape(), dt.dtype());
  if (need_Lambda) out.Lambda = Tensor::empty(Lambda.shape(), Lambda.dtype());
  if (need_P) out.P = Tensor::empty(P.shape(), P.dtype());
  if (need_B) out.B = Tensor::empty(B.shape(), B.dtype());
  if (need_C) out.C = Tensor::empty(C.shape(), C.dtype());
  if (!need_dt && !need_Lambda && !need_P && !need_B && !need_C) return out;
  const std::int64_t L = grad.size(2), nodes = L / 2 + 1;
  const Nodes node_table(L);
  const std::int64_t Cn = s.Cn, R = s.R, H = s.H, N2 = s.N2;
  const Tensor gc = grad.contiguous(), dtc = dt.contiguous(), Lc = Lambda.contiguous();
  const Tensor Pc = P.contiguous(), Bc = B.contiguous(), Cc = C.contiguous();
  dispatch_float(dt.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pG = gc.data<T>();
    T* odt = need_dt ? out.dt.data<T>() : nullptr;
    T* oL = need_Lambda ? out.Lambda.data<T>() : nullptr;
    T* oP = need_P ? out.P.data<T>() : nullptr;
    T* oB = need_B ? out.B.data<T>() : nullptr;
    T* oC = need_C ? out.C.data<T>() : nullptr;
    const std::int64_t work = H * nodes * N2 * (Cn + R) * (1 + R);
#pragma omp parallel for schedule(static) if (work > kParallelMin)
    for (std::int64_t h = 0; h < H; ++h) {
      DplrFeature f;
      f.load(h, s, L, dtc.data<T>(), Lc.data<T>(), Pc.data<T>(), Bc.data<T>(), Cc.data<T>());
      const std::int64_t np = f.pairs;
      // The adjoint of K = irfft(X, L): g_X[k] = (w_k / L) rfft(G)[k], w_k = 1 at
      // k = 0 and k = L/2 (whose imaginary parts irfft ignores), 2 elsewhere.
      std::vector<cd> gX(Cn * nodes);
      {
        std::vector<double> row(L);
        for (std::int64_t c = 0; c < Cn; ++c) {
          const T* g = pG + (c * H + h) * L;
          for (std::int64_t l = 0; l < L; ++l) row[l] = static_cast<double>(g[l]);
          cd* X = gX.data() + c * nodes;
          fft::rfft(row.data(), X, L);
          for (std::int64_t k = 0; k < nodes; ++k) {
            const bool edge = k == 0 || 2 * k == L;
            X[k] = edge ? cd(X[k].real() / static_cast<double>(L), 0.0)
                        : X[k] * (2.0 / static_cast<double>(L));
          }
        }
      }
      // Gv[p, n] = sum over nodes of g_{v_p}: the products v = a b do not
      // depend on the node, so their gradients are summed first and passed
      // to a and b once at the end.
      std::vector<double> Gvr(np * N2, 0.0), Gvi(np * N2, 0.0);
      std::vector<double> gLr(N2, 0.0), gLi(N2, 0.0), gdt(N2, 0.0);
      std::vector<double> g1r(N2), g1i(N2), g2r(N2), g2i(N2);  // g(1/d), g(1/d') at a node
      std::vector<cd> gs(np), gy(R);
      for (std::int64_t k = 0; k < nodes; ++k) {
        f.set_node(node_table, k);
        f.sums();
        const cd kap = f.kap, ckap = cj(f.kap);
        // K^[c] = 2 (s_CB[c] - kap s_CP[c] . y),  y = M^{-1} s_PB,  M = I + kap s_PP.
        std::fill(gy.begin(), gy.end(), cd(0.0));
        for (std::int64_t c = 0; c < Cn; ++c) {
          const cd g = gX[c * nodes + k];
          gs[f.cb(c)] = 2.0 * g;
          for (std::int64_t r = 0; r < R; ++r) {
            gs[f.cp(c, r)] = -2.0 * mul(cj(mul(kap, f.y[r])), g);
            gy[r] += -2.0 * mul(cj(mul(kap, f.s[f.cp(c, r)])), g);
          }
        }
        // y = M^{-1} b: g_b = M^{-H} g_y, g_M = -g_b y^H; and g_sPP = conj(kap) g_M.
        small_solve(f.M, R, true, f.scratch, gy);
        for (std::int64_t r = 0; r < R; ++r) {
          gs[f.pb(r)] = gy[r];
          for (std::int64_t q = 0; q < R; ++q) gs[f.pp(r, q)] = -mul(ckap, mul(gy[r], cj(f.y[q])));
        }
        // Through s = sum_n v_n i_n + conj(v_n) b_n (i = 1/d, b = 1/d'):
        //   g_v += g_s conj(i) + conj(g_s) b,  g_i += g_s conj(v),  g_b += g_s v.
        std::fill(g1r.begin(), g1r.end(), 0.0);
        std::fill(g1i.begin(), g1i.end(), 0.0);
        std::fill(g2r.begin(), g2r.end(), 0.0);
        std::fill(g2i.begin(), g2i.end(), 0.0);
        const double* ir = f.ir.data();
        const double* ii = f.ii.data();
        const double* br = f.br.data();
        const double* bi = f.bi.data();
        for (std::int64_t p = 0; p < np; ++p) {
          cauchy_sum_backward(N2, gs[p].real(), gs[p].imag(), f.vr.data() + p * N2,
                              f.vi.data() + p * N2, ir, ii, br, bi, Gvr.data() + p * N2,
                              Gvi.data() + p * N2, g1r.data(), g1i.data(), g2r.data(), g2i.data());
        }
        const cd c_dt = (2.0 / (f.dt * f.dt)) * f.om1;
        cauchy_lambda_backward(N2, kap.real(), kap.imag(), c_dt.real(), c_dt.imag(), ir, ii, br, bi,
                               g1r.data(), g1i.data(), g2r.data(), g2i.data(), gLr.data(),
                               gLi.data(), gdt.data());
      }
      // Pass Gv to the factors of v = a b (g_a += g_v conj(b), g_b += g_v conj(a);
      // for a = conj(P_r): g_{P_r} += conj(g_v) b).
      std::vector<cd> gB(N2, 0.0), gP(R * N2, 0.0), gC(Cn * N2, 0.0);
      double g_dt = 0.0;
      for (std::int64_t n = 0; n < N2; ++n) {
        auto Gv = [&](std::int64_t pair) { return cd(Gvr[pair * N2 + n], Gvi[pair * N2 + n]); };
        const cd bn = f.B[n];
        for (std::int64_t c = 0; c < Cn; ++c) {
          const cd cn = f.C[c * N2 + n];
          gC[c * N2 + n] += mul(Gv(f.cb(c)), cj(bn));
          gB[n] += mul(Gv(f.cb(c)), cj(cn));
          for (std::int64_t r = 0; r < R; ++r) {
            const cd pr = f.P[r * N2 + n];
            gC[c * N2 + n] += mul(Gv(f.cp(c, r)), cj(pr));
            gP[r * N2 + n] += mul(Gv(f.cp(c, r)), cj(cn));
          }
        }
        for (std::int64_t r = 0; r < R; ++r) {
          const cd pr = f.P[r * N2 + n];
          gP[r * N2 + n] += mul(cj(Gv(f.pb(r))), bn);
          gB[n] += mul(Gv(f.pb(r)), pr);
          for (std::int64_t q = 0; q < R; ++q) {
            const cd pq = f.P[q * N2 + n];
            gP[q * N2 + n] += mul(Gv(f.pp(r, q)), pr);
            gP[r * N2 + n] += mul(cj(Gv(f.pp(r, q))), pq);
          }
        }
        g_dt += gdt[n];
      }
      for (std::int64_t n = 0; n < N2; ++n) {
        if (oL) store(oL, h * N2 + n, cd(gLr[n], gLi[n]));
        if (oB) store(oB, h * N2 + n, gB[n]);
        for (std::int64_t r = 0; r < R && oP; ++r) store(oP, (r * H + h) * N2 + n, gP[r * N2 + n]);
        for (std::int64_t c = 0; c < Cn && oC; ++c) store(oC, (c * H + h) * N2 + n, gC[c * N2 + n]);
      }
      if (odt) odt[h] = static_cast<T>(g_dt);
    }
  });
  return out;
}

// ---------------------------------------------------------------- recurrent steps

namespace {

struct StepShapes {
  std::int64_t Bn, Cn, H, N2;
};

StepShapes check_step(const char* op, const Tensor& u_t, const Tensor& state, const Tensor& dB,
                      const Tensor& C) {
  check_defined(op, u_t, "u_t");
  check_defined(op, state, "state");
  check_defined(op, dB, "dB");
  check_defined(op, C, "C");
  SSM_CHECK(u_t.dtype() == DType::Float32 || u_t.dtype() == DType::Float64, op,
            "expected float32 or float64 tensors, got u_t ", u_t.desc());
  SSM_CHECK(dB.dim() == 3 && dB.size(-1) == 2, op,
            "dB must be (H, N2, 2) (complex as a trailing dim 2), got ", dB.desc());
  const std::int64_t H = dB.size(0), N2 = dB.size(1);
  check_same_device(op, u_t, dB);
  check_same_dtype(op, u_t, dB);
  SSM_CHECK(u_t.dim() == 2 && u_t.size(1) == H, op, "u_t must be (B, ", H, "), got ", u_t.desc());
  const std::int64_t Bn = u_t.size(0);
  check_complex(op, state, "state", exact_lead(Bn), H, N2, u_t);
  check_complex(op, C, "C", any_lead("C"), H, N2, u_t);
  return {Bn, C.size(0), H, N2};
}

}  // namespace

Tensor s4d_step(const Tensor& u_t, Tensor& state, const Tensor& dA, const Tensor& dB,
                const Tensor& C) {
  SSM_CUDA_DISPATCH(u_t, cuda::s4d_step(u_t, state, dA, dB, C));
  const char* op = "s4d_step";
  require_cpu(op, {&u_t, &state, &dA, &dB, &C});
  const StepShapes s = check_step(op, u_t, state, dB, C);
  check_complex(op, dA, "dA", kNoLead, s.H, s.N2, u_t);
  const Tensor uc = u_t.contiguous(), xc = state.contiguous(), Ac = dA.contiguous();
  const Tensor Bc = dB.contiguous(), Cc = C.contiguous();
  Tensor next = Tensor::empty(state.shape(), state.dtype());
  Tensor y = Tensor::empty({s.Bn, s.Cn, s.H}, u_t.dtype());
  dispatch_float(u_t.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *pu = uc.data<T>(), *px = xc.data<T>(), *pA = Ac.data<T>(), *pB = Bc.data<T>();
    const T* pC = Cc.data<T>();
    T *pn = next.data<T>(), *py = y.data<T>();
#pragma omp parallel for schedule(static) if (s.Bn * s.H * s.N2 * s.Cn > kParallelMin)
    for (std::int64_t bh = 0; bh < s.Bn * s.H; ++bh) {
      const std::int64_t b = bh / s.H, h = bh % s.H;
      const double u = static_cast<double>(pu[bh]);
      for (std::int64_t n = 0; n < s.N2; ++n) {
        const std::int64_t i = h * s.N2 + n;
        store(pn, bh * s.N2 + n, mul(load(pA, i), load(px, bh * s.N2 + n)) + u * load(pB, i));
      }
      for (std::int64_t c = 0; c < s.Cn; ++c) {
        double acc = 0.0;
        for (std::int64_t n = 0; n < s.N2; ++n) {
          acc += mul(load(pC, (c * s.H + h) * s.N2 + n), load(pn, bh * s.N2 + n)).real();
        }
        py[(b * s.Cn + c) * s.H + h] = static_cast<T>(2.0 * acc);
      }
    }
  });
  state.copy_(next);
  return y;
}

Tensor s4_dense_step(const Tensor& u_t, Tensor& state, const Tensor& dA, const Tensor& dA_conj,
                     const Tensor& dB, const Tensor& C) {
  SSM_CUDA_DISPATCH(u_t, cuda::s4_dense_step(u_t, state, dA, dA_conj, dB, C));
  const char* op = "s4_dense_step";
  require_cpu(op, {&u_t, &state, &dA, &dA_conj, &dB, &C});
  const StepShapes s = check_step(op, u_t, state, dB, C);
  const std::int64_t N2 = s.N2;
  for (const auto& [t, name] : {std::pair{&dA, "dA"}, std::pair{&dA_conj, "dA_conj"}}) {
    check_defined(op, *t, name);
    check_same_device(op, u_t, *t);
    check_same_dtype(op, u_t, *t);
    SSM_CHECK(t->dim() == 4 && t->size(0) == s.H && t->size(1) == N2 && t->size(2) == N2 &&
                  t->size(3) == 2,
              op, name, " must be (", s.H, ", ", N2, ", ", N2, ", 2), got ", t->desc());
  }
  const Tensor uc = u_t.contiguous(), xc = state.contiguous(), Ac = dA.contiguous();
  const Tensor A2c = dA_conj.contiguous(), Bc = dB.contiguous(), Cc = C.contiguous();
  Tensor next = Tensor::empty(state.shape(), state.dtype());
  Tensor y = Tensor::empty({s.Bn, s.Cn, s.H}, u_t.dtype());
  dispatch_float(u_t.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T *pu = uc.data<T>(), *px = xc.data<T>(), *pA = Ac.data<T>(), *pA2 = A2c.data<T>();
    const T *pB = Bc.data<T>(), *pC = Cc.data<T>();
    T *pn = next.data<T>(), *py = y.data<T>();
#pragma omp parallel for schedule(static) if (s.Bn * s.H * N2 * N2 > kParallelMin)
    for (std::int64_t bh = 0; bh < s.Bn * s.H; ++bh) {
      const std::int64_t b = bh / s.H, h = bh % s.H;
      const double u = static_cast<double>(pu[bh]);
      std::vector<cd> x(N2), xn(N2);
      for (std::int64_t j = 0; j < N2; ++j) x[j] = load(px, bh * N2 + j);
      for (std::int64_t i = 0; i < N2; ++i) {
        cd acc = u * load(pB, h * N2 + i);
        const std::int64_t row = (h * N2 + i) * N2;
        for (std::int64_t j = 0; j < N2; ++j) {
          acc += mul(load(pA, row + j), x[j]) + mul(load(pA2, row + j), cj(x[j]));
        }
        xn[i] = acc;
        store(pn, bh * N2 + i, acc);
      }
      for (std::int64_t c = 0; c < s.Cn; ++c) {
        double acc = 0.0;
        for (std::int64_t i = 0; i < N2; ++i)
          acc += mul(load(pC, (c * s.H + h) * N2 + i), xn[i]).real();
        py[(b * s.Cn + c) * s.H + h] = static_cast<T>(2.0 * acc);
      }
    }
  });
  state.copy_(next);
  return y;
}

}  // namespace ssm::kernels
