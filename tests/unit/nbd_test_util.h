// Test helpers: build NBD messages byte by byte and take replies apart.
//
// These helpers deliberately do not use nbd::WireWriter/WireReader, so that a bug in the
// code under test cannot hide itself by being on both sides of a comparison. Every value is
// written big-endian (network byte order) as proto.md fixes it.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace snapstore::test {

using Bytes = std::vector<std::byte>;

// Appends big-endian integers and raw text; chainable.
class ByteBuilder {
 public:
  ByteBuilder& be16(std::uint16_t v) { return be(v, 2); }
  ByteBuilder& be32(std::uint32_t v) { return be(v, 4); }
  ByteBuilder& be64(std::uint64_t v) { return be(v, 8); }
  ByteBuilder& text(std::string_view s) {
    for (char c : s) out_.push_back(static_cast<std::byte>(c));
    return *this;
  }
  ByteBuilder& raw(std::span<const std::byte> b) {
    out_.insert(out_.end(), b.begin(), b.end());
    return *this;
  }
  ByteBuilder& fill(std::size_t n, std::uint8_t value) {
    out_.insert(out_.end(), n, static_cast<std::byte>(value));
    return *this;
  }
  Bytes build() const { return out_; }
  operator Bytes() const { return out_; }  // NOLINT: convenient in comparisons

 private:
  ByteBuilder& be(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out_.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xff));
    return *this;
  }
  Bytes out_;
};

inline Bytes bytes_of(std::initializer_list<unsigned> values) {
  Bytes out;
  for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

inline Bytes bytes_of(std::string_view s) { return ByteBuilder().text(s); }

inline Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// "4e 42 44 ..." so that a failed comparison shows readable bytes.
inline std::string hex(std::span<const std::byte> b) {
  std::string s;
  char buf[4];
  for (std::size_t i = 0; i < b.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%02x", std::to_integer<unsigned>(b[i]));
    if (i) s += ' ';
    s += buf;
  }
  return s;
}
inline std::string hex(const ByteBuilder& b) { return hex(b.build()); }

// Reads big-endian values back out of a byte vector, asserting it is long enough.
class ByteCursor {
 public:
  explicit ByteCursor(std::span<const std::byte> in) : in_(in) {}
  std::uint64_t be(int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | std::to_integer<unsigned>(next());
    return v;
  }
  std::uint16_t be16() { return static_cast<std::uint16_t>(be(2)); }
  std::uint32_t be32() { return static_cast<std::uint32_t>(be(4)); }
  std::uint64_t be64() { return be(8); }
  Bytes take(std::size_t n) {
    Bytes out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(next());
    return out;
  }
  std::string text(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<char>(next());
    return s;
  }
  std::size_t remaining() const { return in_.size() - pos_; }
  bool overrun() const { return overrun_; }

 private:
  std::byte next() {
    if (pos_ >= in_.size()) {
      overrun_ = true;
      ADD_FAILURE() << "read past the end of a " << in_.size() << "-byte message";
      return std::byte{0};
    }
    return in_[pos_++];
  }
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  bool overrun_ = false;
};

// --- handshake -------------------------------------------------------------------------
inline constexpr std::uint64_t k_ihaveopt = 0x49484156454F5054ull;
inline constexpr std::uint64_t k_option_reply_magic = 0x3e889045565a9ull;

inline Bytes option_header(std::uint32_t option, std::uint32_t length,
                           std::uint64_t magic = k_ihaveopt) {
  return ByteBuilder().be64(magic).be32(option).be32(length);
}

// One option reply exactly as the spec lays it out.
inline Bytes option_reply(std::uint32_t option, std::uint32_t type, const Bytes& data = {}) {
  return ByteBuilder()
      .be64(k_option_reply_magic)
      .be32(option)
      .be32(type)
      .be32(static_cast<std::uint32_t>(data.size()))
      .raw(data);
}

struct OptionReply {
  std::uint64_t magic = 0;
  std::uint32_t option = 0;
  std::uint32_t type = 0;
  Bytes data;
};

// Splits a byte stream into option replies; fails the test on a truncated reply.
inline std::vector<OptionReply> split_option_replies(std::span<const std::byte> in) {
  std::vector<OptionReply> out;
  ByteCursor c(in);
  while (c.remaining() > 0 && !c.overrun()) {
    OptionReply r;
    r.magic = c.be64();
    r.option = c.be32();
    r.type = c.be32();
    std::uint32_t length = c.be32();
    r.data = c.take(length);
    out.push_back(std::move(r));
  }
  return out;
}

// Data of NBD_OPT_INFO / NBD_OPT_GO: name length, name, request count, requests.
inline Bytes info_request(std::string_view name, std::initializer_list<std::uint16_t> infos = {}) {
  ByteBuilder b;
  b.be32(static_cast<std::uint32_t>(name.size())).text(name).be16(
      static_cast<std::uint16_t>(infos.size()));
  for (std::uint16_t i : infos) b.be16(i);
  return b;
}

// Data of NBD_OPT_LIST/SET_META_CONTEXT: name length, name, query count, queries.
inline Bytes meta_context_request(std::string_view name,
                                  std::initializer_list<std::string_view> queries) {
  ByteBuilder b;
  b.be32(static_cast<std::uint32_t>(name.size())).text(name).be32(
      static_cast<std::uint32_t>(queries.size()));
  for (std::string_view q : queries) b.be32(static_cast<std::uint32_t>(q.size())).text(q);
  return b;
}

// --- transmission ----------------------------------------------------------------------
inline constexpr std::uint32_t k_request_magic = 0x25609513u;
inline constexpr std::uint32_t k_simple_reply_magic = 0x67446698u;
inline constexpr std::uint32_t k_structured_reply_magic = 0x668e33efu;

inline Bytes request_header(std::uint16_t flags, std::uint16_t type, std::uint64_t cookie,
                            std::uint64_t offset, std::uint32_t length,
                            std::uint32_t magic = k_request_magic) {
  return ByteBuilder().be32(magic).be16(flags).be16(type).be64(cookie).be64(offset).be32(length);
}

inline Bytes simple_reply(std::uint32_t error, std::uint64_t cookie) {
  return ByteBuilder().be32(k_simple_reply_magic).be32(error).be64(cookie);
}

inline Bytes chunk_header(std::uint16_t flags, std::uint16_t type, std::uint64_t cookie,
                          std::uint32_t length) {
  return ByteBuilder().be32(k_structured_reply_magic).be16(flags).be16(type).be64(cookie).be32(
      length);
}

struct Chunk {
  std::uint32_t magic = 0;
  std::uint16_t flags = 0;
  std::uint16_t type = 0;
  std::uint64_t cookie = 0;
  Bytes payload;
};

inline std::vector<Chunk> split_chunks(std::span<const std::byte> in) {
  std::vector<Chunk> out;
  ByteCursor c(in);
  while (c.remaining() > 0 && !c.overrun()) {
    Chunk ch;
    ch.magic = c.be32();
    ch.flags = c.be16();
    ch.type = c.be16();
    ch.cookie = c.be64();
    std::uint32_t length = c.be32();
    ch.payload = c.take(length);
    out.push_back(std::move(ch));
  }
  return out;
}

// Fills `n` bytes with a pattern that depends on `seed` and never produces an all-zero page.
inline Bytes pattern(std::size_t n, unsigned seed = 1) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<std::byte>(((i * 131u + seed * 7u) % 251u) + 1u);
  return out;
}

// --- files -----------------------------------------------------------------------------
// A private directory from mkdtemp, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "snapstore-unit-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
      return;
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace snapstore::test
