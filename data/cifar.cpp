#include "data/cifar.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/philox.h"
#include "data/vision_io.h"

namespace ssm::data {

namespace {

constexpr const char* kOp = "cifar";
constexpr std::int64_t kImageBytes = 3072;  // 3 planes of 32 x 32
constexpr const char* kHint =
    "the CIFAR-10 binary version (folder cifar-10-batches-bin) comes from "
    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
constexpr double kMean[3] = {0.4914, 0.4822, 0.4465};
constexpr double kStd[3] = {0.247, 0.243, 0.261};

// Appends the records of one CIFAR binary file to labels and pixels.
void read_records(const std::string& path, std::vector<std::int64_t>& labels,
                  std::vector<std::uint8_t>& pixels) {
  const std::vector<std::uint8_t> bytes = read_whole_file(path, kOp, kHint);
  const auto size = static_cast<std::int64_t>(bytes.size());
  const std::int64_t rb = CifarDataset::kRecordBytes;
  SSM_CHECK(size > 0, kOp, path, ": empty file, expected records of ", rb,
            " bytes (1 label byte, 3072 pixel bytes)");
  SSM_CHECK(size % rb == 0, kOp, path, ": size ", size, " bytes is not a multiple of the ", rb,
            "-byte record; the record at byte offset ", size / rb * rb, " (record ", size / rb,
            ") is incomplete: ", size % rb, " of ", rb, " bytes");
  const std::int64_t n = size / rb;
  const std::size_t base = pixels.size();
  pixels.resize(base + static_cast<std::size_t>(n * kImageBytes));
  for (std::int64_t r = 0; r < n; ++r) {
    const std::uint8_t* rec = bytes.data() + r * rb;
    SSM_CHECK(rec[0] < 10, kOp, path, ": record ", r, " at byte offset ", r * rb,
              " has label byte ", int{rec[0]}, ", expected 0..9");
    labels.push_back(rec[0]);
    std::memcpy(pixels.data() + base + static_cast<std::size_t>(r * kImageBytes), rec + 1,
                static_cast<std::size_t>(kImageBytes));
  }
}

}  // namespace

CifarMode parse_cifar_mode(const std::string& s) {
  if (s == "rgb") return CifarMode::Rgb;
  if (s == "gray") return CifarMode::Gray;
  if (s == "tokens") return CifarMode::Tokens;
  fail(kOp, "unknown mode '", s, "', expected rgb, gray or tokens");
}

const char* cifar_mode_name(CifarMode m) {
  switch (m) {
    case CifarMode::Rgb: return "rgb";
    case CifarMode::Gray: return "gray";
    case CifarMode::Tokens: return "tokens";
  }
  return "?";
}

CifarAugment cifar_augment_draw(std::uint64_t seed, std::int64_t epoch, std::int64_t index) {
  const Philox4 r =
      philox_block(seed, static_cast<std::uint32_t>(epoch), static_cast<std::uint64_t>(index));
  CifarAugment a;
  a.oy = static_cast<int>(r.v[0] % 9);
  a.ox = static_cast<int>(r.v[1] % 9);
  a.flip = (r.v[2] & 1u) != 0;
  return a;
}

void cifar_augment_apply(const std::uint8_t* in, const CifarAugment& a, std::uint8_t* out) {
  SSM_CHECK(a.oy >= 0 && a.oy <= 8 && a.ox >= 0 && a.ox <= 8, kOp,
            "crop offsets must lie in 0..8, got (", a.oy, ", ", a.ox, ")");
  for (int c = 0; c < 3; ++c) {
    for (int r = 0; r < 32; ++r) {
      for (int col = 0; col < 32; ++col) {
        // out(r, col) = crop(r, flip ? 31 - col : col); crop(r, k) = in(r + oy - 4, k + ox - 4)
        const int k = a.flip ? 31 - col : col;
        const int sr = r + a.oy - 4, sc = k + a.ox - 4;
        const bool inside = sr >= 0 && sr < 32 && sc >= 0 && sc < 32;
        out[c * 1024 + r * 32 + col] = inside ? in[c * 1024 + sr * 32 + sc] : std::uint8_t{0};
      }
    }
  }
}

CifarDataset::CifarDataset(const CifarOptions& o) : o_(o) {
  namespace fs = std::filesystem;
  SSM_CHECK(!o.folder.empty(), kOp, "no folder given: expected the folder of ",
            "data_batch_1.bin ... data_batch_5.bin and test_batch.bin; ", kHint);
  SSM_CHECK(!o.augment || o.split == VisionSplit::Train, kOp,
            "augment is for the train split only, got split ", vision_split_name(o.split));
  if (o.split == VisionSplit::Test) {
    read_records((fs::path(o.folder) / "test_batch.bin").string(), labels_, pixels_);
    source_.resize(labels_.size());
    for (std::size_t i = 0; i < source_.size(); ++i) source_[i] = static_cast<std::int64_t>(i);
    return;
  }
  for (int b = 1; b <= 5; ++b) {
    const std::string file = "data_batch_" + std::to_string(b) + ".bin";
    read_records((fs::path(o.folder) / file).string(), labels_, pixels_);
  }
  const auto n = static_cast<std::int64_t>(labels_.size());
  SSM_CHECK(o.val_size >= 0 && o.val_size < n, kOp, "val_size ", o.val_size, " must lie in [0, ", n,
            ") for the ", n, " training records in ", o.folder);
  SSM_CHECK(o.split == VisionSplit::Train || o.val_size > 0, kOp,
            "the val split is empty: val_size is 0");
  const std::vector<std::int64_t> perm = philox_permutation(n, o.split_seed, 0);
  std::vector<char> in_val(static_cast<std::size_t>(n), 0);
  for (std::int64_t k = 0; k < o.val_size; ++k) in_val[static_cast<std::size_t>(perm[k])] = 1;
  const char want = o.split == VisionSplit::Val ? 1 : 0;
  // Keeps the wanted records in ascending order, compacting in place.
  std::size_t kept = 0;
  for (std::int64_t r = 0; r < n; ++r) {
    if (in_val[static_cast<std::size_t>(r)] != want) continue;
    if (static_cast<std::int64_t>(kept) != r) {
      labels_[kept] = labels_[static_cast<std::size_t>(r)];
      std::memmove(pixels_.data() + kept * kImageBytes, pixels_.data() + r * kImageBytes,
                   static_cast<std::size_t>(kImageBytes));
    }
    source_.push_back(r);
    ++kept;
  }
  labels_.resize(kept);
  labels_.shrink_to_fit();
  pixels_.resize(kept * kImageBytes);
  pixels_.shrink_to_fit();
}

std::int64_t CifarDataset::d_input() const {
  switch (o_.mode) {
    case CifarMode::Rgb: return 3;
    case CifarMode::Gray: return 1;
    case CifarMode::Tokens: return 1;
  }
  return 0;
}

std::string CifarDataset::name() const {
  return std::string("scifar/") + cifar_mode_name(o_.mode) + "/" + vision_split_name(o_.split);
}

std::int64_t CifarDataset::source_index(std::int64_t i) const {
  SSM_CHECK(i >= 0 && i < size(), kOp, "index ", i, " outside [0, ", size(), ")");
  return source_[static_cast<std::size_t>(i)];
}

const std::uint8_t* CifarDataset::pixels(std::int64_t i) const {
  SSM_CHECK(i >= 0 && i < size(), kOp, "index ", i, " outside [0, ", size(), ")");
  return pixels_.data() + i * kImageBytes;
}

Example CifarDataset::get(std::int64_t i, std::int64_t epoch) const {
  const std::uint8_t* px = pixels(i);
  std::uint8_t augmented[kImageBytes];
  if (o_.augment) {
    SSM_CHECK(epoch >= 0 && epoch <= 0xFFFFFFFFll, kOp, "epoch ", epoch, " outside [0, 2^32)");
    cifar_augment_apply(px, cifar_augment_draw(o_.augment_seed, epoch, i), augmented);
    px = augmented;
  }
  const std::uint8_t* red = px;
  const std::uint8_t* green = px + kPixels;
  const std::uint8_t* blue = px + 2 * kPixels;
  Example e;
  e.label = labels_[static_cast<std::size_t>(i)];
  e.length = kPixels;
  switch (o_.mode) {
    case CifarMode::Rgb: {
      e.x = Tensor::empty({kPixels, 3}, DType::Float32);  // (L, 3)
      float* x = e.x.data<float>();
      for (std::int64_t p = 0; p < kPixels; ++p) {
        for (int c = 0; c < 3; ++c) {
          x[p * 3 + c] = static_cast<float>((px[c * kPixels + p] / 255.0 - kMean[c]) / kStd[c]);
        }
      }
      break;
    }
    case CifarMode::Gray: {
      e.x = Tensor::empty({kPixels, 1}, DType::Float32);  // (L, 1)
      float* x = e.x.data<float>();
      for (std::int64_t p = 0; p < kPixels; ++p) {
        const double y = 0.299 * red[p] + 0.587 * green[p] + 0.114 * blue[p];
        x[p] = static_cast<float>((y / 255.0 - 122.6 / 255.0) / (61.0 / 255.0));
      }
      break;
    }
    case CifarMode::Tokens: {
      e.x = Tensor::empty({kPixels}, DType::Int64);  // (L)
      auto* x = e.x.data<std::int64_t>();
      for (std::int64_t p = 0; p < kPixels; ++p) {
        const double y = 0.299 * red[p] + 0.587 * green[p] + 0.114 * blue[p];
        x[p] = std::clamp<std::int64_t>(std::lround(y), 0, 255);
      }
      break;
    }
  }
  return e;
}

}  // namespace ssm::data
