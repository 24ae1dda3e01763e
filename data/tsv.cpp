#include "data/tsv.h"

#include <charconv>
#include <sstream>
#include <utility>

namespace ssm::data {

TsvReader::TsvReader(std::string path, std::string op, const std::string& missing_hint)
    : path_(std::move(path)), op_(std::move(op)) {
  in_.open(path_, std::ios::binary);
  if (!in_) ::ssm::fail(op_.c_str(), "missing file ", path_, ": ", missing_hint);
}

bool TsvReader::next(std::vector<std::string>& fields) {
  if (!std::getline(in_, buf_)) {
    if (in_.bad()) fail("read error");
    return false;
  }
  ++line_;
  if (!buf_.empty() && buf_.back() == '\r') buf_.pop_back();
  if (buf_.empty()) fail("expected a row, got an empty line");
  split_tsv_line(buf_, fields);
  return true;
}

bool TsvReader::next_row(std::vector<std::string>& fields, std::size_t n) {
  if (!next(fields)) return false;
  if (fields.size() != n) {
    fail("expected ", n, " tab-separated fields, got ", fields.size());
  }
  return true;
}

void TsvReader::expect_header(const std::vector<std::string>& names) {
  std::ostringstream want;
  for (std::size_t i = 0; i < names.size(); ++i) want << (i ? "\\t" : "") << names[i];
  std::vector<std::string> fields;
  if (!next(fields)) {
    ::ssm::fail(op_.c_str(), path_, ": expected the header '", want.str(), "', got an empty file");
  }
  if (fields != names) {
    std::ostringstream got;
    for (std::size_t i = 0; i < fields.size(); ++i) got << (i ? "\\t" : "") << fields[i];
    fail("expected the header '", want.str(), "', got '", got.str(), "'");
  }
}

void split_tsv_line(std::string_view line, std::vector<std::string>& fields) {
  fields.clear();
  std::size_t start = 0;
  while (true) {
    const std::size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.emplace_back(line.substr(start));
      return;
    }
    fields.emplace_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

std::string escape_tsv_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
  return out;
}

bool unescape_tsv_text(std::string_view field, std::string& out, std::size_t& bad_offset) {
  out.clear();
  out.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    const char c = field[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i + 1 == field.size()) {
      bad_offset = i;
      return false;
    }
    switch (field[i + 1]) {
      case '\\': out += '\\'; break;
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      default: bad_offset = i; return false;
    }
    ++i;
  }
  return true;
}

bool parse_int64(std::string_view s, std::int64_t& value) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, value);
  return r.ec == std::errc() && r.ptr == end;
}

}  // namespace ssm::data
