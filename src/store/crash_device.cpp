// CrashDevice: durable image + log of unflushed writes. See crash_device.h for the model.
#include "store/crash_device.h"

#include <algorithm>

namespace snapstore {

CrashDevice::CrashDevice(std::uint64_t size, std::string name)
    : size_(size), name_(std::move(name)), durable_(size), volatile_(size) {}

CrashDevice::CrashDevice(std::vector<std::byte> durable_image, std::string name)
    : size_(durable_image.size()),
      name_(std::move(name)),
      durable_(durable_image),
      volatile_(std::move(durable_image)) {}

Status CrashDevice::check_power(const char* what) const {
  if (!power_cut_) return Status::ok();
  return io_error(std::string(what) + " " + name_ + ": power is cut (simulated)");
}

Status CrashDevice::check_range(std::uint64_t offset, std::uint64_t length,
                                const char* what) const {
  if (offset <= size_ && length <= size_ - offset) return Status::ok();
  return invalid_argument(std::string(what) + " " + name_ + " at offset " + std::to_string(offset) +
                          " length " + std::to_string(length) + " is past the end (size " +
                          std::to_string(size_) + ")");
}

Status CrashDevice::admit(const char* what) {
  const std::uint64_t number = writes_++;
  if (cut_at_ && number >= *cut_at_) power_cut_ = true;
  return check_power(what);
}

void CrashDevice::apply(std::vector<std::byte>& image, const logged_write& entry,
                        std::uint64_t length) {
  auto first = image.begin() + static_cast<std::ptrdiff_t>(entry.offset);
  const auto count = static_cast<std::ptrdiff_t>(length);
  if (entry.data.empty())
    std::fill_n(first, count, std::byte{0});
  else
    std::copy_n(entry.data.begin(), count, first);
}

void CrashDevice::log_and_apply(logged_write entry) {
  if (entry.length == 0) return;
  apply(volatile_, entry, entry.length);
  log_.push_back(std::move(entry));
}

Status CrashDevice::read(std::uint64_t offset, std::span<std::byte> out) {
  std::lock_guard lock(mutex_);
  SNAPSTORE_RETURN_IF_ERROR(check_power("read"));
  SNAPSTORE_RETURN_IF_ERROR(check_range(offset, out.size(), "read"));
  std::copy_n(volatile_.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
  return Status::ok();
}

Status CrashDevice::write(std::uint64_t offset, std::span<const std::byte> data) {
  std::lock_guard lock(mutex_);
  SNAPSTORE_RETURN_IF_ERROR(admit("write"));
  SNAPSTORE_RETURN_IF_ERROR(check_range(offset, data.size(), "write"));
  log_and_apply({offset, data.size(), std::vector<std::byte>(data.begin(), data.end())});
  return Status::ok();
}

Status CrashDevice::discard(std::uint64_t offset, std::uint64_t length) {
  std::lock_guard lock(mutex_);
  SNAPSTORE_RETURN_IF_ERROR(admit("discard"));
  SNAPSTORE_RETURN_IF_ERROR(check_range(offset, length, "discard"));
  log_and_apply({offset, length, {}});
  return Status::ok();
}

Status CrashDevice::flush() {
  std::lock_guard lock(mutex_);
  const std::uint64_t number = flushes_++;
  if (cut_at_flush_ && number >= *cut_at_flush_) power_cut_ = true;
  SNAPSTORE_RETURN_IF_ERROR(check_power("flush"));
  for (const logged_write& entry : log_) apply(durable_, entry, entry.length);
  log_.clear();
  flush_points_.push_back(writes_);
  return Status::ok();
}

void CrashDevice::cut_power_at_flush(std::uint64_t f) {
  std::lock_guard lock(mutex_);
  cut_at_flush_ = f;
  if (flushes_ > f) power_cut_ = true;
}

std::uint64_t CrashDevice::flush_calls() const {
  std::lock_guard lock(mutex_);
  return flushes_;
}

void CrashDevice::cut_power_at(std::uint64_t k) {
  std::lock_guard lock(mutex_);
  cut_at_ = k;
  if (writes_ > k) power_cut_ = true;
}

bool CrashDevice::power_is_cut() const {
  std::lock_guard lock(mutex_);
  return power_cut_;
}

std::uint64_t CrashDevice::write_count() const {
  std::lock_guard lock(mutex_);
  return writes_;
}

std::uint64_t CrashDevice::flush_count() const {
  std::lock_guard lock(mutex_);
  return flush_points_.size();
}

std::vector<std::uint64_t> CrashDevice::flush_points() const {
  std::lock_guard lock(mutex_);
  return flush_points_;
}

std::size_t CrashDevice::unflushed_count() const {
  std::lock_guard lock(mutex_);
  return log_.size();
}

std::vector<std::byte> CrashDevice::durable_image() const {
  std::lock_guard lock(mutex_);
  return durable_;
}

// Bytes of `entry` that a torn write keeps: a prefix of j of its n sectors, j in [1, n-1].
std::uint64_t CrashDevice::torn_length(const logged_write& entry, std::mt19937_64& rng) {
  const std::uint64_t first_sector = entry.offset / sector_size;
  const std::uint64_t last_sector = (entry.offset + entry.length - 1) / sector_size;
  const std::uint64_t sectors = last_sector - first_sector + 1;
  if (sectors < 2) return entry.length;
  const std::uint64_t kept = 1 + rng() % (sectors - 1);
  return (first_sector + kept) * sector_size - entry.offset;
}

std::vector<std::byte> CrashDevice::crash_image(std::mt19937_64& rng, CrashMode mode) const {
  std::lock_guard lock(mutex_);
  if (mode == CrashMode::keep_none) return durable_;
  if (mode == CrashMode::keep_all) return volatile_;
  std::vector<std::byte> image = durable_;
  for (const logged_write& entry : log_) {
    if ((rng() & 1) == 0) continue;  // dropped
    const bool torn = mode == CrashMode::random_subset_torn && (rng() & 1) != 0;
    apply(image, entry, torn ? torn_length(entry, rng) : entry.length);
  }
  return image;
}

Status CrashDevice::restart_from(std::vector<std::byte> image) {
  std::lock_guard lock(mutex_);
  if (image.size() != size_)
    return invalid_argument("restart " + name_ + ": image of " + std::to_string(image.size()) +
                            " bytes for a device of " + std::to_string(size_));
  durable_ = image;
  volatile_ = std::move(image);
  log_.clear();
  cut_at_.reset();
  cut_at_flush_.reset();
  power_cut_ = false;
  return Status::ok();
}

std::shared_ptr<MemoryDevice> image_device(std::vector<std::byte> image, std::string name) {
  return std::make_shared<MemoryDevice>(std::move(image), std::move(name));
}

}  // namespace snapstore
