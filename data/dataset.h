#pragma once
// The dataset interface and the DataLoader.
//
// A Dataset hands out examples by index: a sequence (L, D) float32 or (L)
// int64 tokens, a label, and a valid length. The DataLoader batches them in
// an order fixed by (seed, epoch): the same seed and epoch give the same
// order on every run, so a checkpoint that stores (epoch, index) resumes the
// exact stream of batches.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/tensor.h"

namespace ssm::data {

struct Example {
  Tensor x;                 // (L, D) float32, or (L) int64 tokens
  std::int64_t label = 0;   // class index
  std::int64_t length = 0;  // valid positions (== L when unpadded)
  // Paired tasks (LRA Retrieval): the second sequence, else undefined.
  // Sequence-output tasks (Dataset::x2_is_target()): the target tokens.
  Tensor x2;                 // (L2) int64 tokens
  std::int64_t length2 = 0;  // valid positions of x2
  // Regression tasks (the adding problem): the real-valued target; `label`
  // then holds its bin (see the dataset).
  std::optional<double> target_value;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::int64_t size() const = 0;
  // 0 <= i < size(). With a prefetching DataLoader, get() runs on the
  // loader's worker thread: it must not modify shared state unsynchronised.
  virtual Example get(std::int64_t i) const = 0;
  // Example i as epoch `epoch` sees it: differs from get(i) only for
  // datasets with per-epoch augmentation. The DataLoader calls this one.
  virtual Example get(std::int64_t i, std::int64_t epoch) const {
    (void)epoch;
    return get(i);
  }
  virtual std::int64_t num_classes() const = 0;
  virtual std::int64_t d_input() const = 0;              // features per position (1 for tokens)
  virtual std::int64_t vocab_size() const { return 0; }  // > 0: token inputs
  virtual std::string name() const = 0;
  // true: Example.x2 is not a second input but the target tokens of a
  // sequence-output task (copying, selective copying), each a class index
  // in [0, num_classes()); the dataset documents which outputs they target.
  virtual bool x2_is_target() const { return false; }
};

struct Batch {
  Tensor x;              // (B, L, D) float32, or (B, L) int64 tokens
  Tensor y;              // (B) int64 labels
  Tensor lengths;        // (B) int64 valid lengths
  Tensor x2;             // paired tasks: (B, L2) int64 tokens, else undefined
  Tensor lengths2;       // paired tasks: (B) int64
  Tensor target_values;  // regression tasks: (B) float32, else undefined
  std::int64_t size() const { return y.defined() ? y.size(0) : 0; }
  // (B, L) float32: 1 where t < lengths[b], else 0.
  Tensor mask() const;
  // (B, L2) float32: the same for x2 and lengths2.
  Tensor mask2() const;
};

struct LoaderPosition {
  std::int64_t epoch = 0;
  std::int64_t index = 0;  // examples of this epoch's order already handed out
  bool operator==(const LoaderPosition&) const = default;
};

// How the examples of one batch are brought to one length L (the first
// dimension of Example.x and of Example.x2, each separately).
enum class Pad {
  None,     // all examples must have equal shapes
  Longest,  // pad to the longest example of the batch
  Fixed,    // pad to pad_length; a longer example is an error
};

struct LoaderOptions {
  std::int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = false;
  std::uint64_t seed = 0;
  Pad pad = Pad::None;
  std::int64_t pad_length = 0;  // Pad::Fixed: L of every batch (x and x2)
  double pad_value = 0.0;       // written to padded positions (cast to x's dtype)
  std::int64_t prefetch = 0;    // batches prepared ahead on a worker thread; 0: none
};

// Batches of `batch_size` examples. With shuffle, epoch e visits the
// examples in a permutation drawn from Philox(seed, stream = e) (a
// Fisher-Yates shuffle); without, in index order. drop_last drops a final
// short batch.
//
// Prefetch: a worker thread prepares up to `prefetch` batches ahead, across
// epoch ends. The batches, the end-of-epoch results of next() and the
// positions are exactly those without prefetch: position() is what the
// consumer has received, so a checkpoint of it resumes at the next batch.
// set_position() to anything but a position already queued drops the queue
// and restarts the worker from there. An exception thrown while preparing
// a batch (e.g. by Dataset::get) is rethrown by the next() that would have
// returned that batch; the position stays before it, and a later next()
// tries it again. The loader is not itself thread-safe: one consumer thread.
class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, const LoaderOptions& options);
  DataLoader(std::shared_ptr<const Dataset> dataset, std::int64_t batch_size, bool shuffle,
             bool drop_last, std::uint64_t seed);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch of the current epoch, or false at its end (then the
  // position moves to index 0 of the next epoch).
  bool next(Batch& batch);
  std::int64_t batches_per_epoch() const;
  LoaderPosition position() const { return pos_; }
  void set_position(const LoaderPosition& pos);  // checks index <= size
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return o_; }

  // The order of epoch e (indices into the dataset).
  std::vector<std::int64_t> order(std::int64_t epoch) const;

 private:
  // What next() hands out at one position: a batch, or the end of the epoch
  // (has_batch false), and the position after it; or the error preparing it.
  struct Item {
    bool has_batch = false;
    Batch batch;
    LoaderPosition after;
    std::exception_ptr error;
  };
  // The order cache of one thread (the consumer's or the worker's).
  struct OrderCache {
    std::vector<std::int64_t> order;
    std::int64_t epoch = -1;
  };
  Item make_item(const LoaderPosition& pos, OrderCache& cache) const;
  void start_worker();
  void stop_worker();
  void worker_loop(LoaderPosition pos);

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions o_;
  LoaderPosition pos_;
  OrderCache cache_;  // the consumer's, without prefetch

  // Prefetch state: queue_ and stop_ are guarded by mutex_.
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable cv_;  // signals a queued item, a free slot or stop
  std::deque<Item> queue_;
  bool stop_ = false;
};

// A permutation of 0..n-1, the DataLoader's shuffle and every seeded split:
// Fisher-Yates from the end, position j swaps with k = (64 bits of
// Philox(seed, stream) block j, lanes 0 and 1) mod (j + 1). The modulo bias
// is below 2^-40 for any n that fits in memory.
std::vector<std::int64_t> philox_permutation(std::int64_t n, std::uint64_t seed,
                                             std::uint32_t stream);

// Collates examples into a batch: x (B, L, ...) padded as `pad` says (the
// error names examples by their place in `examples`), Batch.lengths from
// Example.length, the same for x2, and target_values when the examples
// carry target_value.
Batch collate(const std::vector<Example>& examples, Pad pad = Pad::None,
              std::int64_t pad_length = 0, double pad_value = 0.0);

}  // namespace ssm::data
