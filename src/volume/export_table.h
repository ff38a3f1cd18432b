// ExportTable: the set of volumes that NBD clients may attach, by export name.
//
// Invariants:
//  1. Export names are unique; a name maps to exactly one volume.
//  2. Lookup of a name that is not in the table returns nullptr: there is no default
//     export, and the empty name is an ordinary (normally absent) name.
//  3. All methods are safe to call concurrently (one mutex; the table is small and
//     looked up once per connection, never per request).
//  4. The table decides who may attach, not who is attached: after remove(), new clients
//     are refused at once, while clients already attached keep the volume they attached to
//     until nbd::Server::disconnect_export ends their connections. add() of a name makes it
//     listed and attachable at once.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "snapstore/volume.h"

namespace snapstore {

struct ExportEntry {
  std::string name;
  std::string description;
};

class ExportTable {
 public:
  Status add(std::string name, VolumePtr volume);
  Status remove(std::string_view name);
  VolumePtr find(std::string_view name) const;
  std::vector<ExportEntry> list() const;  // sorted by name

 private:
  mutable std::mutex mutex_;
  std::map<std::string, VolumePtr, std::less<>> volumes_;
};

}  // namespace snapstore
