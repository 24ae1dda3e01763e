#pragma once
// The dataset interface and the DataLoader.
//
// A Dataset hands out examples by index: a sequence (L, D) float32 or (L)
// int64 tokens, a label, and a valid length. The DataLoader batches them in
// an order fixed by (seed, epoch): the same seed and epoch give the same
// order on every run, so a checkpoint that stores (epoch, index) resumes the
// exact stream of batches.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ssm::data {

struct Example {
  Tensor x;                 // (L, D) float32, or (L) int64 tokens
  std::int64_t label = 0;   // class index
  std::int64_t length = 0;  // valid positions (== L when unpadded)
  // Paired tasks (LRA Retrieval): the second sequence, else undefined.
  Tensor x2;                 // (L2) int64 tokens
  std::int64_t length2 = 0;  // valid positions of x2
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::int64_t size() const = 0;
  virtual Example get(std::int64_t i) const = 0;  // 0 <= i < size()
  virtual std::int64_t num_classes() const = 0;
  virtual std::int64_t d_input() const = 0;              // features per position (1 for tokens)
  virtual std::int64_t vocab_size() const { return 0; }  // > 0: token inputs
  virtual std::string name() const = 0;
};

struct Batch {
  Tensor x;         // (B, L, D) float32, or (B, L) int64 tokens
  Tensor y;         // (B) int64 labels
  Tensor lengths;   // (B) int64 valid lengths
  Tensor x2;        // paired tasks: (B, L2) int64 tokens, else undefined
  Tensor lengths2;  // paired tasks: (B) int64
  std::int64_t size() const { return y.defined() ? y.size(0) : 0; }
};

struct LoaderPosition {
  std::int64_t epoch = 0;
  std::int64_t index = 0;  // examples of this epoch's order already handed out
  bool operator==(const LoaderPosition&) const = default;
};

// Batches of `batch_size` examples. With shuffle, epoch e visits the
// examples in a permutation drawn from Philox(seed, stream = e) (a
// Fisher-Yates shuffle); without, in index order. drop_last drops a final
// short batch. Sequences of one batch must have equal length L (padding to
// the longest comes with the variable-length datasets).
class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, std::int64_t batch_size, bool shuffle,
             bool drop_last, std::uint64_t seed);

  // The next batch of the current epoch, or false at its end (then the
  // position moves to index 0 of the next epoch).
  bool next(Batch& batch);
  std::int64_t batches_per_epoch() const;
  LoaderPosition position() const { return pos_; }
  void set_position(const LoaderPosition& pos);  // checks index <= size
  const Dataset& dataset() const { return *dataset_; }

  // The order of epoch e (indices into the dataset).
  std::vector<std::int64_t> order(std::int64_t epoch) const;

 private:
  std::shared_ptr<const Dataset> dataset_;
  std::int64_t batch_size_;
  bool shuffle_, drop_last_;
  std::uint64_t seed_;
  LoaderPosition pos_;
  std::vector<std::int64_t> order_;  // of pos_.epoch
  std::int64_t order_epoch_ = -1;
};

// Collates examples into a batch (equal lengths required).
Batch collate(const std::vector<Example>& examples);

}  // namespace ssm::data
