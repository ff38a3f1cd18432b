// Big-endian serialization for the NBD wire format.
#include "nbd/wire.h"

namespace snapstore::nbd {

WireWriter& WireWriter::u16(std::uint16_t v) {
  out_.push_back(std::byte(v >> 8));
  out_.push_back(std::byte(v & 0xff));
  return *this;
}

WireWriter& WireWriter::u32(std::uint32_t v) {
  u16(static_cast<std::uint16_t>(v >> 16));
  return u16(static_cast<std::uint16_t>(v & 0xffff));
}

WireWriter& WireWriter::u64(std::uint64_t v) {
  u32(static_cast<std::uint32_t>(v >> 32));
  return u32(static_cast<std::uint32_t>(v & 0xffffffffu));
}

WireWriter& WireWriter::bytes(std::span<const std::byte> b) {
  out_.insert(out_.end(), b.begin(), b.end());
  return *this;
}

WireWriter& WireWriter::text(std::string_view s) { return bytes(as_bytes(s)); }

WireWriter& WireWriter::zeroes(std::size_t n) {
  out_.insert(out_.end(), n, std::byte{0});
  return *this;
}

}  // namespace snapstore::nbd

namespace snapstore::nbd {

bool WireReader::take(std::size_t n, const std::byte*& p) {
  if (failed_ || remaining() < n) {
    failed_ = true;
    return false;
  }
  p = in_.data() + pos_;
  pos_ += n;
  return true;
}

bool WireReader::u16(std::uint16_t& v) {
  const std::byte* p;
  if (!take(2, p)) return false;
  v = load_be16(p);
  return true;
}

bool WireReader::u32(std::uint32_t& v) {
  const std::byte* p;
  if (!take(4, p)) return false;
  v = load_be32(p);
  return true;
}

bool WireReader::text(std::size_t n, std::string& s) {
  const std::byte* p;
  if (!take(n, p)) return false;
  s.assign(reinterpret_cast<const char*>(p), n);
  return true;
}

}  // namespace snapstore::nbd
