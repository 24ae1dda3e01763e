#pragma once
// Datasets by name, with their train / val / test splits.
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace ssm::data {

// The `data:` section of a training config (train/config.h reads it). Keys
// that a dataset does not use are ignored by it.
struct DataConfig {
  std::string name = "templates";  // dataset (dataset_names())
  // File datasets: the folder of the published files. Empty: the dataset's
  // default (sfashion: /usr/share/datasets/fashion-mnist; others need it).
  std::string path;
  // Generated tasks (templates, synthetic): sizes and shapes.
  std::int64_t seq_len = 32;
  std::int64_t d_input = 4;  // features per position
  std::int64_t num_classes = 4;
  std::int64_t train_size = 1024;  // examples per split
  std::int64_t val_size = 0;       // 0: the dataset's default (templates 256, scifar and
                                   // MNIST 5000 held out of train, lra_text: the test set)
  std::int64_t test_size = 256;
  double noise = 1.0;         // templates: noise standard deviation
  std::uint64_t seed = 1234;  // which data set is generated; scifar's val split
  // File datasets.
  std::string mode = "rgb";                  // scifar: rgb | gray | tokens
  std::string permutation = "bit_reversal";  // psmnist, psfashion: bit_reversal | random
  bool augment = false;                      // scifar train split: random crop + flip
  std::int64_t min_len =
      0;  // induction_heads: train lengths uniform in [min_len, seq_len]; 0: fixed
  std::int64_t max_len = 0;  // LRA text tasks: longest accepted sequence; 0: the task's
  bool truncate = false;     // LRA text tasks: cut longer sequences instead of failing
  // Synthetic tasks (data/synthetic.h), generated on the fly from data.seed:
  // seq_len is the sequence length (copying: the delay; induction_heads:
  // train and val, with max_len the test length when > 0), num_classes the
  // adding problem's bins, vocab_size the token vocabulary (associative_recall:
  // keys and values each).
  std::int64_t vocab_size = 16;
  std::int64_t num_tokens = 16;  // tokens to copy; associative_recall: key-value pairs
  // The loader.
  std::string pad = "longest";  // none | longest | fixed (to pad_length)
  std::int64_t pad_length = 0;
  std::int64_t prefetch = 2;  // batches prepared ahead on a worker thread; 0: off
};

struct Splits {
  std::shared_ptr<const Dataset> train, val, test;
};

// Builds the splits of config.name. Throws ssm::Error listing the known
// names for an unknown one, or naming the file for file datasets.
Splits make_datasets(const DataConfig& config);
std::vector<std::string> dataset_names();

}  // namespace ssm::data
