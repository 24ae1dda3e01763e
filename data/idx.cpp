#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace ssm::data {

namespace {

constexpr const char* kOp = "idx";
constexpr std::uint32_t kImagesMagic = 0x00000803u;
constexpr std::uint32_t kLabelsMagic = 0x00000801u;

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::string hex32(std::uint32_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xFu];
  return s;
}

// Inflates all gzip members of `in` (the bytes of `path`).
std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& in, const std::string& path) {
  std::vector<std::uint8_t> out;
  out.resize(std::max<std::size_t>(in.size() * 4, 1 << 16));
  std::size_t pos = 0, produced = 0;
  while (pos < in.size()) {
    z_stream zs{};
    // 15 + 16: a gzip wrapper with a window of up to 32 KiB.
    SSM_CHECK(inflateInit2(&zs, 15 + 16) == Z_OK, kOp, path, ": zlib inflateInit2 failed");
    zs.next_in = const_cast<Bytef*>(in.data() + pos);
    zs.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size() - pos, 1u << 30));
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      if (produced == out.size()) out.resize(out.size() * 2);
      zs.next_out = out.data() + produced;
      zs.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - produced, 1u << 30));
      const uInt before = zs.avail_out;
      rc = inflate(&zs, Z_NO_FLUSH);
      produced += before - zs.avail_out;
      if (rc == Z_STREAM_END) break;
      if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
        const std::size_t at = pos + zs.total_in;
        inflateEnd(&zs);
        fail(kOp, path, ": truncated gzip stream, the compressed data ends at byte offset ", at,
             " before the end of the gzip member that starts at byte offset ", pos);
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        const std::string msg = zs.msg ? zs.msg : "error " + std::to_string(rc);
        const std::size_t at = pos + zs.total_in;
        inflateEnd(&zs);
        fail(kOp, path, ": corrupt gzip data near byte offset ", at, ": ", msg);
      }
    }
    pos += zs.total_in;
    inflateEnd(&zs);
  }
  out.resize(produced);
  return out;
}

}  // namespace

std::vector<std::uint8_t> read_maybe_gzip(const std::string& path, const std::string& hint) {
  std::vector<std::uint8_t> bytes = read_whole_file(path, kOp, hint);
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) return gunzip(bytes, path);
  return bytes;
}

IdxImages read_idx_images(const std::string& path, const std::string& hint) {
  const std::vector<std::uint8_t> b = read_maybe_gzip(path, hint);
  SSM_CHECK(b.size() >= 16, kOp, path, ": expected a 16-byte IDX image header, got ", b.size(),
            " bytes");
  const std::uint32_t magic = be32(b.data());
  SSM_CHECK(magic == kImagesMagic, kOp, path, ": bad magic, expected ", hex32(kImagesMagic),
            " (IDX images, unsigned bytes, 3 dimensions), got ", hex32(magic));
  IdxImages im;
  im.count = be32(b.data() + 4);
  im.rows = be32(b.data() + 8);
  im.cols = be32(b.data() + 12);
  const std::int64_t want = 16 + im.count * im.rows * im.cols;
  const auto got = static_cast<std::int64_t>(b.size());
  SSM_CHECK(got == want, kOp, path, ": ", got < want ? "truncated" : "trailing bytes",
            ", the header (", im.count, " images of ", im.rows, " x ", im.cols, ") needs ", want,
            " bytes (16 header + data), got ", got);
  im.pixels.assign(b.begin() + 16, b.end());
  return im;
}

IdxLabels read_idx_labels(const std::string& path, const std::string& hint) {
  const std::vector<std::uint8_t> b = read_maybe_gzip(path, hint);
  SSM_CHECK(b.size() >= 8, kOp, path, ": expected an 8-byte IDX label header, got ", b.size(),
            " bytes");
  const std::uint32_t magic = be32(b.data());
  SSM_CHECK(magic == kLabelsMagic, kOp, path, ": bad magic, expected ", hex32(kLabelsMagic),
            " (IDX labels, unsigned bytes, 1 dimension), got ", hex32(magic));
  const std::int64_t count = be32(b.data() + 4);
  const std::int64_t want = 8 + count;
  const auto got = static_cast<std::int64_t>(b.size());
  SSM_CHECK(got == want, kOp, path, ": ", got < want ? "truncated" : "trailing bytes",
            ", the header (", count, " labels) needs ", want, " bytes (8 header + data), got ",
            got);
  IdxLabels l;
  l.labels.assign(b.begin() + 8, b.end());
  return l;
}

PixelPermutation parse_pixel_permutation(const std::string& s) {
  if (s == "none") return PixelPermutation::None;
  if (s == "bit_reversal") return PixelPermutation::BitReversal;
  if (s == "random") return PixelPermutation::Random;
  fail("mnist", "unknown permutation '", s, "', expected none, bit_reversal or random");
}

std::vector<std::int64_t> bit_reversal_permutation(std::int64_t n) {
  SSM_CHECK(n >= 1, "mnist", "bit_reversal_permutation needs n >= 1, got ", n);
  int m = 0;
  while ((std::int64_t{1} << m) < n) ++m;
  // Walks k = 0 .. 2^m - 1 and keeps reverse(k) when it is below n.
  std::vector<std::int64_t> perm;
  perm.reserve(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < (std::int64_t{1} << m); ++k) {
    std::int64_t r = 0;
    for (int bit = 0; bit < m; ++bit) r |= ((k >> bit) & 1) << (m - 1 - bit);
    if (r < n) perm.push_back(r);
  }
  return perm;
}

namespace {

// folder/name, or folder/name.gz when only that exists (checks happen on read).
std::string idx_path(const std::string& folder, const std::string& name, const std::string& hint) {
  namespace fs = std::filesystem;
  const fs::path plain = fs::path(folder) / name;
  const fs::path gz = fs::path(folder) / (name + ".gz");
  std::error_code ec;
  if (!fs::exists(plain, ec) && fs::exists(gz, ec)) return gz.string();
  if (!fs::exists(plain, ec)) {
    fail("mnist", plain.string(), " not found (nor ", gz.string(), "): expected the IDX file ",
         name, " there; ", hint);
  }
  return plain.string();
}

}  // namespace

MnistDataset::MnistDataset(const MnistOptions& o) : o_(o) {
  const bool fashion = o.variant == MnistVariant::Fashion;
  const std::string hint =
      fashion ? "Fashion-MNIST comes from https://github.com/zalandoresearch/fashion-mnist or, "
                "on Debian, apt-get install dataset-fashion-mnist (installs it in " +
                    std::string(kFashionMnistDefaultFolder) + ")"
              : "MNIST comes from http://yann.lecun.com/exdb/mnist/ (the four *-ubyte.gz files)";
  std::string folder = o.folder;
  if (folder.empty() && fashion) folder = kFashionMnistDefaultFolder;
  SSM_CHECK(!folder.empty(), "mnist", "no folder given: expected the folder of ",
            "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
            "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]; ",
            hint);
  const std::string prefix = o.split == VisionSplit::Test ? "t10k" : "train";
  const std::string images_path = idx_path(folder, prefix + "-images-idx3-ubyte", hint);
  const std::string labels_path = idx_path(folder, prefix + "-labels-idx1-ubyte", hint);
  IdxImages im = read_idx_images(images_path, hint);
  IdxLabels lb = read_idx_labels(labels_path, hint);
  SSM_CHECK(im.rows == 28 && im.cols == 28, "mnist", images_path, ": expected 28 x 28 images, got ",
            im.rows, " x ", im.cols);
  const auto n = static_cast<std::int64_t>(lb.labels.size());
  SSM_CHECK(im.count == n, "mnist", "count mismatch: ", images_path, " holds ", im.count,
            " images but ", labels_path, " holds ", n, " labels");
  for (std::int64_t r = 0; r < n; ++r) {
    SSM_CHECK(lb.labels[static_cast<std::size_t>(r)] < 10, "mnist", labels_path, ": label ", r,
              " at byte offset ", 8 + r, " (of the inflated data) is ",
              int{lb.labels[static_cast<std::size_t>(r)]}, ", expected 0..9");
  }
  std::int64_t first = 0, count = n;
  if (o.split != VisionSplit::Test) {
    SSM_CHECK(o.val_size >= 0 && o.val_size < n, "mnist", "val_size ", o.val_size,
              " must lie in [0, ", n, ") for the ", n, " records of ", images_path);
    SSM_CHECK(o.split == VisionSplit::Train || o.val_size > 0, "mnist",
              "the val split is empty: val_size is 0");
    first = o.split == VisionSplit::Train ? 0 : n - o.val_size;
    count = o.split == VisionSplit::Train ? n - o.val_size : o.val_size;
  }
  pixels_.assign(im.pixels.begin() + first * kPixels,
                 im.pixels.begin() + (first + count) * kPixels);
  labels_.assign(lb.labels.begin() + first, lb.labels.begin() + first + count);
  switch (o.permutation) {
    case PixelPermutation::None:
      perm_.resize(kPixels);
      for (std::int64_t j = 0; j < kPixels; ++j) perm_[static_cast<std::size_t>(j)] = j;
      break;
    case PixelPermutation::BitReversal: perm_ = bit_reversal_permutation(kPixels); break;
    case PixelPermutation::Random:
      perm_ = philox_permutation(kPixels, o.permutation_seed, 0);
      break;
  }
}

const std::uint8_t* MnistDataset::pixels(std::int64_t i) const {
  SSM_CHECK(i >= 0 && i < size(), "mnist", "index ", i, " outside [0, ", size(), ")");
  return pixels_.data() + i * kPixels;
}

Example MnistDataset::get(std::int64_t i) const {
  const std::uint8_t* px = pixels(i);
  Example e;
  e.x = Tensor::empty({kPixels, 1}, DType::Float32);  // (L, 1)
  float* x = e.x.data<float>();
  for (std::int64_t j = 0; j < kPixels; ++j) {
    x[j] = static_cast<float>(px[perm_[static_cast<std::size_t>(j)]] / 255.0);
  }
  e.label = labels_[static_cast<std::size_t>(i)];
  e.length = kPixels;
  return e;
}

std::string MnistDataset::name() const {
  std::string base;
  if (o_.variant == MnistVariant::Fashion) {
    base = o_.permutation == PixelPermutation::None ? "sfashion" : "psfashion";
  } else {
    base = o_.permutation == PixelPermutation::None ? "smnist" : "psmnist";
  }
  return base + "/" + vision_split_name(o_.split);
}

}  // namespace ssm::data
