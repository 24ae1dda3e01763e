// The DataLoader (order, resume, padding, prefetch) and the synthetic token
// tasks of data/synthetic.h.
#include <algorithm>
#include <numeric>
#include <set>

#include "data/dataset.h"
#include "data/synthetic.h"
#include "tests/testing.h"

using namespace ssm;
using namespace ssm::testing;
using data::Batch;
using data::DataLoader;
using data::Example;
using data::LoaderOptions;
using data::LoaderPosition;
using data::Pad;

namespace {

// Example i: tokens i * 100 + t for t < len(i), len(i) = 1 + i % 5 (or 3
// when equal_lengths), label i; with_x2, a second sequence of 1 + i % 3
// tokens -(i * 100 + t). Throws ssm::Error for index `bad`.
class VarLenDataset : public data::Dataset {
 public:
  VarLenDataset(std::int64_t n, bool equal_lengths, bool with_x2 = false, std::int64_t bad = -1)
      : n_(n), equal_(equal_lengths), x2_(with_x2), bad_(bad) {}
  std::int64_t size() const override { return n_; }
  static std::int64_t len(std::int64_t i, bool equal) { return equal ? 3 : 1 + i % 5; }
  static std::int64_t len2(std::int64_t i) { return 1 + i % 3; }
  Example get(std::int64_t i) const override {
    SSM_CHECK(i != bad_, "VarLenDataset", "example ", i, " is broken");
    std::vector<std::int64_t> v;
    for (std::int64_t t = 0; t < len(i, equal_); ++t) v.push_back(i * 100 + t);
    Example e;
    e.length = static_cast<std::int64_t>(v.size());
    e.x = Tensor::from_vector<std::int64_t>(v, {e.length});
    e.label = i;
    if (x2_) {
      std::vector<std::int64_t> w;
      for (std::int64_t t = 0; t < len2(i); ++t) w.push_back(-(i * 100 + t));
      e.length2 = static_cast<std::int64_t>(w.size());
      e.x2 = Tensor::from_vector<std::int64_t>(w, {e.length2});
    }
    return e;
  }
  std::int64_t num_classes() const override { return n_; }
  std::int64_t d_input() const override { return 1; }
  std::int64_t vocab_size() const override { return 100 * n_; }
  std::string name() const override { return "varlen"; }

 private:
  std::int64_t n_;
  bool equal_, x2_;
  std::int64_t bad_;
};

// One call of next(): whether it gave a batch, the batch's contents, and the
// position after it.
struct Record {
  bool has_batch = false;
  std::vector<std::int64_t> y, x, lengths;
  LoaderPosition after;
  bool operator==(const Record&) const = default;
};

std::vector<Record> run(DataLoader& loader, int calls) {
  std::vector<Record> out;
  for (int c = 0; c < calls; ++c) {
    Batch b;
    Record r;
    r.has_batch = loader.next(b);
    if (r.has_batch) {
      r.y = b.y.to_vector<std::int64_t>();
      r.x = b.x.to_vector<std::int64_t>();
      r.lengths = b.lengths.to_vector<std::int64_t>();
    }
    r.after = loader.position();
    out.push_back(r);
  }
  return out;
}

LoaderOptions options(std::int64_t batch_size, bool drop_last, std::int64_t prefetch,
                      Pad pad = Pad::Longest) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = true;
  o.drop_last = drop_last;
  o.seed = 77;
  o.pad = pad;
  o.pad_value = -1;
  o.prefetch = prefetch;
  return o;
}

}  // namespace

TEST_CASE("loader order: fixed by seed and epoch, a permutation every epoch", "[cpu][data]") {
  auto ds = std::make_shared<VarLenDataset>(37, true);
  DataLoader a(ds, 8, true, false, 5), b(ds, 8, true, false, 5), c(ds, 8, true, false, 6);
  CHECK(a.order(0) == b.order(0));
  CHECK(a.order(3) == b.order(3));
  CHECK(a.order(0) != a.order(1));
  CHECK(a.order(0) != c.order(0));
  std::vector<std::int64_t> iota(37);
  std::iota(iota.begin(), iota.end(), std::int64_t{0});
  for (std::int64_t e = 0; e < 4; ++e) {
    auto o = a.order(e);
    std::sort(o.begin(), o.end());
    CHECK(o == iota);
  }
  DataLoader plain(ds, 8, false, false, 5);
  CHECK(plain.order(2) == iota);
  // The batches of an epoch are its order in chunks; then next() is false.
  const auto order = a.order(0);
  std::vector<std::int64_t> seen;
  Batch batch;
  while (a.next(batch)) {
    for (auto y : batch.y.to_vector<std::int64_t>()) seen.push_back(y);
  }
  CHECK(seen == order);
  CHECK(a.position() == LoaderPosition{1, 0});
}

TEST_CASE("prefetch yields the identical batches, epoch ends and positions", "[cpu][data]") {
  auto ds = std::make_shared<VarLenDataset>(23, false);
  for (bool drop_last : {false, true}) {
    DataLoader plain(ds, options(4, drop_last, 0));
    const auto want = run(plain, 20);  // over three epochs
    for (std::int64_t prefetch : {1, 2, 7}) {
      INFO("drop_last " << drop_last << ", prefetch " << prefetch);
      DataLoader pre(ds, options(4, drop_last, prefetch));
      CHECK(run(pre, 20) == want);
    }
  }
}

TEST_CASE("a stored position resumes exactly the remaining batches", "[cpu][data]") {
  auto ds = std::make_shared<VarLenDataset>(19, false);
  DataLoader ref(ds, options(5, false, 0));
  const auto want = run(ref, 16);  // 4 batches + end per epoch
  for (std::int64_t prefetch : {0, 3}) {
    // Checkpoints after each call k (mid-epoch, at an epoch's end, at the start of one).
    for (std::size_t k = 0; k < 10; ++k) {
      INFO("prefetch " << prefetch << ", resumed after call " << k);
      DataLoader resumed(ds, options(5, false, prefetch));
      resumed.set_position(want[k].after);
      const auto rest = run(resumed, static_cast<int>(want.size() - k - 1));
      CHECK(rest == std::vector<Record>(want.begin() + static_cast<long>(k) + 1, want.end()));
    }
  }
}

TEST_CASE("set_position with batches prefetched moves the stream there", "[cpu][data]") {
  auto ds = std::make_shared<VarLenDataset>(19, false);
  DataLoader ref(ds, options(5, false, 0));
  const auto want = run(ref, 12);
  DataLoader pre(ds, options(5, false, 4));
  CHECK(run(pre, 3) == std::vector<Record>(want.begin(), want.begin() + 3));
  // Back to an earlier position.
  pre.set_position(want[0].after);
  CHECK(run(pre, 2) == std::vector<Record>(want.begin() + 1, want.begin() + 3));
  // Forward past the epoch's last batch to the next epoch, as the trainer does.
  CHECK(run(pre, 1) == std::vector<Record>(want.begin() + 3, want.begin() + 4));
  pre.set_position({1, 0});
  CHECK(run(pre, 3) == std::vector<Record>(want.begin() + 5, want.begin() + 8));
  // The same position again keeps the stream.
  pre.set_position(pre.position());
  CHECK(run(pre, 2) == std::vector<Record>(want.begin() + 8, want.begin() + 10));
  CHECK_THROWS_AS(pre.set_position({0, 20}), Error);
}

TEST_CASE("an exception in the dataset surfaces from next(), with or without prefetch",
          "[cpu][data]") {
  // Without shuffle, example 7 is in the second batch of 5.
  auto ds = std::make_shared<VarLenDataset>(12, true, false, /*bad=*/7);
  for (std::int64_t prefetch : {0, 1, 3}) {
    INFO("prefetch " << prefetch);
    LoaderOptions o = options(5, false, prefetch, Pad::None);
    o.shuffle = false;
    DataLoader loader(ds, o);
    Batch b;
    REQUIRE(loader.next(b));
    CHECK(b.y.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 2, 3, 4});
    CHECK(error_message([&] { loader.next(b); }).find("example 7 is broken") != std::string::npos);
    CHECK(loader.position() == LoaderPosition{0, 5});
    // A retry fails the same way; a position past it goes on.
    CHECK(error_message([&] { loader.next(b); }).find("example 7 is broken") != std::string::npos);
    loader.set_position({0, 10});
    REQUIRE(loader.next(b));
    CHECK(b.y.to_vector<std::int64_t>() == std::vector<std::int64_t>{10, 11});
    CHECK_FALSE(loader.next(b));
    CHECK(loader.position() == LoaderPosition{1, 0});
  }
}

TEST_CASE("a prefetching loader is destroyed cleanly at any point", "[cpu][data]") {
  auto ds = std::make_shared<VarLenDataset>(40, false);
  { DataLoader never_started(ds, options(4, false, 3)); }
  {
    DataLoader full_queue(ds, options(4, false, 3));
    Batch b;
    REQUIRE(full_queue.next(b));
  }
  {
    auto broken = std::make_shared<VarLenDataset>(40, false, false, 3);
    DataLoader failed(broken, options(4, false, 2));
    Batch b;
    CHECK_THROWS_AS(failed.next(b), Error);
  }
  SUCCEED();
}

TEST_CASE("padding to the longest and to a fixed length: values, lengths, mask", "[cpu][data]") {
  auto ds = std::make_shared<VarLenDataset>(10, false, /*with_x2=*/true);
  LoaderOptions o = options(3, false, 0);
  o.shuffle = false;  // batch 0: examples 0, 1, 2 of lengths 1, 2, 3; x2 lengths 1, 2, 3
  SECTION("longest") {
    DataLoader loader(ds, o);
    Batch b;
    REQUIRE(loader.next(b));
    CHECK(b.x.shape() == Shape{3, 3});
    CHECK(b.x.to_vector<std::int64_t>() ==
          std::vector<std::int64_t>{0, -1, -1, 100, 101, -1, 200, 201, 202});
    CHECK(b.lengths.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 2, 3});
    CHECK(b.mask().dtype() == DType::Float32);
    CHECK(b.mask().to_vector<float>() == std::vector<float>{1, 0, 0, 1, 1, 0, 1, 1, 1});
    CHECK(b.x2.to_vector<std::int64_t>() ==
          std::vector<std::int64_t>{0, -1, -1, -100, -101, -1, -200, -201, -202});
    CHECK(b.lengths2.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 2, 3});
    CHECK(b.mask2().to_vector<float>() == std::vector<float>{1, 0, 0, 1, 1, 0, 1, 1, 1});
    // Batch 1: examples 3, 4, 5 of lengths 4, 5, 1.
    REQUIRE(loader.next(b));
    CHECK(b.x.shape() == Shape{3, 5});
    CHECK(b.lengths.to_vector<std::int64_t>() == std::vector<std::int64_t>{4, 5, 1});
  }
  SECTION("fixed") {
    o.pad = Pad::Fixed;
    o.pad_length = 5;
    o.pad_value = 7;
    DataLoader loader(ds, o);
    Batch b;
    REQUIRE(loader.next(b));
    CHECK(b.x.shape() == Shape{3, 5});
    CHECK(b.x.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 7, 7, 7, 7,      //
                                                                     100, 101, 7, 7, 7,  //
                                                                     200, 201, 202, 7, 7});
    CHECK(b.mask().to_vector<float>() ==
          std::vector<float>{1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0});
    CHECK(b.x2.shape() == Shape{3, 5});
  }
  SECTION("fixed, a longer sequence is an error naming the example and lengths") {
    o.pad = Pad::Fixed;
    o.pad_length = 4;
    DataLoader loader(ds, o);
    Batch b;
    REQUIRE(loader.next(b));
    const std::string msg = error_message([&] { loader.next(b); });  // example 4 has 5 tokens
    INFO(msg);
    CHECK(msg.find("[DataLoader] example 4 of dataset 'varlen' has length 5") == 0);
    CHECK(msg.find("pad_length 4") != std::string::npos);
  }
  SECTION("none needs equal lengths") {
    o.pad = Pad::None;
    DataLoader loader(ds, o);
    Batch b;
    CHECK(error_message([&] { loader.next(b); }).find("[collate] example 1") == 0);
  }
}

TEST_CASE("collate pads feature sequences and carries regression targets", "[cpu][data]") {
  std::vector<Example> ex(2);
  ex[0].x = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});  // (L=2, D=2)
  ex[0].length = 2;
  ex[0].target_value = 0.25;
  ex[1].x = Tensor::from_vector<float>({5, 6}, {1, 2});  // (L=1, D=2)
  ex[1].length = 1;
  ex[1].target_value = 1.5;
  const Batch b = data::collate(ex, Pad::Longest, 0, 0.5);
  CHECK(b.x.shape() == Shape{2, 2, 2});
  CHECK(b.x.to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6, 0.5f, 0.5f});
  CHECK(b.mask().to_vector<float>() == std::vector<float>{1, 1, 1, 0});
  CHECK(b.target_values.to_vector<float>() == std::vector<float>{0.25f, 1.5f});
  ex[1].x = Tensor::from_vector<float>({5, 6, 7}, {1, 3});
  CHECK(error_message([&] { data::collate(ex, Pad::Longest); }).find("[collate] example 1 x") == 0);
}

namespace {

std::vector<std::int64_t> tokens(const Example& e) { return e.x.to_vector<std::int64_t>(); }

template <class D>
void check_deterministic(const D& a, const D& a_again, const D& other_split) {
  for (std::int64_t i : {0, 1, 17}) {
    const Example e = a.get(i), f = a_again.get(i);
    CHECK(e.x.to_vector<double>() == f.x.to_vector<double>());
    CHECK(e.label == f.label);
    if (e.x2.defined()) CHECK(e.x2.to_vector<double>() == f.x2.to_vector<double>());
  }
  CHECK(a.get(0).x.template to_vector<double>() != a.get(1).x.template to_vector<double>());
  CHECK(a.get(0).x.template to_vector<double>() !=
        other_split.get(0).x.template to_vector<double>());
}

}  // namespace

TEST_CASE("selective copying: the targets are the data tokens in order", "[cpu][data]") {
  const data::SelectiveCopyingOptions o;  // L 4096, vocabulary 16, 16 tokens
  data::SelectiveCopyingDataset ds(o, 100, 0), again(o, 100, 0), val(o, 100, 1);
  check_deterministic(ds, again, val);
  CHECK(ds.x2_is_target());
  for (std::int64_t i = 0; i < 20; ++i) {
    const Example e = ds.get(i);
    REQUIRE(e.x.shape() == Shape{4096});
    const auto x = tokens(e);
    std::vector<std::int64_t> data;
    for (std::size_t t = 0; t < 4096 - 16; ++t) {
      if (x[t] != 0) data.push_back(x[t]);
    }
    CHECK(data == e.x2.to_vector<std::int64_t>());
    CHECK(e.length2 == 16);
    for (auto v : data) CHECK((v >= 1 && v <= 14));
    CHECK(std::all_of(x.end() - 16, x.end(), [](std::int64_t v) { return v == 15; }));
  }
  // Through the loader: x (B, L), x2 (B, n).
  DataLoader loader(std::make_shared<data::SelectiveCopyingDataset>(o, 10, 0), 4, true, false, 1);
  Batch b;
  REQUIRE(loader.next(b));
  CHECK(b.x.shape() == Shape{4, 4096});
  CHECK(b.x2.shape() == Shape{4, 16});
}

TEST_CASE("copying: data, delay, delimiter, then the outputs to fill", "[cpu][data]") {
  data::CopyingOptions o;
  o.num_tokens = 5;
  o.delay = 7;
  o.vocab_size = 6;
  data::CopyingDataset ds(o, 50, 0), again(o, 50, 0), test(o, 50, 2);
  check_deterministic(ds, again, test);
  const Example e = ds.get(3);
  const auto x = tokens(e);
  REQUIRE(x.size() == 2 * 5 + 7 + 1);
  CHECK(std::vector<std::int64_t>(x.begin(), x.begin() + 5) == e.x2.to_vector<std::int64_t>());
  for (std::size_t t = 5; t < x.size(); ++t) CHECK(x[t] == (t == 12 ? 5 : 0));
}

TEST_CASE("induction heads: the answer is the token after the trigger's first occurrence",
          "[cpu][data]") {
  data::InductionHeadsOptions o;  // vocabulary 16, L 256
  o.test_seq_len = 1 << 20;
  data::InductionHeadsDataset ds(o, 100, 0), again(o, 100, 0), val(o, 100, 1), test(o, 4, 2);
  check_deterministic(ds, again, val);
  CHECK(ds.get(0).x.shape() == Shape{256});
  CHECK(test.get(3).x.shape() == Shape{1 << 20});
  for (std::int64_t i = 0; i < 30; ++i) {
    const Example e = ds.get(i);
    const auto x = tokens(e);
    std::vector<std::size_t> at;
    for (std::size_t t = 0; t < x.size(); ++t) {
      if (x[t] == 15) at.push_back(t);
    }
    REQUIRE(at.size() == 2);
    CHECK(at[1] == 255);
    CHECK(e.label == x[at[0] + 1]);
    CHECK((e.label >= 0 && e.label < 15));
  }
}

TEST_CASE("induction heads with min_len: train lengths vary, val and test keep theirs",
          "[cpu][data]") {
  data::InductionHeadsOptions o;
  o.seq_len = 64;
  o.min_len = 16;
  o.test_seq_len = 128;
  data::InductionHeadsDataset ds(o, 400, 0), again(o, 400, 0), val(o, 20, 1), test(o, 4, 2);
  check_deterministic(ds, again, val);
  std::set<std::int64_t> lengths;
  for (std::int64_t i = 0; i < 400; ++i) {
    const Example e = ds.get(i);
    const auto x = tokens(e);
    REQUIRE(e.length == static_cast<std::int64_t>(x.size()));
    lengths.insert(e.length);
    std::vector<std::size_t> at;
    for (std::size_t t = 0; t < x.size(); ++t) {
      if (x[t] == 15) at.push_back(t);
    }
    REQUIRE(at.size() == 2);
    CHECK(at[1] == x.size() - 1);
    CHECK(e.label == x[at[0] + 1]);
  }
  // 400 uniform draws from 49 lengths: every length appears (the chance that
  // one is missing is below 49 (48/49)^400 ~ 1e-2 for an unlucky seed; the
  // data are deterministic, so this checks the range, not luck).
  CHECK(*lengths.begin() == 16);
  CHECK(*lengths.rbegin() == 64);
  CHECK(lengths.size() > 40);
  for (std::int64_t i = 0; i < 20; ++i) CHECK(val.get(i).length == 64);
  CHECK(test.get(0).length == 128);
  o.min_len = 2;
  CHECK_THROWS_WITH(data::InductionHeadsDataset(o, 4, 0),
                    Catch::Contains("[induction_heads]") && Catch::Contains("min_len"));
  o.min_len = 65;
  CHECK_THROWS_WITH(data::InductionHeadsDataset(o, 4, 0), Catch::Contains("min_len"));
}

TEST_CASE("associative recall: the label is the value paired with the query key", "[cpu][data]") {
  const data::AssociativeRecallOptions o;  // 8 pairs, 16 keys, 16 values
  data::AssociativeRecallDataset ds(o, 100, 0), again(o, 100, 0), val(o, 100, 1);
  check_deterministic(ds, again, val);
  CHECK(ds.vocab_size() == 32);
  std::set<std::int64_t> labels;
  for (std::int64_t i = 0; i < 50; ++i) {
    const Example e = ds.get(i);
    const auto x = tokens(e);
    REQUIRE(x.size() == 17);
    std::set<std::int64_t> keys;
    std::int64_t found = -1;
    for (std::size_t j = 0; j < 8; ++j) {
      CHECK((x[2 * j] >= 0 && x[2 * j] < 16));
      CHECK((x[2 * j + 1] >= 16 && x[2 * j + 1] < 32));
      keys.insert(x[2 * j]);
      if (x[2 * j] == x[16]) found = x[2 * j + 1] - 16;
    }
    CHECK(keys.size() == 8);
    CHECK(e.label == found);
    labels.insert(e.label);
  }
  CHECK(labels.size() > 4);
}

TEST_CASE("adding: the target is the sum of the two marked values", "[cpu][data]") {
  data::AddingOptions o;  // L 100, 20 bins
  data::AddingDataset ds(o, 100, 0), again(o, 100, 0), val(o, 100, 1);
  check_deterministic(ds, again, val);
  for (std::int64_t i = 0; i < 30; ++i) {
    const Example e = ds.get(i);
    REQUIRE(e.x.shape() == Shape{100, 2});
    const auto x = e.x.to_vector<float>();
    std::vector<std::size_t> marked;
    for (std::size_t t = 0; t < 100; ++t) {
      CHECK((x[2 * t] >= 0.0f && x[2 * t] < 1.0f));
      if (x[2 * t + 1] == 1.0f) marked.push_back(t);
    }
    REQUIRE(marked.size() == 2);
    CHECK(marked[0] < 50);
    CHECK(marked[1] >= 50);
    REQUIRE(e.target_value.has_value());
    CHECK(*e.target_value ==
          static_cast<double>(x[2 * marked[0]]) + static_cast<double>(x[2 * marked[1]]));
    CHECK(e.label == std::min<std::int64_t>(19, static_cast<std::int64_t>(*e.target_value * 10)));
  }
  DataLoader loader(std::make_shared<data::AddingDataset>(o, 10, 0), 4, false, false, 1);
  Batch b;
  REQUIRE(loader.next(b));
  CHECK(b.x.shape() == Shape{4, 100, 2});
  CHECK(b.target_values.to_vector<double>()[1] == Approx(*ds.get(1).target_value));
}
