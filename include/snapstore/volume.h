// Volume: the block device that one NBD export serves.
//
// The NBD layer talks only to this interface; the raw file backend, the in-memory test
// backend and (later) pool volumes implement it, and read-only or statistics wrappers can
// wrap it without the core knowing.
//
// Contract for every implementation:
//  1. All methods may be called concurrently from several threads; a Volume does its own
//     locking. Overlapping concurrent writes land in some order, whole-request-atomic only
//     where the backend says so.
//  2. Offsets and lengths are bytes; callers (the NBD layer) have already checked that
//     [offset, offset + length) lies inside [0, size()) and that the length is non-zero.
//  3. A write (or trim/zeroes) reported ok with fua=true is durable when it returns; any
//     other completed write is durable once a later flush() returns ok.
//  4. Regions that were never written, were trimmed, or were zeroed read back as zeroes.
//  5. block_status() describes a prefix of the asked range starting exactly at `offset`:
//     contiguous extents, in order, each with non-zero length, never beyond the range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "snapstore/status.h"

namespace snapstore {

// Allocation flags, the same bits as NBD's base:allocation context.
enum extent_flags : std::uint32_t {
  extent_hole = 1u << 0,  // no storage behind this range
  extent_zero = 1u << 1,  // reads as zeroes
};

struct Extent {
  std::uint64_t length = 0;
  std::uint32_t flags = 0;
  bool operator==(const Extent&) const = default;
};

// Block-size constraints advertised to clients (NBD_INFO_BLOCK_SIZE).
struct BlockSizes {
  std::uint32_t minimum = 1;
  std::uint32_t preferred = 4096;
  std::uint32_t maximum = 32u << 20;
};

class Volume {
 public:
  virtual ~Volume() = default;

  virtual std::uint64_t size() const = 0;
  virtual bool read_only() const = 0;
  virtual std::string description() const = 0;
  virtual BlockSizes block_sizes() const { return {}; }
  // True when writes through one connection are seen by reads and flushes on every other
  // connection to the same volume (NBD_FLAG_CAN_MULTI_CONN).
  virtual bool multi_conn_safe() const { return true; }
  // True when write_zeroes can report quickly whether it would be faster than writing.
  virtual bool supports_fast_zero() const { return true; }

  virtual Status read(std::uint64_t offset, std::span<std::byte> out) = 0;
  virtual Status write(std::uint64_t offset, std::span<const std::byte> data, bool fua) = 0;
  virtual Status flush() = 0;
  // Discards the range; afterwards it reads as zeroes.
  virtual Status trim(std::uint64_t offset, std::uint64_t length, bool fua) = 0;
  // Makes the range read as zeroes. may_unmap: the range may become a hole.
  // fast_only: fail with not_supported instead of doing slow work (NBD FAST_ZERO).
  virtual Status write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap,
                              bool fast_only, bool fua) = 0;
  virtual Result<std::vector<Extent>> block_status(std::uint64_t offset,
                                                   std::uint64_t length) = 0;
  // Advises the backend to bring the range into cache. Default: nothing to do.
  virtual Status cache(std::uint64_t, std::uint64_t) { return Status::ok(); }

  // Change tracking against another volume of the same store (the NBD meta context
  // "x-snapstore:changed:OTHER"). has_peer: whether `other` names such a volume now.
  // changed_extents follows the block_status contract (5), each extent flagged 1 where
  // this volume differs from `other` and 0 where it is the same. Default: no peers.
  virtual bool has_peer(std::string_view) const { return false; }
  virtual Result<std::vector<Extent>> changed_extents(std::string_view other,
                                                      std::uint64_t offset,
                                                      std::uint64_t length) {
    (void)offset, (void)length;
    return not_found("no volume named '" + std::string(other) + "' to compare with");
  }
};

using VolumePtr = std::shared_ptr<Volume>;

}  // namespace snapstore
