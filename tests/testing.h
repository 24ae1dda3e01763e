#pragma once
// Shared helpers of the test suite: tolerant comparison with a useful failure
// message (index, both values, max error), seeded random inputs, gradcheck
// as a Catch2 assertion, and the skip rule of [cuda] tests.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "ssm.h"

namespace ssm::testing {

// A fresh empty folder under the system temp folder, unique per process and
// call (tests may run in parallel), removed with its contents at scope exit.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "test") {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("ssm_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  // Writes `content` byte for byte to <dir>/name (creating folders) and returns the path.
  std::string write(const std::string& name, const std::string& content) const {
    const std::filesystem::path p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out << content;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

// Fails unless |a - b| <= atol + rtol |b| everywhere (b is the reference).
inline void require_close(const Tensor& a, const Tensor& b, double atol = 1e-6,
                          double rtol = 1e-5) {
  INFO("actual " << a.desc() << ", expected " << b.desc());
  REQUIRE(a.shape() == b.shape());
  const auto av = a.to_vector<double>();
  const auto bv = b.to_vector<double>();
  double max_err = 0.0;
  std::int64_t worst = -1;
  for (std::size_t i = 0; i < av.size(); ++i) {
    const double err = std::abs(av[i] - bv[i]);
    const bool ok =
        err <= atol + rtol * std::abs(bv[i]) || (std::isnan(av[i]) && std::isnan(bv[i]));
    if (!ok && (worst < 0 || err > max_err)) {
      max_err = err;
      worst = static_cast<std::int64_t>(i);
    }
  }
  if (worst >= 0) {
    FAIL("mismatch at flat index " << worst << ": actual " << av[worst] << ", expected "
                                   << bv[worst] << ", max error " << max_err);
  }
}

// max |t|.
inline double max_abs(const Tensor& t) {
  double m = 0.0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

// max |a - ref| / max |ref|: the error of a relative to the size of ref.
inline double rel_error(const Tensor& a, const Tensor& ref) {
  REQUIRE(a.shape() == ref.shape());
  const auto av = a.to_vector<double>(), rv = ref.to_vector<double>();
  double err = 0.0;
  for (std::size_t i = 0; i < av.size(); ++i) err = std::max(err, std::abs(av[i] - rv[i]));
  return err / std::max(max_abs(ref), 1e-300);
}

// A float64 tensor of uniform values in [lo, hi) from a seeded generator.
inline Tensor random_tensor(const Shape& shape, std::uint64_t seed, double lo = -1.0,
                            double hi = 1.0, DType dtype = DType::Float64,
                            bool requires_grad = true) {
  Generator gen(seed);
  Tensor t = Tensor::empty(shape, dtype);
  uniform_(t, lo, hi, gen);
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

inline void require_gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {}) {
  const GradcheckResult r = gradcheck(f, inputs, options);
  INFO(r.message);
  REQUIRE(r.ok);
}

// Returns false, with a message in the test log, when no GPU is visible.
inline bool cuda_or_skip() {
  if (cuda_available()) return true;
  WARN("skipped: no CUDA GPU visible");
  return false;
}

// Runs a shell command with its output (stdout and stderr) sent to the file
// `log`; returns (exit status, output).
inline std::pair<int, std::string> run_command(const std::string& cmd,
                                               const std::filesystem::path& log) {
  const int rc = std::system((cmd + " > " + log.string() + " 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ss.str()};
}

// The message of the ssm::Error that f throws ("" when none is thrown).
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace ssm::testing
