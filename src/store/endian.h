// Little-endian load/store for on-disk structures.
//
// Every on-disk integer in a pool is little-endian; this header is the only place that
// says so. Disk structures are byte arrays read and written through these helpers at one
// boundary (the encode/decode functions beside each structure), never cast in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace snapstore {

inline std::uint16_t load_le16(const std::byte* p) {
  return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) |
                                    (std::to_integer<unsigned>(p[1]) << 8));
}
inline std::uint32_t load_le32(const std::byte* p) {
  return std::uint32_t{load_le16(p)} | (std::uint32_t{load_le16(p + 2)} << 16);
}
inline std::uint64_t load_le64(const std::byte* p) {
  return std::uint64_t{load_le32(p)} | (std::uint64_t{load_le32(p + 4)} << 32);
}
inline void store_le16(std::byte* p, std::uint16_t v) {
  p[0] = std::byte(v & 0xff);
  p[1] = std::byte(v >> 8);
}
inline void store_le32(std::byte* p, std::uint32_t v) {
  store_le16(p, static_cast<std::uint16_t>(v & 0xffff));
  store_le16(p + 2, static_cast<std::uint16_t>(v >> 16));
}
inline void store_le64(std::byte* p, std::uint64_t v) {
  store_le32(p, static_cast<std::uint32_t>(v & 0xffffffffu));
  store_le32(p + 4, static_cast<std::uint32_t>(v >> 32));
}

}  // namespace snapstore
