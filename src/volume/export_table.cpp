// ExportTable: name -> volume, guarded by one mutex.
#include "volume/export_table.h"

namespace snapstore {

Status ExportTable::add(std::string name, VolumePtr volume) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = volumes_.try_emplace(std::move(name), std::move(volume));
  if (!inserted) return {errc::exists, "export '" + it->first + "' already exists"};
  return Status::ok();
}

Status ExportTable::remove(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return not_found("no export named '" + std::string(name) + "'");
  volumes_.erase(it);
  return Status::ok();
}

VolumePtr ExportTable::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  auto it = volumes_.find(name);
  return it == volumes_.end() ? nullptr : it->second;
}

std::vector<ExportEntry> ExportTable::list() const {
  std::lock_guard lock(mutex_);
  std::vector<ExportEntry> out;
  out.reserve(volumes_.size());
  for (const auto& [name, volume] : volumes_) out.push_back({name, volume->description()});
  return out;
}

}  // namespace snapstore
