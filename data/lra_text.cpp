#include "data/lra_text.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "data/listops.h"
#include "data/tsv.h"

namespace ssm::data {

namespace fs = std::filesystem;

namespace {

const char* const kAclImdbUrl = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz";

void check_split(const char* op, const std::string& split) {
  SSM_CHECK(split == "train" || split == "val" || split == "test", op,
            "expected split train, val or test, got '", split, "'");
}

// Keeps text within max_len bytes (or throws naming the row).
void fit_length(const TsvReader& r, std::string& text, const char* what, std::int64_t max_len,
                bool truncate) {
  if (text.empty()) r.fail("expected a non-empty ", what, ", got an empty one");
  if (static_cast<std::int64_t>(text.size()) <= max_len) return;
  if (!truncate) {
    r.fail(what, " has ", text.size(), " bytes, more than max_len ", max_len,
           " (set the truncate option to keep the first max_len bytes)");
  }
  text.resize(static_cast<std::size_t>(max_len));
}

// "0", "1", "0.0", "1.000": true with the label; false otherwise.
bool parse_binary_label(const std::string& s, std::int64_t& label) {
  const std::size_t dot = s.find('.');
  const std::string whole = s.substr(0, dot);
  if (dot != std::string::npos) {
    const std::string frac = s.substr(dot + 1);
    if (frac.empty() || frac.find_first_not_of('0') != std::string::npos) return false;
  }
  return parse_int64(whole, label) && (label == 0 || label == 1);
}

}  // namespace

// ---------------------------------------------------------------- Text

LraTextDataset::LraTextDataset(const std::string& folder, const std::string& split,
                               const LraTextOptions& o)
    : split_(split) {
  check_split("lra_text", split);
  SSM_CHECK(o.max_len > 0 && o.val_size >= 0, "lra_text",
            "expected max_len > 0 and val_size >= 0, got ", o.max_len, " and ", o.val_size);
  const bool from_test = split == "test" || (split == "val" && o.val_size == 0);
  const std::string path = (fs::path(folder) / (from_test ? "test.tsv" : "train.tsv")).string();
  TsvReader r(path, "lra_text",
              std::string("LRA reads IMDB through tensorflow_datasets, so the LRA release (") +
                  kLraReleaseUrl + ") has no IMDB files; download aclImdb from " + kAclImdbUrl +
                  " and write train.tsv and test.tsv with "
                  "ssm::data::write_imdb_tsv_from_aclimdb");
  r.expect_header({"label", "text"});
  std::vector<std::string> fields;
  std::string text;
  while (r.next_row(fields, 2)) {
    std::int64_t label = -1;
    if (!parse_int64(fields[0], label) || (label != 0 && label != 1)) {
      r.fail("expected a label 0 or 1, got '", fields[0], "'");
    }
    std::size_t bad = 0;
    if (!unescape_tsv_text(fields[1], text, bad)) {
      r.fail("bad escape at byte ", bad, " of the text (expected \\\\, \\t, \\n or \\r)");
    }
    fit_length(r, text, "text", o.max_len, o.truncate);
    tokens_.add(text);
    labels_.push_back(static_cast<std::uint8_t>(label));
  }
  const std::int64_t n = tokens_.size();
  if (from_test || o.val_size == 0) {
    index_.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) index_[static_cast<std::size_t>(i)] = i;
    return;
  }
  SSM_CHECK(o.val_size < n, "lra_text", "expected val_size < the ", n, " rows of ", path, ", got ",
            o.val_size);
  const std::vector<std::int64_t> perm = philox_permutation(n, o.val_seed, 0);
  std::vector<char> in_val(static_cast<std::size_t>(n), 0);
  for (std::int64_t k = 0; k < o.val_size; ++k) in_val[static_cast<std::size_t>(perm[k])] = 1;
  const char want = split == "val" ? 1 : 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (in_val[static_cast<std::size_t>(i)] == want) index_.push_back(i);
  }
}

Example LraTextDataset::get(std::int64_t i) const {
  SSM_CHECK(i >= 0 && i < size(), "lra_text", "index ", i, " outside [0, ", size(), ")");
  const std::int64_t row = index_[static_cast<std::size_t>(i)];
  Example e;
  e.x = tokens_.get(row);  // (L) int64
  e.length = tokens_.length(row);
  e.label = labels_[static_cast<std::size_t>(row)];
  return e;
}

void write_lra_text_tsv(const std::string& path,
                        const std::vector<std::pair<std::int64_t, std::string>>& rows) {
  std::ofstream out(path, std::ios::binary);
  SSM_CHECK(out.good(), "lra_text", "cannot write ", path);
  out << "label\ttext\n";
  for (const auto& [label, text] : rows) out << label << '\t' << escape_tsv_text(text) << '\n';
  out.close();
  SSM_CHECK(!out.fail(), "lra_text", "write error on ", path);
}

std::pair<std::int64_t, std::int64_t> write_imdb_tsv_from_aclimdb(const std::string& aclimdb_dir,
                                                                  const std::string& out_dir) {
  std::int64_t counts[2] = {0, 0};
  const char* splits[] = {"train", "test"};
  std::vector<std::vector<std::pair<std::int64_t, std::string>>> all(2);
  for (int s = 0; s < 2; ++s) {
    for (std::int64_t label = 0; label < 2; ++label) {
      const fs::path dir = fs::path(aclimdb_dir) / splits[s] / (label ? "pos" : "neg");
      SSM_CHECK(fs::is_directory(dir), "lra_text", "missing folder ", dir.string(),
                ": expected an unpacked aclImdb (", kAclImdbUrl, ")");
      std::vector<fs::path> files;
      for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.is_regular_file() && entry.path().extension() == ".txt") {
          files.push_back(entry.path());
        }
      }
      std::sort(files.begin(), files.end());
      for (const fs::path& f : files) {
        std::ifstream in(f, std::ios::binary);
        SSM_CHECK(in.good(), "lra_text", "cannot read ", f.string());
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        SSM_CHECK(!text.empty(), "lra_text", f.string(), ": expected a review, got an empty file");
        all[static_cast<std::size_t>(s)].emplace_back(label, std::move(text));
      }
    }
    counts[s] = static_cast<std::int64_t>(all[static_cast<std::size_t>(s)].size());
  }
  fs::create_directories(out_dir);
  for (int s = 0; s < 2; ++s) {
    write_lra_text_tsv((fs::path(out_dir) / (std::string(splits[s]) + ".tsv")).string(),
                       all[static_cast<std::size_t>(s)]);
  }
  return {counts[0], counts[1]};
}

// ---------------------------------------------------------------- Retrieval

LraRetrievalDataset::LraRetrievalDataset(const std::string& folder, const std::string& split,
                                         const LraRetrievalOptions& o)
    : split_(split) {
  check_split("lra_retrieval", split);
  SSM_CHECK(o.max_len > 0, "lra_retrieval", "expected max_len > 0, got ", o.max_len);
  const std::string file = split == "val" ? "eval" : split;
  const std::string path = (fs::path(folder) / ("new_aan_pairs." + file + ".tsv")).string();
  TsvReader r(path, "lra_retrieval",
              std::string("download the LRA release from ") + kLraReleaseUrl +
                  " and pass its tsv_data folder (which holds new_aan_pairs.train.tsv, "
                  "new_aan_pairs.eval.tsv and new_aan_pairs.test.tsv)");
  std::vector<std::string> fields;
  while (r.next_row(fields, 5)) {
    if (r.line() == 1 && fields[0] == "label") continue;  // an optional header
    std::int64_t label = -1;
    if (!parse_binary_label(fields[0], label)) {
      r.fail("expected a label 0 or 1 (or 0.0, 1.0) in field 1, got '", fields[0], "'");
    }
    fit_length(r, fields[3], "text1 (field 4)", o.max_len, o.truncate);
    fit_length(r, fields[4], "text2 (field 5)", o.max_len, o.truncate);
    docs1_.add(fields[3]);
    docs2_.add(fields[4]);
    labels_.push_back(static_cast<std::uint8_t>(label));
  }
}

Example LraRetrievalDataset::get(std::int64_t i) const {
  SSM_CHECK(i >= 0 && i < size(), "lra_retrieval", "index ", i, " outside [0, ", size(), ")");
  Example e;
  e.x = docs1_.get(i);  // (L1) int64
  e.length = docs1_.length(i);
  e.x2 = docs2_.get(i);  // (L2) int64
  e.length2 = docs2_.length(i);
  e.label = labels_[static_cast<std::size_t>(i)];
  return e;
}

}  // namespace ssm::data
