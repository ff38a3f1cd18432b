// Reading, judging and writing every superblock copy. See superblock_set.h for the rules.
#include "store/superblock_set.h"

#include <algorithm>

namespace snapstore {

namespace {

struct SlotRead {
  SuperblockCopy copy;
  std::optional<Superblock> sb;  // valid copies
  bool has_magic = false;        // looks like a superblock, valid or not
  Status refusal;                // a valid copy this build must not open (newer format...)
};

bool all_zero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

SlotRead read_slot(BlockDevice& device, std::uint32_t index, ring r, std::uint32_t parity,
                   std::uint64_t reserved_bytes, std::vector<std::byte>& buffer) {
  SlotRead out;
  out.copy.device = index;
  out.copy.where = r;
  out.copy.parity = parity;
  out.copy.offset = slot_offset(r, parity, reserved_bytes);
  if (out.copy.offset + superblock_size > device.size()) {
    out.copy.state = copy_state::unreadable;
    out.copy.error = "lies beyond the end of the device";
    return out;
  }
  if (Status io = device.read(out.copy.offset, buffer); !io) {
    out.copy.state = copy_state::unreadable;
    out.copy.error = io.message();
    return out;
  }
  if (all_zero(buffer)) {
    out.copy.state = copy_state::empty;
    return out;
  }
  auto sb = decode_superblock(buffer, slot_number(r, parity));
  if (!sb) {
    out.has_magic = sb.status().code() != errc::invalid_argument;
    if (sb.status().code() == errc::not_supported) out.refusal = sb.status();
    out.copy.state = copy_state::invalid;
    out.copy.error = sb.status().message();
    return out;
  }
  out.has_magic = true;
  out.copy.state = copy_state::valid;
  out.copy.generation = sb->generation;
  out.copy.version = sb->version;
  out.sb = std::move(sb).value();
  return out;
}

void read_ring(const std::vector<BlockDevicePtr>& devices, ring r, std::uint64_t reserved_bytes,
               std::vector<std::byte>& buffer, std::vector<SlotRead>& reads) {
  for (std::uint32_t d = 0; d < devices.size(); ++d)
    for (std::uint32_t parity = 0; parity < 2; ++parity)
      reads.push_back(read_slot(*devices[d], d, r, parity, reserved_bytes, buffer));
}

const SlotRead* newest_of(const std::vector<SlotRead>& reads) {
  const SlotRead* best = nullptr;
  for (const SlotRead& r : reads)
    if (r.sb && (!best || r.copy.generation > best->copy.generation)) best = &r;
  return best;
}

// A ring B copy found where no valid ring A copy says the ring is: it must belong to this
// pool (the same uuid as a ring A copy, if any is valid) and name this device and its size,
// so that a pool image stored inside the pool's own data is never taken for it.
bool plausible_ring_b(const SlotRead& b, const std::optional<Superblock>& a_newest, const BlockDevice& device) {
  if (!b.sb || b.sb->version < 2) return false;
  if (a_newest) return b.sb->pool_uuid == a_newest->pool_uuid;
  return b.sb->device_size == device.size() && b.sb->device_index == b.copy.device;
}

// Where ring B is when no valid format 2 copy in ring A says: tries every possible size of
// the reserved area. Only after damage (or on a format 1 pool with a damaged slot).
std::uint64_t probe_ring_b(const std::vector<BlockDevicePtr>& devices, const std::optional<Superblock>& a_newest,
                           std::vector<std::byte>& buffer) {
  for (std::uint64_t reserved = device_reserved_bytes; reserved <= max_reserved_bytes;
       reserved += device_reserved_bytes)
    for (std::uint32_t d = 0; d < devices.size(); ++d)
      for (std::uint32_t parity = 0; parity < 2; ++parity)
        if (plausible_ring_b(read_slot(*devices[d], d, ring::b, parity, reserved, buffer), a_newest,
                             *devices[d]))
          return reserved;
  return 0;
}

std::string found_words(const SuperblockCopy& c) {
  switch (c.state) {
    case copy_state::valid: return "holds commit " + std::to_string(c.generation);
    case copy_state::empty: return "is empty";
    case copy_state::invalid: return "is invalid (" + c.error + ")";
    case copy_state::unreadable: return "cannot be read (" + c.error + ")";
  }
  return "?";
}

bool holds(const SuperblockCopy& c, std::uint64_t generation) {
  if (generation == 0) return c.state == copy_state::empty;
  return c.state == copy_state::valid && c.generation == generation;
}

// Judges every copy against what it should hold (superblock_set.h, rules 1-3).
class Judge {
 public:
  Judge(std::vector<SuperblockCopy> copies, std::uint64_t newest, std::size_t devices)
      : copies_(std::move(copies)), g_(newest), devices_(devices) {}

  void format2(SuperblockScan& scan) {
    const std::uint32_t p = g_ % 2, q = 1 - p;
    const std::uint64_t before = g_ >= 2 ? g_ - 1 : 0;
    // Between the two commits of an upgrade, the other pair still holds format 1 (ring A
    // only); the pool rewrites it at once (Pool::open).
    const bool half_upgraded =
        all(ring::a, q, [&](const SuperblockCopy& c) { return holds(c, before) && c.version == 1; });
    const bool b_holds_newest = any(ring::b, p, [&](const SuperblockCopy& c) { return holds(c, g_); });
    const bool b_other_ok = half_upgraded || all(ring::b, q, [&](const SuperblockCopy& c) { return holds(c, before); });
    for (const SuperblockCopy& c : copies_) {
      const bool current = c.parity == p;
      const std::uint64_t want = current ? g_ : before;
      if (holds(c, want) || (!current && c.where == ring::b && half_upgraded)) continue;
      bool torn = false;
      if (current) torn = c.where == ring::b || !b_holds_newest;
      else torn = c.where == ring::a && c.state == copy_state::invalid && b_other_ok;
      add(scan, c, want, torn);
    }
    const bool a_other_bad = all(ring::a, q, [&](const SuperblockCopy& c) { return !holds(c, before); });
    if (a_other_bad && !b_other_ok)
      scan.newer_commit_lost =
          "every superblock copy in the slots of commit " + std::to_string(g_ + 1) +
          " is unreadable: that commit may have existed and be lost, so commit " + std::to_string(g_) +
          " may be older than what was last written";
    scan.needs_rewrite = !scan.problems.empty() || half_upgraded;
  }

  // One copy per commit: an invalid slot may be torn or damaged, nobody can tell.
  void format1(SuperblockScan& scan) {
    const std::uint32_t p = g_ % 2;
    const std::uint64_t before = g_ >= 2 ? g_ - 1 : 0;
    for (const SuperblockCopy& c : copies_) {
      if (c.where != ring::a) continue;
      const std::uint64_t want = c.parity == p ? g_ : before;
      if (!holds(c, want)) add(scan, c, want, c.state == copy_state::invalid);
    }
    scan.needs_rewrite = true;  // upgrade to format 2
  }

 private:
  template <typename Pred>
  bool all(ring r, std::uint32_t parity, Pred pred) const {
    for (const SuperblockCopy& c : copies_)
      if (c.where == r && c.parity == parity && !pred(c)) return false;
    return count(r, parity) == devices_;
  }
  template <typename Pred>
  bool any(ring r, std::uint32_t parity, Pred pred) const {
    return std::any_of(copies_.begin(), copies_.end(),
                       [&](const SuperblockCopy& c) { return c.where == r && c.parity == parity && pred(c); });
  }
  std::size_t count(ring r, std::uint32_t parity) const {
    return static_cast<std::size_t>(std::count_if(copies_.begin(), copies_.end(), [&](const SuperblockCopy& c) {
      return c.where == r && c.parity == parity;
    }));
  }
  void add(SuperblockScan& scan, const SuperblockCopy& c, std::uint64_t want, bool torn) {
    const std::string should = want == 0 ? "should be empty" : "should hold commit " + std::to_string(want);
    std::string what = "superblock copy at " + c.describe() + " " + should + " but " + found_words(c);
    if (torn) what += " (a crash during a commit may explain this)";
    scan.problems.push_back({c, std::move(what), torn});
  }

  std::vector<SuperblockCopy> copies_;
  std::uint64_t g_;
  std::size_t devices_;
};

}  // namespace

std::string SuperblockCopy::describe() const {
  return "device " + std::to_string(device) + ", ring " + (where == ring::a ? "A" : "B") + " slot " +
         std::to_string(slot_number(where, parity)) + " (byte " + std::to_string(offset) + ")";
}

Result<SuperblockScan> read_superblocks(const std::vector<BlockDevicePtr>& devices) {
  if (devices.empty()) return invalid_argument("no devices");
  std::vector<std::byte> buffer(superblock_size);
  std::vector<SlotRead> reads;
  read_ring(devices, ring::a, 0, buffer, reads);
  for (const SlotRead& r : reads)
    if (!r.refusal.is_ok()) return r.refusal;
  std::optional<Superblock> a_newest;  // a copy: `reads` grows below
  if (const SlotRead* best = newest_of(reads)) a_newest = *best->sb;
  std::uint64_t reserved = 0;
  for (const SlotRead& r : reads)
    if (r.sb && r.sb->version >= 2 && (!reserved || r.copy.generation == a_newest->generation))
      reserved = r.sb->reserved_bytes;
  const bool a_damaged = std::any_of(reads.begin(), reads.end(), [](const SlotRead& r) {
    return r.copy.state == copy_state::invalid || r.copy.state == copy_state::unreadable;
  });
  if (!reserved && (a_damaged || !a_newest)) reserved = probe_ring_b(devices, a_newest, buffer);
  if (reserved) {
    read_ring(devices, ring::b, reserved, buffer, reads);
    for (SlotRead& r : reads)  // a copy in ring B that is not this pool's is no copy at all
      if (r.copy.where == ring::b && r.sb && !plausible_ring_b(r, a_newest, *devices[r.copy.device])) {
        r.sb.reset();
        r.copy.state = copy_state::invalid;
        r.copy.error = "a superblock of another pool";
      }
    for (const SlotRead& r : reads)
      if (!r.refusal.is_ok()) return r.refusal;
  }
  const SlotRead* best = newest_of(reads);
  if (!best) {
    for (const SlotRead& r : reads)
      if (r.has_magic)
        return corruption(devices[0]->name() + ": no valid superblock copy (" + r.copy.describe() + " " +
                          found_words(r.copy) + ")");
    return invalid_argument(devices[0]->name() + " is not a snapstore pool");
  }
  for (SlotRead& r : reads)  // copies of another pool are not copies of this one
    if (r.sb && r.sb->pool_uuid != best->sb->pool_uuid) {
      r.sb.reset();
      r.copy.state = copy_state::invalid;
      r.copy.error = "a superblock of another pool";
    }
  SuperblockScan scan;
  scan.newest = *best->sb;
  for (const SlotRead& r : reads)
    if (r.copy.device == 0 && r.sb && r.copy.generation == best->copy.generation) {
      scan.newest = *r.sb;  // device 0's own copy, when it has one
      break;
    }
  for (const SlotRead& r : reads) scan.copies.push_back(r.copy);
  Judge judge(scan.copies, best->copy.generation, devices.size());
  if (scan.newest.version >= 2)
    judge.format2(scan);
  else
    judge.format1(scan);
  return scan;
}

Status SuperblockWriter::write(Superblock sb) {
  for (ring r : {ring::a, ring::b}) {
    for (std::uint32_t d = 0; d < devices_.size(); ++d) SNAPSTORE_RETURN_IF_ERROR(write_slot(d, r, sb));
    for (const auto& device : devices_) SNAPSTORE_RETURN_IF_ERROR(device->flush());
  }
  return Status::ok();
}

Status SuperblockWriter::write_slot(std::uint32_t device, ring r, const Superblock& commit) {
  Superblock sb = commit;
  const std::uint32_t parity = static_cast<std::uint32_t>(sb.generation % 2);
  sb.slot = slot_number(r, parity);
  sb.device_index = device;
  sb.device_uuid = sb.devices[device].uuid;
  sb.device_size = devices_[device]->size();
  buffer_.resize(superblock_size);
  SNAPSTORE_RETURN_IF_ERROR(encode_superblock_into(sb, buffer_));
  return devices_[device]->write(slot_offset(r, parity, sb.reserved_bytes), buffer_);
}

}  // namespace snapstore
