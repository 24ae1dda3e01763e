#pragma once
// ssm::Error: the one exception type of the library. Messages start with the
// op or file in brackets and say what was expected and what came:
//   [matmul] inner dimensions differ: a (2, 3) float32 cpu, b (4, 5) float32 cpu
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ssm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Builds "[op] part1part2..." from anything with an operator<<.
template <class... Parts>
[[noreturn]] void fail(const char* op, Parts&&... parts) {
  std::ostringstream os;
  os << '[' << op << "] ";
  (os << ... << std::forward<Parts>(parts));
  throw Error(os.str());
}

}  // namespace ssm

// SSM_CHECK(cond, "op", message parts...): throws ssm::Error when cond is false.
#define SSM_CHECK(cond, op, ...)    \
  do {                              \
    if (!(cond)) {                  \
      ::ssm::fail(op, __VA_ARGS__); \
    }                               \
  } while (0)
