#pragma once
// LRA Pathfinder (32x32) and Path-X (128x128): a loader for the released
// layout and a generator that writes the same layout.
//
// Layout of a root such as lra_release/pathfinder32/curv_contour_length_14:
//   <root>/metadata/<b>.npy        text despite the name: one line per image,
//                                  whitespace-separated fields
//                                  [0] folder ("imgs/<b>"), [1] file name
//                                  ("sample_<i>.png"), [2] unused, [3] label
//                                  (0 or 1), further fields unused
//   <root>/imgs/<b>/sample_<i>.png resolution x resolution 8-bit gray PNG
// Metadata files are read in numeric order of <b>, lines in file order; that
// order is the example order. Image path = root / field0 / field1.
//
// Example: x (L, 1) float32 with L = resolution^2, the image flattened
// row-major, pixel p (0..255) mapped to float(p) / 255.0f * 2.0f - 1.0f
// (float arithmetic, so 0 -> -1, 255 -> 1); label 0/1; length L.
//
// Splits (deterministic, by example order): the first
// floor(N * train_fraction) examples are train, the next
// floor(N * val_fraction) val, the rest test (80/10/10 by default).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/png.h"

namespace ssm::data {

struct PathfinderRecord {
  std::string path;  // root / folder / file
  std::int64_t label = 0;
  std::string source;  // "<metadata file>:<line>" for errors
};

// All records of a root in example order. Throws naming the expected path
// and the LRA release when <root>/metadata is missing.
std::vector<PathfinderRecord> read_pathfinder_index(const std::string& root);

struct PathfinderOptions {
  std::string root;              // folder holding imgs/ and metadata/
  std::int64_t resolution = 32;  // 32 (Pathfinder) or 128 (Path-X); every image is checked
  double train_fraction = 0.8;
  double val_fraction = 0.1;
  // true: read the split's images at construction into uint8 storage (N * L
  // bytes); false: keep only paths and labels, read each image in get().
  bool eager = true;
};

class PathfinderDataset : public Dataset {
 public:
  // split: 0 train, 1 val, 2 test.
  PathfinderDataset(const PathfinderOptions& options, int split);
  std::int64_t size() const override { return static_cast<std::int64_t>(records_.size()); }
  Example get(std::int64_t i) const override;
  std::int64_t num_classes() const override { return 2; }
  std::int64_t d_input() const override { return 1; }
  std::string name() const override;  // "pathfinder32/train", "pathx/val", ...

  // The (first, count) range of example order a split covers out of n.
  static std::array<std::int64_t, 2> split_range(std::int64_t n, double train_fraction,
                                                 double val_fraction, int split);

 private:
  GrayImage load(const PathfinderRecord& r) const;  // checks the size
  PathfinderOptions o_;
  int split_;
  std::vector<PathfinderRecord> records_;
  std::vector<std::uint8_t> pixels_;  // eager: (N, L) uint8
};

// ---------------------------------------------------------------- generator
//
// Each image holds 2 + distractors contours. A contour is a chain of
// contour_length straight paddles (antialiased line segments), separated by
// paddle_gap pixels along the path; the heading turns by a uniform angle in
// [-max_turn, max_turn] before each paddle (bounded curvature); the walk is
// placed uniformly where its bounding box keeps marker_radius + 1 pixels from
// the border. Two markers (discs) sit on contour ends: label 1 puts them on
// both ends of contour 0, label 0 on the head of contour 0 and the tail of
// contour 1, so both classes show the same number of contours. The label is
// a fair coin. Cost at 32x32 with 2 distractors: about 2 / 25 / 100 ms per
// image for contour_length 6 / 9 / 14 (rejections grow with crowding); when
// 200 restarts cannot place every contour the call throws, naming the options.
//
// Rendering: coverage of a pixel centre at distance d from a paddle's centre
// line is clamp(width/2 + 0.5 - d, 0, 1) (a one-pixel ramp), of a marker
// clamp(radius + 0.5 - d, 0, 1); pixel = round(255 * max coverage); ink means
// pixel > 0.
//
// Separation rule (rejection sampling, checked on the rendered pixels): with
// link radius R = pathfinder_link_radius(options), every contour's ink (its
// marker included) is one connected set when pixels within Chebyshev
// distance R are neighbours, and the ink of distinct contours is more than R
// apart. So a flood fill of the ink (pixel > 0) with that neighbourhood from
// one marker reaches the other exactly when the label is 1.
//
// Randomness: image k draws from Philox(seed, stream = k), so image k is the
// same whatever the count.
struct PathfinderGenOptions {
  std::int64_t resolution = 32;         // 32 or 128
  std::int64_t contour_length = 6;      // paddles per contour (LRA: 6, 9, 14)
  std::int64_t distractors = 2;         // contours without markers
  double paddle_length = 0.0;           // pixels; 0: min(res / 16, 0.75 res / contour_length - gap)
  double paddle_gap = 0.0;              // pixels; 0: resolution / 64
  double paddle_width = 0.0;            // pixels; 0: max(1, resolution / 64)
  double marker_radius = 0.0;           // pixels; 0: resolution * 3 / 64
  double max_turn = 0.6;                // radians per paddle
  std::int64_t images_per_file = 1000;  // images per imgs/<b> and metadata/<b>.npy
};

// The neighbourhood radius of the separation rule: max(1, floor(paddle_gap + sqrt 2))
// (1 at resolution 32, 3 at 128 with the default gap).
std::int64_t pathfinder_link_radius(const PathfinderGenOptions& options);

struct PathfinderSample {
  GrayImage image;  // (resolution, resolution)
  std::int64_t label = 0;
  std::array<std::int64_t, 4> markers{};  // row0, col0, row1, col1: pixels under the marker centres
};

PathfinderSample generate_pathfinder_sample(const PathfinderGenOptions& options, std::uint64_t seed,
                                            std::int64_t index);

// Writes `count` images and their metadata under out_root in the layout the
// loader reads: image k is imgs/<k / images_per_file>/sample_<k % images_per_file>.png;
// metadata lines are "imgs/<b> sample_<i>.png 0 <label> <row0> <col0> <row1> <col1>
// <contour_length> <distractors>" (fields 4.. are the marker pixels and the
// options; LRA readers ignore them).
void write_pathfinder(const std::string& out_root, std::int64_t count,
                      const PathfinderGenOptions& options, std::uint64_t seed);

// A PNG contact sheet: row 0 the first `per_class` label-0 images, row 1 the
// first label-1 images (of indices 0, 1, ...), each upscaled `scale` times
// (nearest), on a mid-gray grid.
void write_pathfinder_sheet(const std::string& path, const PathfinderGenOptions& options,
                            std::uint64_t seed, std::int64_t per_class = 4, std::int64_t scale = 4);

}  // namespace ssm::data
