// FileDevice: a BlockDevice backed by a regular file or a block device node.
//
// This is what a pool lives on outside of tests. open() is the only way to make one; it
// returns a Status (never throws) whose message names the path.
//
// Invariants:
//  1. size() is fixed at open: the file's length (a missing file is created sparse with
//     ftruncate to create_size), or the block device's size (BLKGETSIZE64, else lseek end).
//     The device never grows or shrinks the file afterwards.
//  2. While a FileDevice is open it holds a flock on the file: exclusive (LOCK_EX) when
//     writable, shared (LOCK_SH) when read-only. So two writers, or a writer and a reader
//     (e.g. the offline checker), cannot open one pool at once; the second open fails with
//     errc::busy, "pool PATH is in use by another process". flock belongs to the open file
//     description, so this also holds between two opens inside one process. A writable
//     block device is additionally opened O_EXCL, which the kernel refuses while the device
//     is mounted or opened exclusively by someone else.
//  3. write is a positioned pwrite loop: EINTR is retried, short transfers are continued.
//     read copies from a read-only shared mapping of the whole device when there is one
//     (the same page cache that pwrite fills, so always coherent; no system call and no
//     page-cache lookup per block, which matters when a request's blocks are scattered),
//     else it is a pread loop. A fault on the mapping (an I/O error reading the page in,
//     or the file shrank under us) raises SIGBUS, which a guard turns into io_error for
//     that read; a read that meets end-of-file through pread is an io_error too.
//  4. flush() is fdatasync. A file created by open() has its directory entry synced too,
//     so a flushed write on a new pool survives a power cut.
//  5. discard() punches a hole in a file (reads back zeroes) or issues BLKDISCARD on a
//     block device (sector-aligned inward; contents afterwards are unspecified). A backend
//     that cannot discard (EOPNOTSUPP) is not an error: discard is only advice.
//  6. Every method is safe to call concurrently (positioned I/O on one descriptor; no state
//     changes after open). Out-of-range requests get invalid_argument; writes and discards
//     on a read-only device get errc::read_only.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "snapstore/block_device.h"

namespace snapstore {

struct FileDeviceOptions {
  bool create = false;            // create a sparse file of create_size when missing
  std::uint64_t create_size = 0;  // must be > 0 when the file is created
  bool read_only = false;
};

// Takes the pool file lock of invariant 2 on `fd`, opened on `path`, without waiting:
// LOCK_EX when writable, LOCK_SH when read-only. A conflicting lock held through another
// open file description (another process, or another open in this one) is errc::busy,
// "pool PATH is in use by another process". The raw backend (FileVolume) takes the same
// lock, so a file served by one daemon is refused by every other, whatever its backend.
Status lock_pool_file(int fd, const std::filesystem::path& path, bool read_only);

class FileDevice final : public BlockDevice {
 public:
  static Result<std::shared_ptr<FileDevice>> open(const std::filesystem::path& path,
                                                  const FileDeviceOptions& options);
  ~FileDevice() override;
  FileDevice(const FileDevice&) = delete;
  FileDevice& operator=(const FileDevice&) = delete;

  std::uint64_t size() const override { return size_; }
  std::string name() const override { return path_.string(); }
  bool read_only() const { return read_only_; }
  bool is_block_device() const { return block_device_; }

  Status read(std::uint64_t offset, std::span<std::byte> out) override;
  // From the mapping, prefetching the next ranges while copying one: a request whose
  // blocks are scattered over the device is bound by memory latency, not by copying.
  Status read_many(std::span<const ReadRange> ranges, std::size_t& done) override;
  Status write(std::uint64_t offset, std::span<const std::byte> data) override;
  Status flush() override;
  Status discard(std::uint64_t offset, std::uint64_t length) override;

 private:
  FileDevice(int fd, std::uint64_t size, bool read_only, bool block_device,
             std::filesystem::path path)
      : fd_(fd),
        size_(size),
        read_only_(read_only),
        block_device_(block_device),
        path_(std::move(path)) {}

  void map();  // sets map_ when the device can be mapped; reads fall back to pread if not
  void open_direct();  // sets direct_fd_ when the file system takes O_DIRECT
  Status pread_all(std::uint64_t offset, std::span<std::byte> out);
  Status pwrite_all(int fd, std::uint64_t offset, std::span<const std::byte> data);
  // A large aligned write through direct_fd_; false if O_DIRECT turned out not to work
  // here (the caller writes through the page cache instead).
  Result<bool> write_direct(std::uint64_t offset, std::span<const std::byte> data);

  Status check_range(std::uint64_t offset, std::uint64_t length, const char* what) const;
  Status check_writable(const char* what) const;
  Status punch_hole(std::uint64_t offset, std::uint64_t length);
  Status block_discard(std::uint64_t offset, std::uint64_t length);

  int fd_;
  std::atomic<int> direct_fd_{-1};  // O_DIRECT descriptor of the same file, or -1
  const std::byte* map_ = nullptr;  // PROT_READ, MAP_SHARED, size_ bytes
  std::uint64_t size_;
  bool read_only_;
  bool block_device_;
  std::filesystem::path path_;
};

}  // namespace snapstore
