#pragma once
// Token sequences of a file dataset packed into one byte array: sequence i
// is bytes [offsets[i], offsets[i+1]), and its token ids are byte + id_offset
// (0 for ListOps ids below 256, 1 for the byte vocabulary where byte b is
// token b + 1). get() copies one sequence out as an (L) int64 tensor.
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace ssm::data {

class TokenStore {
 public:
  explicit TokenStore(std::int64_t id_offset = 0) : id_offset_(id_offset) {}
  void add(std::string_view bytes) {
    data_.insert(data_.end(), bytes.begin(), bytes.end());
    offsets_.push_back(static_cast<std::int64_t>(data_.size()));
  }
  void add(const std::vector<std::uint8_t>& ids) {
    data_.insert(data_.end(), ids.begin(), ids.end());
    offsets_.push_back(static_cast<std::int64_t>(data_.size()));
  }
  std::int64_t size() const { return static_cast<std::int64_t>(offsets_.size()) - 1; }
  std::int64_t length(std::int64_t i) const {
    return offsets_[static_cast<std::size_t>(i + 1)] - offsets_[static_cast<std::size_t>(i)];
  }
  // (L) int64 token ids of sequence i.
  Tensor get(std::int64_t i) const {
    const std::int64_t n = length(i);
    Tensor t = Tensor::empty({n}, DType::Int64);
    std::int64_t* p = t.data<std::int64_t>();
    const std::uint8_t* s = data_.data() + offsets_[static_cast<std::size_t>(i)];
    for (std::int64_t k = 0; k < n; ++k) p[k] = static_cast<std::int64_t>(s[k]) + id_offset_;
    return t;
  }

 private:
  std::int64_t id_offset_;
  std::vector<std::uint8_t> data_;
  std::vector<std::int64_t> offsets_{0};
};

}  // namespace ssm::data
