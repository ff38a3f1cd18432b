// FileVolume: the raw backend. The export's bytes are the file's bytes, at the same offsets.
//
// Kept after the pool engine lands as the baseline that benchmarks compare against.
// Invariants:
//  1. size() is the file's size at open; the file is never grown or shrunk afterwards.
//  2. Holes are punched for trim and unmapping zero-writes, so space is given back to the
//     host file system; block_status reports what SEEK_DATA/SEEK_HOLE see.
//  3. Thread-safe: every I/O is a positioned pread/pwrite/fallocate on one descriptor.
//  4. While open it holds the pool file lock (store/file_device.h, lock_pool_file):
//     exclusive when writable, shared when read-only. A file another daemon serves, with
//     either backend, is refused with errc::busy ("pool PATH is in use by another
//     process"); read-only opens may share a file with each other, never with a writer.
#pragma once

#include <filesystem>
#include <string>

#include "snapstore/volume.h"

namespace snapstore {

struct FileVolumeOptions {
  bool read_only = false;
  bool create = true;             // create a sparse file of create_size if missing
  std::uint64_t create_size = 0;  // must be > 0 when the file is created
};

class FileVolume final : public Volume {
 public:
  static Result<std::shared_ptr<FileVolume>> open(const std::filesystem::path& path,
                                                  const FileVolumeOptions& options);
  ~FileVolume() override;

  std::uint64_t size() const override { return size_; }
  bool read_only() const override { return read_only_; }
  std::string description() const override;

  Status read(std::uint64_t offset, std::span<std::byte> out) override;
  Status write(std::uint64_t offset, std::span<const std::byte> data, bool fua) override;
  Status flush() override;
  Status trim(std::uint64_t offset, std::uint64_t length, bool fua) override;
  Status write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap,
                      bool fast_only, bool fua) override;
  Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override;
  Status cache(std::uint64_t offset, std::uint64_t length) override;

 private:
  FileVolume(int fd, std::uint64_t size, bool read_only, std::filesystem::path path)
      : fd_(fd), size_(size), read_only_(read_only), path_(std::move(path)) {}
  Status write_zero_bytes(std::uint64_t offset, std::uint64_t length);
  Status fua_flush(bool fua) { return fua ? flush() : Status::ok(); }

  int fd_;
  std::uint64_t size_;
  bool read_only_;
  std::filesystem::path path_;
};

}  // namespace snapstore
