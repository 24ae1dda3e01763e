#pragma once
// A small reader of tab-separated files, line by line, for the file datasets
// (LRA ListOps, Text, Retrieval). Fields are split on '\t' with no quoting;
// a line ending "\r\n" loses its '\r' (files written by Python's csv module
// end lines that way). Every error names the file and the 1-based line:
//   [lra_listops] /data/basic_train.tsv:12: expected 2 fields, got 1
// An empty line is an error, not skipped: nothing in a data file is dropped
// silently.
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace ssm::data {

class TsvReader {
 public:
  // Opens `path`. A missing or unreadable file throws
  //   [op] missing file <path>: <missing_hint>
  // `op` starts every message (the dataset's name).
  TsvReader(std::string path, std::string op, const std::string& missing_hint);

  // Reads the next line into `fields` (split on '\t'); false at the end of
  // the file. An empty line throws.
  bool next(std::vector<std::string>& fields);
  // next(), and exactly `n` fields or throws "expected n fields, got m".
  bool next_row(std::vector<std::string>& fields, std::size_t n);
  // Reads line 1 and checks that it is exactly `names` (throws naming the
  // expected header and the line found, or an empty file).
  void expect_header(const std::vector<std::string>& names);

  const std::string& path() const { return path_; }
  const std::string& op() const { return op_; }
  std::int64_t line() const { return line_; }  // 1-based number of the line last read

  // Throws ssm::Error "[op] path:line: parts...".
  template <class... Parts>
  [[noreturn]] void fail(Parts&&... parts) const {
    ::ssm::fail(op_.c_str(), path_, ':', line_, ": ", std::forward<Parts>(parts)...);
  }

 private:
  std::string path_, op_;
  std::ifstream in_;
  std::string buf_;
  std::int64_t line_ = 0;
};

// Splits `line` on '\t' into `fields` (one more field than tabs).
void split_tsv_line(std::string_view line, std::vector<std::string>& fields);

// Escapes of free text in a TSV field: '\\' -> "\\\\", '\t' -> "\\t",
// '\n' -> "\\n", '\r' -> "\\r"; every other byte stays as it is.
std::string escape_tsv_text(std::string_view text);
// The inverse. Returns false, with the byte offset (0-based, within the
// field) of the offending backslash in `bad_offset`, for an unknown escape
// or a trailing lone backslash.
bool unescape_tsv_text(std::string_view field, std::string& out, std::size_t& bad_offset);

// Parses a whole decimal integer (optional '-', digits only); false for
// anything else, including an empty string, spaces or overflow.
bool parse_int64(std::string_view s, std::int64_t& value);

}  // namespace ssm::data
