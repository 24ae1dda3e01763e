#include "data/pathfinder.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/philox.h"

namespace ssm::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kWhere =
    "; get it from the LRA release https://storage.googleapis.com/long-range-arena/"
    "lra_release.gz (e.g. lra_release/pathfinder32/curv_contour_length_14) or generate one with "
    "write_pathfinder";

bool parse_int(const std::string& s, std::int64_t& v) {
  if (s.empty()) return false;
  std::size_t used = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == s.size();
}

}  // namespace

std::vector<PathfinderRecord> read_pathfinder_index(const std::string& root) {
  const fs::path meta = fs::path(root) / "metadata";
  if (!fs::is_directory(meta)) {
    fail("pathfinder", meta.string(),
         ": metadata folder not found; expected <root>/metadata/<b>.npy",
         " and <root>/imgs/<b>/sample_<i>.png", kWhere);
  }
  std::vector<std::pair<std::int64_t, fs::path>> files;
  for (const auto& entry : fs::directory_iterator(meta)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".npy") continue;
    std::int64_t b = 0;
    if (!parse_int(entry.path().stem().string(), b)) {
      fail("pathfinder", entry.path().string(), ": expected a metadata file named <number>.npy");
    }
    files.emplace_back(b, entry.path());
  }
  if (files.empty()) fail("pathfinder", meta.string(), ": no <b>.npy metadata files", kWhere);
  std::sort(files.begin(), files.end());
  std::vector<PathfinderRecord> records;
  for (const auto& [b, file] : files) {
    std::ifstream f(file);
    if (!f) fail("pathfinder", file.string(), ": cannot open metadata file");
    std::string line;
    for (std::int64_t no = 1; std::getline(f, line); ++no) {
      std::istringstream is(line);
      std::vector<std::string> fields;
      for (std::string s; is >> s;) fields.push_back(s);
      if (fields.empty()) continue;
      const std::string source = file.string() + ":" + std::to_string(no);
      if (fields.size() < 4) {
        fail("pathfinder", source, ": expected at least 4 fields (folder, file, _, label), got ",
             fields.size());
      }
      std::int64_t label = 0;
      if (!parse_int(fields[3], label) || (label != 0 && label != 1)) {
        fail("pathfinder", source, ": expected label 0 or 1 in field 3, got '", fields[3], "'");
      }
      PathfinderRecord r;
      r.path = (fs::path(root) / fields[0] / fields[1]).string();
      r.label = label;
      r.source = source;
      records.push_back(std::move(r));
    }
  }
  return records;
}

std::array<std::int64_t, 2> PathfinderDataset::split_range(std::int64_t n, double train_fraction,
                                                           double val_fraction, int split) {
  SSM_CHECK(train_fraction >= 0 && val_fraction >= 0 && train_fraction + val_fraction <= 1.0,
            "pathfinder", "expected fractions >= 0 with train + val <= 1, got ", train_fraction,
            " and ", val_fraction);
  SSM_CHECK(split >= 0 && split <= 2, "pathfinder", "expected split 0, 1 or 2, got ", split);
  const auto n_train =
      static_cast<std::int64_t>(std::floor(static_cast<double>(n) * train_fraction));
  const auto n_val = static_cast<std::int64_t>(std::floor(static_cast<double>(n) * val_fraction));
  if (split == 0) return {0, n_train};
  if (split == 1) return {n_train, n_val};
  return {n_train + n_val, n - n_train - n_val};
}

PathfinderDataset::PathfinderDataset(const PathfinderOptions& o, int split) : o_(o), split_(split) {
  SSM_CHECK(o.resolution > 0, "pathfinder", "expected resolution > 0, got ", o.resolution);
  auto all = read_pathfinder_index(o.root);
  const auto [first, count] =
      split_range(static_cast<std::int64_t>(all.size()), o.train_fraction, o.val_fraction, split);
  records_.assign(std::make_move_iterator(all.begin() + first),
                  std::make_move_iterator(all.begin() + first + count));
  if (!o.eager) return;
  const std::size_t l = static_cast<std::size_t>(o.resolution * o.resolution);
  pixels_.resize(records_.size() * l);
  for (std::size_t i = 0; i < records_.size(); ++i) {
    const GrayImage img = load(records_[i]);
    std::copy(img.pixels.begin(), img.pixels.end(),
              pixels_.begin() + static_cast<std::ptrdiff_t>(i * l));
  }
}

GrayImage PathfinderDataset::load(const PathfinderRecord& r) const {
  if (!fs::exists(r.path)) {
    fail("pathfinder", r.path, ": image listed in ", r.source, " not found", kWhere);
  }
  GrayImage img = read_png_gray(r.path);
  if (img.width != o_.resolution || img.height != o_.resolution) {
    fail("pathfinder", r.path, ": image is ", img.width, "x", img.height, "; expected ",
         o_.resolution, "x", o_.resolution, " (resolution option)");
  }
  return img;
}

Example PathfinderDataset::get(std::int64_t i) const {
  SSM_CHECK(i >= 0 && i < size(), "pathfinder", "index ", i, " outside [0, ", size(), ")");
  const std::int64_t l = o_.resolution * o_.resolution;
  const auto& r = records_[static_cast<std::size_t>(i)];
  GrayImage lazy;
  const std::uint8_t* px = nullptr;
  if (o_.eager) {
    px = pixels_.data() + i * l;
  } else {
    lazy = load(r);
    px = lazy.pixels.data();
  }
  Example e;
  e.x = Tensor::empty({l, 1});  // (L, 1) float32
  float* x = e.x.data<float>();
  for (std::int64_t k = 0; k < l; ++k) x[k] = static_cast<float>(px[k]) / 255.0f * 2.0f - 1.0f;
  e.label = r.label;
  e.length = l;
  return e;
}

std::string PathfinderDataset::name() const {
  static const char* splits[] = {"train", "val", "test"};
  const std::string base =
      o_.resolution == 128 ? std::string("pathx") : "pathfinder" + std::to_string(o_.resolution);
  return base + "/" + splits[split_];
}

// ---------------------------------------------------------------- generator

namespace {

struct Resolved {
  std::int64_t res, length, contours;
  double paddle, gap, width, radius, max_turn;
  std::int64_t link;
};

Resolved resolve(const PathfinderGenOptions& o) {
  SSM_CHECK(o.resolution >= 16, "pathfinder", "generator expected resolution >= 16, got ",
            o.resolution);
  SSM_CHECK(o.contour_length >= 2 && o.distractors >= 0, "pathfinder",
            "generator expected contour_length >= 2 and distractors >= 0, got ", o.contour_length,
            " and ", o.distractors);
  SSM_CHECK(o.images_per_file > 0, "pathfinder", "expected images_per_file > 0");
  const double r = static_cast<double>(o.resolution);
  Resolved s{};
  s.res = o.resolution;
  s.length = o.contour_length;
  s.contours = 2 + o.distractors;
  s.gap = o.paddle_gap > 0 ? o.paddle_gap : r / 64.0;
  s.paddle = o.paddle_length > 0
                 ? o.paddle_length
                 : std::min(r / 16.0, 0.75 * r / static_cast<double>(o.contour_length) - s.gap);
  s.width = o.paddle_width > 0 ? o.paddle_width : std::max(1.0, r / 64.0);
  s.radius = o.marker_radius > 0 ? o.marker_radius : r * 3.0 / 64.0;
  s.max_turn = o.max_turn;
  s.link = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::floor(s.gap + std::sqrt(2.0))));
  return s;
}

// Uniform [0, 1) draws from Philox(seed, stream), four per block.
class Uniform {
 public:
  Uniform(std::uint64_t seed, std::uint32_t stream) : seed_(seed), stream_(stream) {}
  double operator()() {
    if (lane_ == 4) {
      block_ = philox_block(seed_, stream_, index_++);
      lane_ = 0;
    }
    return static_cast<double>(philox_to_unit(block_.v[lane_++]));
  }

 private:
  std::uint64_t seed_;
  std::uint32_t stream_;
  std::uint64_t index_ = 0;
  int lane_ = 4;
  Philox4 block_{};
};

struct Point {
  double x, y;  // x: column, y: row; pixel (r, c) has its centre at (c + 0.5, r + 0.5)
};

double segment_distance(Point p, Point a, Point b) {
  const double dx = b.x - a.x, dy = b.y - a.y;
  const double len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((p.x - a.x) * dx + (p.y - a.y) * dy) / len2 : 0.0;
  t = std::clamp(t, 0.0, 1.0);
  return std::hypot(p.x - (a.x + t * dx), p.y - (a.y + t * dy));
}

// Max-composites coverage clamp(half + 0.5 - d, 0, 1) of the capsule a-b.
void draw_capsule(std::vector<float>& canvas, std::int64_t res, Point a, Point b, double half) {
  const double pad = half + 1.0;
  const auto lo = [&](double v) {
    return std::max<std::int64_t>(0, static_cast<std::int64_t>(std::floor(v - pad)));
  };
  const auto hi = [&](double v) {
    return std::min<std::int64_t>(res - 1, static_cast<std::int64_t>(std::ceil(v + pad)));
  };
  for (std::int64_t r = lo(std::min(a.y, b.y)); r <= hi(std::max(a.y, b.y)); ++r) {
    for (std::int64_t c = lo(std::min(a.x, b.x)); c <= hi(std::max(a.x, b.x)); ++c) {
      const double d =
          segment_distance({static_cast<double>(c) + 0.5, static_cast<double>(r) + 0.5}, a, b);
      const float cov = static_cast<float>(std::clamp(half + 0.5 - d, 0.0, 1.0));
      float& px = canvas[static_cast<std::size_t>(r * res + c)];
      px = std::max(px, cov);
    }
  }
}

struct Contour {
  std::vector<Point> starts, ends;  // per paddle
  Point head() const { return starts.front(); }
  Point tail() const { return ends.back(); }
};

// A random walk of paddles with a uniform heading, shifted to a uniform
// position where its bounding box keeps `margin` from the border; false when
// the walk is too wide to fit.
bool draw_contour(const Resolved& s, Uniform& u, Contour& c) {
  const double margin = s.radius + 1.0, size = static_cast<double>(s.res);
  constexpr double kPi = 3.14159265358979323846;
  Point p{0.0, 0.0};
  double heading = u() * 2.0 * kPi;
  c.starts.clear();
  c.ends.clear();
  double x0 = 0.0, x1 = 0.0, y0 = 0.0, y1 = 0.0;  // bounding box
  for (std::int64_t k = 0; k < s.length; ++k) {
    if (k > 0) heading += (2.0 * u() - 1.0) * s.max_turn;
    const Point q{p.x + s.paddle * std::cos(heading), p.y + s.paddle * std::sin(heading)};
    c.starts.push_back(p);
    c.ends.push_back(q);
    x0 = std::min(x0, q.x);
    x1 = std::max(x1, q.x);
    y0 = std::min(y0, q.y);
    y1 = std::max(y1, q.y);
    p = {q.x + s.gap * std::cos(heading), q.y + s.gap * std::sin(heading)};
  }
  const double room_x = size - 2.0 * margin - (x1 - x0), room_y = size - 2.0 * margin - (y1 - y0);
  const double dx = u() * room_x, dy = u() * room_y;
  if (room_x < 0.0 || room_y < 0.0) return false;
  for (std::size_t k = 0; k < c.starts.size(); ++k) {
    for (Point* v : {&c.starts[k], &c.ends[k]}) {
      v->x += margin - x0 + dx;
      v->y += margin - y0 + dy;
    }
  }
  return true;
}

// Whether the ink pixels form one set connected through Chebyshev distance <= link.
bool connected(const std::vector<std::uint8_t>& ink, std::int64_t res, std::int64_t link) {
  std::vector<std::uint8_t> seen(ink.size(), 0);
  std::vector<std::int64_t> stack;
  std::int64_t total = 0, reached = 0;
  for (std::size_t i = 0; i < ink.size(); ++i) {
    if (ink[i] == 0) continue;
    ++total;
    if (stack.empty() && reached == 0) {
      stack.push_back(static_cast<std::int64_t>(i));
      seen[i] = 1;
    }
  }
  while (!stack.empty()) {
    const std::int64_t i = stack.back();
    stack.pop_back();
    ++reached;
    const std::int64_t r = i / res, c = i % res;
    for (std::int64_t rr = std::max<std::int64_t>(0, r - link); rr <= std::min(res - 1, r + link);
         ++rr) {
      for (std::int64_t cc = std::max<std::int64_t>(0, c - link); cc <= std::min(res - 1, c + link);
           ++cc) {
        const auto j = static_cast<std::size_t>(rr * res + cc);
        if (ink[j] != 0 && seen[j] == 0) {
          seen[j] = 1;
          stack.push_back(static_cast<std::int64_t>(j));
        }
      }
    }
  }
  return reached == total;
}

}  // namespace

std::int64_t pathfinder_link_radius(const PathfinderGenOptions& options) {
  return resolve(options).link;
}

PathfinderSample generate_pathfinder_sample(const PathfinderGenOptions& options, std::uint64_t seed,
                                            std::int64_t index) {
  const Resolved s = resolve(options);
  SSM_CHECK(index >= 0 && index <= 0xFFFFFFFFll, "pathfinder", "image index ", index,
            " outside [0, 2^32)");
  Uniform u(seed, static_cast<std::uint32_t>(index));
  const std::int64_t res = s.res;
  const std::size_t n = static_cast<std::size_t>(res * res);
  PathfinderSample out;
  out.label = u() < 0.5 ? 1 : 0;
  constexpr int kImageTries = 200, kContourTries = 200;
  for (int attempt = 0; attempt < kImageTries; ++attempt) {
    std::vector<float> canvas(n, 0.0f);
    std::vector<std::uint8_t> forbidden(n, 0);  // ink of placed contours dilated by link
    std::array<Point, 2> markers{};
    bool ok = true;
    for (std::int64_t ci = 0; ci < s.contours && ok; ++ci) {
      bool placed = false;
      for (int t = 0; t < kContourTries && !placed; ++t) {
        Contour c;
        if (!draw_contour(s, u, c)) continue;
        std::vector<float> layer(n, 0.0f);
        for (std::size_t k = 0; k < c.starts.size(); ++k) {
          draw_capsule(layer, res, c.starts[k], c.ends[k], s.width / 2.0);
        }
        // Markers: label 1 both ends of contour 0; label 0 the head of
        // contour 0 and the tail of contour 1.
        std::vector<Point> mine;
        if (ci == 0) mine.push_back(c.head());
        if (ci == 0 && out.label == 1) mine.push_back(c.tail());
        if (ci == 1 && out.label == 0) mine.push_back(c.tail());
        for (const Point& m : mine) draw_capsule(layer, res, m, m, s.radius);
        std::vector<std::uint8_t> ink(n, 0);
        bool clear = true;
        for (std::size_t i = 0; i < n; ++i) {
          ink[i] = std::lround(layer[i] * 255.0f) > 0 ? 1 : 0;
          if (ink[i] != 0 && forbidden[i] != 0) clear = false;
        }
        if (!clear || !connected(ink, res, s.link)) continue;
        placed = true;
        for (std::size_t i = 0; i < n; ++i) {
          canvas[i] = std::max(canvas[i], layer[i]);
          if (ink[i] == 0) continue;
          const std::int64_t r = static_cast<std::int64_t>(i) / res,
                             col = static_cast<std::int64_t>(i) % res;
          for (std::int64_t rr = std::max<std::int64_t>(0, r - s.link);
               rr <= std::min(res - 1, r + s.link); ++rr) {
            for (std::int64_t cc = std::max<std::int64_t>(0, col - s.link);
                 cc <= std::min(res - 1, col + s.link); ++cc) {
              forbidden[static_cast<std::size_t>(rr * res + cc)] = 1;
            }
          }
        }
        if (ci == 0) markers[0] = c.head();
        if (ci == 0 && out.label == 1) markers[1] = c.tail();
        if (ci == 1 && out.label == 0) markers[1] = c.tail();
      }
      ok = placed;
    }
    if (!ok) continue;
    out.image.width = res;
    out.image.height = res;
    out.image.pixels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      out.image.pixels[i] = static_cast<std::uint8_t>(std::lround(canvas[i] * 255.0f));
    }
    for (int m = 0; m < 2; ++m) {
      out.markers[static_cast<std::size_t>(2 * m)] =
          static_cast<std::int64_t>(std::floor(markers[static_cast<std::size_t>(m)].y));
      out.markers[static_cast<std::size_t>(2 * m + 1)] =
          static_cast<std::int64_t>(std::floor(markers[static_cast<std::size_t>(m)].x));
    }
    return out;
  }
  fail("pathfinder", "could not place ", s.contours, " contours of ", s.length,
       " paddles at resolution ", res, " after ", kImageTries,
       " attempts; lower distractors, contour_length or paddle_length");
}

void write_pathfinder(const std::string& out_root, std::int64_t count,
                      const PathfinderGenOptions& options, std::uint64_t seed) {
  SSM_CHECK(count >= 0, "pathfinder", "expected count >= 0, got ", count);
  resolve(options);
  const fs::path root(out_root);
  fs::create_directories(root / "metadata");
  const std::int64_t per = options.images_per_file;
  for (std::int64_t b = 0; b * per < count; ++b) {
    const std::string folder = "imgs/" + std::to_string(b);
    fs::create_directories(root / folder);
    const fs::path meta = root / "metadata" / (std::to_string(b) + ".npy");
    std::ofstream f(meta);
    if (!f) fail("pathfinder", meta.string(), ": cannot create metadata file");
    for (std::int64_t i = 0; i < per && b * per + i < count; ++i) {
      const PathfinderSample s = generate_pathfinder_sample(options, seed, b * per + i);
      const std::string file = "sample_" + std::to_string(i) + ".png";
      write_png_gray((root / folder / file).string(), s.image);
      f << folder << ' ' << file << " 0 " << s.label;
      for (const auto m : s.markers) f << ' ' << m;
      f << ' ' << options.contour_length << ' ' << options.distractors << '\n';
    }
    if (!f) fail("pathfinder", meta.string(), ": write failed");
  }
}

void write_pathfinder_sheet(const std::string& path, const PathfinderGenOptions& options,
                            std::uint64_t seed, std::int64_t per_class, std::int64_t scale) {
  SSM_CHECK(per_class > 0 && scale > 0, "pathfinder", "sheet expected per_class, scale > 0");
  const std::int64_t res = resolve(options).res, cell = res * scale, border = scale;
  GrayImage sheet;
  sheet.width = per_class * (cell + border) + border;
  sheet.height = 2 * (cell + border) + border;
  sheet.pixels.assign(static_cast<std::size_t>(sheet.width * sheet.height), 128);
  std::array<std::int64_t, 2> filled{};
  for (std::int64_t k = 0; filled[0] < per_class || filled[1] < per_class; ++k) {
    const PathfinderSample s = generate_pathfinder_sample(options, seed, k);
    const auto row = static_cast<std::size_t>(s.label);
    if (filled[row] >= per_class) continue;
    const std::int64_t top = border + s.label * (cell + border);
    const std::int64_t left = border + filled[row]++ * (cell + border);
    for (std::int64_t y = 0; y < cell; ++y) {
      for (std::int64_t x = 0; x < cell; ++x) {
        sheet.pixels[static_cast<std::size_t>((top + y) * sheet.width + left + x)] =
            s.image.pixels[static_cast<std::size_t>((y / scale) * res + x / scale)];
      }
    }
  }
  write_png_gray(path, sheet);
}

}  // namespace ssm::data
