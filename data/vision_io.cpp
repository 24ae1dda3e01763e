#include "data/vision_io.h"

#include <filesystem>
#include <fstream>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/philox.h"

namespace ssm::data {

std::vector<std::uint8_t> read_whole_file(const std::string& path, const char* op,
                                          const std::string& hint) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool exists = fs::is_regular_file(path, ec);
  SSM_CHECK(exists, op, path, " not found: expected this file; ", hint);
  const std::uintmax_t size = fs::file_size(path, ec);
  SSM_CHECK(!ec, op, path, ": cannot read its size (", ec.message(), ")");
  std::ifstream in(path, std::ios::binary);
  SSM_CHECK(in.good(), op, path, ": cannot open for reading");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  const auto got = static_cast<std::uintmax_t>(in.gcount());
  SSM_CHECK(got == size, op, path, ": read ", got, " of its ", size, " bytes");
  return bytes;
}

VisionSplit parse_vision_split(const std::string& s) {
  if (s == "train") return VisionSplit::Train;
  if (s == "val") return VisionSplit::Val;
  if (s == "test") return VisionSplit::Test;
  fail("data", "unknown split '", s, "', expected train, val or test");
}

const char* vision_split_name(VisionSplit s) {
  switch (s) {
    case VisionSplit::Train: return "train";
    case VisionSplit::Val: return "val";
    case VisionSplit::Test: return "test";
  }
  return "?";
}

}  // namespace ssm::data
