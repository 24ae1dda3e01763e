#pragma once
// LRA ListOps (Nangia & Bowman 2018, as used by the Long Range Arena, Tay et
// al. 2021): classify the value 0..9 of a nested list expression such as
//   ( ( ( [MAX 2 ) 9 ) ] )  = 9
//
// Files: basic_train.tsv, basic_val.tsv, basic_test.tsv in one folder (in the
// LRA release: lra_release/listops-1000/), header "Source\tTarget", then one
// row per example: the expression and its value.
//
// Tokens: the Source with every '(' and ')' removed, split on whitespace.
// Vocabulary (vocab_size 18):
//   0 pad, 1 unk (reserved: an unknown token is an error, never mapped to unk),
//   2 eos (reserved: not appended, as LRA's ListOps pipeline appends none),
//   3..12 the digits "0".."9", 13 "[MIN", 14 "[MAX", 15 "[MED", 16 "[SM", 17 "]".
// Example.x is the unpadded (L) int64 token sequence, length = L; padding to
// a batch's longest sequence is the DataLoader's job.
//
// Operators: MIN, MAX, MED = int(numpy.median(args)) (for an even count the
// mean of the two middle values, truncated toward zero, e.g. MED 1 2 = 1),
// SM = sum of the args mod 10.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"
#include "data/token_store.h"

namespace ssm::data {

inline constexpr const char* kLraReleaseUrl =
    "https://storage.googleapis.com/long-range-arena/lra_release.gz";

constexpr std::int64_t kListopsPad = 0, kListopsUnk = 1, kListopsEos = 2;
constexpr std::int64_t kListopsVocabSize = 18;
constexpr std::int64_t kListopsNumClasses = 10;

// The token id of one ListOps token ("7", "[MAX", "]"), or -1 when unknown.
std::int64_t listops_token_id(std::string_view token);
// The token of an id 3..17 ("<pad>", "<unk>", "<eos>" for 0..2).
std::string listops_token(std::int64_t id);
// Token ids of a Source string: '(' and ')' removed, split on whitespace.
// Throws ssm::Error naming the unknown token and its index.
std::vector<std::int64_t> tokenize_listops(std::string_view source);

struct ListopsOptions {
  std::int64_t max_len = 2048;  // longest accepted sequence (tokens)
  // A longer sequence is an error naming the file and line; with truncate,
  // its first max_len tokens are kept instead (its label is then that of the
  // whole expression).
  bool truncate = false;
};

class ListopsDataset : public Dataset {
 public:
  // Reads <folder>/basic_<split>.tsv; split is "train", "val" or "test".
  // A missing file throws naming the path and the LRA release URL; a bad row
  // (field count, label outside 0..9, unknown token, too long) throws naming
  // the file and line.
  ListopsDataset(const std::string& folder, const std::string& split,
                 const ListopsOptions& options = {});
  std::int64_t size() const override { return tokens_.size(); }
  Example get(std::int64_t i) const override;  // x: (L) int64, length L
  std::int64_t num_classes() const override { return kListopsNumClasses; }
  std::int64_t d_input() const override { return 1; }
  std::int64_t vocab_size() const override { return kListopsVocabSize; }
  std::string name() const override { return "lra_listops/" + split_; }

 private:
  std::string split_;
  TokenStore tokens_;
  std::vector<std::uint8_t> labels_;
};

// ---------------------------------------------------------------- expressions

// What parse_listops finds in a Source string.
struct ListopsExpression {
  int value = 0;                // the value 0..9
  std::int64_t num_tokens = 0;  // tokens without parentheses
  std::int64_t depth = 0;       // nesting: a lone digit 1, [MAX 1 2 ] 2, [MAX [MIN 1 ] ] 3
  std::int64_t max_args = 0;    // most arguments of one operator (0 for a lone digit)
};

// Parses and evaluates a Source string (parentheses ignored, as the tokens
// carry the structure). Throws ssm::Error for an unknown token, an operator
// without arguments, an unmatched ']' or operator, or trailing tokens.
ListopsExpression parse_listops(std::string_view source);
int evaluate_listops(std::string_view source);  // parse_listops(source).value

// ---------------------------------------------------------------- generator

struct ListopsCounts {
  std::int64_t train = 96000;  // the LRA release's sizes
  std::int64_t val = 2000;
  std::int64_t test = 2000;
};

struct ListopsGenOptions {
  std::int64_t max_depth = 10;     // deepest node (the root has depth 1)
  std::int64_t max_args = 10;      // an operator has 2..max_args arguments
  double value_p = 0.25;           // probability that a node above max_depth is an operator
  std::int64_t min_length = 500;   // accepted token counts are strictly between
  std::int64_t max_length = 2000;  // min_length and max_length
};

// Writes basic_train.tsv, basic_val.tsv and basic_test.tsv into `folder`
// (created if needed) with LRA's algorithm (listops.py of the LRA code):
// a node at depth d < max_depth is an operator with probability value_p,
// else (and always at depth max_depth) a digit drawn uniformly from 0..9; an
// operator draws its argument count uniformly from 2..max_args, generates
// its arguments, then its operator uniformly from MIN, MAX, MED, SM. A tree
// is kept when its token count (digits, operators and ']') lies strictly
// between min_length and max_length and it differs from every tree kept
// before; trees are drawn until train + val + test are kept, and the splits
// take them in that order. LRA draws the root like every node and rejects a
// lone digit by its length; here the root is always an operator, which
// gives the same distribution of kept trees. A tree that grows to
// max_length tokens is abandoned early. Randomness: Philox(seed, stream 0),
// so a seed gives the same files on every machine. Rows are printed as LRA
// prints its nested pairs: an operator with arguments a1..ak becomes
//   "( " x (k + 1), "[OP a1 )", " a2 )", ..., " ak )", " ] )"
// e.g. ( ( ( [MAX 2 ) 9 ) ] ). Throws for options that cannot be met
// (min_length + 1 >= max_length, max_depth < 2, max_args < 2, value_p not
// in (0, 1]) or when 1000 draws per wanted tree (plus 10^6) keep too few.
void write_listops(const std::string& folder, const ListopsCounts& counts,
                   const ListopsGenOptions& options, std::uint64_t seed);

}  // namespace ssm::data
