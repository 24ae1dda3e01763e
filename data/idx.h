#pragma once
// IDX files (the MNIST format) and the sequential MNIST datasets.
//
// An IDX file is a big-endian header, magic 0x00000803 (unsigned bytes, 3
// dimensions) with N, rows, cols for images or 0x00000801 (unsigned bytes, 1
// dimension) with N for labels, followed by exactly the N*rows*cols (or N)
// data bytes. A file whose first two bytes are the gzip magic 1f 8b (the
// usual .gz downloads) is inflated with zlib first; the checks then apply
// to the inflated bytes.
//
// Datasets: the 28 x 28 images as sequences of their 784 pixels, row-major,
// x (784, 1) float32 = pixel / 255 (exact division, rounded to float32).
//   smnist:   MNIST in pixel order
//   psmnist:  MNIST with the pixels in a fixed permutation: output position j
//             holds pixel perm[j]
//   sfashion: Fashion-MNIST in pixel order (a permutation may be set too)
// Permutations:
//   bit_reversal: as the S4 code (bitreversal_permutation): the indices
//     0..783 sorted by the value of their lowest m = ceil(log2(784)) = 10 bits
//     read in reverse order; equivalently, the bit reversal permutation of
//     0..1023 with the entries >= 784 removed.
//   random: philox_permutation(784, permutation_seed, stream 0) (dataset.h).
// Splits of the training file (N = 60000 records): train is its first
// N - val_size records, val its last val_size (the tail, not a random draw);
// val_size = 0 makes train the whole file (and the val split an error).
// test is the t10k files.
//
// File names in the folder: train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each either plain or with
// ".gz" appended (the plain file is used when both exist).
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/vision_io.h"

namespace ssm::data {

struct IdxImages {
  std::int64_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // (count, rows, cols)
};
struct IdxLabels {
  std::vector<std::uint8_t> labels;  // (count)
};

// The bytes of a file, inflated when it is gzip (one read of the file).
std::vector<std::uint8_t> read_maybe_gzip(const std::string& path, const std::string& hint);
IdxImages read_idx_images(const std::string& path, const std::string& hint = "");
IdxLabels read_idx_labels(const std::string& path, const std::string& hint = "");

enum class MnistVariant { Mnist, Fashion };
enum class PixelPermutation { None, BitReversal, Random };
PixelPermutation parse_pixel_permutation(const std::string& s);  // none | bit_reversal | random

// The S4 bit reversal permutation of 0..n-1 (see above).
std::vector<std::int64_t> bit_reversal_permutation(std::int64_t n);

// Default folder of Fashion-MNIST: Debian's dataset-fashion-mnist package.
inline constexpr const char* kFashionMnistDefaultFolder = "/usr/share/datasets/fashion-mnist";

struct MnistOptions {
  MnistVariant variant = MnistVariant::Mnist;
  // The folder of the four IDX files. Empty: Fashion-MNIST uses
  // kFashionMnistDefaultFolder; MNIST has no default (an error).
  std::string folder;
  VisionSplit split = VisionSplit::Train;
  std::int64_t val_size = 5000;  // the tail of the training file
  PixelPermutation permutation = PixelPermutation::None;
  std::uint64_t permutation_seed = 0;  // random permutation only
};

class MnistDataset : public Dataset {
 public:
  static constexpr std::int64_t kPixels = 784;

  explicit MnistDataset(const MnistOptions& options);
  std::int64_t size() const override { return static_cast<std::int64_t>(labels_.size()); }
  Example get(std::int64_t i) const override;
  std::int64_t num_classes() const override { return 10; }
  std::int64_t d_input() const override { return 1; }
  std::string name() const override;
  // perm[j]: the pixel at sequence position j (identity without permutation).
  const std::vector<std::int64_t>& permutation() const { return perm_; }
  // The 784 raw pixel bytes of example i, row-major (unpermuted).
  const std::uint8_t* pixels(std::int64_t i) const;

 private:
  MnistOptions o_;
  std::vector<std::uint8_t> pixels_;  // (N, 784)
  std::vector<std::uint8_t> labels_;  // (N)
  std::vector<std::int64_t> perm_;    // (784)
};

}  // namespace ssm::data
