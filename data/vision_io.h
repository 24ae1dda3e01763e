#pragma once
// Splits and helpers shared by the image datasets (cifar.h, idx.h): whole-file reads
// and a seeded permutation.
#include <cstdint>
#include <string>
#include <vector>

namespace ssm::data {

enum class VisionSplit { Train, Val, Test };
VisionSplit parse_vision_split(const std::string& s);  // "train" | "val" | "test"
const char* vision_split_name(VisionSplit s);

// The bytes of `path`, read with one read call. A missing file throws an
// ssm::Error "[op] <path> not found: <hint>" (hint says where to get it); a
// short read names the file and the bytes expected and got.
std::vector<std::uint8_t> read_whole_file(const std::string& path, const char* op,
                                          const std::string& hint);

}  // namespace ssm::data
