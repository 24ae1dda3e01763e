#include "data/png.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "data/inflate.h"

namespace ssm::data {

namespace {

constexpr std::uint8_t kSignature[8] = {137, 80, 78, 71, 13, 10, 26, 10};

std::uint32_t be32(const std::uint8_t* p) {
  return (static_cast<std::uint32_t>(p[0]) << 24) | (static_cast<std::uint32_t>(p[1]) << 16) |
         (static_cast<std::uint32_t>(p[2]) << 8) | p[3];
}

void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void put_chunk(std::vector<std::uint8_t>& out, const char* type,
               const std::vector<std::uint8_t>& data) {
  put_be32(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  put_be32(out, crc32(out.data() + start, out.size() - start));
}

int paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

}  // namespace

std::uint32_t crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1u) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

GrayImage decode_png_gray(const std::uint8_t* d, std::size_t n, const std::string& name) {
  if (n < 8 || std::memcmp(d, kSignature, 8) != 0) {
    fail("png", name, ": not a PNG file (expected the signature 89 50 4E 47 0D 0A 1A 0A)");
  }
  std::size_t pos = 8;
  bool have_header = false, have_end = false;
  std::uint32_t width = 0, height = 0;
  int channels = 1;
  std::vector<std::uint8_t> idat;
  while (pos < n && !have_end) {
    if (n - pos < 12) {
      fail("png", name, ": truncated chunk at byte offset ", pos,
           ": expected a 12-byte chunk frame, ", n - pos, " bytes left");
    }
    const std::uint32_t len = be32(d + pos);
    const std::string type(reinterpret_cast<const char*>(d + pos + 4), 4);
    if (len > n - pos - 12) {
      fail("png", name, ": truncated chunk '", type, "' at byte offset ", pos, ": expected ",
           static_cast<std::size_t>(len) + 12, " bytes, ", n - pos, " left");
    }
    const std::uint8_t* body = d + pos + 8;
    const std::uint32_t want = be32(body + len), got = crc32(d + pos + 4, len + 4u);
    if (want != got) {
      fail("png", name, ": bad CRC in chunk '", type, "' at byte offset ", pos, ": stored ", want,
           ", computed ", got);
    }
    if (!have_header && type != "IHDR") {
      fail("png", name, ": expected the IHDR chunk first, got '", type, "'");
    }
    if (type == "IHDR") {
      if (len != 13) fail("png", name, ": IHDR of ", len, " bytes; expected 13");
      width = be32(body);
      height = be32(body + 4);
      const int depth = body[8], color = body[9];
      if (width == 0 || height == 0 || width > (1u << 16) || height > (1u << 16)) {
        fail("png", name, ": image size ", width, "x", height, "; expected 1..65536 per side");
      }
      if (depth != 8) {
        fail("png", name, ": unsupported bit depth ", depth, "; expected 8");
      }
      switch (color) {
        case 0: channels = 1; break;
        case 2: channels = 3; break;
        case 4: channels = 2; break;
        case 6: channels = 4; break;
        default:
          fail("png", name, ": unsupported color type ", color,
               "; expected 0 (gray), 2 (RGB), 4 (gray+alpha) or 6 (RGBA)");
      }
      if (body[10] != 0 || body[11] != 0) {
        fail("png", name, ": unsupported compression/filter method ", int{body[10]}, "/",
             int{body[11]}, "; expected 0/0");
      }
      if (body[12] != 0) {
        fail("png", name, ": unsupported interlace method ", int{body[12]},
             "; expected 0 (non-interlaced)");
      }
      have_header = true;
    } else if (type == "IDAT") {
      idat.insert(idat.end(), body, body + len);
    } else if (type == "IEND") {
      have_end = true;
    } else if ((type[0] & 0x20) == 0 && type != "PLTE") {
      fail("png", name, ": unsupported critical chunk '", type, "'");
    }  // ancillary chunks (and a PLTE suggestion for truecolor) are skipped
    pos += 12 + static_cast<std::size_t>(len);
  }
  if (!have_end) {
    fail("png", name, ": truncated file: no IEND chunk before the end at byte offset ", n);
  }
  if (idat.empty()) fail("png", name, ": no IDAT chunk");
  const auto raw = zlib_decompress(idat.data(), idat.size(), name + " (IDAT)");
  const std::size_t w = width, h = height, ch = static_cast<std::size_t>(channels);
  const std::size_t stride = w * ch;
  if (raw.size() != h * (stride + 1)) {
    fail("png", name, ": IDAT holds ", raw.size(), " bytes; expected ", h * (stride + 1), " for ",
         w, "x", h, " with ", ch, " channel(s)");
  }
  std::vector<std::uint8_t> prev(stride, 0), row(stride);
  GrayImage img;
  img.width = width;
  img.height = height;
  img.pixels.resize(w * h);
  for (std::size_t r = 0; r < h; ++r) {
    const std::uint8_t* line = raw.data() + r * (stride + 1);
    const int filter = line[0];
    for (std::size_t i = 0; i < stride; ++i) {
      const int a = i >= ch ? row[i - ch] : 0, b = prev[i], c = i >= ch ? prev[i - ch] : 0;
      int pred = 0;
      switch (filter) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: pred = paeth(a, b, c); break;
        default: fail("png", name, ": row ", r, " has filter type ", filter, "; expected 0..4");
      }
      row[i] = static_cast<std::uint8_t>(line[1 + i] + pred);
    }
    std::uint8_t* out = img.pixels.data() + r * w;
    for (std::size_t x = 0; x < w; ++x) {
      const std::uint8_t* px = row.data() + x * ch;
      if (ch <= 2) {
        out[x] = px[0];
      } else {
        out[x] =
            static_cast<std::uint8_t>((299u * px[0] + 587u * px[1] + 114u * px[2] + 500u) / 1000u);
      }
    }
    std::swap(prev, row);
  }
  return img;
}

GrayImage read_png_gray(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("png", path, ": cannot open file");
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                                        std::istreambuf_iterator<char>());
  return decode_png_gray(bytes.data(), bytes.size(), path);
}

std::vector<std::uint8_t> encode_png_gray(const GrayImage& image) {
  const std::size_t w = static_cast<std::size_t>(image.width);
  const std::size_t h = static_cast<std::size_t>(image.height);
  SSM_CHECK(image.width > 0 && image.height > 0 && image.pixels.size() == w * h, "png",
            "encode expected width, height > 0 and width * height pixels, got ", image.width, "x",
            image.height, " with ", image.pixels.size(), " pixels");
  std::vector<std::uint8_t> out(kSignature, kSignature + 8);
  std::vector<std::uint8_t> ihdr;
  put_be32(ihdr, static_cast<std::uint32_t>(w));
  put_be32(ihdr, static_cast<std::uint32_t>(h));
  ihdr.insert(ihdr.end(), {8, 0, 0, 0, 0});  // depth 8, gray, deflate, filter 0, no interlace
  put_chunk(out, "IHDR", ihdr);
  std::vector<std::uint8_t> raw;
  raw.reserve(h * (w + 1));
  for (std::size_t r = 0; r < h; ++r) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), image.pixels.begin() + static_cast<std::ptrdiff_t>(r * w),
               image.pixels.begin() + static_cast<std::ptrdiff_t>((r + 1) * w));
  }
  put_chunk(out, "IDAT", zlib_store(raw.data(), raw.size()));
  put_chunk(out, "IEND", {});
  return out;
}

void write_png_gray(const std::string& path, const GrayImage& image) {
  const auto bytes = encode_png_gray(image);
  std::ofstream f(path, std::ios::binary);
  if (!f) fail("png", path, ": cannot create file");
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) fail("png", path, ": write failed");
}

}  // namespace ssm::data
