// Superblock encoding and decoding. The byte layout is in superblock.h.
#include "store/superblock.h"

#include <algorithm>
#include <cstring>

#include "store/checksum.h"
#include "store/endian.h"

namespace snapstore {

namespace {

constexpr std::size_t device_table_offset = 512;
constexpr std::size_t device_entry_size = 64;
constexpr std::size_t sm_index_offset = 2560;
constexpr std::size_t sm_index_entry_size = 16;
static_assert(device_table_offset + max_devices * device_entry_size == sm_index_offset);
static_assert(sm_index_offset + max_metadata_sm_index * sm_index_entry_size == chunk_map_offset);
static_assert(chunk_map_offset + max_chunks * chunk_entry_size <= superblock_size);

std::uint64_t slot_seed(std::uint32_t slot) {
  return checksum_seed(checksum_salt::superblock, 0, slot);
}

void put_pointer(std::byte* p, const BlockPointer& ptr) {
  store_le64(p, ptr.block);
  store_le64(p + 8, ptr.checksum);
  store_le64(p + 16, ptr.generation);
}

BlockPointer get_pointer(const std::byte* p) {
  return {load_le64(p), load_le64(p + 8), load_le64(p + 16)};
}

void put_chunk_entry(std::byte* p, const Chunk& c) {
  p[0] = std::byte(static_cast<std::uint8_t>(c.kind));
  p[1] = std::byte(static_cast<std::uint8_t>(c.layout));
  p[2] = std::byte(static_cast<std::uint8_t>(c.stripes.size()));
  store_le32(p + 4, c.index);
  for (std::size_t i = 0; i < c.stripes.size(); ++i) {
    store_le32(p + 8 + i * 16, c.stripes[i].device);
    store_le64(p + 16 + i * 16, c.stripes[i].offset);
  }
}

bool valid_profile(std::uint8_t v) { return v >= 1 && v <= 4; }

// Format 1 kept the intent log in [128 KiB, 1 MiB): two copies on a pool of one device
// whose metadata keeps two copies, else one.
void set_format1_geometry(Superblock& sb, std::uint32_t device_count) {
  sb.reserved_bytes = device_reserved_bytes;
  sb.log_copies = device_count == 1 && sb.metadata_profile != profile::single ? 2 : 1;
  sb.log_copy_bytes = (device_reserved_bytes - intent_log_offset) / sb.log_copies / 512 * 512;
}

bool geometry_valid(const Superblock& sb) {
  if (sb.reserved_bytes < device_reserved_bytes || sb.reserved_bytes > max_reserved_bytes ||
      sb.reserved_bytes % device_reserved_bytes != 0)
    return false;
  if (sb.log_copies < 1 || sb.log_copies > 2 || sb.log_copy_bytes < (64 << 10) ||
      sb.log_copy_bytes % 4096 != 0)
    return false;
  return intent_log_offset + sb.log_copies * sb.log_copy_bytes <= sb.reserved_bytes - superblock_ring_bytes;
}

Result<Chunk> get_chunk_entry(const std::byte* p, std::size_t device_count) {
  Chunk c;
  auto kind = std::to_integer<std::uint8_t>(p[0]);
  auto layout = std::to_integer<std::uint8_t>(p[1]);
  auto stripes = std::to_integer<std::uint8_t>(p[2]);
  if ((kind != 1 && kind != 2) || !valid_profile(layout) || stripes == 0 ||
      stripes > max_stripes)
    return corruption("superblock chunk map holds an invalid entry");
  c.kind = static_cast<space>(kind);
  c.layout = static_cast<profile>(layout);
  c.index = load_le32(p + 4);
  for (std::size_t i = 0; i < stripes; ++i) {
    Stripe s{load_le32(p + 8 + i * 16), load_le64(p + 16 + i * 16)};
    if (s.device >= device_count)
      return corruption("superblock chunk map names a device that does not exist");
    c.stripes.push_back(s);
  }
  return c;
}

}  // namespace

void encode_chunk(std::byte* p, const Chunk& c) {
  std::memset(p, 0, chunk_entry_size);
  put_chunk_entry(p, c);
}

Result<Chunk> decode_chunk(const std::byte* p, std::size_t device_count) {
  return get_chunk_entry(p, device_count);
}

std::string_view profile_name(profile p) {
  switch (p) {
    case profile::single: return "single";
    case profile::dup: return "dup";
    case profile::raid1: return "raid1";
    case profile::raid1c3: return "raid1c3";
  }
  return "unknown";
}

Result<profile> parse_profile(std::string_view name) {
  for (profile p : {profile::single, profile::dup, profile::raid1, profile::raid1c3})
    if (profile_name(p) == name) return p;
  return invalid_argument("unknown profile '" + std::string(name) +
                          "' (single, dup, raid1 or raid1c3)");
}

Result<std::vector<std::byte>> encode_superblock(const Superblock& sb) {
  std::vector<std::byte> out(superblock_size);
  SNAPSTORE_RETURN_IF_ERROR(encode_superblock_into(sb, out));
  return out;
}

std::size_t superblock_used_bytes(const Superblock& sb) {
  const std::size_t end = chunk_map_offset + std::min(sb.chunks.size(), max_chunks) * chunk_entry_size;
  return std::min(superblock_size, (end + 4095) / 4096 * 4096);
}

Status encode_superblock_into(const Superblock& sb, std::span<std::byte> out) {
  if (out.size() != superblock_size) return invalid_argument("superblock buffer has the wrong size");
  if (sb.devices.empty() || sb.devices.size() > max_devices)
    return invalid_argument("a pool has 1 to 32 devices");
  if (sb.metadata_sm_index.size() > max_metadata_sm_index)
    return no_space("metadata space map index is full");
  if (sb.chunks.size() > max_chunks) return no_space("chunk map is full");
  std::memset(out.data(), 0, out.size());
  std::byte* p = out.data();
  store_le64(p, superblock_magic);
  store_le32(p + 16, sb.version);
  store_le32(p + 20, sb.slot);
  store_le64(p + 24, sb.generation);
  store_le64(p + 32, sb.incompat_features);
  store_le64(p + 40, sb.ro_compat_features);
  store_le64(p + 48, sb.compat_features);
  std::memcpy(p + 56, sb.pool_uuid.data(), 16);
  std::memcpy(p + 72, sb.device_uuid.data(), 16);
  store_le32(p + 88, sb.device_index);
  store_le32(p + 92, static_cast<std::uint32_t>(sb.devices.size()));
  store_le64(p + 96, sb.device_size);
  store_le32(p + 104, metadata_block_size);
  store_le32(p + 108, sb.data_block_size);
  store_le64(p + 112, sb.chunk_size);
  p[120] = std::byte(static_cast<std::uint8_t>(sb.metadata_profile));
  p[121] = std::byte(static_cast<std::uint8_t>(sb.data_profile));
  store_le32(p + 124, static_cast<std::uint32_t>(sb.chunks.size()));
  store_le64(p + 128, sb.created);
  store_le64(p + 136, sb.next_volume_id);
  put_pointer(p + 144, sb.volume_table);
  put_pointer(p + 168, sb.data_sm_index);
  put_pointer(p + 192, sb.reclaim_list);
  store_le32(p + 216, static_cast<std::uint32_t>(sb.metadata_sm_index.size()));
  if (sb.version >= 2) {
    store_le64(p + 224, sb.reserved_bytes);
    store_le64(p + 232, sb.log_copy_bytes);
    store_le32(p + 240, sb.log_copies);
  }
  for (std::size_t i = 0; i < sb.devices.size(); ++i) {
    std::byte* d = p + device_table_offset + i * device_entry_size;
    std::memcpy(d, sb.devices[i].uuid.data(), 16);
    store_le64(d + 16, sb.devices[i].size);
  }
  for (std::size_t i = 0; i < sb.metadata_sm_index.size(); ++i) {
    std::byte* e = p + sm_index_offset + i * sm_index_entry_size;
    store_le64(e, sb.metadata_sm_index[i].block);
    store_le64(e + 8, sb.metadata_sm_index[i].checksum);
  }
  for (std::size_t i = 0; i < sb.chunks.size(); ++i)
    put_chunk_entry(p + chunk_map_offset + i * chunk_entry_size, sb.chunks[i]);
  store_le64(p + 8, checksum(out.subspan(16), slot_seed(sb.slot)));
  return Status::ok();
}

Result<Superblock> decode_superblock(std::span<const std::byte> bytes, std::uint32_t slot) {
  if (bytes.size() != superblock_size) return corruption("superblock slot is truncated");
  const std::byte* p = bytes.data();
  if (load_le64(p) != superblock_magic)
    return invalid_argument("not a snapstore pool (no superblock magic)");
  if (load_le64(p + 8) != checksum(bytes.subspan(16), slot_seed(slot)))
    return corruption("superblock slot " + std::to_string(slot) + " fails its checksum");
  Superblock sb;
  sb.version = load_le32(p + 16);
  sb.slot = load_le32(p + 20);
  if (sb.slot != slot) return corruption("superblock slot number does not match its place");
  if (sb.version > format_version)
    return not_supported("pool format version " + std::to_string(sb.version) +
                         " is newer than this snapstored understands (" +
                         std::to_string(format_version) + "); upgrade snapstored");
  if (sb.version < oldest_format_version)
    return corruption("unknown pool format version " + std::to_string(sb.version));
  if (slot >= (sb.version == 1 ? 2u : 4u))
    return corruption("superblock slot number is out of range for its format");
  sb.generation = load_le64(p + 24);
  sb.incompat_features = load_le64(p + 32);
  sb.ro_compat_features = load_le64(p + 40);
  sb.compat_features = load_le64(p + 48);
  if (sb.incompat_features & ~known_incompat_features)
    return not_supported("pool uses features this snapstored does not know; upgrade snapstored");
  std::memcpy(sb.pool_uuid.data(), p + 56, 16);
  std::memcpy(sb.device_uuid.data(), p + 72, 16);
  sb.device_index = load_le32(p + 88);
  const std::uint32_t device_count = load_le32(p + 92);
  sb.device_size = load_le64(p + 96);
  const std::uint32_t mbs = load_le32(p + 104);
  sb.data_block_size = load_le32(p + 108);
  sb.chunk_size = load_le64(p + 112);
  auto mprof = std::to_integer<std::uint8_t>(p[120]);
  auto dprof = std::to_integer<std::uint8_t>(p[121]);
  const std::uint32_t chunk_count = load_le32(p + 124);
  sb.created = load_le64(p + 128);
  sb.next_volume_id = load_le64(p + 136);
  sb.volume_table = get_pointer(p + 144);
  sb.data_sm_index = get_pointer(p + 168);
  sb.reclaim_list = get_pointer(p + 192);
  const std::uint32_t sm_count = load_le32(p + 216);
  if (mbs != metadata_block_size || device_count == 0 || device_count > max_devices ||
      sb.device_index >= device_count || !valid_profile(mprof) || !valid_profile(dprof) ||
      chunk_count > max_chunks || sm_count > max_metadata_sm_index ||
      sb.data_block_size < 4096 || sb.data_block_size > (1u << 20) ||
      (sb.data_block_size & (sb.data_block_size - 1)) != 0 || sb.chunk_size == 0 ||
      sb.chunk_size % sb.data_block_size != 0 || sb.chunk_size % metadata_block_size != 0)
    return corruption("superblock holds values out of range");
  sb.metadata_profile = static_cast<profile>(mprof);
  sb.data_profile = static_cast<profile>(dprof);
  if (sb.version == 1) {
    set_format1_geometry(sb, device_count);
  } else {
    sb.reserved_bytes = load_le64(p + 224);
    sb.log_copy_bytes = load_le64(p + 232);
    sb.log_copies = load_le32(p + 240);
    if (!geometry_valid(sb)) return corruption("superblock holds an impossible device layout");
  }
  for (std::uint32_t i = 0; i < device_count; ++i) {
    const std::byte* d = p + device_table_offset + i * device_entry_size;
    DeviceEntry e;
    std::memcpy(e.uuid.data(), d, 16);
    e.size = load_le64(d + 16);
    sb.devices.push_back(e);
  }
  for (std::uint32_t i = 0; i < sm_count; ++i) {
    const std::byte* e = p + sm_index_offset + i * sm_index_entry_size;
    sb.metadata_sm_index.push_back({load_le64(e), load_le64(e + 8)});
  }
  for (std::uint32_t i = 0; i < chunk_count; ++i) {
    auto c = get_chunk_entry(p + chunk_map_offset + i * chunk_entry_size, device_count);
    if (!c) return c.status();
    sb.chunks.push_back(std::move(c).value());
  }
  return sb;
}

}  // namespace snapstore
