#pragma once
// zlib (RFC 1950) and DEFLATE (RFC 1951) without a dependency: inflate of
// stored, fixed-Huffman and dynamic-Huffman blocks, Adler-32, and a zlib
// writer that emits stored (uncompressed) blocks only. Used by the PNG codec
// of data/png.h. Errors are ssm::Error naming `what` (a file and chunk).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ssm::data {

// Adler-32 of `size` bytes, continuing from `adler` (1 starts a new sum).
std::uint32_t adler32(const std::uint8_t* data, std::size_t size, std::uint32_t adler = 1);

// Decompresses a raw DEFLATE stream that starts at data[0]. Sets *consumed
// (when given) to the bytes read, the last partial byte included.
std::vector<std::uint8_t> inflate_raw(const std::uint8_t* data, std::size_t size,
                                      const std::string& what, std::size_t* consumed = nullptr);

// Decompresses a zlib stream: checks the 2-byte header (deflate, no preset
// dictionary) and the Adler-32 trailer of the decompressed bytes.
std::vector<std::uint8_t> zlib_decompress(const std::uint8_t* data, std::size_t size,
                                          const std::string& what);

// A valid zlib stream holding `size` bytes in stored blocks (no compression).
std::vector<std::uint8_t> zlib_store(const std::uint8_t* data, std::size_t size);

}  // namespace ssm::data
