#pragma once
// Synthetic token tasks for state space models, generated on the fly: get(i)
// draws example i from its own Philox sub-stream, so a dataset needs no
// storage, is the same on every run and machine, and can be read from any
// thread. The random numbers of example i of a split are blocks
// (i << 32) + j, j = 0, 1, ..., of Philox(seed, stream = 16 * task + split),
// task 1 copying, 2 selective copying, 3 induction heads, 4 associative
// recall, 5 adding; split 0 train, 1 val, 2 test. A uniform integer in
// [0, n) is (u * n) >> 32 of the next 32-bit word u.
//
// Sequence-output tasks (copying, selective copying) keep the classification
// interface: Example.x2 holds the target tokens (n) int64, each a class in
// [0, num_classes() = vocab_size), and x2_is_target() is true; label is 0.
// The targets are the model's outputs at the last n positions of x, in
// order. The other tasks are classification (label) or, for adding,
// regression (Example.target_value, with label its bin).
#include <cstdint>
#include <string>

#include "data/dataset.h"

namespace ssm::data {

// Copying (Arjovsky et al. 2016): vocabulary 0 blank, 1 .. V-2 data, V-1
// delimiter. x (L) = n data tokens (uniform in [1, V-2]), `delay` blanks,
// the delimiter, n blanks; L = 2n + delay + 1. x2 (n) = the data tokens, the
// targets of positions L-n .. L-1.
struct CopyingOptions {
  std::int64_t num_tokens = 10;  // n
  std::int64_t delay = 100;
  std::int64_t vocab_size = 10;  // V >= 3
  std::uint64_t seed = 1234;
};

// Selective copying (Mamba, Gu & Dao 2023): vocabulary 0 noise, 1 .. V-2
// data, V-1 output marker. x (L) = a context of L - n positions holding n
// data tokens (uniform in [1, V-2]) at distinct uniformly drawn positions,
// noise elsewhere, then n markers. x2 (n) = the data tokens in the order of
// their positions, the targets of the marker positions L-n .. L-1.
struct SelectiveCopyingOptions {
  std::int64_t seq_len = 4096;   // L, >= 2n
  std::int64_t vocab_size = 16;  // V >= 3, including noise and marker
  std::int64_t num_tokens = 16;  // n
  std::uint64_t seed = 1234;
};

// Induction heads (Olsson et al. 2022; the H3 / Mamba setting): vocabulary
// 0 .. V-2 ordinary tokens, V-1 the trigger. x (L) = uniform ordinary
// tokens, except the trigger at one position p uniform in [0, L-3] and at
// L-1. label = x[p+1], the token that followed the trigger's first
// occurrence (what follows its second); num_classes = V. With min_len > 0
// the train split's L is drawn per example uniform in [min_len, seq_len] (a
// length curriculum mixed into every batch: short examples teach the
// mechanism, long ones its range); val keeps seq_len, test test_seq_len.
struct InductionHeadsOptions {
  std::int64_t seq_len = 256;  // L >= 3 (train and val)
  std::int64_t min_len = 0;    // 0: every train example has seq_len; else 3 <= min_len <= seq_len
  std::int64_t test_seq_len = 0;  // L of the test split (up to 2^20 or more); 0: seq_len
  std::int64_t vocab_size = 16;   // V >= 3
  std::uint64_t seed = 1234;
};

// Associative recall: keys are tokens 0 .. K-1, values K .. K+M-1. x (2n+1)
// = k_1 v_1 k_2 v_2 ... k_n v_n q with distinct keys (uniform), values
// uniform, and the query q = k_j for j uniform in [1, n]. label = v_j - K,
// in [0, M) = num_classes; vocab_size = K + M.
struct AssociativeRecallOptions {
  std::int64_t num_pairs = 8;    // n <= K
  std::int64_t num_keys = 16;    // K
  std::int64_t num_values = 16;  // M
  std::uint64_t seed = 1234;
};

// The adding problem (Hochreiter & Schmidhuber 1997): x (L, 2) float32,
// channel 0 uniform in [0, 1), channel 1 a marker, 1 at one position p1
// uniform in [0, L/2) and one p2 uniform in [L/2, L), else 0. target_value =
// x[p1, 0] + x[p2, 0] (in double), in [0, 2). Since training uses
// cross-entropy, label = min(B-1, floor(target_value / 2 * B)), its bin
// among num_bins = B = num_classes.
struct AddingOptions {
  std::int64_t seq_len = 100;  // L >= 2
  std::int64_t num_bins = 20;
  std::uint64_t seed = 1234;
};

class CopyingDataset : public Dataset {
 public:
  CopyingDataset(const CopyingOptions& options, std::int64_t size, int split);
  std::int64_t size() const override { return size_; }
  Example get(std::int64_t i) const override;
  std::int64_t num_classes() const override { return o_.vocab_size; }
  std::int64_t d_input() const override { return 1; }
  std::int64_t vocab_size() const override { return o_.vocab_size; }
  std::string name() const override;
  bool x2_is_target() const override { return true; }
  std::int64_t seq_len() const { return 2 * o_.num_tokens + o_.delay + 1; }

 private:
  CopyingOptions o_;
  std::int64_t size_;
  int split_;
};

class SelectiveCopyingDataset : public Dataset {
 public:
  SelectiveCopyingDataset(const SelectiveCopyingOptions& options, std::int64_t size, int split);
  std::int64_t size() const override { return size_; }
  Example get(std::int64_t i) const override;
  std::int64_t num_classes() const override { return o_.vocab_size; }
  std::int64_t d_input() const override { return 1; }
  std::int64_t vocab_size() const override { return o_.vocab_size; }
  std::string name() const override;
  bool x2_is_target() const override { return true; }

 private:
  SelectiveCopyingOptions o_;
  std::int64_t size_;
  int split_;
};

class InductionHeadsDataset : public Dataset {
 public:
  InductionHeadsDataset(const InductionHeadsOptions& options, std::int64_t size, int split);
  std::int64_t size() const override { return size_; }
  Example get(std::int64_t i) const override;
  std::int64_t num_classes() const override { return o_.vocab_size; }
  std::int64_t d_input() const override { return 1; }
  std::int64_t vocab_size() const override { return o_.vocab_size; }
  std::string name() const override;
  std::int64_t seq_len() const { return len_; }  // of this split

 private:
  InductionHeadsOptions o_;
  std::int64_t size_;
  int split_;
  std::int64_t len_;
};

class AssociativeRecallDataset : public Dataset {
 public:
  AssociativeRecallDataset(const AssociativeRecallOptions& options, std::int64_t size, int split);
  std::int64_t size() const override { return size_; }
  Example get(std::int64_t i) const override;
  std::int64_t num_classes() const override { return o_.num_values; }
  std::int64_t d_input() const override { return 1; }
  std::int64_t vocab_size() const override { return o_.num_keys + o_.num_values; }
  std::string name() const override;

 private:
  AssociativeRecallOptions o_;
  std::int64_t size_;
  int split_;
};

class AddingDataset : public Dataset {
 public:
  AddingDataset(const AddingOptions& options, std::int64_t size, int split);
  std::int64_t size() const override { return size_; }
  Example get(std::int64_t i) const override;
  std::int64_t num_classes() const override { return o_.num_bins; }
  std::int64_t d_input() const override { return 2; }
  std::string name() const override;

 private:
  AddingOptions o_;
  std::int64_t size_;
  int split_;
};

}  // namespace ssm::data
