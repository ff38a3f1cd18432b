// MemoryDevice: a BlockDevice held in memory, for tests, with fault injection.
//
// Faults are armed per operation (read, write, flush, discard): "fail the Nth call from
// now", once or forever, with a chosen error code. Bits can be flipped in place to play a
// medium that returns wrong data without an error (what checksums are for).
//
// Invariants:
//  1. Contents start as zeroes (or the given image) and change only through write,
//     discard (which zeroes its range) and flip_bit. flush() changes nothing: memory is
//     always "durable". (For power-cut behaviour use CrashDevice.)
//  2. Calls are numbered per operation, starting at 1, counting every call made,
//     including calls that failed. read_count() etc. return how many calls were made.
//  3. fail_nth(op, n, ...) arms a fault on call number calls_so_far(op) + n, i.e. n = 1
//     is the next call. With fault_repeat::once only that call fails; with ::forever it
//     and every later call of op fail, until clear_faults(). Arming op again replaces the
//     fault armed for op before.
//  4. A failed call has no effect: a failed write or discard leaves the bytes unchanged,
//     a failed read leaves `out` unchanged. Injected faults are checked before the range,
//     so an armed fault fires even on a malformed request.
//  5. Thread-safe: data under a shared mutex (reads share, writes exclude); counters and
//     faults under a separate mutex.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "snapstore/block_device.h"

namespace snapstore {

enum class device_op : std::uint8_t { read, write, flush, discard };
enum class fault_repeat : std::uint8_t { once, forever };

std::string_view device_op_name(device_op op);

class MemoryDevice final : public BlockDevice {
 public:
  explicit MemoryDevice(std::uint64_t size, std::string name = "memory");
  explicit MemoryDevice(std::vector<std::byte> image, std::string name = "memory");

  std::uint64_t size() const override { return size_; }
  std::string name() const override { return name_; }

  Status read(std::uint64_t offset, std::span<std::byte> out) override;
  Status write(std::uint64_t offset, std::span<const std::byte> data) override;
  Status flush() override;
  Status discard(std::uint64_t offset, std::uint64_t length) override;

  // Fault injection (invariant 3). nth = 0 is taken as 1.
  void fail_nth(device_op op, std::uint64_t nth, fault_repeat repeat = fault_repeat::once,
                errc code = errc::io_error);
  void clear_faults();

  // Flips bit `bit` (0..7) of the byte at `offset`; invalid_argument when out of range.
  Status flip_bit(std::uint64_t offset, unsigned bit);

  std::uint64_t read_count() const { return calls(device_op::read); }
  std::uint64_t write_count() const { return calls(device_op::write); }
  std::uint64_t flush_count() const { return calls(device_op::flush); }
  std::uint64_t discard_count() const { return calls(device_op::discard); }

  // A copy of every byte, e.g. to save an image and reopen it later.
  std::vector<std::byte> contents() const;

 private:
  struct armed_fault {
    std::uint64_t fire_at;  // call number of the first failing call
    fault_repeat repeat;
    errc code;
  };
  struct op_state {
    std::uint64_t calls = 0;
    std::optional<armed_fault> fault;
  };

  std::uint64_t calls(device_op op) const;
  Status count_call(device_op op);  // numbers the call; the armed fault's Status if it fires
  Status check_range(std::uint64_t offset, std::uint64_t length, device_op op) const;

  const std::uint64_t size_;
  const std::string name_;
  mutable std::shared_mutex data_mutex_;
  std::vector<std::byte> bytes_;
  mutable std::mutex fault_mutex_;
  std::array<op_state, 4> ops_{};
};

}  // namespace snapstore
