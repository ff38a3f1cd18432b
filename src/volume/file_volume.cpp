// FileVolume: positioned I/O on one file descriptor. See file_volume.h.
#include "volume/file_volume.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "store/file_device.h"

namespace snapstore {

namespace {

constexpr std::uint64_t max_extents_per_query = 1024;

// Opens `path`, creating it (empty) when missing and allowed; `created` says which.
Result<int> open_file(const std::filesystem::path& path, const FileVolumeOptions& options,
                      bool& created) {
  const int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  created = false;
  int fd = ::open(path.c_str(), flags);
  if (fd < 0 && errno == ENOENT && options.create && !options.read_only) {
    if (options.create_size == 0)
      return invalid_argument("cannot create " + path.string() + " without a size");
    fd = ::open(path.c_str(), flags | O_CREAT | O_EXCL, 0600);
    created = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = ::open(path.c_str(), flags);  // created meanwhile
  }
  if (fd < 0) return errno_status(errno, "open " + path.string());
  return fd;
}

// The export size: the file's length, or the block device's.
Result<std::uint64_t> size_of(int fd, const std::filesystem::path& path) {
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) return errno_status(errno, "stat " + path.string());
  std::uint64_t size = static_cast<std::uint64_t>(sb.st_size);
  if (S_ISBLK(sb.st_mode)) {
    off_t end = ::lseek(fd, 0, SEEK_END);
    size = end > 0 ? static_cast<std::uint64_t>(end) : 0;
  } else if (!S_ISREG(sb.st_mode)) {
    return invalid_argument(path.string() + " is neither a regular file nor a block device");
  }
  if (size == 0)
    return invalid_argument(path.string() + " is empty; a volume needs a non-zero size");
  return size;
}

// Locks the open file (invariant 4), sizes it if this open created it, and measures it.
Result<std::uint64_t> prepare(int fd, const std::filesystem::path& path,
                              const FileVolumeOptions& options, bool created) {
  SNAPSTORE_RETURN_IF_ERROR(lock_pool_file(fd, path, options.read_only));
  if (created && ::ftruncate(fd, static_cast<off_t>(options.create_size)) != 0) {
    Status st = errno_status(errno, "ftruncate " + path.string());
    ::unlink(path.c_str());
    return st;
  }
  return size_of(fd, path);
}

}  // namespace

Result<std::shared_ptr<FileVolume>> FileVolume::open(const std::filesystem::path& path,
                                                     const FileVolumeOptions& options) {
  bool created = false;
  Result<int> fd = open_file(path, options, created);
  if (!fd) return fd.status();
  Result<std::uint64_t> size = prepare(*fd, path, options, created);
  if (!size) {
    ::close(*fd);
    return size.status();
  }
  return std::shared_ptr<FileVolume>(new FileVolume(*fd, *size, options.read_only, path));
}

FileVolume::~FileVolume() { ::close(fd_); }

std::string FileVolume::description() const {
  return std::string("raw file ") + path_.string() + (read_only_ ? " (read-only)" : "");
}

Status FileVolume::read(std::uint64_t offset, std::span<std::byte> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_, out.data() + done, out.size() - done,
                        static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(errno, "read " + path_.string());
    if (n == 0) {  // past end of file (only if the file shrank under us): zeroes
      std::fill(out.begin() + static_cast<std::ptrdiff_t>(done), out.end(), std::byte{0});
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  return Status::ok();
}

Status FileVolume::write(std::uint64_t offset, std::span<const std::byte> data, bool fua) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done,
                         static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(errno, "write " + path_.string());
    done += static_cast<std::size_t>(n);
  }
  return fua_flush(fua);
}

Status FileVolume::flush() {
  if (::fdatasync(fd_) != 0) return errno_status(errno, "fdatasync " + path_.string());
  return Status::ok();
}

Status FileVolume::trim(std::uint64_t offset, std::uint64_t length, bool fua) {
  return write_zeroes(offset, length, /*may_unmap=*/true, /*fast_only=*/false, fua);
}

Status FileVolume::write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap,
                                bool fast_only, bool fua) {
  const int mode = may_unmap ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
                             : (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
  if (::fallocate(fd_, mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
    return fua_flush(fua);
  if (errno != EOPNOTSUPP && errno != ENODEV && errno != EINVAL)
    return errno_status(errno, "fallocate " + path_.string());
  if (fast_only) return not_supported("this file cannot zero a range quickly");
  SNAPSTORE_RETURN_IF_ERROR(write_zero_bytes(offset, length));
  return fua_flush(fua);
}

Status FileVolume::write_zero_bytes(std::uint64_t offset, std::uint64_t length) {
  static const std::vector<std::byte> zeroes(1 << 20);
  while (length > 0) {
    std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(length, zeroes.size()));
    SNAPSTORE_RETURN_IF_ERROR(write(offset, {zeroes.data(), step}, false));
    offset += step;
    length -= step;
  }
  return Status::ok();
}

Result<std::vector<Extent>> FileVolume::block_status(std::uint64_t offset,
                                                     std::uint64_t length) {
  std::vector<Extent> extents;
  const std::uint64_t end = offset + length;
  std::uint64_t pos = offset;
  while (pos < end && extents.size() < max_extents_per_query) {
    off_t data = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0 && errno != ENXIO) {
      if (extents.empty()) return std::vector<Extent>{{length, 0}};  // unknown: say data
      break;
    }
    std::uint64_t data_start = data < 0 ? end : std::min<std::uint64_t>(data, end);
    if (data_start > pos) {
      extents.push_back({data_start - pos, extent_hole | extent_zero});
      pos = data_start;
      continue;
    }
    off_t hole = ::lseek(fd_, static_cast<off_t>(pos), SEEK_HOLE);
    std::uint64_t hole_start = hole < 0 ? end : std::min<std::uint64_t>(hole, end);
    if (hole_start <= pos) hole_start = end;
    extents.push_back({hole_start - pos, 0});
    pos = hole_start;
  }
  return extents;
}

Status FileVolume::cache(std::uint64_t offset, std::uint64_t length) {
  (void)::posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(length),
                        POSIX_FADV_WILLNEED);
  return Status::ok();
}

}  // namespace snapstore
