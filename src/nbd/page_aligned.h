// PageAlignedBytes: a byte vector whose storage starts on a page boundary, and whose large
// allocations may be backed by transparent huge pages. PageAlignedBuffer: one such
// allocation, never initialised, so its pages are committed only as bytes are written into
// it (a vector zeroes all of them when it grows).
//
// Write payloads land in these, so that a large write reaches the pool file through
// O_DIRECT straight from the buffer it was received into (FileDevice copies unaligned
// buffers through a bounce buffer first); read replies are sent from them.
//
// Invariants:
//   1. Every allocation starts on a 4 KiB boundary.
//   2. An allocation of huge_buffer_threshold bytes or more starts on a 2 MiB boundary,
//      spans a whole number of 2 MiB, and is marked MADV_HUGEPAGE: the kernel may back it
//      with 2 MiB pages (where transparent huge pages are "madvise" or "always"). A 1 MiB
//      request then costs one TLB entry instead of 256 while the socket copies into it,
//      and O_DIRECT pins one page instead of 256. Measured on seqwrite-1m-qd8: server CPU
//      per request 359 -> 250 µs (docs/benchmarks.md).
//   3. The advice is a hint: where the kernel refuses it the buffer works the same.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <span>
#include <utility>
#include <vector>

namespace snapstore {

inline constexpr std::size_t huge_page_size = std::size_t{2} << 20;
inline constexpr std::size_t huge_buffer_threshold = std::size_t{512} << 10;

template <typename T>
struct PageAlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t page_alignment{4096};
  static constexpr std::align_val_t huge_alignment{huge_page_size};
  PageAlignedAllocator() = default;
  template <typename U>
  PageAlignedAllocator(const PageAlignedAllocator<U>&) noexcept {}

  static bool is_huge(std::size_t n) { return n * sizeof(T) >= huge_buffer_threshold; }
  static std::size_t huge_bytes(std::size_t n) {
    return (n * sizeof(T) + huge_page_size - 1) / huge_page_size * huge_page_size;
  }

  T* allocate(std::size_t n) {
    if (!is_huge(n)) return static_cast<T*>(::operator new(n * sizeof(T), page_alignment));
    const std::size_t bytes = huge_bytes(n);
    void* p = ::operator new(bytes, huge_alignment);
    (void)::madvise(p, bytes, MADV_HUGEPAGE);  // a hint (invariant 3)
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    ::operator delete(p, is_huge(n) ? huge_alignment : page_alignment);
  }
  template <typename U>
  bool operator==(const PageAlignedAllocator<U>&) const noexcept { return true; }
};

using PageAlignedBytes = std::vector<std::byte, PageAlignedAllocator<std::byte>>;

// Move-only owner of `capacity` uninitialised bytes from PageAlignedAllocator.
class PageAlignedBuffer {
 public:
  PageAlignedBuffer() = default;
  explicit PageAlignedBuffer(std::size_t capacity)
      : data_(capacity ? PageAlignedAllocator<std::byte>().allocate(capacity) : nullptr),
        capacity_(capacity) {}
  PageAlignedBuffer(PageAlignedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), capacity_(std::exchange(other.capacity_, 0)) {}
  PageAlignedBuffer& operator=(PageAlignedBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(capacity_, other.capacity_);
    return *this;
  }
  ~PageAlignedBuffer() {
    if (data_) PageAlignedAllocator<std::byte>().deallocate(data_, capacity_);
  }

  std::byte* data() const { return data_; }
  std::size_t capacity() const { return capacity_; }
  std::span<std::byte> first(std::size_t n) const { return {data_, n}; }  // n <= capacity()

 private:
  std::byte* data_ = nullptr;
  std::size_t capacity_ = 0;
};

}  // namespace snapstore
