// Volumes for the integration tests that MemoryVolume alone cannot play.
//
// TestVolume: a MemoryVolume with two extras, both off unless asked for:
//  - peers: volumes it can compare itself with, by name, through a PeerDirectory shared by a
//    family of volumes (the x-snapstore:changed:NAME metadata context). changed_extents
//    reads both volumes and compares them 4 KiB page by page (pages counted from offset 0):
//    a page is "changed" (1) if any byte of it, inside the asked range, differs. It answers
//    at most max_changed_bytes per call, a prefix, as the Volume contract allows.
//  - a write gate: while closed, write() waits (and counts itself in waiting_writes()), so
//    a test can hold requests in flight inside the server.
// Thread-safe, like any Volume.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "volume/memory_volume.h"

namespace snapstore::integration {

class PeerDirectory {
 public:
  void add(const std::string& name, VolumePtr volume);
  void remove(std::string_view name);
  VolumePtr find(std::string_view name) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, VolumePtr, std::less<>> volumes_;
};

class TestVolume final : public Volume {
 public:
  explicit TestVolume(MemoryVolumeOptions options, std::shared_ptr<PeerDirectory> peers = {});

  std::uint64_t size() const override { return memory_.size(); }
  bool read_only() const override { return memory_.read_only(); }
  std::string description() const override { return memory_.description(); }
  BlockSizes block_sizes() const override { return memory_.block_sizes(); }

  Status read(std::uint64_t offset, std::span<std::byte> out) override;
  Status write(std::uint64_t offset, std::span<const std::byte> data, bool fua) override;
  Status flush() override { return memory_.flush(); }
  Status trim(std::uint64_t offset, std::uint64_t length, bool fua) override;
  Status write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap, bool fast_only,
                      bool fua) override;
  Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override;

  bool has_peer(std::string_view other) const override;
  Result<std::vector<Extent>> changed_extents(std::string_view other, std::uint64_t offset,
                                              std::uint64_t length) override;

  void close_gate();
  void open_gate();
  std::size_t waiting_writes() const;
  std::size_t max_changed_bytes = 1u << 20;

 private:
  MemoryVolume memory_;
  // Weak: the directory holds its volumes, so a strong pointer back would be a cycle
  // (LeakSanitizer found it); whoever made the family keeps the directory.
  std::weak_ptr<PeerDirectory> peers_;
  mutable std::mutex gate_mutex_;
  std::condition_variable gate_cv_;
  bool gate_open_ = true;
  std::size_t waiting_ = 0;
};

}  // namespace snapstore::integration
