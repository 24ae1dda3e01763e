#include "data/inflate.h"

#include <algorithm>
#include <array>
#include <utility>

#include "core/error.h"

namespace ssm::data {

namespace {

// Bits of the stream, least significant bit of each byte first (RFC 1951 3.1.1).
class BitReader {
 public:
  BitReader(const std::uint8_t* data, std::size_t size, const std::string& what)
      : data_(data), size_(size), what_(what) {}

  std::uint32_t bits(int need) {
    std::uint32_t val = buf_;
    while (count_ < need) {
      if (pos_ >= size_) {
        fail("inflate", what_, ": truncated DEFLATE stream: expected more data after byte ", size_);
      }
      val |= static_cast<std::uint32_t>(data_[pos_++]) << count_;
      count_ += 8;
    }
    buf_ = val >> need;
    count_ -= need;
    return val & ((1u << need) - 1u);
  }
  // Drops the bits left in the current byte (stored blocks start byte-aligned).
  void align() {
    buf_ = 0;
    count_ = 0;
  }
  std::uint8_t byte() {
    if (pos_ >= size_) {
      fail("inflate", what_, ": truncated stored block: expected more data after byte ", size_);
    }
    return data_[pos_++];
  }
  std::size_t pos() const { return pos_; }
  const std::string& what() const { return what_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  const std::string& what_;
  std::size_t pos_ = 0;
  std::uint32_t buf_ = 0;
  int count_ = 0;
};

constexpr int kMaxBits = 15;

// A canonical Huffman code: how many codes have each length, and the symbols
// ordered by (length, symbol value).
struct Huffman {
  std::array<std::uint16_t, kMaxBits + 1> count{};
  std::vector<std::uint16_t> symbol;
};

// Returns 0 for a complete code, > 0 for an incomplete one, < 0 for an
// over-subscribed one.
int build(Huffman& h, const std::uint8_t* lengths, int n) {
  h.count.fill(0);
  for (int s = 0; s < n; ++s) ++h.count[lengths[s]];
  if (h.count[0] == n) return 0;  // no codes: decoding any symbol fails
  int left = 1;
  for (int len = 1; len <= kMaxBits; ++len) {
    left <<= 1;
    left -= h.count[len];
    if (left < 0) return left;
  }
  std::array<int, kMaxBits + 1> offs{};
  for (int len = 1; len < kMaxBits; ++len) offs[len + 1] = offs[len] + h.count[len];
  h.symbol.assign(static_cast<std::size_t>(n), 0);
  for (int s = 0; s < n; ++s) {
    if (lengths[s] != 0)
      h.symbol[static_cast<std::size_t>(offs[lengths[s]]++)] = static_cast<std::uint16_t>(s);
  }
  return left;
}

// Reads one symbol bit by bit: codes of each length are consecutive integers.
int decode(BitReader& in, const Huffman& h) {
  int code = 0, first = 0, index = 0;
  for (int len = 1; len <= kMaxBits; ++len) {
    code |= static_cast<int>(in.bits(1));
    const int count = h.count[len];
    if (code - count < first) return h.symbol[static_cast<std::size_t>(index + (code - first))];
    index += count;
    first += count;
    first <<= 1;
    code <<= 1;
  }
  fail("inflate", in.what(), ": invalid Huffman code in DEFLATE stream near byte ", in.pos());
}

constexpr std::array<std::uint16_t, 29> kLenBase = {3,  4,  5,  6,   7,   8,   9,   10,  11, 13,
                                                    15, 17, 19, 23,  27,  31,  35,  43,  51, 59,
                                                    67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr std::array<std::uint8_t, 29> kLenExtra = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                    2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr std::array<std::uint16_t, 30> kDistBase = {
    1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr std::array<std::uint8_t, 30> kDistExtra = {0, 0, 0,  0,  1,  1,  2,  2,  3,  3,
                                                     4, 4, 5,  5,  6,  6,  7,  7,  8,  8,
                                                     9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

// Decodes the literal/length and distance symbols of one Huffman block.
void codes(BitReader& in, std::vector<std::uint8_t>& out, const Huffman& lit, const Huffman& dist) {
  for (;;) {
    const int sym = decode(in, lit);
    if (sym < 256) {
      out.push_back(static_cast<std::uint8_t>(sym));
    } else if (sym == 256) {
      return;
    } else {
      const int li = sym - 257;
      if (li >= 29) fail("inflate", in.what(), ": invalid length symbol ", sym);
      const std::size_t len =
          kLenBase[static_cast<std::size_t>(li)] + in.bits(kLenExtra[static_cast<std::size_t>(li)]);
      const int di = decode(in, dist);
      if (di >= 30) fail("inflate", in.what(), ": invalid distance symbol ", di);
      const std::size_t d = kDistBase[static_cast<std::size_t>(di)] +
                            in.bits(kDistExtra[static_cast<std::size_t>(di)]);
      if (d > out.size()) {
        fail("inflate", in.what(), ": distance ", d, " reaches before the start of the output (",
             out.size(), " bytes so far)");
      }
      const std::size_t from = out.size() - d;
      for (std::size_t k = 0; k < len; ++k) out.push_back(out[from + k]);  // may overlap
    }
  }
}

void stored(BitReader& in, std::vector<std::uint8_t>& out) {
  in.align();
  const unsigned lo = in.byte(), hi = in.byte(), nlo = in.byte(), nhi = in.byte();
  const unsigned len = lo | (hi << 8), nlen = nlo | (nhi << 8);
  if ((len ^ 0xFFFFu) != nlen) {
    fail("inflate", in.what(), ": stored block length ", len, " does not match its complement ",
         nlen);
  }
  for (unsigned k = 0; k < len; ++k) out.push_back(in.byte());
}

void fixed(BitReader& in, std::vector<std::uint8_t>& out) {
  static const auto tables = [] {
    std::array<std::uint8_t, 288> l{};
    for (int s = 0; s < 288; ++s)
      l[static_cast<std::size_t>(s)] = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
    std::array<std::uint8_t, 30> d{};
    d.fill(5);
    std::pair<Huffman, Huffman> h;
    build(h.first, l.data(), 288);
    build(h.second, d.data(), 30);
    return h;
  }();
  codes(in, out, tables.first, tables.second);
}

void dynamic(BitReader& in, std::vector<std::uint8_t>& out) {
  const int nlen = static_cast<int>(in.bits(5)) + 257;
  const int ndist = static_cast<int>(in.bits(5)) + 1;
  const int ncode = static_cast<int>(in.bits(4)) + 4;
  if (nlen > 286 || ndist > 30) {
    fail("inflate", in.what(), ": dynamic block declares ", nlen, " length and ", ndist,
         " distance codes; expected at most 286 and 30");
  }
  static constexpr std::array<int, 19> kOrder = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                                 11, 4,  12, 3, 13, 2, 14, 1, 15};
  std::array<std::uint8_t, 320> lengths{};
  for (int k = 0; k < ncode; ++k)
    lengths[static_cast<std::size_t>(kOrder[static_cast<std::size_t>(k)])] =
        static_cast<std::uint8_t>(in.bits(3));
  Huffman lencode;
  if (build(lencode, lengths.data(), 19) != 0) {
    fail("inflate", in.what(), ": incomplete code-length code in dynamic block");
  }
  lengths.fill(0);
  for (int k = 0; k < nlen + ndist;) {
    const int sym = decode(in, lencode);
    if (sym < 16) {
      lengths[static_cast<std::size_t>(k++)] = static_cast<std::uint8_t>(sym);
      continue;
    }
    std::uint8_t value = 0;
    int repeat = 0;
    if (sym == 16) {
      if (k == 0) fail("inflate", in.what(), ": repeat code with no previous length");
      value = lengths[static_cast<std::size_t>(k - 1)];
      repeat = 3 + static_cast<int>(in.bits(2));
    } else if (sym == 17) {
      repeat = 3 + static_cast<int>(in.bits(3));
    } else {
      repeat = 11 + static_cast<int>(in.bits(7));
    }
    if (k + repeat > nlen + ndist) fail("inflate", in.what(), ": too many code lengths");
    while (repeat-- > 0) lengths[static_cast<std::size_t>(k++)] = value;
  }
  if (lengths[256] == 0) fail("inflate", in.what(), ": dynamic block has no end-of-block code");
  Huffman lit, dist;
  int err = build(lit, lengths.data(), nlen);
  if (err < 0 || (err > 0 && nlen - lit.count[0] != 1)) {
    fail("inflate", in.what(), ": invalid literal/length code lengths");
  }
  err = build(dist, lengths.data() + nlen, ndist);
  if (err < 0 || (err > 0 && ndist - dist.count[0] != 1)) {
    fail("inflate", in.what(), ": invalid distance code lengths");
  }
  codes(in, out, lit, dist);
}

}  // namespace

std::uint32_t adler32(const std::uint8_t* data, std::size_t size, std::uint32_t adler) {
  std::uint32_t a = adler & 0xFFFFu, b = adler >> 16;
  for (std::size_t i = 0; i < size; ++i) {
    a = (a + data[i]) % 65521u;
    b = (b + a) % 65521u;
  }
  return (b << 16) | a;
}

std::vector<std::uint8_t> inflate_raw(const std::uint8_t* data, std::size_t size,
                                      const std::string& what, std::size_t* consumed) {
  BitReader in(data, size, what);
  std::vector<std::uint8_t> out;
  bool last = false;
  while (!last) {
    last = in.bits(1) != 0;
    const std::uint32_t type = in.bits(2);
    if (type == 0) {
      stored(in, out);
    } else if (type == 1) {
      fixed(in, out);
    } else if (type == 2) {
      dynamic(in, out);
    } else {
      fail("inflate", what, ": invalid DEFLATE block type 3 near byte ", in.pos());
    }
  }
  if (consumed != nullptr) *consumed = in.pos();
  return out;
}

std::vector<std::uint8_t> zlib_decompress(const std::uint8_t* data, std::size_t size,
                                          const std::string& what) {
  if (size < 6) fail("inflate", what, ": zlib stream of ", size, " bytes; expected at least 6");
  const unsigned cmf = data[0], flg = data[1];
  if ((cmf & 0x0Fu) != 8 || (cmf >> 4) > 7 || (cmf * 256 + flg) % 31 != 0) {
    fail("inflate", what, ": bad zlib header ", cmf, " ", flg,
         "; expected deflate (method 8) with a valid check");
  }
  if ((flg & 0x20u) != 0) fail("inflate", what, ": zlib preset dictionary not supported");
  std::size_t used = 0;
  auto out = inflate_raw(data + 2, size - 2, what, &used);
  const std::size_t at = 2 + used;
  if (size - at < 4) fail("inflate", what, ": truncated zlib stream: missing the Adler-32 trailer");
  const std::uint32_t stored_sum = (static_cast<std::uint32_t>(data[at]) << 24) |
                                   (static_cast<std::uint32_t>(data[at + 1]) << 16) |
                                   (static_cast<std::uint32_t>(data[at + 2]) << 8) | data[at + 3];
  const std::uint32_t sum = adler32(out.data(), out.size());
  if (sum != stored_sum) {
    fail("inflate", what, ": Adler-32 mismatch: stream says ", stored_sum, ", data gives ", sum);
  }
  return out;
}

std::vector<std::uint8_t> zlib_store(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> out = {0x78, 0x01};  // deflate, 32K window, fastest; check ok
  std::size_t pos = 0;
  do {
    const std::size_t len = std::min<std::size_t>(65535, size - pos);
    const bool last = pos + len == size;
    out.push_back(last ? 1 : 0);  // BFINAL, BTYPE 00, padding to the byte
    out.push_back(static_cast<std::uint8_t>(len & 0xFF));
    out.push_back(static_cast<std::uint8_t>(len >> 8));
    out.push_back(static_cast<std::uint8_t>(~len & 0xFF));
    out.push_back(static_cast<std::uint8_t>((~len >> 8) & 0xFF));
    out.insert(out.end(), data + pos, data + pos + len);
    pos += len;
  } while (pos < size);
  const std::uint32_t sum = adler32(data, size);
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<std::uint8_t>(sum >> shift));
  return out;
}

}  // namespace ssm::data
