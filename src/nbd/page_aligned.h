// PageAlignedBytes: a byte vector whose storage starts on a 4 KiB boundary.
//
// Write payloads land in these, so that a large write reaches the pool file through
// O_DIRECT straight from the buffer it was received into (FileDevice copies unaligned
// buffers through a bounce buffer first).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace snapstore {

template <typename T>
struct PageAlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t alignment{4096};
  PageAlignedAllocator() = default;
  template <typename U>
  PageAlignedAllocator(const PageAlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), alignment)); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, alignment); }
  template <typename U>
  bool operator==(const PageAlignedAllocator<U>&) const noexcept { return true; }
};

using PageAlignedBytes = std::vector<std::byte, PageAlignedAllocator<std::byte>>;

}  // namespace snapstore
