#pragma once
// A generated sequence classification task for smoke tests and demos: each of
// `num_classes` classes has a fixed template sequence (L, D) with entries
// drawn from N(0, 1); an example is its class template plus N(0, noise^2)
// noise per entry. The templates, the labels (uniform over classes) and the
// noise come from Philox streams of `seed`, one per split, so a split is the
// same on every run and every machine.
#include <cstdint>
#include <string>

#include "data/dataset.h"

namespace ssm::data {

struct TemplatesOptions {
  std::int64_t num_classes = 4;
  std::int64_t seq_len = 32;
  std::int64_t d_input = 4;
  double noise = 1.0;
  std::uint64_t seed = 1234;
};

class TemplatesDataset : public Dataset {
 public:
  // split: 0 train, 1 val, 2 test (different noise and labels, same templates).
  TemplatesDataset(const TemplatesOptions& options, std::int64_t size, int split);
  std::int64_t size() const override { return size_; }
  Example get(std::int64_t i) const override;
  std::int64_t num_classes() const override { return o_.num_classes; }
  std::int64_t d_input() const override { return o_.d_input; }
  std::string name() const override;

 private:
  TemplatesOptions o_;
  std::int64_t size_;
  int split_;
  Tensor x_;  // (N, L, D) float32
  Tensor y_;  // (N) int64
};

}  // namespace ssm::data
