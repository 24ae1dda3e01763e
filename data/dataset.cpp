#include "data/dataset.h"

#include <cstring>
#include <numeric>
#include <utility>

#include "core/philox.h"

namespace ssm::data {

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, std::int64_t batch_size,
                       bool shuffle, bool drop_last, std::uint64_t seed)
    : dataset_(std::move(dataset)),
      batch_size_(batch_size),
      shuffle_(shuffle),
      drop_last_(drop_last),
      seed_(seed) {
  SSM_CHECK(dataset_ != nullptr, "DataLoader", "dataset is null");
  SSM_CHECK(batch_size_ > 0, "DataLoader", "batch_size must be positive, got ", batch_size_);
  SSM_CHECK(dataset_->size() > 0, "DataLoader", "dataset '", dataset_->name(), "' is empty");
  SSM_CHECK(!drop_last_ || dataset_->size() >= batch_size_, "DataLoader", "dataset '",
            dataset_->name(), "' has ", dataset_->size(), " examples, fewer than one batch of ",
            batch_size_, " with drop_last");
}

std::int64_t DataLoader::batches_per_epoch() const {
  const std::int64_t n = dataset_->size();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

// Fisher-Yates from the end: position j swaps with a uniform k in [0, j],
// k = (64 random bits) mod (j + 1), the bits taken from Philox(seed, epoch)
// block j (lanes 0 and 1). The modulo bias is below 2^-40 for any dataset size
// that fits in memory.
std::vector<std::int64_t> DataLoader::order(std::int64_t epoch) const {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(dataset_->size()));
  std::iota(idx.begin(), idx.end(), std::int64_t{0});
  if (!shuffle_) return idx;
  const auto stream = static_cast<std::uint32_t>(epoch);
  for (std::size_t j = idx.size(); j-- > 1;) {
    const Philox4 r = philox_block(seed_, stream, j);
    const std::uint64_t bits = (static_cast<std::uint64_t>(r.v[0]) << 32) | r.v[1];
    std::swap(idx[j], idx[static_cast<std::size_t>(bits % (j + 1))]);
  }
  return idx;
}

void DataLoader::set_position(const LoaderPosition& pos) {
  SSM_CHECK(pos.epoch >= 0 && pos.index >= 0 && pos.index <= dataset_->size(), "DataLoader",
            "position (epoch ", pos.epoch, ", index ", pos.index, ") is outside dataset '",
            dataset_->name(), "' of ", dataset_->size(), " examples");
  pos_ = pos;
}

bool DataLoader::next(Batch& batch) {
  const std::int64_t n = dataset_->size();
  const std::int64_t take = std::min(batch_size_, n - pos_.index);
  if (take <= 0 || (drop_last_ && take < batch_size_)) {
    pos_ = {pos_.epoch + 1, 0};
    return false;
  }
  if (order_epoch_ != pos_.epoch) {
    order_ = order(pos_.epoch);
    order_epoch_ = pos_.epoch;
  }
  std::vector<Example> examples;
  examples.reserve(static_cast<std::size_t>(take));
  for (std::int64_t i = 0; i < take; ++i) {
    examples.push_back(dataset_->get(order_[static_cast<std::size_t>(pos_.index + i)]));
  }
  batch = collate(examples);
  pos_.index += take;
  return true;
}

Batch collate(const std::vector<Example>& examples) {
  SSM_CHECK(!examples.empty(), "collate", "no examples");
  const Tensor& first = examples.front().x;
  const auto b = static_cast<std::int64_t>(examples.size());
  Shape shape = first.shape();
  shape.insert(shape.begin(), b);
  const bool first_has_x2 = examples.front().x2.defined();
  Batch out;
  out.x = Tensor::empty(shape, first.dtype());
  std::vector<std::int64_t> labels, lengths;
  for (std::int64_t i = 0; i < b; ++i) {
    const Example& e = examples[static_cast<std::size_t>(i)];
    SSM_CHECK(e.x.shape() == first.shape() && e.x.dtype() == first.dtype(), "collate", "example ",
              i, " is ", e.x.desc(), " but example 0 is ", first.desc(),
              " (a batch needs equal shapes)");
    out.x.select(0, i).copy_(e.x);
    labels.push_back(e.label);
    lengths.push_back(e.length);
  }
  out.y = Tensor::from_vector<std::int64_t>(labels, {b});
  out.lengths = Tensor::from_vector<std::int64_t>(lengths, {b});
  if (first_has_x2) {
    const Tensor& f2 = examples.front().x2;
    Shape shape2 = f2.shape();
    shape2.insert(shape2.begin(), b);
    out.x2 = Tensor::empty(shape2, f2.dtype());
    std::vector<std::int64_t> lengths2;
    for (std::int64_t i = 0; i < b; ++i) {
      const Example& e = examples[static_cast<std::size_t>(i)];
      SSM_CHECK(e.x2.defined() && e.x2.shape() == f2.shape() && e.x2.dtype() == f2.dtype(),
                "collate", "example ", i, " second sequence ",
                e.x2.defined() ? e.x2.desc() : std::string("undefined"), " but example 0 has ",
                f2.desc());
      out.x2.select(0, i).copy_(e.x2);
      lengths2.push_back(e.length2);
    }
    out.lengths2 = Tensor::from_vector<std::int64_t>(lengths2, {b});
  }
  return out;
}

}  // namespace ssm::data
