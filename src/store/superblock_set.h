// SuperblockSet: every copy of a pool's superblock on every device. Reading them all and
// picking the commit to open (read_superblocks), and writing a commit's copies in the
// order that lets a later reader tell a torn write from damage (SuperblockWriter).
//
// Each device holds two rings of two slots (superblock.h): commit N goes to slot N % 2 of
// ring A on every device, then, once those are durable, to slot N % 2 of ring B. So
// between commits, the pair of slots N % 2 holds commit N in both rings and the other
// pair holds commit N - 1.
//
// Reading (format 2). G is the newest generation with a valid copy anywhere; the pool
// opens from one of its copies. Every other slot is judged by what it should hold:
//  1. Pair G % 2 should hold G in both rings. A ring B copy that does not is a problem a
//     crash can explain (commit G was still writing ring B). A ring A copy that does not
//     is one too while no ring B copy holds G (on several devices, ring A copies land in
//     any order); once one does, every ring A copy was durable before, so it is damage.
//  2. The other pair should hold G - 1 (nothing when G is 1). An invalid ring A copy is a
//     problem a crash can explain (commit G + 1 tore it while writing ring A) as long as
//     every ring B copy of the pair holds what it should; anything else is damage.
//  3. If every ring A copy of the other pair is bad and a ring B copy of it is bad too, no
//     crash explains it: a commit newer than G may have existed and every copy of it is
//     unreadable. The scan says so (newer_commit_lost), and the pool must not go on
//     silently from G: Pool::open opens it read-only and `check` fails.
// So a single damaged copy never loses a commit or hides itself, and a crash in the middle
// of a commit still opens at the commit before it.
//
// Format 1 pools have ring A only, one copy per commit: an invalid slot there is a torn
// write or damage that cannot be told apart; it is reported as a problem a crash can
// explain, and the first writable commit upgrades the pool (Pool::open).
//
// Thread-safety: read_superblocks is a pure function of the devices. A SuperblockWriter
// is used by one thread at a time (the pool's commit mutex).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "snapstore/block_device.h"
#include "store/superblock.h"

namespace snapstore {

enum class copy_state : std::uint8_t { valid, empty, invalid, unreadable };

// One slot on one device and what it was found to hold.
struct SuperblockCopy {
  std::uint32_t device = 0;
  ring where = ring::a;
  std::uint32_t parity = 0;
  std::uint64_t offset = 0;
  copy_state state = copy_state::empty;
  std::uint64_t generation = 0;  // valid copies only
  std::uint32_t version = 0;     // valid copies only
  std::string error;             // invalid or unreadable: why
  std::string describe() const;  // "device 0, ring B slot 3 (byte 917504)"
};

// A copy that does not hold what it should (see the header comment for the rules).
struct CopyProblem {
  SuperblockCopy copy;
  std::string what;         // a sentence for logs and `check`
  bool maybe_torn = false;  // a crash in the middle of a commit explains it too
};

struct SuperblockScan {
  Superblock newest;                  // what the pool opens from (device 0's copy if valid)
  std::vector<SuperblockCopy> copies;  // every slot looked at
  std::vector<CopyProblem> problems;
  // Non-empty (a sentence) when a commit newer than `newest` may have existed and every
  // copy of it is unreadable (rule 3).
  std::string newer_commit_lost;
  // Copies a commit must rewrite: problems, or a format 1 pool (or one half upgraded).
  bool needs_rewrite = false;
};

// Reads every slot of every device. Errors: invalid_argument when no slot holds anything
// that looks like a superblock (not a pool), not_supported for a valid copy of a newer
// format or with unknown incompatible features, corruption when no copy is valid.
Result<SuperblockScan> read_superblocks(const std::vector<BlockDevicePtr>& devices);

class SuperblockWriter {
 public:
  explicit SuperblockWriter(std::vector<BlockDevicePtr> devices) : devices_(std::move(devices)) {}

  // Writes commit `sb` (format_version; its generation picks the slots; the per-device
  // fields are filled in here): ring A on every device, flush, ring B on every device,
  // flush (superblock.h, invariant 2). Every slot is written whole, so damage anywhere in
  // a copy, unused tail included, lasts at most until the next commit of its pair (64 KiB
  // a copy: nothing next to the flushes that follow).
  Status write(Superblock sb);

 private:
  Status write_slot(std::uint32_t device, ring r, const Superblock& sb);

  std::vector<BlockDevicePtr> devices_;
  std::vector<std::byte> buffer_;
};

}  // namespace snapstore
