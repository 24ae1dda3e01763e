// sCIFAR (data/cifar.h) and the IDX / sequential MNIST datasets (data/idx.h):
// fixture files in the real formats with known bytes, checked bit for bit.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>

#include "data/cifar.h"
#include "data/idx.h"
#include "tests/testing.h"

namespace fs = std::filesystem;
using namespace ssm;
using namespace ssm::data;
using ssm::testing::error_message;

namespace {

// A fresh empty folder under the system temp folder.
fs::path temp_folder(const std::string& tag) {
  static std::atomic<int> counter{0};
  const fs::path p =
      fs::temp_directory_path() /
      ("ssm_vision_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::vector<std::uint8_t> gzip(const std::vector<std::uint8_t>& in) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<std::uint8_t> out(deflateBound(&zs, static_cast<uLong>(in.size())) + 64);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// ------------------------------------------------------------ CIFAR fixture
// Training record r (global, file-major) and test record r: channel c, pixel p.
std::uint8_t cifar_pixel(bool test, int r, int c, int p) {
  return static_cast<std::uint8_t>((r * 37 + c * 101 + p * 7 + (test ? 13 : 0) + p / 32) & 255);
}
std::uint8_t cifar_label(bool test, int r) {
  return static_cast<std::uint8_t>((r * 3 + test) % 10);
}

std::vector<std::uint8_t> cifar_records(bool test, int first, int count) {
  std::vector<std::uint8_t> b;
  for (int r = first; r < first + count; ++r) {
    b.push_back(cifar_label(test, r));
    for (int c = 0; c < 3; ++c) {
      for (int p = 0; p < 1024; ++p) b.push_back(cifar_pixel(test, r, c, p));
    }
  }
  return b;
}

// Five training files of 2 records (10 training records) and a test file of 3.
fs::path cifar_fixture() {
  const fs::path dir = temp_folder("cifar");
  for (int b = 1; b <= 5; ++b) {
    write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"),
                cifar_records(false, 2 * (b - 1), 2));
  }
  write_bytes(dir / "test_batch.bin", cifar_records(true, 0, 3));
  return dir;
}

CifarOptions cifar_options(const fs::path& dir, VisionSplit split, CifarMode mode) {
  CifarOptions o;
  o.folder = dir.string();
  o.split = split;
  o.mode = mode;
  o.val_size = 3;
  return o;
}

double luma(const std::uint8_t* px, int p) {
  return 0.299 * px[p] + 0.587 * px[1024 + p] + 0.114 * px[2048 + p];
}

// The rgb example of 3072 image bytes, computed directly from the documentation.
std::vector<float> rgb_expected(const std::uint8_t* px) {
  const double mean[3] = {0.4914, 0.4822, 0.4465}, stdv[3] = {0.247, 0.243, 0.261};
  std::vector<float> x(3072);
  for (int p = 0; p < 1024; ++p) {
    for (int c = 0; c < 3; ++c) {
      x[static_cast<std::size_t>(p * 3 + c)] =
          static_cast<float>((px[c * 1024 + p] / 255.0 - mean[c]) / stdv[c]);
    }
  }
  return x;
}

// ------------------------------------------------------------ IDX fixture
std::vector<std::uint8_t> be32(std::uint32_t v) {
  return {static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
          static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
}

std::uint8_t idx_pixel(int split, int r, int p) {
  return static_cast<std::uint8_t>((r * 31 + p * 3 + split * 7 + p / 28) & 255);
}

std::vector<std::uint8_t> idx_images(int split, int n) {
  std::vector<std::uint8_t> b = be32(0x803);
  for (std::uint32_t v : {static_cast<std::uint32_t>(n), 28u, 28u}) {
    const auto h = be32(v);
    b.insert(b.end(), h.begin(), h.end());
  }
  for (int r = 0; r < n; ++r) {
    for (int p = 0; p < 784; ++p) b.push_back(idx_pixel(split, r, p));
  }
  return b;
}

std::vector<std::uint8_t> idx_labels(int split, int n) {
  std::vector<std::uint8_t> b = be32(0x801);
  const auto h = be32(static_cast<std::uint32_t>(n));
  b.insert(b.end(), h.begin(), h.end());
  for (int r = 0; r < n; ++r) b.push_back(static_cast<std::uint8_t>((r * 7 + split) % 10));
  return b;
}

// 4 training records and 2 test records, plain or gzip-compressed.
fs::path idx_fixture(bool gz) {
  const fs::path dir = temp_folder(gz ? "idx_gz" : "idx");
  const std::string ext = gz ? ".gz" : "";
  auto put = [&](const std::string& name, const std::vector<std::uint8_t>& b) {
    write_bytes(dir / (name + ext), gz ? gzip(b) : b);
  };
  put("train-images-idx3-ubyte", idx_images(0, 4));
  put("train-labels-idx1-ubyte", idx_labels(0, 4));
  put("t10k-images-idx3-ubyte", idx_images(1, 2));
  put("t10k-labels-idx1-ubyte", idx_labels(1, 2));
  return dir;
}

MnistOptions mnist_options(const fs::path& dir, VisionSplit split) {
  MnistOptions o;
  o.folder = dir.string();
  o.split = split;
  o.val_size = 1;
  return o;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

// ================================================================== CIFAR

TEST_CASE("cifar rgb: values are (v/255 - mean)/std per channel, bit for bit", "[cpu][data]") {
  const fs::path dir = cifar_fixture();
  const CifarDataset ds(cifar_options(dir, VisionSplit::Test, CifarMode::Rgb));
  REQUIRE(ds.size() == 3);
  REQUIRE(ds.d_input() == 3);
  REQUIRE(ds.vocab_size() == 0);
  REQUIRE(ds.num_classes() == 10);
  for (int r = 0; r < 3; ++r) {
    const Example e = ds.get(r);
    REQUIRE(e.x.shape() == Shape{1024, 3});
    REQUIRE(e.x.dtype() == DType::Float32);
    REQUIRE(e.length == 1024);
    REQUIRE(e.label == cifar_label(true, r));
    const auto rec = cifar_records(true, r, 1);
    REQUIRE(e.x.to_vector<float>() == rgb_expected(rec.data() + 1));
  }
  fs::remove_all(dir);
}

TEST_CASE("cifar gray is LRA's normalised luma, tokens the luma rounded to a byte", "[cpu][data]") {
  const fs::path dir = cifar_fixture();
  const CifarDataset gray(cifar_options(dir, VisionSplit::Test, CifarMode::Gray));
  const CifarDataset tokens(cifar_options(dir, VisionSplit::Test, CifarMode::Tokens));
  REQUIRE(gray.d_input() == 1);
  REQUIRE(tokens.d_input() == 1);
  REQUIRE(tokens.vocab_size() == 256);
  for (int r = 0; r < 3; ++r) {
    const auto rec = cifar_records(true, r, 1);
    const std::uint8_t* px = rec.data() + 1;
    std::vector<float> want_gray(1024);
    std::vector<std::int64_t> want_tok(1024);
    for (int p = 0; p < 1024; ++p) {
      const double y = luma(px, p);
      want_gray[static_cast<std::size_t>(p)] =
          static_cast<float>((y / 255.0 - 122.6 / 255.0) / (61.0 / 255.0));
      want_tok[static_cast<std::size_t>(p)] = std::lround(y);
    }
    const Example g = gray.get(r), t = tokens.get(r);
    REQUIRE(g.x.shape() == Shape{1024, 1});
    REQUIRE(g.x.to_vector<float>() == want_gray);
    REQUIRE(t.x.shape() == Shape{1024});
    REQUIRE(t.x.dtype() == DType::Int64);
    REQUIRE(t.x.to_vector<std::int64_t>() == want_tok);
    REQUIRE(t.label == cifar_label(true, r));
  }
  // White and black pixels give the ends of the token range.
  const std::vector<std::uint8_t> white(3072, 255), black(3072, 0);
  REQUIRE(std::lround(luma(white.data(), 0)) == 255);
  REQUIRE(std::lround(luma(black.data(), 0)) == 0);
  fs::remove_all(dir);
}

TEST_CASE("cifar train and val are disjoint, cover the training records, keep their bytes",
          "[cpu][data]") {
  const fs::path dir = cifar_fixture();
  const CifarDataset train(cifar_options(dir, VisionSplit::Train, CifarMode::Rgb));
  const CifarDataset val(cifar_options(dir, VisionSplit::Val, CifarMode::Rgb));
  REQUIRE(train.size() == 7);
  REQUIRE(val.size() == 3);
  std::set<std::int64_t> seen;
  for (const CifarDataset* ds : {&train, &val}) {
    for (std::int64_t i = 0; i < ds->size(); ++i) {
      const std::int64_t r = ds->source_index(i);
      REQUIRE(seen.insert(r).second);  // disjoint
      const auto rec = cifar_records(false, static_cast<int>(r), 1);
      REQUIRE(ds->get(i).label == rec[0]);
      REQUIRE(std::equal(rec.begin() + 1, rec.end(), ds->pixels(i)));
      if (i > 0) REQUIRE(ds->source_index(i - 1) < r);  // ascending record order
    }
  }
  REQUIRE(seen.size() == 10);
  REQUIRE(*seen.begin() == 0);
  REQUIRE(*seen.rbegin() == 9);
  // val is the first val_size entries of philox_permutation(10, split_seed, 0).
  const auto perm = philox_permutation(10, 42, 0);
  std::set<std::int64_t> want_val(perm.begin(), perm.begin() + 3), got_val;
  for (std::int64_t i = 0; i < val.size(); ++i) got_val.insert(val.source_index(i));
  REQUIRE(got_val == want_val);
  // The split is fixed by the seed.
  const CifarDataset again(cifar_options(dir, VisionSplit::Val, CifarMode::Rgb));
  for (std::int64_t i = 0; i < val.size(); ++i) {
    REQUIRE(again.source_index(i) == val.source_index(i));
  }
  CifarOptions o = cifar_options(dir, VisionSplit::Val, CifarMode::Rgb);
  o.val_size = 0;
  REQUIRE(contains(error_message([&] { CifarDataset d(o); }), "val split is empty"));
  o.split = VisionSplit::Train;
  o.val_size = 10;
  REQUIRE(contains(error_message([&] { CifarDataset d(o); }), "val_size 10"));
  fs::remove_all(dir);
}

TEST_CASE("philox_permutation is a permutation fixed by (seed, stream)", "[cpu][data]") {
  const auto a = philox_permutation(50000, 42, 0);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < 50000; ++i) REQUIRE(sorted[static_cast<std::size_t>(i)] == i);
  REQUIRE(philox_permutation(50000, 42, 0) == a);
  REQUIRE(philox_permutation(50000, 43, 0) != a);
}

TEST_CASE("cifar crop and flip move pixels as documented", "[cpu][data]") {
  std::vector<std::uint8_t> in(3072);
  for (int i = 0; i < 3072; ++i)
    in[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(1 + i % 251);
  auto at = [](const std::vector<std::uint8_t>& img, int c, int r, int col) {
    return img[static_cast<std::size_t>(c * 1024 + r * 32 + col)];
  };
  std::vector<std::uint8_t> out(3072);
  // No shift, no flip: the identity.
  cifar_augment_apply(in.data(), CifarAugment{4, 4, false}, out.data());
  REQUIRE(out == in);
  // oy = 6, ox = 1: out(r, c) = in(r + 2, c - 3), zero where that leaves the image.
  cifar_augment_apply(in.data(), CifarAugment{6, 1, false}, out.data());
  for (int c = 0; c < 3; ++c) {
    for (int r = 0; r < 32; ++r) {
      for (int col = 0; col < 32; ++col) {
        const bool inside = r + 2 < 32 && col - 3 >= 0;
        REQUIRE(at(out, c, r, col) == (inside ? at(in, c, r + 2, col - 3) : 0));
      }
    }
  }
  // The same with a flip: out(r, c) = in(r + 2, (31 - c) - 3).
  cifar_augment_apply(in.data(), CifarAugment{6, 1, true}, out.data());
  REQUIRE(at(out, 0, 0, 31) == 0);
  REQUIRE(at(out, 1, 0, 0) == at(in, 1, 2, 28));
  REQUIRE(at(out, 2, 29, 28) == at(in, 2, 31, 0));
  REQUIRE(at(out, 2, 30, 28) == 0);
  // Draws: offsets in 0..8, all values and both flips reached, fixed by (seed, epoch, index).
  std::set<int> oys, oxs, flips;
  for (int i = 0; i < 400; ++i) {
    const CifarAugment a = cifar_augment_draw(7, 3, i);
    const CifarAugment b = cifar_augment_draw(7, 3, i);
    REQUIRE((a.oy == b.oy && a.ox == b.ox && a.flip == b.flip));
    oys.insert(a.oy);
    oxs.insert(a.ox);
    flips.insert(a.flip);
  }
  REQUIRE(oys == std::set<int>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  REQUIRE(oxs == oys);
  REQUIRE(flips.size() == 2);
}

TEST_CASE("cifar augmented examples are the draw of (augment_seed, epoch, index), deterministic",
          "[cpu][data]") {
  const fs::path dir = cifar_fixture();
  CifarOptions o = cifar_options(dir, VisionSplit::Train, CifarMode::Rgb);
  o.augment = true;
  o.augment_seed = 11;
  CifarDataset ds(o);
  bool epochs_differ = false;
  for (std::int64_t e = 0; e < 2; ++e) {
    for (std::int64_t i = 0; i < ds.size(); ++i) {
      std::vector<std::uint8_t> img(3072);
      cifar_augment_apply(ds.pixels(i), cifar_augment_draw(11, e, i), img.data());
      const auto x = ds.get(i, e).x.to_vector<float>();
      REQUIRE(x == rgb_expected(img.data()));
      REQUIRE(ds.get(i, e).x.to_vector<float>() == x);
      ds.set_epoch(e);
      REQUIRE(ds.get(i).x.to_vector<float>() == x);
      if (ds.get(i, 0).x.to_vector<float>() != ds.get(i, 1).x.to_vector<float>()) {
        epochs_differ = true;
      }
    }
  }
  REQUIRE(epochs_differ);
  o.split = VisionSplit::Val;
  REQUIRE(contains(error_message([&] { CifarDataset d(o); }), "train split only"));
  fs::remove_all(dir);
}

TEST_CASE("cifar malformed files: truncated record, bad label, missing file", "[cpu][data]") {
  const fs::path dir = cifar_fixture();
  SECTION("a size that is not a multiple of 3073 names the file and the incomplete record") {
    auto b = cifar_records(false, 4, 2);
    b.resize(b.size() + 100, 0);
    write_bytes(dir / "data_batch_3.bin", b);
    const std::string msg = error_message(
        [&] { CifarDataset d(cifar_options(dir, VisionSplit::Train, CifarMode::Rgb)); });
    INFO(msg);
    REQUIRE(contains(msg, (dir / "data_batch_3.bin").string()));
    REQUIRE(contains(msg, "byte offset 6146"));
    REQUIRE(contains(msg, "100 of 3073 bytes"));
  }
  SECTION("a label byte above 9") {
    auto b = cifar_records(true, 0, 3);
    b[3073] = 10;
    write_bytes(dir / "test_batch.bin", b);
    const std::string msg = error_message(
        [&] { CifarDataset d(cifar_options(dir, VisionSplit::Test, CifarMode::Rgb)); });
    INFO(msg);
    REQUIRE(contains(msg, "test_batch.bin"));
    REQUIRE(contains(msg, "record 1 at byte offset 3073"));
  }
  SECTION("a missing file names its path and where CIFAR-10 comes from") {
    fs::remove(dir / "data_batch_4.bin");
    const std::string msg = error_message(
        [&] { CifarDataset d(cifar_options(dir, VisionSplit::Val, CifarMode::Rgb)); });
    INFO(msg);
    REQUIRE(contains(msg, (dir / "data_batch_4.bin").string()));
    REQUIRE(contains(msg, "not found"));
    REQUIRE(contains(msg, "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"));
  }
  fs::remove_all(dir);
}

// ================================================================== IDX / MNIST

TEST_CASE("idx plain and gzip files give the same pixels and labels, bit for bit", "[cpu][data]") {
  for (const bool gz : {false, true}) {
    INFO("gzip " << gz);
    const fs::path dir = idx_fixture(gz);
    const MnistDataset train(mnist_options(dir, VisionSplit::Train));
    const MnistDataset val(mnist_options(dir, VisionSplit::Val));
    const MnistDataset test(mnist_options(dir, VisionSplit::Test));
    REQUIRE(train.size() == 3);  // first N - val_size records
    REQUIRE(val.size() == 1);    // the last val_size records
    REQUIRE(test.size() == 2);
    REQUIRE(train.name() == "smnist/train");
    auto check = [](const MnistDataset& ds, int split, int first) {
      for (std::int64_t i = 0; i < ds.size(); ++i) {
        const int r = first + static_cast<int>(i);
        const Example e = ds.get(i);
        REQUIRE(e.x.shape() == Shape{784, 1});
        REQUIRE(e.length == 784);
        REQUIRE(e.label == (r * 7 + split) % 10);
        std::vector<float> want(784);
        for (int p = 0; p < 784; ++p) {
          want[static_cast<std::size_t>(p)] = static_cast<float>(idx_pixel(split, r, p) / 255.0);
        }
        REQUIRE(e.x.to_vector<float>() == want);
      }
    };
    check(train, 0, 0);
    check(val, 0, 3);
    check(test, 1, 0);
    MnistOptions all = mnist_options(dir, VisionSplit::Train);
    all.val_size = 0;
    REQUIRE(MnistDataset(all).size() == 4);
    fs::remove_all(dir);
  }
}

TEST_CASE("psmnist bit reversal permutation matches the naive definition", "[cpu][data]") {
  const auto perm = bit_reversal_permutation(784);
  REQUIRE(perm.size() == 784);
  auto sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < 784; ++i) REQUIRE(sorted[static_cast<std::size_t>(i)] == i);
  // Naive: 0..783 sorted by their 10-bit reversal (ceil(log2 784) = 10).
  std::vector<std::int64_t> naive(784);
  for (std::int64_t i = 0; i < 784; ++i) naive[static_cast<std::size_t>(i)] = i;
  auto rev10 = [](std::int64_t v) {
    std::int64_t r = 0;
    for (int b = 0; b < 10; ++b) {
      if (v & (std::int64_t{1} << b)) r |= std::int64_t{1} << (9 - b);
    }
    return r;
  };
  std::sort(naive.begin(), naive.end(), [&](auto a, auto b) { return rev10(a) < rev10(b); });
  REQUIRE(perm == naive);
  REQUIRE(std::vector<std::int64_t>(perm.begin(), perm.begin() + 8) ==
          std::vector<std::int64_t>{0, 512, 256, 768, 128, 640, 384, 64});
  REQUIRE(bit_reversal_permutation(8) == std::vector<std::int64_t>{0, 4, 2, 6, 1, 5, 3, 7});

  const fs::path dir = idx_fixture(false);
  for (const auto kind : {PixelPermutation::BitReversal, PixelPermutation::Random}) {
    MnistOptions o = mnist_options(dir, VisionSplit::Test);
    o.permutation = kind;
    o.permutation_seed = 5;
    const MnistDataset ds(o);
    REQUIRE(ds.name() == "psmnist/test");
    const auto& p = ds.permutation();
    if (kind == PixelPermutation::BitReversal) REQUIRE(p == perm);
    if (kind == PixelPermutation::Random) REQUIRE(p == philox_permutation(784, 5, 0));
    const auto x = ds.get(1).x.to_vector<float>();
    for (int j = 0; j < 784; ++j) {
      REQUIRE(x[static_cast<std::size_t>(j)] ==
              static_cast<float>(idx_pixel(1, 1, static_cast<int>(p[static_cast<std::size_t>(j)])) /
                                 255.0));
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("idx malformed files: bad magic, truncated, count mismatch, missing, bad gzip",
          "[cpu][data]") {
  const fs::path dir = idx_fixture(false);
  const std::string images = (dir / "train-images-idx3-ubyte").string();
  const std::string labels = (dir / "train-labels-idx1-ubyte").string();
  auto load = [&] { MnistDataset d(mnist_options(dir, VisionSplit::Train)); };
  SECTION("bad magic names the file, the expected and the found magic") {
    auto b = idx_images(0, 4);
    b[3] = 0x01;
    write_bytes(images, b);
    const std::string msg = error_message(load);
    INFO(msg);
    REQUIRE(contains(msg, images));
    REQUIRE(contains(msg, "expected 0x00000803"));
    REQUIRE(contains(msg, "got 0x00000801"));
  }
  SECTION("truncated data names the file, the bytes expected and got") {
    auto b = idx_images(0, 4);
    b.erase(b.end() - 5, b.end());  // (resize trips a false -Wstringop-overflow under ASan)
    write_bytes(images, b);
    const std::string msg = error_message(load);
    INFO(msg);
    REQUIRE(contains(msg, images));
    REQUIRE(contains(msg, "truncated"));
    REQUIRE(contains(msg, "needs 3152 bytes"));
    REQUIRE(contains(msg, "got 3147"));
  }
  SECTION("truncated labels inside a gzip file") {
    auto b = idx_labels(0, 4);
    b.pop_back();
    fs::remove(labels);
    write_bytes(labels + ".gz", gzip(b));
    const std::string msg = error_message(load);
    INFO(msg);
    REQUIRE(contains(msg, labels + ".gz"));
    REQUIRE(contains(msg, "needs 12 bytes"));
  }
  SECTION("a cut gzip stream names the file and the byte offset") {
    fs::remove(images);
    auto z = gzip(idx_images(0, 4));
    z.resize(z.size() / 2);
    write_bytes(images + ".gz", z);
    const std::string msg = error_message(load);
    INFO(msg);
    REQUIRE(contains(msg, images + ".gz"));
    REQUIRE(contains(msg, "truncated gzip stream"));
  }
  SECTION("images and labels of different counts") {
    write_bytes(labels, idx_labels(0, 3));
    const std::string msg = error_message(load);
    INFO(msg);
    REQUIRE(contains(msg, "count mismatch"));
    REQUIRE(contains(msg, images));
    REQUIRE(contains(msg, labels));
  }
  SECTION("a missing file names the path and where the data comes from") {
    fs::remove(labels);
    const std::string msg = error_message(load);
    INFO(msg);
    REQUIRE(contains(msg, labels));
    REQUIRE(contains(msg, "not found"));
    REQUIRE(contains(msg, "yann.lecun.com"));
  }
  fs::remove_all(dir);
}

TEST_CASE("sFashion-MNIST from Debian's dataset-fashion-mnist", "[cpu][data]") {
  if (!fs::exists(fs::path(kFashionMnistDefaultFolder) / "train-images-idx3-ubyte.gz")) {
    WARN("skipped: Fashion-MNIST not found in " << kFashionMnistDefaultFolder
                                                << " (apt-get install dataset-fashion-mnist)");
    return;
  }
  MnistOptions o;
  o.variant = MnistVariant::Fashion;
  o.val_size = 0;
  const MnistDataset train(o);
  o.split = VisionSplit::Test;
  const MnistDataset test(o);
  REQUIRE(train.size() == 60000);
  REQUIRE(test.size() == 10000);
  REQUIRE(train.name() == "sfashion/train");
  std::array<std::int64_t, 10> per_class{};
  for (std::int64_t i = 0; i < train.size(); ++i) {
    per_class[static_cast<std::size_t>(train.get(i).label)] += 1;
  }
  for (const std::int64_t c : per_class) REQUIRE(c == 6000);
  // Pixels lie in [0, 1] and span the whole range.
  float lo = 1.0f, hi = 0.0f;
  for (std::int64_t i = 0; i < 200; ++i) {
    for (const float v : test.get(i).x.to_vector<float>()) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  REQUIRE(lo == 0.0f);
  REQUIRE(hi == 1.0f);
}
