// BlockDevice: one backing device of a pool (a file, a block device, or memory in tests).
//
// The layers above speak logical pool addresses; only the chunk map (store/chunk_map.h)
// turns them into (device, byte offset) and calls these methods.
//
// Contract for every implementation:
//  1. Offsets and lengths are bytes; [offset, offset + length) lies inside [0, size()).
//  2. A write that returned ok is durable only after a later flush() returned ok. A crash
//     may keep any subset of the writes since the last flush, and a write that was in
//     progress may be torn at any 512-byte boundary.
//  3. Methods are safe to call concurrently; concurrent writes to overlapping ranges are
//     the caller's bug.
//  4. Errors are values: io_error for a failed I/O, never an exception.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "snapstore/status.h"

namespace snapstore {

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  virtual std::uint64_t size() const = 0;
  virtual std::string name() const = 0;  // for messages: a path, or "memory"

  virtual Status read(std::uint64_t offset, std::span<std::byte> out) = 0;
  struct ReadRange {
    std::uint64_t offset = 0;
    std::span<std::byte> out;
  };
  // Reads several ranges, as read() would one by one (which is what this default does);
  // a device may overlap their latency. Stops at the first error, which is ranges[done]'s.
  virtual Status read_many(std::span<const ReadRange> ranges, std::size_t& done) {
    for (done = 0; done < ranges.size(); ++done)
      if (Status st = read(ranges[done].offset, ranges[done].out); !st.is_ok()) return st;
    return Status::ok();
  }
  virtual Status write(std::uint64_t offset, std::span<const std::byte> data) = 0;
  virtual Status flush() = 0;
  // Tells the device the range holds nothing of value; it may read back as anything.
  virtual Status discard(std::uint64_t offset, std::uint64_t length) = 0;
};

using BlockDevicePtr = std::shared_ptr<BlockDevice>;

}  // namespace snapstore
