// CPU FFTs through FFTW3 (see kernels/fft.h for the conventions).
//
// Why FFTW: it is the fastest FFT library Debian packages for the CPU (SIMD
// codelets for float and double, real-to-complex transforms of any size);
// KissFFT, the other one Debian packages, is simpler but has no planner and
// no generated per-size codelets. FFTW is GPL-licensed: a binary that links it is
// distributed under the GPL (see docs/architecture.md).
//
// Thread safety: FFTW's planner is not thread-safe, its execute functions
// are. Plans are created under one mutex and kept for the life of the
// process; each thread keeps its own map of the plans it has used, so a
// call inside an OpenMP loop takes the mutex only the first time.
#include "kernels/fft.h"

#include <fftw3.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/error.h"

namespace ssm::kernels::fft {

namespace {

enum class Kind { R2C, C2R, C2C_FWD, C2C_INV };

// FFTW arrays: aligned allocation from fftw_malloc.
struct FftwFree {
  void operator()(void* p) const { fftw_free(p); }
};
using Buffer = std::unique_ptr<void, FftwFree>;

Buffer alloc_bytes(std::size_t bytes) {
  void* p = fftw_malloc(bytes == 0 ? 16 : bytes);
  SSM_CHECK(p != nullptr, "fft", "out of memory allocating ", bytes, " bytes");
  return Buffer(p);
}

// Bytes of the input and output arrays of a transform of length n.
template <class T>
std::pair<std::size_t, std::size_t> array_bytes(Kind kind, std::int64_t n) {
  const auto real = sizeof(T) * static_cast<std::size_t>(n);
  const auto half = sizeof(T) * 2 * static_cast<std::size_t>(n / 2 + 1);
  const auto full = sizeof(T) * 2 * static_cast<std::size_t>(n);
  switch (kind) {
    case Kind::R2C: return {real, half};
    case Kind::C2R: return {half, real};
    default: return {full, full};
  }
}

template <class T>
struct Traits;
template <>
struct Traits<double> {
  using plan = fftw_plan;
  using cpx = fftw_complex;
  static plan make(Kind kind, int n, void* in, void* out) {
    const unsigned flags = FFTW_ESTIMATE;
    switch (kind) {
      case Kind::R2C:
        return fftw_plan_dft_r2c_1d(n, static_cast<double*>(in), static_cast<cpx*>(out), flags);
      case Kind::C2R:
        return fftw_plan_dft_c2r_1d(n, static_cast<cpx*>(in), static_cast<double*>(out), flags);
      case Kind::C2C_FWD:
        return fftw_plan_dft_1d(n, static_cast<cpx*>(in), static_cast<cpx*>(out), FFTW_FORWARD,
                                flags);
      case Kind::C2C_INV:
        return fftw_plan_dft_1d(n, static_cast<cpx*>(in), static_cast<cpx*>(out), FFTW_BACKWARD,
                                flags);
    }
    return nullptr;
  }
  static void run(Kind kind, plan p, void* in, void* out) {
    switch (kind) {
      case Kind::R2C:
        fftw_execute_dft_r2c(p, static_cast<double*>(in), static_cast<cpx*>(out));
        break;
      case Kind::C2R:
        fftw_execute_dft_c2r(p, static_cast<cpx*>(in), static_cast<double*>(out));
        break;
      default: fftw_execute_dft(p, static_cast<cpx*>(in), static_cast<cpx*>(out)); break;
    }
  }
};
template <>
struct Traits<float> {
  using plan = fftwf_plan;
  using cpx = fftwf_complex;
  static plan make(Kind kind, int n, void* in, void* out) {
    const unsigned flags = FFTW_ESTIMATE;
    switch (kind) {
      case Kind::R2C:
        return fftwf_plan_dft_r2c_1d(n, static_cast<float*>(in), static_cast<cpx*>(out), flags);
      case Kind::C2R:
        return fftwf_plan_dft_c2r_1d(n, static_cast<cpx*>(in), static_cast<float*>(out), flags);
      case Kind::C2C_FWD:
        return fftwf_plan_dft_1d(n, static_cast<cpx*>(in), static_cast<cpx*>(out), FFTW_FORWARD,
                                 flags);
      case Kind::C2C_INV:
        return fftwf_plan_dft_1d(n, static_cast<cpx*>(in), static_cast<cpx*>(out), FFTW_BACKWARD,
                                 flags);
    }
    return nullptr;
  }
  static void run(Kind kind, plan p, void* in, void* out) {
    switch (kind) {
      case Kind::R2C:
        fftwf_execute_dft_r2c(p, static_cast<float*>(in), static_cast<cpx*>(out));
        break;
      case Kind::C2R:
        fftwf_execute_dft_c2r(p, static_cast<cpx*>(in), static_cast<float*>(out));
        break;
      default: fftwf_execute_dft(p, static_cast<cpx*>(in), static_cast<cpx*>(out)); break;
    }
  }
};

using Key = std::tuple<int, int, std::int64_t>;  // (type size, kind, n)

std::mutex& planner_mutex() {
  static std::mutex m;
  return m;
}

// The process-wide plan table (plans are never destroyed: a few per size).
template <class T>
typename Traits<T>::plan global_plan(Kind kind, std::int64_t n) {
  static std::map<Key, typename Traits<T>::plan> plans;
  std::lock_guard<std::mutex> lock(planner_mutex());
  const Key key{static_cast<int>(sizeof(T)), static_cast<int>(kind), n};
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  const auto [in_bytes, out_bytes] = array_bytes<T>(kind, n);
  Buffer in = alloc_bytes(in_bytes), out = alloc_bytes(out_bytes);
  auto p = Traits<T>::make(kind, static_cast<int>(n), in.get(), out.get());
  SSM_CHECK(p != nullptr, "fft", "FFTW could not plan a transform of length ", n);
  plans.emplace(key, p);
  return p;
}

template <class T>
typename Traits<T>::plan plan_for(Kind kind, std::int64_t n) {
  thread_local std::map<Key, typename Traits<T>::plan> cache;
  const Key key{static_cast<int>(sizeof(T)), static_cast<int>(kind), n};
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto p = global_plan<T>(kind, n);
  cache.emplace(key, p);
  return p;
}

// Per-thread aligned scratch, grown on demand.
struct Scratch {
  Buffer buf;
  std::size_t bytes = 0;
  void* get(std::size_t need) {
    if (need > bytes) {
      buf = alloc_bytes(need);
      bytes = need;
    }
    return buf.get();
  }
};

bool aligned(const void* p) {
  return fftw_alignment_of(static_cast<double*>(const_cast<void*>(p))) == 0;
}

// Runs one transform. The input is copied into scratch when it is misaligned
// or when FFTW would overwrite it (c2r); the output goes through scratch
// when it is misaligned.
template <class T>
void execute(Kind kind, const void* in, void* out, std::int64_t n) {
  SSM_CHECK(n >= 1, "fft", "length must be >= 1, got ", n);
  SSM_CHECK(n <= (std::int64_t{1} << 30), "fft", "length ", n, " is too large");
  auto p = plan_for<T>(kind, n);
  const auto [in_bytes, out_bytes] = array_bytes<T>(kind, n);
  thread_local Scratch scratch_in, scratch_out;
  void* src = const_cast<void*>(in);
  if (kind == Kind::C2R || !aligned(in)) {
    src = scratch_in.get(in_bytes);
    std::memcpy(src, in, in_bytes);
  }
  void* dst = aligned(out) ? out : scratch_out.get(out_bytes);
  Traits<T>::run(kind, p, src, dst);
  if (dst != out) std::memcpy(out, dst, out_bytes);
}

template <class T>
void scale(T* x, std::int64_t count, T s) {
  for (std::int64_t i = 0; i < count; ++i) x[i] *= s;
}

}  // namespace

void rfft(const float* x, std::complex<float>* X, std::int64_t n) {
  execute<float>(Kind::R2C, x, X, n);
}
void rfft(const double* x, std::complex<double>* X, std::int64_t n) {
  execute<double>(Kind::R2C, x, X, n);
}

void irfft(const std::complex<float>* X, float* x, std::int64_t n) {
  execute<float>(Kind::C2R, X, x, n);
  scale(x, n, 1.0f / static_cast<float>(n));
}
void irfft(const std::complex<double>* X, double* x, std::int64_t n) {
  execute<double>(Kind::C2R, X, x, n);
  scale(x, n, 1.0 / static_cast<double>(n));
}

void fft(const std::complex<float>* x, std::complex<float>* X, std::int64_t n) {
  execute<float>(Kind::C2C_FWD, x, X, n);
}
void fft(const std::complex<double>* x, std::complex<double>* X, std::int64_t n) {
  execute<double>(Kind::C2C_FWD, x, X, n);
}
void ifft(const std::complex<float>* X, std::complex<float>* x, std::int64_t n) {
  execute<float>(Kind::C2C_INV, X, x, n);
  scale(reinterpret_cast<float*>(x), 2 * n, 1.0f / static_cast<float>(n));
}
void ifft(const std::complex<double>* X, std::complex<double>* x, std::int64_t n) {
  execute<double>(Kind::C2C_INV, X, x, n);
  scale(reinterpret_cast<double*>(x), 2 * n, 1.0 / static_cast<double>(n));
}

std::int64_t next_pow2(std::int64_t n) {
  SSM_CHECK(n >= 1, "next_pow2", "n must be >= 1, got ", n);
  std::int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace ssm::kernels::fft
