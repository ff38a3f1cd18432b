// Test helpers over a device's superblock copies (superblock.h, superblock_set.h): find,
// read, re-encode and damage them the way a failing disk or a careless user would.
// Header-only: tests/CMakeLists.txt builds every unit/*_test.cpp into unit_tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "store/memory_device.h"
#include "store/superblock.h"
#include "store/superblock_set.h"

namespace snapstore {

// Every slot of a one-device pool: ring A then ring B, even then odd.
struct SlotPlace {
  ring where;
  std::uint32_t parity;
  std::uint32_t number() const { return slot_number(where, parity); }
};
inline std::vector<SlotPlace> all_slots() {
  return {{ring::a, 0}, {ring::a, 1}, {ring::b, 0}, {ring::b, 1}};
}

inline std::vector<std::byte> read_bytes(BlockDevice& d, std::uint64_t offset, std::size_t n) {
  std::vector<std::byte> out(n);
  EXPECT_TRUE(d.read(offset, out));
  return out;
}

// The reserved area of the pool on `d` (from any valid copy in ring A, else as the pool
// would find it).
inline std::uint64_t reserved_bytes_of(BlockDevice& d) {
  for (std::uint32_t parity = 0; parity < 2; ++parity) {
    auto sb = decode_superblock(read_bytes(d, slot_offset(ring::a, parity, 0), superblock_size), parity);
    if (sb) return sb->reserved_bytes;
  }
  auto scan = read_superblocks({std::shared_ptr<BlockDevice>(&d, [](BlockDevice*) {})});
  if (scan) return scan->newest.reserved_bytes;
  ADD_FAILURE() << "no valid superblock copy";
  return device_reserved_bytes;
}

inline std::uint64_t offset_of(BlockDevice& d, SlotPlace s) {
  return slot_offset(s.where, s.parity, reserved_bytes_of(d));
}

inline std::vector<std::byte> slot_bytes(BlockDevice& d, SlotPlace s) {
  return read_bytes(d, offset_of(d, s), superblock_size);
}

// The generation a slot holds, or 0 when it holds no valid copy.
inline std::uint64_t slot_generation(BlockDevice& d, SlotPlace s) {
  auto sb = decode_superblock(slot_bytes(d, s), s.number());
  return sb ? sb->generation : 0;
}

// Rewrites every valid copy with `edit` applied (checksum kept valid).
inline void edit_superblock_copies(MemoryDevice& d, const std::function<void(Superblock&)>& edit) {
  const std::uint64_t reserved = reserved_bytes_of(d);
  for (SlotPlace s : all_slots()) {
    const std::uint64_t offset = slot_offset(s.where, s.parity, reserved);
    auto sb = decode_superblock(read_bytes(d, offset, superblock_size), s.number());
    if (!sb) continue;  // a slot not written yet
    edit(*sb);
    auto encoded = encode_superblock(*sb);
    ASSERT_TRUE(encoded) << encoded.status().to_string();
    ASSERT_TRUE(d.write(offset, *encoded));
  }
}

// Ways a copy gets damaged.
enum class damage { flip_used, flip_tail, zero, older_copy };
inline const char* damage_name(damage k) {
  switch (k) {
    case damage::flip_used: return "a bit flipped in its used part";
    case damage::flip_tail: return "a bit flipped in its unused tail";
    case damage::zero: return "zeroed";
    case damage::older_copy: return "replaced with an older copy";
  }
  return "?";
}
inline std::vector<damage> all_damage() {
  return {damage::flip_used, damage::flip_tail, damage::zero, damage::older_copy};
}

// Damages slot `s`. `older` is what the slot held some commits ago (for older_copy).
inline void damage_slot(MemoryDevice& d, SlotPlace s, damage k, const std::vector<std::byte>& older) {
  const std::uint64_t offset = offset_of(d, s);
  switch (k) {
    case damage::flip_used: ASSERT_TRUE(d.flip_bit(offset + 150, 2)); break;  // the roots
    case damage::flip_tail: ASSERT_TRUE(d.flip_bit(offset + superblock_size - 100, 6)); break;
    case damage::zero: ASSERT_TRUE(d.write(offset, std::vector<std::byte>(superblock_size))); break;
    case damage::older_copy: ASSERT_TRUE(d.write(offset, older)); break;
  }
}

}  // namespace snapstore
