#include "data/dataset.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "core/philox.h"

namespace ssm::data {

namespace {

const char* pad_name(Pad pad) {
  switch (pad) {
    case Pad::None: return "none";
    case Pad::Longest: return "longest";
    case Pad::Fixed: return "fixed";
  }
  return "?";
}

// Stacks sequences (L_i, ...) into (B, L, ...), L chosen by `pad`; positions
// t >= L_i of row i hold pad_value. `what` names the field in errors.
Tensor stack_padded(const std::vector<const Tensor*>& xs, Pad pad, std::int64_t pad_length,
                    double pad_value, const char* what) {
  const Tensor& first = *xs.front();
  SSM_CHECK(first.dim() >= 1, "collate", "expected ", what, " of at least one dimension, got ",
            first.desc());
  const Shape rest(first.shape().begin() + 1, first.shape().end());
  std::int64_t len = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = *xs[i];
    const Shape trest = t.dim() >= 1 ? Shape(t.shape().begin() + 1, t.shape().end()) : Shape{};
    const bool same = pad == Pad::None ? t.shape() == first.shape() : t.dim() >= 1 && trest == rest;
    SSM_CHECK(same && t.dtype() == first.dtype(), "collate", "example ", i, " ", what, " is ",
              t.desc(), " but example 0 is ", first.desc(), " (pad ", pad_name(pad),
              pad == Pad::None ? " needs equal shapes)" : " needs equal trailing dimensions)");
    if (pad == Pad::Fixed) {
      SSM_CHECK(t.size(0) <= pad_length, "collate", "example ", i, " ", what, " has length ",
                t.size(0), ", longer than pad_length ", pad_length);
    }
    len = std::max(len, t.size(0));
  }
  if (pad == Pad::Fixed) len = pad_length;
  Shape shape = rest;
  shape.insert(shape.begin(), len);
  shape.insert(shape.begin(), static_cast<std::int64_t>(xs.size()));
  Tensor out = Tensor::empty(shape, first.dtype());  // (B, L, ...)
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Tensor row = out.select(0, static_cast<std::int64_t>(i));  // (L, ...)
    const std::int64_t li = xs[i]->size(0);
    if (li > 0) row.narrow(0, 0, li).copy_(*xs[i]);
    if (li < len) row.narrow(0, li, len - li).fill_(pad_value);
  }
  return out;
}

// (B, L) float32: 1 where t < lengths[b].
Tensor length_mask(const Tensor& x, const Tensor& lengths, const char* what) {
  SSM_CHECK(x.defined() && lengths.defined() && x.dim() >= 2, "Batch::mask",
            "expected a batch with ", what, " (B, L, ...) and its lengths");
  const std::int64_t b = x.size(0), l = x.size(1);
  const auto lens = lengths.to_vector<std::int64_t>();
  std::vector<float> m(static_cast<std::size_t>(b * l), 0.0f);
  for (std::int64_t i = 0; i < b; ++i) {
    const std::int64_t n = std::clamp<std::int64_t>(lens[static_cast<std::size_t>(i)], 0, l);
    std::fill_n(m.begin() + i * l, n, 1.0f);
  }
  return Tensor::from_vector<float>(m, {b, l});
}

}  // namespace

Tensor Batch::mask() const { return length_mask(x, lengths, "x"); }
Tensor Batch::mask2() const { return length_mask(x2, lengths2, "x2"); }

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, std::int64_t batch_size,
                       bool shuffle, bool drop_last, std::uint64_t seed)
    : DataLoader(std::move(dataset), [&] {
        LoaderOptions o;
        o.batch_size = batch_size;
        o.shuffle = shuffle;
        o.drop_last = drop_last;
        o.seed = seed;
        return o;
      }()) {}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, const LoaderOptions& options)
    : dataset_(std::move(dataset)), o_(options) {
  SSM_CHECK(dataset_ != nullptr, "DataLoader", "dataset is null");
  SSM_CHECK(o_.batch_size > 0, "DataLoader", "batch_size must be positive, got ", o_.batch_size);
  SSM_CHECK(dataset_->size() > 0, "DataLoader", "dataset '", dataset_->name(), "' is empty");
  SSM_CHECK(!o_.drop_last || dataset_->size() >= o_.batch_size, "DataLoader", "dataset '",
            dataset_->name(), "' has ", dataset_->size(), " examples, fewer than one batch of ",
            o_.batch_size, " with drop_last");
  SSM_CHECK(o_.pad != Pad::Fixed || o_.pad_length > 0, "DataLoader",
            "pad fixed expects pad_length > 0, got ", o_.pad_length);
  SSM_CHECK(o_.prefetch >= 0, "DataLoader", "prefetch expects a count >= 0, got ", o_.prefetch);
}

DataLoader::~DataLoader() { stop_worker(); }

std::int64_t DataLoader::batches_per_epoch() const {
  const std::int64_t n = dataset_->size();
  return o_.drop_last ? n / o_.batch_size : (n + o_.batch_size - 1) / o_.batch_size;
}

std::vector<std::int64_t> philox_permutation(std::int64_t n, std::uint64_t seed,
                                             std::uint32_t stream) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), std::int64_t{0});
  for (std::size_t j = idx.size(); j-- > 1;) {
    const Philox4 r = philox_block(seed, stream, j);
    const std::uint64_t bits = (static_cast<std::uint64_t>(r.v[0]) << 32) | r.v[1];
    std::swap(idx[j], idx[static_cast<std::size_t>(bits % (j + 1))]);
  }
  return idx;
}

std::vector<std::int64_t> DataLoader::order(std::int64_t epoch) const {
  if (!o_.shuffle) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(dataset_->size()));
    std::iota(idx.begin(), idx.end(), std::int64_t{0});
    return idx;
  }
  return philox_permutation(dataset_->size(), o_.seed, static_cast<std::uint32_t>(epoch));
}

void DataLoader::set_position(const LoaderPosition& pos) {
  SSM_CHECK(pos.epoch >= 0 && pos.index >= 0 && pos.index <= dataset_->size(), "DataLoader",
            "position (epoch ", pos.epoch, ", index ", pos.index, ") is outside dataset '",
            dataset_->name(), "' of ", dataset_->size(), " examples");
  if (worker_.joinable()) {
    if (pos == pos_) return;
    {
      // A position the worker has already passed (typically the start of
      // the next epoch, set after the last batch): skip to it.
      std::lock_guard<std::mutex> lock(mutex_);
      const auto it = std::find_if(queue_.begin(), queue_.end(),
                                   [&](const Item& q) { return !q.error && q.after == pos; });
      if (it != queue_.end()) {
        queue_.erase(queue_.begin(), it + 1);
        pos_ = pos;
      }
    }
    if (pos_ == pos) {
      cv_.notify_all();
      return;
    }
    stop_worker();
  }
  pos_ = pos;
}

DataLoader::Item DataLoader::make_item(const LoaderPosition& pos, OrderCache& cache) const {
  Item item;
  const std::int64_t n = dataset_->size();
  const std::int64_t take = std::min(o_.batch_size, n - pos.index);
  if (take <= 0 || (o_.drop_last && take < o_.batch_size)) {
    item.after = {pos.epoch + 1, 0};
    return item;
  }
  if (cache.epoch != pos.epoch) {
    cache.order = order(pos.epoch);
    cache.epoch = pos.epoch;
  }
  std::vector<Example> examples;
  examples.reserve(static_cast<std::size_t>(take));
  for (std::int64_t i = 0; i < take; ++i) {
    const std::int64_t idx = cache.order[static_cast<std::size_t>(pos.index + i)];
    examples.push_back(dataset_->get(idx, pos.epoch));
    if (o_.pad == Pad::Fixed) {
      const Example& e = examples.back();
      const std::int64_t l = e.x.defined() && e.x.dim() >= 1 ? e.x.size(0) : 0;
      const std::int64_t l2 = e.x2.defined() && e.x2.dim() >= 1 ? e.x2.size(0) : 0;
      SSM_CHECK(l <= o_.pad_length && l2 <= o_.pad_length, "DataLoader", "example ", idx,
                " of dataset '", dataset_->name(), "' has length ", l,
                e.x2.defined() ? " (second sequence " + std::to_string(l2) + ")" : std::string(),
                ", longer than pad_length ", o_.pad_length);
    }
  }
  item.batch = collate(examples, o_.pad, o_.pad_length, o_.pad_value);
  item.has_batch = true;
  item.after = {pos.epoch, pos.index + take};
  return item;
}

void DataLoader::worker_loop(LoaderPosition pos) {
  OrderCache cache;
  const auto capacity = static_cast<std::size_t>(o_.prefetch);
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || queue_.size() < capacity; });
      if (stop_) return;
    }
    Item item;
    try {
      item = make_item(pos, cache);
    } catch (...) {
      item = Item();
      item.error = std::current_exception();
    }
    const bool failed = item.error != nullptr;
    pos = item.after;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
      queue_.push_back(std::move(item));
    }
    cv_.notify_all();
    if (failed) return;  // the consumer rethrows it and restarts the worker
  }
}

void DataLoader::start_worker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = false;
    queue_.clear();
  }
  worker_ = std::thread(&DataLoader::worker_loop, this, pos_);
}

void DataLoader::stop_worker() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.clear();
  stop_ = false;
}

bool DataLoader::next(Batch& batch) {
  Item item;
  if (o_.prefetch == 0) {
    item = make_item(pos_, cache_);
  } else {
    if (!worker_.joinable()) start_worker();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return !queue_.empty(); });
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    cv_.notify_all();
    if (item.error) {
      stop_worker();  // it has returned; the next call restarts it at pos_
      std::rethrow_exception(item.error);
    }
  }
  pos_ = item.after;
  if (item.has_batch) batch = std::move(item.batch);
  return item.has_batch;
}

Batch collate(const std::vector<Example>& examples, Pad pad, std::int64_t pad_length,
              double pad_value) {
  SSM_CHECK(!examples.empty(), "collate", "no examples");
  SSM_CHECK(pad != Pad::Fixed || pad_length > 0, "collate",
            "pad fixed expects pad_length > 0, got ", pad_length);
  const auto b = static_cast<std::int64_t>(examples.size());
  Batch out;
  std::vector<const Tensor*> xs;
  std::vector<std::int64_t> labels, lengths;
  for (const Example& e : examples) {
    SSM_CHECK(e.x.defined(), "collate", "example ", xs.size(), " has no sequence x");
    xs.push_back(&e.x);
    labels.push_back(e.label);
    lengths.push_back(e.length);
  }
  out.x = stack_padded(xs, pad, pad_length, pad_value, "x");  // (B, L, ...)
  out.y = Tensor::from_vector<std::int64_t>(labels, {b});
  out.lengths = Tensor::from_vector<std::int64_t>(lengths, {b});
  const Example& first = examples.front();
  if (first.x2.defined()) {
    std::vector<const Tensor*> x2s;
    std::vector<std::int64_t> lengths2;
    for (const Example& e : examples) {
      SSM_CHECK(e.x2.defined(), "collate", "example ", x2s.size(),
                " has no second sequence but example 0 has ", first.x2.desc());
      x2s.push_back(&e.x2);
      lengths2.push_back(e.length2);
    }
    out.x2 = stack_padded(x2s, pad, pad_length, pad_value, "x2");  // (B, L2, ...)
    out.lengths2 = Tensor::from_vector<std::int64_t>(lengths2, {b});
  }
  if (first.target_value) {
    std::vector<double> targets;
    for (const Example& e : examples) {
      SSM_CHECK(e.target_value.has_value(), "collate", "example ", targets.size(),
                " has no target_value but example 0 has one");
      targets.push_back(*e.target_value);
    }
    out.target_values = Tensor::from_vector<double>(targets, {b}, DType::Float32);  // (B)
  }
  return out;
}

}  // namespace ssm::data
