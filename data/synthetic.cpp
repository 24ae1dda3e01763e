#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/philox.h"

namespace ssm::data {

namespace {

enum Task : std::uint32_t {
  kCopying = 1,
  kSelectiveCopying = 2,
  kInductionHeads = 3,
  kAssociativeRecall = 4,
  kAdding = 5,
};

// The random words of example i: lanes 0..3 of blocks (i << 32) + j,
// j = 0, 1, ..., of Philox(seed, stream = 16 * task + split).
class ExampleRng {
 public:
  ExampleRng(std::uint64_t seed, Task task, int split, std::int64_t i)
      : seed_(seed),
        stream_(16u * task + static_cast<std::uint32_t>(split)),
        base_(static_cast<std::uint64_t>(i) << 32) {}
  std::uint32_t word() {
    if (lane_ == 4) {
      block_ = philox_block(seed_, stream_, base_ + next_block_++);
      lane_ = 0;
    }
    return block_.v[lane_++];
  }
  // Uniform in [0, n), 0 < n <= 2^32.
  std::int64_t below(std::int64_t n) {
    return static_cast<std::int64_t>(
        (static_cast<std::uint64_t>(word()) * static_cast<std::uint64_t>(n)) >> 32);
  }
  float unit() { return philox_to_unit(word()); }

 private:
  std::uint64_t seed_;
  std::uint32_t stream_;
  std::uint64_t base_;
  std::uint64_t next_block_ = 0;
  Philox4 block_{};
  int lane_ = 4;
};

void check_common(const char* task, std::int64_t size, int split) {
  SSM_CHECK(size > 0 && size <= (std::int64_t{1} << 32), task, "expected 0 < size <= 2^32, got ",
            size);
  SSM_CHECK(split >= 0 && split <= 2, task, "expected split 0 (train), 1 (val) or 2 (test), got ",
            split);
}

void check_index(const char* task, std::int64_t i, std::int64_t size) {
  SSM_CHECK(i >= 0 && i < size, task, "index ", i, " outside [0, ", size, ")");
}

std::string split_name(const char* task, int split) {
  static const char* splits[] = {"train", "val", "test"};
  return std::string(task) + "/" + splits[split];
}

Example token_example(std::vector<std::int64_t> x) {
  Example e;
  e.length = static_cast<std::int64_t>(x.size());
  e.x = Tensor::from_vector<std::int64_t>(x, {e.length});  // (L)
  return e;
}

void set_target(Example& e, const std::vector<std::int64_t>& target) {
  e.length2 = static_cast<std::int64_t>(target.size());
  e.x2 = Tensor::from_vector<std::int64_t>(target, {e.length2});  // (n)
}

}  // namespace

// ------------------------------------------------------------ copying

CopyingDataset::CopyingDataset(const CopyingOptions& o, std::int64_t size, int split)
    : o_(o), size_(size), split_(split) {
  check_common("copying", size, split);
  SSM_CHECK(o.num_tokens > 0 && o.delay >= 0 && o.vocab_size >= 3, "copying",
            "expected num_tokens > 0, delay >= 0, vocab_size >= 3, got ", o.num_tokens, ", ",
            o.delay, ", ", o.vocab_size);
}

Example CopyingDataset::get(std::int64_t i) const {
  check_index("copying", i, size_);
  ExampleRng rng(o_.seed, kCopying, split_, i);
  const std::int64_t n = o_.num_tokens;
  std::vector<std::int64_t> x(static_cast<std::size_t>(seq_len()), 0);
  std::vector<std::int64_t> data(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k) {
    data[static_cast<std::size_t>(k)] = 1 + rng.below(o_.vocab_size - 2);
    x[static_cast<std::size_t>(k)] = data[static_cast<std::size_t>(k)];
  }
  x[static_cast<std::size_t>(n + o_.delay)] = o_.vocab_size - 1;  // delimiter
  Example e = token_example(std::move(x));
  set_target(e, data);
  return e;
}

std::string CopyingDataset::name() const { return split_name("copying", split_); }

// ------------------------------------------------------------ selective copying

SelectiveCopyingDataset::SelectiveCopyingDataset(const SelectiveCopyingOptions& o,
                                                 std::int64_t size, int split)
    : o_(o), size_(size), split_(split) {
  check_common("selective_copying", size, split);
  SSM_CHECK(o.num_tokens > 0 && o.vocab_size >= 3 && o.seq_len >= 2 * o.num_tokens,
            "selective_copying", "expected num_tokens > 0, vocab_size >= 3, seq_len >= 2 * ",
            "num_tokens, got num_tokens ", o.num_tokens, ", vocab_size ", o.vocab_size,
            ", seq_len ", o.seq_len);
}

Example SelectiveCopyingDataset::get(std::int64_t i) const {
  check_index("selective_copying", i, size_);
  ExampleRng rng(o_.seed, kSelectiveCopying, split_, i);
  const std::int64_t n = o_.num_tokens, l = o_.seq_len, context = l - n;
  // n distinct positions of the context (Floyd's algorithm).
  std::vector<bool> chosen(static_cast<std::size_t>(context), false);
  for (std::int64_t j = context - n; j < context; ++j) {
    const auto t = static_cast<std::size_t>(rng.below(j + 1));
    chosen[chosen[t] ? static_cast<std::size_t>(j) : t] = true;
  }
  std::vector<std::int64_t> x(static_cast<std::size_t>(l), 0), data;
  data.reserve(static_cast<std::size_t>(n));
  for (std::int64_t t = 0; t < context; ++t) {
    if (!chosen[static_cast<std::size_t>(t)]) continue;
    const std::int64_t tok = 1 + rng.below(o_.vocab_size - 2);
    x[static_cast<std::size_t>(t)] = tok;
    data.push_back(tok);
  }
  std::fill(x.begin() + context, x.end(), o_.vocab_size - 1);  // output markers
  Example e = token_example(std::move(x));
  set_target(e, data);
  return e;
}

std::string SelectiveCopyingDataset::name() const {
  return split_name("selective_copying", split_);
}

// ------------------------------------------------------------ induction heads

InductionHeadsDataset::InductionHeadsDataset(const InductionHeadsOptions& o, std::int64_t size,
                                             int split)
    : o_(o), size_(size), split_(split) {
  check_common("induction_heads", size, split);
  len_ = split == 2 && o.test_seq_len > 0 ? o.test_seq_len : o.seq_len;
  SSM_CHECK(
      len_ >= 3 && len_ <= (std::int64_t{1} << 32) && o.vocab_size >= 3 && o.test_seq_len >= 0,
      "induction_heads",
      "expected 3 <= seq_len <= 2^32, test_seq_len >= 0, vocab_size >= 3, got seq_len ", o.seq_len,
      ", test_seq_len ", o.test_seq_len, ", vocab_size ", o.vocab_size);
  SSM_CHECK(o.min_len == 0 || (o.min_len >= 3 && o.min_len <= o.seq_len), "induction_heads",
            "expected min_len 0 or in [3, seq_len = ", o.seq_len, "], got ", o.min_len);
}

Example InductionHeadsDataset::get(std::int64_t i) const {
  check_index("induction_heads", i, size_);
  ExampleRng rng(o_.seed, kInductionHeads, split_, i);
  const bool varied = split_ == 0 && o_.min_len > 0;
  const std::int64_t l = varied ? o_.min_len + rng.below(len_ - o_.min_len + 1) : len_;
  const std::int64_t trigger = o_.vocab_size - 1;
  std::vector<std::int64_t> x(static_cast<std::size_t>(l));
  for (auto& t : x) t = rng.below(o_.vocab_size - 1);
  const auto p = static_cast<std::size_t>(rng.below(l - 2));  // in [0, L-3]
  x[p] = trigger;
  x.back() = trigger;
  const std::int64_t answer = x[p + 1];
  Example e = token_example(std::move(x));
  e.label = answer;
  return e;
}

std::string InductionHeadsDataset::name() const { return split_name("induction_heads", split_); }

// ------------------------------------------------------------ associative recall

AssociativeRecallDataset::AssociativeRecallDataset(const AssociativeRecallOptions& o,
                                                   std::int64_t size, int split)
    : o_(o), size_(size), split_(split) {
  check_common("associative_recall", size, split);
  SSM_CHECK(o.num_pairs > 0 && o.num_keys >= o.num_pairs && o.num_values >= 2, "associative_recall",
            "expected 0 < num_pairs <= num_keys and num_values >= 2, got ", "num_pairs ",
            o.num_pairs, ", num_keys ", o.num_keys, ", num_values ", o.num_values);
}

Example AssociativeRecallDataset::get(std::int64_t i) const {
  check_index("associative_recall", i, size_);
  ExampleRng rng(o_.seed, kAssociativeRecall, split_, i);
  const std::int64_t n = o_.num_pairs, k = o_.num_keys;
  // n distinct keys: the first n of a partial Fisher-Yates shuffle of 0..K-1.
  std::vector<std::int64_t> keys(static_cast<std::size_t>(k));
  for (std::int64_t j = 0; j < k; ++j) keys[static_cast<std::size_t>(j)] = j;
  for (std::int64_t j = 0; j < n; ++j) {
    const std::int64_t r = j + rng.below(k - j);
    std::swap(keys[static_cast<std::size_t>(j)], keys[static_cast<std::size_t>(r)]);
  }
  std::vector<std::int64_t> x(static_cast<std::size_t>(2 * n + 1)), values;
  for (std::int64_t j = 0; j < n; ++j) {
    values.push_back(rng.below(o_.num_values));
    x[static_cast<std::size_t>(2 * j)] = keys[static_cast<std::size_t>(j)];
    x[static_cast<std::size_t>(2 * j + 1)] = k + values.back();
  }
  const auto q = static_cast<std::size_t>(rng.below(n));
  x.back() = keys[q];
  Example e = token_example(std::move(x));
  e.label = values[q];
  return e;
}

std::string AssociativeRecallDataset::name() const {
  return split_name("associative_recall", split_);
}

// ------------------------------------------------------------ adding

AddingDataset::AddingDataset(const AddingOptions& o, std::int64_t size, int split)
    : o_(o), size_(size), split_(split) {
  check_common("adding", size, split);
  SSM_CHECK(o.seq_len >= 2 && o.num_bins >= 2, "adding",
            "expected seq_len >= 2 and num_bins >= 2, got ", o.seq_len, ", ", o.num_bins);
}

Example AddingDataset::get(std::int64_t i) const {
  check_index("adding", i, size_);
  ExampleRng rng(o_.seed, kAdding, split_, i);
  const std::int64_t l = o_.seq_len, half = l / 2;
  std::vector<float> x(static_cast<std::size_t>(2 * l), 0.0f);  // (L, 2)
  for (std::int64_t t = 0; t < l; ++t) x[static_cast<std::size_t>(2 * t)] = rng.unit();
  const std::int64_t p1 = rng.below(half), p2 = half + rng.below(l - half);
  x[static_cast<std::size_t>(2 * p1 + 1)] = 1.0f;
  x[static_cast<std::size_t>(2 * p2 + 1)] = 1.0f;
  const double target = static_cast<double>(x[static_cast<std::size_t>(2 * p1)]) +
                        static_cast<double>(x[static_cast<std::size_t>(2 * p2)]);
  Example e;
  e.x = Tensor::from_vector<float>(x, {l, 2});
  e.length = l;
  e.target_value = target;
  e.label = std::min<std::int64_t>(
      o_.num_bins - 1, static_cast<std::int64_t>(std::floor(target / 2.0 * o_.num_bins)));
  return e;
}

std::string AddingDataset::name() const { return split_name("adding", split_); }

}  // namespace ssm::data
