// Volume record encoding and name rules. See volume_record.h.
#include "volume/volume_record.h"

#include "btree/btree_node.h"
#include "store/endian.h"

namespace snapstore {

std::array<std::byte, volume_record_size> encode_volume_record(const VolumeRecord& r) {
  std::array<std::byte, volume_record_size> v{};
  encode_pointer(v.data(), r.mapping);
  store_le64(v.data() + 24, r.size);
  store_le64(v.data() + 32, r.parent);
  store_le64(v.data() + 40, r.created_ns);
  store_le64(v.data() + 48, r.flags);
  store_le64(v.data() + 56, r.generation);
  store_le64(v.data() + 64, r.mapped_blocks);
  store_le16(v.data() + 96, static_cast<std::uint16_t>(r.name.size()));
  std::memcpy(v.data() + 98, r.name.data(), std::min(r.name.size(), max_volume_name));
  return v;
}

Result<VolumeRecord> decode_volume_record(std::uint64_t id, std::span<const std::byte> v) {
  if (v.size() != volume_record_size) return corruption("volume record has the wrong size");
  VolumeRecord r;
  r.id = id;
  r.mapping = decode_pointer(v.data());
  r.size = load_le64(v.data() + 24);
  r.parent = load_le64(v.data() + 32);
  r.created_ns = load_le64(v.data() + 40);
  r.flags = load_le64(v.data() + 48);
  r.generation = load_le64(v.data() + 56);
  r.mapped_blocks = load_le64(v.data() + 64);
  const std::uint16_t length = load_le16(v.data() + 96);
  if (length > max_volume_name || (length == 0) != r.deleted())
    return corruption("volume " + std::to_string(id) + " has an invalid name length");
  r.name.assign(reinterpret_cast<const char*>(v.data() + 98), length);
  if (!r.deleted() && !validate_volume_name(r.name))
    return corruption("volume " + std::to_string(id) + " has an invalid name");
  return r;
}

Status validate_volume_name(std::string_view name) {
  if (name.empty()) return invalid_argument("a volume name cannot be empty");
  if (name.size() > max_volume_name)
    return invalid_argument("volume names are at most " + std::to_string(max_volume_name) +
                            " bytes");
  if (name.front() == '.' || name.front() == '-')
    return invalid_argument("a volume name cannot start with '.' or '-'");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok)
      return invalid_argument("volume name '" + std::string(name) +
                              "' may only hold letters, digits, '.', '_' and '-'");
  }
  return Status::ok();
}

}  // namespace snapstore
