#include "data/registry.h"

#include <sstream>

#include "data/cifar.h"
#include "data/idx.h"
#include "data/listops.h"
#include "data/lra_text.h"
#include "data/pathfinder.h"
#include "data/synthetic.h"
#include "data/templates.h"

namespace ssm::data {

namespace {

const char* kSplits[] = {"train", "val", "test"};

std::string require_path(const DataConfig& c, const char* what) {
  SSM_CHECK(!c.path.empty(), "data", "dataset '", c.name, "' needs data.path: ", what);
  return c.path;
}

Splits cifar(const DataConfig& c, CifarMode mode) {
  Splits out;
  std::shared_ptr<const Dataset>* dst[] = {&out.train, &out.val, &out.test};
  for (int k = 0; k < 3; ++k) {
    CifarOptions o;
    o.folder = require_path(c,
                            "the folder with data_batch_1.bin ... data_batch_5.bin and "
                            "test_batch.bin (CIFAR-10 binary version)");
    o.split = parse_vision_split(kSplits[k]);
    o.mode = mode;
    if (c.val_size > 0) o.val_size = c.val_size;
    o.split_seed = c.seed;
    o.augment = c.augment && k == 0;
    *dst[k] = std::make_shared<CifarDataset>(o);
  }
  return out;
}

Splits mnist(const DataConfig& c, MnistVariant variant, bool permuted) {
  Splits out;
  std::shared_ptr<const Dataset>* dst[] = {&out.train, &out.val, &out.test};
  for (int k = 0; k < 3; ++k) {
    MnistOptions o;
    o.variant = variant;
    o.folder = c.path;
    o.split = parse_vision_split(kSplits[k]);
    if (c.val_size > 0) o.val_size = c.val_size;
    o.permutation = permuted ? parse_pixel_permutation(c.permutation) : PixelPermutation::None;
    o.permutation_seed = c.seed;
    *dst[k] = std::make_shared<MnistDataset>(o);
  }
  return out;
}

template <class D, class O>
Splits lra(const DataConfig& c, O o, const char* what) {
  const std::string folder = require_path(c, what);
  if (c.max_len > 0) o.max_len = c.max_len;
  o.truncate = c.truncate;
  return {std::make_shared<D>(folder, "train", o), std::make_shared<D>(folder, "val", o),
          std::make_shared<D>(folder, "test", o)};
}

Splits pathfinder(const DataConfig& c, std::int64_t resolution) {
  PathfinderOptions o;
  o.root = require_path(c, resolution == 32 ? "a folder holding imgs/ and metadata/ "
                                              "(lra_release/pathfinder32/curv_contour_length_14)"
                                            : "a folder holding imgs/ and metadata/ "
                                              "(lra_release/pathfinder128/curv_contour_length_14)");
  o.resolution = resolution;
  o.eager = resolution <= 32;  // Path-X: images are read as they are used
  return {std::make_shared<PathfinderDataset>(o, 0), std::make_shared<PathfinderDataset>(o, 1),
          std::make_shared<PathfinderDataset>(o, 2)};
}

// A synthetic task generated on the fly: train_size / val_size (default
// test_size) / test_size examples, seeded by data.seed.
template <class D, class O>
Splits synthetic(const DataConfig& c, const O& o) {
  const std::int64_t val = c.val_size > 0 ? c.val_size : c.test_size;
  return {std::make_shared<D>(o, c.train_size, 0), std::make_shared<D>(o, val, 1),
          std::make_shared<D>(o, c.test_size, 2)};
}

}  // namespace

std::vector<std::string> dataset_names() {
  return {"templates",       "scifar",
          "lra_image",       "smnist",
          "psmnist",         "sfashion",
          "psfashion",       "lra_listops",
          "lra_text",        "lra_retrieval",
          "pathfinder",      "pathx",
          "copying",         "selective_copying",
          "induction_heads", "associative_recall",
          "adding"};
}

Splits make_datasets(const DataConfig& c) {
  if (c.name == "templates") {
    const TemplatesOptions o{c.num_classes, c.seq_len, c.d_input, c.noise, c.seed};
    return {std::make_shared<TemplatesDataset>(o, c.train_size, 0),
            std::make_shared<TemplatesDataset>(o, c.val_size > 0 ? c.val_size : 256, 1),
            std::make_shared<TemplatesDataset>(o, c.test_size, 2)};
  }
  if (c.name == "scifar") return cifar(c, parse_cifar_mode(c.mode));
  if (c.name == "lra_image") return cifar(c, CifarMode::Gray);  // LRA Image: grayscale sCIFAR
  if (c.name == "smnist") return mnist(c, MnistVariant::Mnist, false);
  if (c.name == "psmnist") return mnist(c, MnistVariant::Mnist, true);
  if (c.name == "sfashion") return mnist(c, MnistVariant::Fashion, false);
  if (c.name == "psfashion") return mnist(c, MnistVariant::Fashion, true);
  if (c.name == "lra_listops") {
    return lra<ListopsDataset>(c, ListopsOptions{},
                               "the folder with basic_{train,val,test}.tsv "
                               "(lra_release/listops-1000)");
  }
  if (c.name == "lra_text") {
    LraTextOptions o;
    o.val_size = c.val_size;
    o.val_seed = c.seed;
    return lra<LraTextDataset>(c, o,
                               "the folder with train.tsv and test.tsv (see data/lra_text.h)");
  }
  if (c.name == "lra_retrieval") {
    return lra<LraRetrievalDataset>(c, LraRetrievalOptions{},
                                    "the folder with new_aan_pairs.{train,eval,test}.tsv "
                                    "(lra_release/tsv_data)");
  }
  if (c.name == "pathfinder") return pathfinder(c, 32);
  if (c.name == "pathx") return pathfinder(c, 128);
  if (c.name == "copying") {
    CopyingOptions o;
    o.num_tokens = c.num_tokens;
    o.delay = c.seq_len;
    o.vocab_size = c.vocab_size;
    o.seed = c.seed;
    return synthetic<CopyingDataset>(c, o);
  }
  if (c.name == "selective_copying") {
    SelectiveCopyingOptions o;
    o.seq_len = c.seq_len;
    o.vocab_size = c.vocab_size;
    o.num_tokens = c.num_tokens;
    o.seed = c.seed;
    return synthetic<SelectiveCopyingDataset>(c, o);
  }
  if (c.name == "induction_heads") {
    InductionHeadsOptions o;
    o.seq_len = c.seq_len;
    o.test_seq_len = c.max_len;
    o.min_len = c.min_len;
    o.vocab_size = c.vocab_size;
    o.seed = c.seed;
    return synthetic<InductionHeadsDataset>(c, o);
  }
  if (c.name == "associative_recall") {
    AssociativeRecallOptions o;
    o.num_pairs = c.num_tokens;
    o.num_keys = c.vocab_size;
    o.num_values = c.vocab_size;
    o.seed = c.seed;
    return synthetic<AssociativeRecallDataset>(c, o);
  }
  if (c.name == "adding") {
    AddingOptions o;
    o.seq_len = c.seq_len;
    o.num_bins = c.num_classes;
    o.seed = c.seed;
    return synthetic<AddingDataset>(c, o);
  }
  std::ostringstream known;
  for (const auto& n : dataset_names()) known << ' ' << n;
  fail("data", "unknown dataset '", c.name, "'; known:", known.str());
}

}  // namespace ssm::data
