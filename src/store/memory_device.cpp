// MemoryDevice: bytes in a vector, faults armed per operation. See memory_device.h.
#include "store/memory_device.h"

#include <algorithm>

namespace snapstore {

namespace {

std::size_t index_of(device_op op) {
  return static_cast<std::size_t>(op);
}

}  // namespace

std::string_view device_op_name(device_op op) {
  switch (op) {
    case device_op::read:
      return "read";
    case device_op::write:
      return "write";
    case device_op::flush:
      return "flush";
    case device_op::discard:
      return "discard";
  }
  return "unknown operation";
}

MemoryDevice::MemoryDevice(std::uint64_t size, std::string name)
    : size_(size), name_(std::move(name)), bytes_(size) {}

MemoryDevice::MemoryDevice(std::vector<std::byte> image, std::string name)
    : size_(image.size()), name_(std::move(name)), bytes_(std::move(image)) {}

std::uint64_t MemoryDevice::calls(device_op op) const {
  std::lock_guard lock(fault_mutex_);
  return ops_[index_of(op)].calls;
}

Status MemoryDevice::count_call(device_op op) {
  std::lock_guard lock(fault_mutex_);
  op_state& state = ops_[index_of(op)];
  const std::uint64_t call = ++state.calls;
  if (!state.fault || call < state.fault->fire_at) return Status::ok();
  const errc code = state.fault->code;
  if (state.fault->repeat == fault_repeat::once) state.fault.reset();
  return Status(code, "injected fault on " + std::string(device_op_name(op)) + " #" +
                          std::to_string(call) + " of " + name_);
}

Status MemoryDevice::check_range(std::uint64_t offset, std::uint64_t length, device_op op) const {
  if (offset <= size_ && length <= size_ - offset) return Status::ok();
  return invalid_argument(std::string(device_op_name(op)) + " " + name_ + " at offset " +
                          std::to_string(offset) + " length " + std::to_string(length) +
                          " is past the end (size " + std::to_string(size_) + ")");
}

Status MemoryDevice::read(std::uint64_t offset, std::span<std::byte> out) {
  SNAPSTORE_RETURN_IF_ERROR(count_call(device_op::read));
  SNAPSTORE_RETURN_IF_ERROR(check_range(offset, out.size(), device_op::read));
  std::shared_lock lock(data_mutex_);
  std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
  return Status::ok();
}

Status MemoryDevice::write(std::uint64_t offset, std::span<const std::byte> data) {
  SNAPSTORE_RETURN_IF_ERROR(count_call(device_op::write));
  SNAPSTORE_RETURN_IF_ERROR(check_range(offset, data.size(), device_op::write));
  std::unique_lock lock(data_mutex_);
  std::copy(data.begin(), data.end(), bytes_.begin() + static_cast<std::ptrdiff_t>(offset));
  return Status::ok();
}

Status MemoryDevice::flush() {
  return count_call(device_op::flush);
}

Status MemoryDevice::discard(std::uint64_t offset, std::uint64_t length) {
  SNAPSTORE_RETURN_IF_ERROR(count_call(device_op::discard));
  SNAPSTORE_RETURN_IF_ERROR(check_range(offset, length, device_op::discard));
  std::unique_lock lock(data_mutex_);
  auto first = bytes_.begin() + static_cast<std::ptrdiff_t>(offset);
  std::fill(first, first + static_cast<std::ptrdiff_t>(length), std::byte{0});
  return Status::ok();
}

void MemoryDevice::fail_nth(device_op op, std::uint64_t nth, fault_repeat repeat, errc code) {
  std::lock_guard lock(fault_mutex_);
  op_state& state = ops_[index_of(op)];
  state.fault = armed_fault{state.calls + std::max<std::uint64_t>(nth, 1), repeat, code};
}

void MemoryDevice::clear_faults() {
  std::lock_guard lock(fault_mutex_);
  for (op_state& state : ops_) state.fault.reset();
}

Status MemoryDevice::flip_bit(std::uint64_t offset, unsigned bit) {
  if (bit > 7) return invalid_argument("flip_bit: bit " + std::to_string(bit) + " is not 0..7");
  if (offset >= size_)
    return invalid_argument("flip_bit: offset " + std::to_string(offset) + " is past the end of " +
                            name_);
  std::unique_lock lock(data_mutex_);
  bytes_[offset] ^= std::byte{static_cast<unsigned char>(1u << bit)};
  return Status::ok();
}

std::vector<std::byte> MemoryDevice::contents() const {
  std::shared_lock lock(data_mutex_);
  return bytes_;
}

}  // namespace snapstore
