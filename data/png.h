#pragma once
// A small self-contained PNG codec for the image datasets (no libpng).
//
// Decoding: 8-bit, non-interlaced images of color type 0 (gray), 2 (RGB),
// 4 (gray + alpha) or 6 (RGBA), all five row filters, IDAT inflated by
// data/inflate.h. Color is converted to gray as
//   gray = (299 R + 587 G + 114 B + 500) / 1000   (integer division)
// and alpha is dropped. Every chunk's CRC-32 and the zlib Adler-32 are
// checked. Errors (ssm::Error) name the file and what was expected: a bad
// signature, a truncated chunk (with its byte offset), a CRC mismatch (with
// the chunk), an unsupported bit depth / color type / interlace method.
//
// Encoding: 8-bit gray, filter 0 on every row, IDAT in stored deflate blocks.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ssm::data {

struct GrayImage {
  std::int64_t width = 0;
  std::int64_t height = 0;
  std::vector<std::uint8_t> pixels;  // (height, width) row-major
};

// CRC-32 (ISO 3309, as PNG and zlib use it) of `size` bytes, continuing from `crc`.
std::uint32_t crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0);

// Decodes PNG bytes; `name` (usually the path) appears in errors.
GrayImage decode_png_gray(const std::uint8_t* data, std::size_t size, const std::string& name);
GrayImage read_png_gray(const std::string& path);

std::vector<std::uint8_t> encode_png_gray(const GrayImage& image);
void write_png_gray(const std::string& path, const GrayImage& image);

}  // namespace ssm::data
