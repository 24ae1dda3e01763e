// LRA file datasets: the TSV reader, ListOps (loader, evaluator, generator),
// Text (IMDB as byte tokens, its aclImdb exporter) and Retrieval (AAN pairs).
// Fixtures are written in the real file formats to a temporary folder; tokens
// and labels are checked exactly, and every bad input must throw an error
// that names the file and line.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "data/listops.h"
#include "data/lra_text.h"
#include "data/tsv.h"
#include "tests/testing.h"

using namespace ssm;
using namespace ssm::data;
using Catch::Matchers::Contains;
using ssm::testing::error_message;
namespace fs = std::filesystem;
using ssm::testing::TempDir;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<std::int64_t> bytes_as_tokens(const std::string& s) {
  std::vector<std::int64_t> out;
  for (const unsigned char c : s) out.push_back(static_cast<std::int64_t>(c) + 1);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- TSV

TEST_CASE("tsv: fields split on tabs, CRLF tolerated, lines counted from 1", "[cpu][data]") {
  TempDir dir("lra");
  const std::string path = dir.write("a.tsv", "x\ty\r\n1\t\r\n\tb c\n3\t4");
  TsvReader r(path, "test", "hint");
  r.expect_header({"x", "y"});
  std::vector<std::string> f;
  REQUIRE(r.next_row(f, 2));
  CHECK(f == std::vector<std::string>{"1", ""});
  CHECK(r.line() == 2);
  REQUIRE(r.next_row(f, 2));
  CHECK(f == std::vector<std::string>{"", "b c"});
  REQUIRE(r.next_row(f, 2));  // last line without a newline
  CHECK(f == std::vector<std::string>{"3", "4"});
  CHECK(r.line() == 4);
  CHECK_FALSE(r.next_row(f, 2));
}

TEST_CASE("tsv: wrong field count, empty line, bad header and missing file are errors",
          "[cpu][data]") {
  TempDir dir("lra");
  const std::string path = dir.write("a.tsv", "x\ty\n1\t2\n3\n");
  TsvReader r(path, "test", "hint");
  r.expect_header({"x", "y"});
  std::vector<std::string> f;
  REQUIRE(r.next_row(f, 2));
  CHECK_THAT(error_message([&] { r.next_row(f, 2); }),
             Contains(path + ":3: expected 2 tab-separated fields, got 1"));

  const std::string empty_line = dir.write("b.tsv", "x\ty\n\n1\t2\n");
  TsvReader r2(empty_line, "test", "hint");
  r2.expect_header({"x", "y"});
  CHECK_THAT(error_message([&] { r2.next(f); }), Contains(empty_line + ":2: expected a row"));

  TsvReader r3(path, "test", "hint");
  CHECK_THAT(error_message([&] {
               r3.expect_header({"a", "b"});
             }),
             Contains(path + ":1: expected the header 'a\\tb', got 'x\\ty'"));

  CHECK_THAT(error_message([&] { TsvReader(dir.file("none.tsv"), "test", "get it there"); }),
             Contains("missing file " + dir.file("none.tsv") + ": get it there"));
}

TEST_CASE("tsv: text escapes round-trip every byte; bad escapes are reported", "[cpu][data]") {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string esc = escape_tsv_text(all);
  CHECK(esc.find('\t') == std::string::npos);
  CHECK(esc.find('\n') == std::string::npos);
  CHECK(esc.find('\r') == std::string::npos);
  std::string back;
  std::size_t bad = 99;
  REQUIRE(unescape_tsv_text(esc, back, bad));
  CHECK(back == all);
  CHECK(escape_tsv_text("a\\b\tc\n") == "a\\\\b\\tc\\n");
  CHECK_FALSE(unescape_tsv_text("ab\\x", back, bad));
  CHECK(bad == 2);
  CHECK_FALSE(unescape_tsv_text("ab\\", back, bad));
  CHECK(bad == 2);
}

// ---------------------------------------------------------------- ListOps expressions

TEST_CASE("listops: hand-written expressions have their known values", "[cpu][data]") {
  // LRA's printing of MAX(2, 9)
  CHECK(evaluate_listops("( ( ( [MAX 2 ) 9 ) ] )") == 9);
  CHECK(evaluate_listops("[MIN 4 7 3 ]") == 3);
  CHECK(evaluate_listops("[MED 1 2 ]") == 1);      // median 1.5 truncates to 1
  CHECK(evaluate_listops("[MED 3 8 1 6 ]") == 4);  // sorted 1 3 6 8: 4.5 -> 4
  CHECK(evaluate_listops("[MED 9 0 5 ]") == 5);    // odd count: the middle
  CHECK(evaluate_listops("[SM 9 8 7 ]") == 4);     // 24 mod 10
  CHECK(evaluate_listops("[SM 5 5 ]") == 0);
  CHECK(evaluate_listops("7") == 7);
  const ListopsExpression e =
      parse_listops("( ( ( [MIN ( ( ( [MAX 1 ) 2 ) ] ) ) ( ( ( ( [MED 5 ) 6 ) 7 ) ] ) ) ] )");
  CHECK(e.value == 2);  // min(max(1, 2), med(5, 6, 7))
  CHECK(e.num_tokens == 11);
  CHECK(e.depth == 3);
  CHECK(e.max_args == 3);
  CHECK(parse_listops("[SM [MAX 1 [MIN 3 4 ] ] 9 ]").value == 2);  // (3 + 9) mod 10
  CHECK(parse_listops("[SM [MAX 1 [MIN 3 4 ] ] 9 ]").depth == 4);
}

TEST_CASE("listops: vocabulary ids are fixed", "[cpu][data]") {
  CHECK(tokenize_listops("( ( ( [MAX 2 ) 9 ) ] )") == std::vector<std::int64_t>{14, 5, 12, 17});
  CHECK(tokenize_listops("0 9 [MIN [MAX [MED [SM ]") ==
        std::vector<std::int64_t>{3, 12, 13, 14, 15, 16, 17});
  for (std::int64_t id = 3; id < kListopsVocabSize; ++id) {
    CHECK(listops_token_id(listops_token(id)) == id);
  }
}

TEST_CASE("listops: malformed expressions are errors", "[cpu][data]") {
  CHECK_THAT(error_message([] { parse_listops("[MAX 1 [FIRST 2 ] ]"); }),
             Contains("unknown token '[FIRST' (token 2)"));
  CHECK_THAT(error_message([] { parse_listops("[MAX ]"); }), Contains("has no arguments"));
  CHECK_THAT(error_message([] { parse_listops("[MAX 1 2"); }), Contains("has no closing ]"));
  CHECK_THAT(error_message([] { parse_listops("] 1"); }), Contains("unmatched ]"));
  CHECK_THAT(error_message([] { parse_listops("[MAX 1 ] 2"); }), Contains("expected the end"));
  CHECK_THAT(error_message([] { parse_listops("( )"); }), Contains("got no tokens"));
}

// ---------------------------------------------------------------- ListOps files

TEST_CASE("listops: the loader reads LRA's format into exact tokens and labels", "[cpu][data]") {
  TempDir dir("lra");
  dir.write("basic_train.tsv",
            "Source\tTarget\r\n"
            "( ( ( [MAX 2 ) 9 ) ] )\t9\r\n"
            "( ( ( ( [SM ( ( ( [MIN 4 ) 7 ) ] ) ) 8 ) 0 ) ] )\t2\r\n");
  const ListopsDataset ds(dir.str(), "train");
  REQUIRE(ds.size() == 2);
  CHECK(ds.vocab_size() == 18);
  CHECK(ds.num_classes() == 10);
  CHECK(ds.d_input() == 1);
  CHECK(ds.name() == "lra_listops/train");
  const Example a = ds.get(0), b = ds.get(1);
  CHECK(a.x.dtype() == DType::Int64);
  CHECK(a.x.shape() == Shape{4});
  CHECK(a.x.to_vector<std::int64_t>() == std::vector<std::int64_t>{14, 5, 12, 17});
  CHECK(a.length == 4);
  CHECK(a.label == 9);
  CHECK(b.x.to_vector<std::int64_t>() == std::vector<std::int64_t>{16, 13, 7, 10, 17, 11, 3, 17});
  CHECK(b.length == 8);
  CHECK(b.label == 2);
  CHECK_FALSE(b.x2.defined());
}

TEST_CASE("listops: bad rows and a missing file are errors naming file and line", "[cpu][data]") {
  TempDir dir("lra");
  const std::string head = "Source\tTarget\n( ( ( [MAX 2 ) 9 ) ] )\t9\n";
  auto load = [&](const std::string& body, const ListopsOptions& o = {}) {
    dir.write("basic_val.tsv", head + body);
    return error_message([&] { ListopsDataset(dir.str(), "val", o); });
  };
  const std::string path = dir.file("basic_val.tsv");
  CHECK_THAT(load("( ( ( [MAX 2 ) 9 ) ] )\n"),
             Contains(path + ":3: expected 2 tab-separated fields, got 1"));
  CHECK_THAT(load("( ( ( [MAX 2 ) 9 ) ] )\tnine\n"),
             Contains(path + ":3: expected a Target label 0..9, got 'nine'"));
  CHECK_THAT(load("( ( ( [MAX 2 ) 9 ) ] )\t10\n"), Contains(path + ":3: expected a Target label"));
  CHECK_THAT(load("( ( ( [MAX 2 ) 12 ) ] )\t2\n"),
             Contains(path + ":3: unknown token '12' (token 2 of Source)"));
  ListopsOptions short_len;
  short_len.max_len = 3;
  CHECK_THAT(load("", short_len),
             Contains(path + ":2: Source has 4 tokens, more than max_len 3 (set the truncate"));
  CHECK_THAT(error_message([&] { ListopsDataset(dir.str(), "dev"); }), Contains("got 'dev'"));

  const std::string missing = dir.file("basic_test.tsv");
  const std::string msg = error_message([&] { ListopsDataset(dir.str(), "test"); });
  CHECK_THAT(msg, Contains("missing file " + missing));
  CHECK_THAT(msg, Contains("https://storage.googleapis.com/long-range-arena/lra_release.gz"));
}

TEST_CASE("listops: truncate keeps the first max_len tokens", "[cpu][data]") {
  TempDir dir("lra");
  dir.write("basic_train.tsv", "Source\tTarget\n( ( ( [MAX 2 ) 9 ) ] )\t9\n");
  ListopsOptions o;
  o.max_len = 3;
  o.truncate = true;
  const ListopsDataset ds(dir.str(), "train", o);
  CHECK(ds.get(0).x.to_vector<std::int64_t>() == std::vector<std::int64_t>{14, 5, 12});
  CHECK(ds.get(0).length == 3);
  CHECK(ds.get(0).label == 9);
}

TEST_CASE(
    "listops generator: every label is the expression's value, lengths lie strictly within "
    "the bounds, depth and argument limits hold, trees are distinct",
    "[cpu][data]") {
  TempDir dir("lra");
  ListopsGenOptions o;
  o.max_depth = 6;
  o.max_args = 5;
  o.min_length = 20;
  o.max_length = 200;
  const ListopsCounts counts{40, 10, 12};
  write_listops(dir.str(), counts, o, 7);
  std::set<std::string> sources;
  const std::pair<const char*, std::int64_t> splits[] = {
      {"train", counts.train}, {"val", counts.val}, {"test", counts.test}};
  for (const auto& [split, n] : splits) {
    const ListopsDataset ds(dir.str(), split);
    REQUIRE(ds.size() == n);
    TsvReader r(dir.file(std::string("basic_") + split + ".tsv"), "test", "");
    r.expect_header({"Source", "Target"});
    std::vector<std::string> f;
    for (std::int64_t i = 0; i < n; ++i) {
      REQUIRE(r.next_row(f, 2));
      INFO(split << " row " << i << ": " << f[0]);
      const ListopsExpression e = parse_listops(f[0]);
      const Example ex = ds.get(i);
      CHECK(ex.label == e.value);
      CHECK(f[1] == std::to_string(e.value));
      CHECK(ex.x.to_vector<std::int64_t>() == tokenize_listops(f[0]));
      CHECK(ex.length == e.num_tokens);
      CHECK(e.num_tokens > o.min_length);
      CHECK(e.num_tokens < o.max_length);
      CHECK(e.depth <= o.max_depth);
      CHECK(e.max_args >= 2);
      CHECK(e.max_args <= o.max_args);
      // LRA's printing: an operator with k arguments opens k + 1 parentheses,
      // so a tree of T tokens has T - 1 of each.
      CHECK(std::count(f[0].begin(), f[0].end(), '(') == e.num_tokens - 1);
      CHECK(std::count(f[0].begin(), f[0].end(), ')') == e.num_tokens - 1);
      CHECK(f[0].rfind("( ( ( ", 0) == 0);
      sources.insert(f[0]);
    }
    CHECK_FALSE(r.next_row(f, 2));
  }
  CHECK(sources.size() == static_cast<std::size_t>(counts.train + counts.val + counts.test));

  // The same seed writes the same files; another seed other ones.
  TempDir same, other;
  write_listops(same.str(), counts, o, 7);
  write_listops(other.str(), counts, o, 8);
  CHECK(read_file(same.file("basic_test.tsv")) == read_file(dir.file("basic_test.tsv")));
  CHECK(read_file(other.file("basic_test.tsv")) != read_file(dir.file("basic_test.tsv")));
}

TEST_CASE("listops generator: impossible options are errors", "[cpu][data]") {
  TempDir dir("lra");
  ListopsGenOptions o;
  o.min_length = 10;
  o.max_length = 11;  // nothing lies strictly between
  CHECK_THAT(error_message([&] {
               write_listops(dir.str(), {1, 1, 1}, o, 1);
             }),
             Contains("min_length"));
  o.max_length = 100;
  o.max_depth = 1;
  CHECK_THAT(error_message([&] {
               write_listops(dir.str(), {1, 1, 1}, o, 1);
             }),
             Contains("max_depth >= 2"));
}

// ---------------------------------------------------------------- Text (IMDB)

TEST_CASE("lra_text: reviews load as byte tokens b + 1 with their labels", "[cpu][data]") {
  TempDir dir("lra");
  const std::vector<std::pair<std::int64_t, std::string>> train = {
      {1, "Great film!"},
      {0, "tab\there, line\nthere, back\\slash, \xc3\xa9t\xc3\xa9"},
      {1, "ok"},
      {0, "bad"},
      {0, "worse\r\n"}};
  write_lra_text_tsv(dir.file("train.tsv"), train);
  write_lra_text_tsv(dir.file("test.tsv"), {{1, "fine"}});
  const LraTextDataset ds(dir.str(), "train");
  REQUIRE(ds.size() == 5);
  CHECK(ds.vocab_size() == 257);
  CHECK(ds.num_classes() == 2);
  CHECK(ds.name() == "lra_text/train");
  for (std::int64_t i = 0; i < 5; ++i) {
    const Example e = ds.get(i);
    const auto& [label, text] = train[static_cast<std::size_t>(i)];
    CHECK(e.x.to_vector<std::int64_t>() == bytes_as_tokens(text));
    CHECK(e.length == static_cast<std::int64_t>(text.size()));
    CHECK(e.label == label);
  }
  CHECK(ds.get(0).x.to_vector<std::int64_t>()[0] == 'G' + 1);
  // val_size 0: val is the test set
  const LraTextDataset val(dir.str(), "val");
  REQUIRE(val.size() == 1);
  CHECK(val.get(0).x.to_vector<std::int64_t>() == bytes_as_tokens("fine"));
  CHECK(val.get(0).label == 1);
}

TEST_CASE("lra_text: val_size splits train into disjoint seeded parts", "[cpu][data]") {
  TempDir dir("lra");
  std::vector<std::pair<std::int64_t, std::string>> rows;
  for (int i = 0; i < 20; ++i) rows.emplace_back(i % 2, "review " + std::to_string(i));
  write_lra_text_tsv(dir.file("train.tsv"), rows);
  LraTextOptions o;
  o.val_size = 6;
  o.val_seed = 3;
  const LraTextDataset tr(dir.str(), "train", o), va(dir.str(), "val", o), va2(dir.str(), "val", o);
  REQUIRE(tr.size() == 14);
  REQUIRE(va.size() == 6);
  std::multiset<std::vector<std::int64_t>> seen;
  for (std::int64_t i = 0; i < tr.size(); ++i) seen.insert(tr.get(i).x.to_vector<std::int64_t>());
  for (std::int64_t i = 0; i < va.size(); ++i) {
    CHECK(va.get(i).x.to_vector<std::int64_t>() == va2.get(i).x.to_vector<std::int64_t>());
    seen.insert(va.get(i).x.to_vector<std::int64_t>());
  }
  std::multiset<std::vector<std::int64_t>> all;
  for (const auto& r : rows) all.insert(bytes_as_tokens(r.second));
  CHECK(seen == all);
  o.val_seed = 4;
  const LraTextDataset va3(dir.str(), "val", o);
  bool differs = false;
  for (std::int64_t i = 0; i < 6; ++i) {
    differs |= va3.get(i).x.to_vector<std::int64_t>() != va.get(i).x.to_vector<std::int64_t>();
  }
  CHECK(differs);
  o.val_size = 20;
  CHECK_THAT(error_message([&] { LraTextDataset(dir.str(), "val", o); }),
             Contains("expected val_size < the 20 rows"));
}

TEST_CASE("lra_text: bad rows, too long reviews and a missing file are errors", "[cpu][data]") {
  TempDir dir("lra");
  auto load = [&](const std::string& body, const LraTextOptions& o = {}) {
    dir.write("test.tsv", "label\ttext\n1\tgood\n" + body);
    return error_message([&] { LraTextDataset(dir.str(), "test", o); });
  };
  const std::string path = dir.file("test.tsv");
  CHECK_THAT(load("2\tx\n"), Contains(path + ":3: expected a label 0 or 1, got '2'"));
  CHECK_THAT(load("1\n"), Contains(path + ":3: expected 2 tab-separated fields, got 1"));
  CHECK_THAT(load("1\tx\ty\n"), Contains(path + ":3: expected 2 tab-separated fields, got 3"));
  CHECK_THAT(load("0\tab\\q\n"), Contains(path + ":3: bad escape at byte 2"));
  CHECK_THAT(load("0\t\n"), Contains(path + ":3: expected a non-empty text"));
  LraTextOptions o;
  o.max_len = 3;
  CHECK_THAT(load("", o), Contains(path + ":2: text has 4 bytes, more than max_len 3"));
  o.truncate = true;
  CHECK(load("", o).empty());
  const LraTextDataset t(dir.str(), "test", o);
  CHECK(t.get(0).x.to_vector<std::int64_t>() == bytes_as_tokens("goo"));

  TempDir empty("lra");
  const std::string msg = error_message([&] { LraTextDataset(empty.str(), "train"); });
  CHECK_THAT(msg, Contains("missing file " + empty.file("train.tsv")));
  CHECK_THAT(msg, Contains("lra_release.gz"));
  CHECK_THAT(msg, Contains("write_imdb_tsv_from_aclimdb"));
}

TEST_CASE("lra_text: aclImdb folders export to train.tsv and test.tsv", "[cpu][data]") {
  TempDir dir("lra");
  dir.write("aclImdb/train/pos/1_9.txt", "Loved it.<br />Really\tdid.");
  dir.write("aclImdb/train/pos/0_8.txt", "Nice");
  dir.write("aclImdb/train/neg/0_2.txt", "Dull\n");
  dir.write("aclImdb/train/unsup/0_0.txt", "not read");
  dir.write("aclImdb/test/pos/0_10.txt", "Wow");
  dir.write("aclImdb/test/neg/3_1.txt", "No");
  fs::create_directories(dir.file("aclImdb/test/neg"));
  const auto counts = write_imdb_tsv_from_aclimdb(dir.file("aclImdb"), dir.file("imdb"));
  CHECK(counts.first == 3);
  CHECK(counts.second == 2);
  const LraTextDataset tr(dir.file("imdb"), "train"), te(dir.file("imdb"), "test");
  REQUIRE(tr.size() == 3);
  CHECK(tr.get(0).x.to_vector<std::int64_t>() == bytes_as_tokens("Dull\n"));
  CHECK(tr.get(0).label == 0);
  CHECK(tr.get(1).x.to_vector<std::int64_t>() == bytes_as_tokens("Nice"));
  CHECK(tr.get(1).label == 1);
  CHECK(tr.get(2).x.to_vector<std::int64_t>() == bytes_as_tokens("Loved it.<br />Really\tdid."));
  REQUIRE(te.size() == 2);
  CHECK(te.get(0).label == 0);
  CHECK(te.get(1).label == 1);
  CHECK_THAT(error_message([&] { write_imdb_tsv_from_aclimdb(dir.file("nope"), dir.str()); }),
             Contains("missing folder " + dir.file("nope")));
}

// ---------------------------------------------------------------- Retrieval (AAN)

TEST_CASE("lra_retrieval: pairs load as two byte sequences with 0/1 labels", "[cpu][data]") {
  TempDir dir("lra");
  dir.write("new_aan_pairs.train.tsv",
            "1\tP01-1\tP02-2\tFirst paper.\tSecond, longer paper\r\n"
            "0.0\tA\tB\tx\tyz\n"
            "1.0\tC\tD\tq\\n\tr\n");
  const LraRetrievalDataset ds(dir.str(), "train");
  REQUIRE(ds.size() == 3);
  CHECK(ds.vocab_size() == 257);
  CHECK(ds.num_classes() == 2);
  CHECK(ds.name() == "lra_retrieval/train");
  const Example a = ds.get(0);
  CHECK(a.x.to_vector<std::int64_t>() == bytes_as_tokens("First paper."));
  CHECK(a.length == 12);
  CHECK(a.x2.to_vector<std::int64_t>() == bytes_as_tokens("Second, longer paper"));
  CHECK(a.length2 == 20);
  CHECK(a.label == 1);
  CHECK(ds.get(1).label == 0);
  CHECK(ds.get(1).x2.to_vector<std::int64_t>() == bytes_as_tokens("yz"));
  CHECK(ds.get(2).label == 1);
  CHECK(ds.get(2).x.to_vector<std::int64_t>() == bytes_as_tokens("q\\n"));  // no unescaping

  // An optional header line; "val" reads the eval file.
  dir.write("new_aan_pairs.eval.tsv", "label\tid1\tid2\ttext1\ttext2\n0\ta\tb\tc\td\n");
  const LraRetrievalDataset val(dir.str(), "val");
  REQUIRE(val.size() == 1);
  CHECK(val.get(0).x.to_vector<std::int64_t>() == bytes_as_tokens("c"));
  CHECK(val.get(0).x2.to_vector<std::int64_t>() == bytes_as_tokens("d"));
}

TEST_CASE("lra_retrieval: bad rows, too long documents and a missing file are errors",
          "[cpu][data]") {
  TempDir dir("lra");
  auto load = [&](const std::string& body, const LraRetrievalOptions& o = {}) {
    dir.write("new_aan_pairs.test.tsv", "1\ta\tb\tabcd\tef\n" + body);
    return error_message([&] { LraRetrievalDataset(dir.str(), "test", o); });
  };
  const std::string path = dir.file("new_aan_pairs.test.tsv");
  CHECK_THAT(load("1\ta\tb\tc\n"), Contains(path + ":2: expected 5 tab-separated fields, got 4"));
  CHECK_THAT(load("yes\ta\tb\tc\td\n"), Contains(path + ":2: expected a label 0 or 1"));
  CHECK_THAT(load("0.5\ta\tb\tc\td\n"), Contains(path + ":2: expected a label 0 or 1"));
  CHECK_THAT(load("2\ta\tb\tc\td\n"), Contains(path + ":2: expected a label 0 or 1"));
  CHECK_THAT(load("1\ta\tb\t\td\n"), Contains(path + ":2: expected a non-empty text1"));
  LraRetrievalOptions o;
  o.max_len = 3;
  CHECK_THAT(load("", o), Contains(path + ":1: text1 (field 4) has 4 bytes, more than max_len 3"));
  o.truncate = true;
  REQUIRE(load("", o).empty());
  const LraRetrievalDataset t(dir.str(), "test", o);
  CHECK(t.get(0).x.to_vector<std::int64_t>() == bytes_as_tokens("abc"));
  CHECK(t.get(0).x2.to_vector<std::int64_t>() == bytes_as_tokens("ef"));

  TempDir empty("lra");
  const std::string msg = error_message([&] { LraRetrievalDataset(empty.str(), "train"); });
  CHECK_THAT(msg, Contains("missing file " + empty.file("new_aan_pairs.train.tsv")));
  CHECK_THAT(msg, Contains("https://storage.googleapis.com/long-range-arena/lra_release.gz"));
}
