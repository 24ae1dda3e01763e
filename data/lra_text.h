#pragma once
// LRA Text (IMDB sentiment at byte level) and LRA Retrieval (ACL Anthology
// Network document pairs at byte level), after the Long Range Arena (Tay et
// al. 2021).
//
// Byte vocabulary (both tasks, vocab_size 257): 0 pad, byte b -> token b + 1.
// Every byte of the text is a token (no lower-casing, no unicode handling).
// Examples hold the unpadded sequences as (L) int64; padding is the
// DataLoader's job.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/token_store.h"

namespace ssm::data {

constexpr std::int64_t kByteVocabSize = 257;  // pad 0, byte b -> b + 1

// ---------------------------------------------------------------- Text (IMDB)
//
// LRA reads IMDB through tensorflow_datasets, so its release has no IMDB
// files. ssmkit reads a folder (called imdb/ by convention) holding
//   train.tsv, test.tsv
// each with the header "label\ttext" and one review a row: label 0
// (negative) or 1 (positive), and the review's bytes with '\\', tab, newline
// and carriage return escaped as "\\\\", "\\t", "\\n", "\\r" (escape_tsv_text
// in data/tsv.h). Produce them from the Stanford release
// (https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz, unpacked
// to aclImdb/) with write_imdb_tsv_from_aclimdb.

struct LraTextOptions {
  std::int64_t max_len = 4096;  // longest accepted review (bytes)
  // A longer review is an error naming the file and line; with truncate its
  // first max_len bytes are kept (what LRA does: set it for LRA parity, as
  // many IMDB reviews are longer than 4096 bytes).
  bool truncate = false;
  // Validation split. 0 (the default, as in LRA): "val" is the test set.
  // val_size > 0: val_size reviews of train.tsv, chosen by a Fisher-Yates
  // shuffle from Philox(val_seed, stream 0), form "val" and "train" is the
  // rest (both keep the file's order).
  std::int64_t val_size = 0;
  std::uint64_t val_seed = 0;
};

class LraTextDataset : public Dataset {
 public:
  // split: "train", "val" or "test"; reads <folder>/train.tsv or test.tsv.
  // A missing file throws naming the path, write_imdb_tsv_from_aclimdb and
  // where aclImdb is; a bad row (field count, label not 0/1, bad escape,
  // empty or too long text) throws naming the file and line.
  LraTextDataset(const std::string& folder, const std::string& split,
                 const LraTextOptions& options = {});
  std::int64_t size() const override { return static_cast<std::int64_t>(index_.size()); }
  Example get(std::int64_t i) const override;  // x: (L) int64 bytes + 1
  std::int64_t num_classes() const override { return 2; }
  std::int64_t d_input() const override { return 1; }
  std::int64_t vocab_size() const override { return kByteVocabSize; }
  std::string name() const override { return "lra_text/" + split_; }

 private:
  std::string split_;
  TokenStore tokens_{1};
  std::vector<std::uint8_t> labels_;
  std::vector<std::int64_t> index_;  // example i is row index_[i] of the file
};

// Writes <out_dir>/train.tsv and test.tsv from an unpacked aclImdb folder:
// aclImdb/{train,test}/{neg,pos}/*.txt (label 0 for neg, 1 for pos; the
// unlabelled train/unsup is not read). Rows: neg then pos, each in file name
// order. Returns the number of reviews written per split {train, test}.
// A missing folder throws naming it and the download address.
std::pair<std::int64_t, std::int64_t> write_imdb_tsv_from_aclimdb(const std::string& aclimdb_dir,
                                                                  const std::string& out_dir);

// Writes one file of the Text layout (header and escaped rows).
void write_lra_text_tsv(const std::string& path,
                        const std::vector<std::pair<std::int64_t, std::string>>& rows);

// ---------------------------------------------------------------- Retrieval (AAN)
//
// Files (LRA release: lra_release/tsv_data/): new_aan_pairs.train.tsv,
// new_aan_pairs.eval.tsv (split "val") and new_aan_pairs.test.tsv, one pair
// a row with five fields: label, id1, id2, text1, text2. The release has no
// header; a first line whose first field is exactly "label" is taken as one
// (any other first line is data, and a non-numeric label there is an
// error). The label is 0 or 1, written as an integer or as 0.0 / 1.0. The
// texts are taken byte for byte, with no unescaping.

struct LraRetrievalOptions {
  std::int64_t max_len = 4000;  // longest accepted document (bytes), each of the two
  // A longer document is an error naming the file and line; with truncate
  // its first max_len bytes are kept (what LRA does).
  bool truncate = false;
};

class LraRetrievalDataset : public Dataset {
 public:
  // split: "train", "val" (the eval file) or "test". A missing file throws
  // naming the path and the LRA release URL.
  LraRetrievalDataset(const std::string& folder, const std::string& split,
                      const LraRetrievalOptions& options = {});
  std::int64_t size() const override { return static_cast<std::int64_t>(labels_.size()); }
  // x: (L1) int64 document 1, x2: (L2) int64 document 2, label 1 when linked.
  Example get(std::int64_t i) const override;
  std::int64_t num_classes() const override { return 2; }
  std::int64_t d_input() const override { return 1; }
  std::int64_t vocab_size() const override { return kByteVocabSize; }
  std::string name() const override { return "lra_retrieval/" + split_; }

 private:
  std::string split_;
  TokenStore docs1_{1}, docs2_{1};
  std::vector<std::uint8_t> labels_;
};

}  // namespace ssm::data
