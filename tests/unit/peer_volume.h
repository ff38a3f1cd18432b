// ScriptedPeerVolume: a test Volume for the x-snapstore:changed:NAME metadata context.
//
// It knows a set of peer names (has_peer) and answers changed_extents from a script per
// peer, recording every call; a peer can be "deleted" between calls. Nothing here is
// thread-safe: the unit tests drive it from one thread.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "snapstore/volume.h"

namespace snapstore::test {

class ScriptedPeerVolume final : public Volume {
 public:
  explicit ScriptedPeerVolume(std::uint64_t size = 1 << 20) : size_(size) {}

  std::uint64_t size() const override { return size_; }
  bool read_only() const override { return false; }
  std::string description() const override { return "scripted peers"; }
  Status read(std::uint64_t, std::span<std::byte> out) override {
    std::fill(out.begin(), out.end(), std::byte{0});
    return Status::ok();
  }
  Status write(std::uint64_t, std::span<const std::byte>, bool) override { return Status::ok(); }
  Status flush() override { return Status::ok(); }
  Status trim(std::uint64_t, std::uint64_t, bool) override { return Status::ok(); }
  Status write_zeroes(std::uint64_t, std::uint64_t, bool, bool, bool) override {
    return Status::ok();
  }
  // base:allocation: the scripted `allocation`, or one allocated extent.
  Result<std::vector<Extent>> block_status(std::uint64_t, std::uint64_t length) override {
    return allocation.empty() ? std::vector<Extent>{{length, 0}} : allocation;
  }

  bool has_peer(std::string_view other) const override {
    return peers.find(std::string(other)) != peers.end();
  }
  // The scripted extents for `other` (one "same" extent if none), its scripted failure, or
  // not_found once the peer is gone, as a pool volume says it.
  Result<std::vector<Extent>> changed_extents(std::string_view other, std::uint64_t offset,
                                              std::uint64_t length) override {
    calls.push_back({std::string(other), offset, length});
    const std::string name(other);
    if (!peers.contains(name)) return not_found("no volume named '" + name + "'");
    if (auto f = failures.find(name); f != failures.end()) return f->second;
    auto it = changed.find(name);
    return it == changed.end() ? std::vector<Extent>{{length, 0}} : it->second;
  }

  struct Call {
    std::string peer;
    std::uint64_t offset = 0, length = 0;
    bool operator==(const Call&) const = default;
  };

  std::set<std::string, std::less<>> peers;
  std::map<std::string, std::vector<Extent>> changed;
  std::map<std::string, Status> failures;
  std::vector<Extent> allocation;
  std::vector<Call> calls;

 private:
  std::uint64_t size_;
};

}  // namespace snapstore::test
