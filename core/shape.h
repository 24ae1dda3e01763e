#pragma once
// Shapes and strides (in elements), and the broadcasting rule.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace ssm {

using Shape = std::vector<std::int64_t>;

std::string shape_str(const Shape& shape);  // "(2, 3)"
std::ostream& operator<<(std::ostream& os, const Shape& shape);

std::int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

// Wraps a possibly negative dim into [0, ndim); throws naming op if out of range.
std::int64_t wrap_dim(std::int64_t dim, std::int64_t ndim, const char* op);

// NumPy broadcasting: dims are aligned from the right; each pair must be
// equal or one of them 1. Throws naming op and both shapes otherwise.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace ssm
