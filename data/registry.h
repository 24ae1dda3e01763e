#pragma once
// Datasets by name, with their train / val / test splits.
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace ssm::data {

// The `data:` section of a training config (train/config.h reads it).
struct DataConfig {
  std::string name = "templates";  // dataset (dataset_names())
  std::string path;                // data folder for file datasets; empty: the dataset's default
  std::int64_t seq_len = 32;
  std::int64_t d_input = 4;  // features per position (generated tasks)
  std::int64_t num_classes = 4;
  std::int64_t train_size = 1024;  // generated tasks: examples per split
  std::int64_t val_size = 256;
  std::int64_t test_size = 256;
  double noise = 1.0;         // generated tasks: noise standard deviation
  std::uint64_t seed = 1234;  // generated tasks: which data set is generated
};

struct Splits {
  std::shared_ptr<const Dataset> train, val, test;
};

// Builds the splits of config.name. Throws ssm::Error listing the known
// names for an unknown one, or naming the file for file datasets.
Splits make_datasets(const DataConfig& config);
std::vector<std::string> dataset_names();

}  // namespace ssm::data
