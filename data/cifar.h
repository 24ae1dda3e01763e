#pragma once
// sCIFAR: CIFAR-10 images as sequences of their 1024 pixels in row-major
// order, read from the binary version of CIFAR-10
// (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz), whose folder
// cifar-10-batches-bin holds data_batch_1.bin ... data_batch_5.bin and
// test_batch.bin. A record is 1 label byte and 3072 pixel bytes: the red
// plane (1024), then green, then blue, each row-major 32 x 32. A file may
// hold any number of whole records (10000 in the real files); its size must
// be a multiple of 3073 bytes.
//
// Splits: the records of data_batch_1..5, in file order, are the training
// records 0..N-1 (N = 50000). A permutation of them from the DataLoader's
// Fisher-Yates scheme with Philox(split_seed, stream 0) (dataset.h) puts
// its first val_size entries in val and the rest in train; each split keeps
// its records in ascending record order. test is test_batch.bin.
//
// Modes (values computed in double, rounded to float32 once):
//   rgb:    x (1024, 3), x[p, c] = (v / 255 - mean[c]) / std[c],
//           mean (0.4914, 0.4822, 0.4465), std (0.247, 0.243, 0.261)
//   gray:   LRA Image: luma y = 0.299 R + 0.587 G + 0.114 B on 0..255 values,
//           x (1024, 1) = (y / 255 - 122.6 / 255) / (61.0 / 255)
//   tokens: x (1024) int64 = the luma y rounded to the nearest integer,
//           halves away from zero (std::lround), in 0..255; vocab_size 256
//
// Augmentation (train split only, off by default): random crop with zero
// padding 4 and a random horizontal flip, applied to the pixel bytes before
// the mode's transform (padding pixels are byte 0, as with torchvision's
// RandomCrop(32, padding=4) before ToTensor/Normalize). The draw for example
// i in epoch e is Philox(augment_seed, stream e) block i:
//   oy = lane 0 mod 9, ox = lane 1 mod 9 (crop offsets into the padded
//   40 x 40 image, so a shift of oy - 4 rows and ox - 4 columns),
//   flip = lane 2 & 1.
// get(i) uses the epoch last given to set_epoch (0 at first); get(i, e)
// names it explicitly. Both are const and the same (seed, epoch, i) always
// gives the same image.
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/vision_io.h"

namespace ssm::data {

enum class CifarMode { Rgb, Gray, Tokens };
CifarMode parse_cifar_mode(const std::string& s);  // "rgb" | "gray" | "tokens"
const char* cifar_mode_name(CifarMode m);

struct CifarOptions {
  std::string folder;  // holds data_batch_{1..5}.bin and test_batch.bin
  VisionSplit split = VisionSplit::Train;
  CifarMode mode = CifarMode::Rgb;
  std::int64_t val_size = 5000;  // training records held out for val
  std::uint64_t split_seed = 42;
  bool augment = false;  // train split only (an error for val / test)
  std::uint64_t augment_seed = 0;
};

// One augmentation draw (see above).
struct CifarAugment {
  int oy = 4, ox = 4;  // crop offsets in the zero-padded 40 x 40 image, 0..8
  bool flip = false;
};
CifarAugment cifar_augment_draw(std::uint64_t seed, std::int64_t epoch, std::int64_t index);
// Applies a draw to one image of 3072 bytes (3 planes of 32 x 32) into out.
void cifar_augment_apply(const std::uint8_t* in, const CifarAugment& a, std::uint8_t* out);

class CifarDataset : public Dataset {
 public:
  static constexpr std::int64_t kRecordBytes = 3073;
  static constexpr std::int64_t kPixels = 1024;

  explicit CifarDataset(const CifarOptions& options);
  std::int64_t size() const override { return static_cast<std::int64_t>(labels_.size()); }
  Example get(std::int64_t i) const override { return get(i, epoch_.load()); }
  Example get(std::int64_t i, std::int64_t epoch) const override;
  std::int64_t num_classes() const override { return 10; }
  std::int64_t d_input() const override;
  std::int64_t vocab_size() const override { return o_.mode == CifarMode::Tokens ? 256 : 0; }
  std::string name() const override;

  // The epoch whose augmentation get(i) draws (no effect without augment).
  void set_epoch(std::int64_t epoch) { epoch_.store(epoch); }
  // Example i's record: for train / val its index among the 50000 training
  // records (file-major), for test its index in test_batch.bin.
  std::int64_t source_index(std::int64_t i) const;
  // The 3072 raw pixel bytes of example i (before augmentation).
  const std::uint8_t* pixels(std::int64_t i) const;

 private:
  CifarOptions o_;
  std::vector<std::uint8_t> pixels_;  // (N, 3, 32, 32) bytes
  std::vector<std::int64_t> labels_;  // (N)
  std::vector<std::int64_t> source_;  // (N)
  std::atomic<std::int64_t> epoch_{0};
};

}  // namespace ssm::data
