#include "data/listops.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <unordered_set>

#include "data/philox_sampler.h"
#include "data/tsv.h"

namespace ssm::data {

namespace {

// Tokens 3..17 in id order.
const char* const kTokens[] = {"0", "1", "2",    "3",    "4",    "5",   "6", "7",
                               "8", "9", "[MIN", "[MAX", "[MED", "[SM", "]"};
constexpr std::int64_t kFirstToken = 3;
constexpr std::int64_t kMin = 13, kMax = 14, kMed = 15, kSm = 16, kEnd = 17;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Calls f(token) for each token of `source` ('(' and ')' removed, split on
// whitespace); stops and returns false when f does.
template <class F>
bool for_each_token(std::string_view source, F&& f) {
  std::string token;
  for (std::size_t i = 0; i <= source.size(); ++i) {
    const char c = i < source.size() ? source[i] : ' ';
    if (c == '(' || c == ')') continue;
    if (is_space(c)) {
      if (!token.empty() && !f(token)) return false;
      token.clear();
    } else {
      token += c;
    }
  }
  return true;
}

const char* const kExpectedTokens = "expected 0-9, [MIN, [MAX, [MED, [SM or ]";

int apply_op(std::int64_t op, std::vector<int> args) {
  switch (op) {
    case kMin: return *std::min_element(args.begin(), args.end());
    case kMax: return *std::max_element(args.begin(), args.end());
    case kSm: return std::accumulate(args.begin(), args.end(), 0) % 10;
    default: {  // kMed: int(numpy.median(args)); args are >= 0, so / truncates toward zero
      std::sort(args.begin(), args.end());
      const std::size_t n = args.size();
      return n % 2 ? args[n / 2] : (args[n / 2 - 1] + args[n / 2]) / 2;
    }
  }
}

struct Parser {
  const std::vector<std::int64_t>& ids;
  std::size_t pos = 0;
  ListopsExpression out;

  int node(std::int64_t depth) {
    out.depth = std::max(out.depth, depth);
    const std::size_t at = pos;
    const std::int64_t id = ids[pos++];
    if (id < kMin) return static_cast<int>(id - kFirstToken);  // a digit
    if (id == kEnd) fail("listops", "unmatched ] at token ", at);
    std::vector<int> args;
    while (true) {
      if (pos == ids.size()) {
        fail("listops", "operator ", listops_token(id), " at token ", at, " has no closing ]");
      }
      if (ids[pos] == kEnd) break;
      args.push_back(node(depth + 1));
    }
    ++pos;  // the ]
    if (args.empty())
      fail("listops", "operator ", listops_token(id), " at token ", at, " has no arguments");
    out.max_args = std::max(out.max_args, static_cast<std::int64_t>(args.size()));
    return apply_op(id, std::move(args));
  }
};

}  // namespace

std::int64_t listops_token_id(std::string_view token) {
  for (std::int64_t i = 0; i < 15; ++i) {
    if (token == kTokens[i]) return kFirstToken + i;
  }
  return -1;
}

std::string listops_token(std::int64_t id) {
  static const char* special[] = {"<pad>", "<unk>", "<eos>"};
  SSM_CHECK(id >= 0 && id < kListopsVocabSize, "listops", "token id ", id, " outside [0, 18)");
  return id < kFirstToken ? special[id] : kTokens[id - kFirstToken];
}

std::vector<std::int64_t> tokenize_listops(std::string_view source) {
  std::vector<std::int64_t> ids;
  for_each_token(source, [&](const std::string& token) {
    const std::int64_t id = listops_token_id(token);
    if (id < 0) {
      fail("listops", "unknown token '", token, "' (token ", ids.size(), "): ", kExpectedTokens);
    }
    ids.push_back(id);
    return true;
  });
  return ids;
}

ListopsExpression parse_listops(std::string_view source) {
  const std::vector<std::int64_t> ids = tokenize_listops(source);
  SSM_CHECK(!ids.empty(), "listops", "expected an expression, got no tokens");
  Parser p{ids, 0, {}};
  p.out.value = p.node(1);
  if (p.pos != ids.size()) {
    fail("listops", "expected the end after the expression, got '", listops_token(ids[p.pos]),
         "' at token ", p.pos);
  }
  p.out.num_tokens = static_cast<std::int64_t>(ids.size());
  return p.out;
}

int evaluate_listops(std::string_view source) { return parse_listops(source).value; }

// ---------------------------------------------------------------- dataset

ListopsDataset::ListopsDataset(const std::string& folder, const std::string& split,
                               const ListopsOptions& options)
    : split_(split), tokens_(0) {
  SSM_CHECK(split == "train" || split == "val" || split == "test", "lra_listops",
            "expected split train, val or test, got '", split, "'");
  SSM_CHECK(options.max_len > 0, "lra_listops", "expected max_len > 0, got ", options.max_len);
  const std::string path = (std::filesystem::path(folder) / ("basic_" + split + ".tsv")).string();
  TsvReader r(path, "lra_listops",
              std::string("download the LRA release from ") + kLraReleaseUrl +
                  " and pass its listops-1000 folder (which holds basic_train.tsv, "
                  "basic_val.tsv and basic_test.tsv)");
  r.expect_header({"Source", "Target"});
  std::vector<std::string> fields;
  std::vector<std::uint8_t> ids;
  while (r.next_row(fields, 2)) {
    std::int64_t label = -1;
    if (!parse_int64(fields[1], label) || label < 0 || label > 9) {
      r.fail("expected a Target label 0..9, got '", fields[1], "'");
    }
    ids.clear();
    for_each_token(fields[0], [&](const std::string& token) {
      const std::int64_t id = listops_token_id(token);
      if (id < 0) {
        r.fail("unknown token '", token, "' (token ", ids.size(), " of Source): ", kExpectedTokens);
      }
      ids.push_back(static_cast<std::uint8_t>(id));
      return true;
    });
    if (ids.empty()) r.fail("expected Source tokens, got none");
    if (static_cast<std::int64_t>(ids.size()) > options.max_len) {
      if (!options.truncate) {
        r.fail("Source has ", ids.size(), " tokens, more than max_len ", options.max_len,
               " (set the truncate option to keep the first max_len tokens)");
      }
      ids.resize(static_cast<std::size_t>(options.max_len));
    }
    tokens_.add(ids);
    labels_.push_back(static_cast<std::uint8_t>(label));
  }
}

Example ListopsDataset::get(std::int64_t i) const {
  SSM_CHECK(i >= 0 && i < size(), "lra_listops", "index ", i, " outside [0, ", size(), ")");
  Example e;
  e.x = tokens_.get(i);  // (L) int64
  e.length = tokens_.length(i);
  e.label = labels_[static_cast<std::size_t>(i)];
  return e;
}

// ---------------------------------------------------------------- generator

namespace {

struct TreeWriter {
  PhiloxSampler& rng;
  const ListopsGenOptions& o;
  std::string s;
  std::int64_t length = 0;

  // Appends one node; its value, or -1 once the tree reaches max_length tokens.
  int node(std::int64_t depth, bool force_op) {
    const bool op = force_op || (depth < o.max_depth && rng.uniform() <= o.value_p);
    if (!op) {
      const int v = static_cast<int>(rng.below(10));
      s += static_cast<char>('0' + v);
      return ++length >= o.max_length ? -1 : v;
    }
    const std::int64_t k = 2 + rng.below(static_cast<std::uint32_t>(o.max_args - 1));
    const std::int64_t op_id = kMin + rng.below(4);
    length += 2;  // the operator and its ]
    if (length >= o.max_length) return -1;
    for (std::int64_t i = 0; i <= k; ++i) s += "( ";
    s += kTokens[op_id - kFirstToken];
    std::vector<int> args;
    for (std::int64_t i = 0; i < k; ++i) {
      s += ' ';
      const int v = node(depth + 1, false);
      if (v < 0) return -1;
      args.push_back(v);
      s += " )";
    }
    s += " ] )";
    return apply_op(op_id, std::move(args));
  }
};

}  // namespace

void write_listops(const std::string& folder, const ListopsCounts& counts,
                   const ListopsGenOptions& o, std::uint64_t seed) {
  SSM_CHECK(counts.train >= 0 && counts.val >= 0 && counts.test >= 0, "listops",
            "expected counts >= 0");
  SSM_CHECK(o.max_depth >= 2 && o.max_args >= 2 && o.value_p > 0.0 && o.value_p <= 1.0, "listops",
            "expected max_depth >= 2, max_args >= 2, 0 < value_p <= 1, got ", o.max_depth, ", ",
            o.max_args, ", ", o.value_p);
  SSM_CHECK(o.min_length >= 0 && o.min_length + 1 < o.max_length, "listops",
            "expected 0 <= min_length < max_length - 1 (lengths strictly between), got ",
            o.min_length, " and ", o.max_length);
  const std::int64_t wanted = counts.train + counts.val + counts.test;
  const std::int64_t max_draws = 1000 * wanted + 1000000;
  PhiloxSampler rng(seed, 0);
  std::unordered_set<std::string> seen;
  std::vector<std::pair<std::string, int>> kept;
  for (std::int64_t draw = 0; static_cast<std::int64_t>(kept.size()) < wanted; ++draw) {
    SSM_CHECK(draw < max_draws, "listops", max_draws, " trees drawn but only ", kept.size(), " of ",
              wanted, " kept: lengths strictly between ", o.min_length, " and ", o.max_length,
              " are too rare (or too few distinct) for these options");
    TreeWriter w{rng, o, {}, 0};
    const int v = w.node(1, true);
    if (v < 0 || w.length <= o.min_length) continue;
    if (!seen.insert(w.s).second) continue;
    kept.emplace_back(std::move(w.s), v);
  }
  std::filesystem::create_directories(folder);
  const std::int64_t ends[] = {counts.train, counts.train + counts.val, wanted};
  const char* names[] = {"train", "val", "test"};
  std::int64_t begin = 0;
  for (int split = 0; split < 3; ++split) {
    const std::string path =
        (std::filesystem::path(folder) / (std::string("basic_") + names[split] + ".tsv")).string();
    std::ofstream out(path, std::ios::binary);
    SSM_CHECK(out.good(), "listops", "cannot write ", path);
    out << "Source\tTarget\n";
    for (std::int64_t i = begin; i < ends[split]; ++i) {
      const auto& [source, value] = kept[static_cast<std::size_t>(i)];
      out << source << '\t' << value << '\n';
    }
    out.close();
    SSM_CHECK(!out.fail(), "listops", "write error on ", path);
    begin = ends[split];
  }
}

}  // namespace ssm::data
