// The control commands that change volumes: snapshot.create, volume.create,
// volume.delete, volume.rename, volume.rollback and volume.resize. See control_commands.h
// (invariants 1-3: arguments first, the export table in step, the attachment rule).
#include <spdlog/spdlog.h>

#include "daemon/control_args.h"
#include "daemon/control_commands.h"
#include "volume/pool_volume.h"

namespace snapstore {

using json = nlohmann::json;

namespace {

// A volume's export, taken out of the table for the length of a command so that no client
// can attach it meanwhile. Put back on destruction unless the command succeeded (drop()).
class ExportHold {
 public:
  ExportHold(ExportTable& exports, std::string name)
      : exports_(exports), name_(std::move(name)), volume_(exports_.find(name_)) {
    if (volume_) (void)exports_.remove(name_);
  }
  ~ExportHold() {
    if (volume_) (void)exports_.add(name_, volume_);
  }
  ExportHold(const ExportHold&) = delete;
  ExportHold& operator=(const ExportHold&) = delete;
  void drop() { volume_.reset(); }

 private:
  ExportTable& exports_;
  std::string name_;
  VolumePtr volume_;
};

// The attachment rule: ok when no client is attached to `name`; else busy, or with
// `force` the clients are disconnected. `disconnected` counts them.
Status ensure_detached(ControlContext& c, const std::string& name, bool force,
                       std::size_t& disconnected) {
  const std::size_t attached = c.server.connections().count_attached(name);
  if (attached == 0) return Status::ok();
  if (!force)
    return {errc::busy, std::to_string(attached) + " client(s) attached to '" + name +
                            "'; disconnect them or use force"};
  spdlog::info("control: disconnecting {} client(s) from '{}'", attached, name);
  Status st = c.server.disconnect_export(name, c.disconnect_timeout);
  // Clients that had to be force-closed after the timeout are gone too; only one still
  // open (a request stuck in the volume) keeps the volume.
  if (!st && c.server.connections().count_attached(name) > 0) return st;
  disconnected = attached;
  return Status::ok();
}

// Serves the volume as it now is under its name, and returns it as volume.list does.
Result<json> publish(ControlContext& c, std::string_view name) {
  auto record = c.pool->find_volume(name);
  if (!record) return record.status();
  Status added = c.exports.add(
      record->name, std::make_shared<PoolVolume>(c.pool, *record, c.config.pool.string()));
  if (!added) spdlog::warn("control: export '{}': {}", record->name, added.message());
  // Only the parent's name is needed: looked up by id, not by listing every volume (a
  // listing made each create O(number of volumes): 30 ms at 100,000 snapshots).
  std::map<std::uint64_t, std::string> parent_name;
  if (auto parent = c.pool->find_volume(record->parent)) parent_name[parent->id] = parent->name;
  return volume_json(c, *record, parent_name, /*with_usage=*/false);
}

Result<json> with_disconnected(Result<json> out, std::size_t disconnected) {
  if (out) (*out)["disconnected"] = disconnected;
  return out;
}

Result<json> snapshot_create(ControlContext& c, const json& args) {
  ArgReader r(args);
  const std::string source = r.string("source");
  const std::string name = r.string("name");
  const bool read_only = r.flag("readonly");
  SNAPSTORE_RETURN_IF_ERROR(r.finish());
  SNAPSTORE_RETURN_IF_ERROR(require_pool(c));
  auto created = c.pool->create_snapshot(source, name, read_only);
  if (!created) return created.status();
  spdlog::info("control: snapshot '{}' of '{}'{}", name, source, read_only ? " (read-only)" : "");
  return publish(c, name);
}

Result<json> volume_create(ControlContext& c, const json& args) {
  ArgReader r(args);
  const std::string name = r.string("name");
  const std::uint64_t size = r.size("size");
  SNAPSTORE_RETURN_IF_ERROR(r.finish());
  SNAPSTORE_RETURN_IF_ERROR(require_pool(c));
  auto created = c.pool->create_volume(name, size);
  if (!created) return created.status();
  spdlog::info("control: volume '{}' created ({} bytes)", name, size);
  return publish(c, name);
}

Result<json> volume_delete(ControlContext& c, const json& args) {
  ArgReader r(args);
  const std::string name = r.string("name");
  const bool force = r.flag("force");
  SNAPSTORE_RETURN_IF_ERROR(r.finish());
  SNAPSTORE_RETURN_IF_ERROR(require_pool(c));
  if (auto v = c.pool->find_volume(name); !v) return v.status();
  ExportHold hold(c.exports, name);
  std::size_t disconnected = 0;
  SNAPSTORE_RETURN_IF_ERROR(ensure_detached(c, name, force, disconnected));
  SNAPSTORE_RETURN_IF_ERROR(c.pool->delete_volume(name));
  hold.drop();
  spdlog::info("control: volume '{}' deleted", name);
  return json{{"name", name}, {"deleted", true}, {"disconnected", disconnected}};
}

Result<json> volume_rename(ControlContext& c, const json& args) {
  ArgReader r(args);
  const std::string from = r.string("from");
  const std::string to = r.string("to");
  const bool force = r.flag("force");
  SNAPSTORE_RETURN_IF_ERROR(r.finish());
  SNAPSTORE_RETURN_IF_ERROR(require_pool(c));
  if (auto v = c.pool->find_volume(from); !v) return v.status();
  SNAPSTORE_RETURN_IF_ERROR(validate_volume_name(to));
  if (c.pool->find_volume(to)) return Status(errc::exists, "a volume named '" + to + "' exists");
  ExportHold hold(c.exports, from);
  std::size_t disconnected = 0;
  SNAPSTORE_RETURN_IF_ERROR(ensure_detached(c, from, force, disconnected));
  SNAPSTORE_RETURN_IF_ERROR(c.pool->rename_volume(from, to));
  hold.drop();
  spdlog::info("control: volume '{}' renamed to '{}'", from, to);
  return with_disconnected(publish(c, to), disconnected);
}

Result<json> volume_rollback(ControlContext& c, const json& args) {
  ArgReader r(args);
  const std::string volume = r.string("volume");
  const std::string snapshot = r.string("snapshot");
  const bool force = r.flag("force");
  SNAPSTORE_RETURN_IF_ERROR(r.finish());
  SNAPSTORE_RETURN_IF_ERROR(require_pool(c));
  if (auto v = c.pool->find_volume(volume); !v) return v.status();
  if (auto s = c.pool->find_volume(snapshot); !s) return s.status();
  if (volume == snapshot) return invalid_argument("cannot roll a volume back to itself");
  ExportHold hold(c.exports, volume);
  std::size_t disconnected = 0;
  SNAPSTORE_RETURN_IF_ERROR(ensure_detached(c, volume, force, disconnected));
  SNAPSTORE_RETURN_IF_ERROR(c.pool->rollback(volume, snapshot));
  hold.drop();
  spdlog::info("control: volume '{}' rolled back to '{}'", volume, snapshot);
  return with_disconnected(publish(c, volume), disconnected);
}

// Growing is safe under attached clients (they keep seeing the old size until they
// reconnect); shrinking follows the attachment rule.
Result<json> volume_resize(ControlContext& c, const json& args) {
  ArgReader r(args);
  const std::string name = r.string("name");
  const std::uint64_t size = r.size("size");
  const bool force = r.flag("force");
  SNAPSTORE_RETURN_IF_ERROR(r.finish());
  SNAPSTORE_RETURN_IF_ERROR(require_pool(c));
  auto v = c.pool->find_volume(name);
  if (!v) return v.status();
  ExportHold hold(c.exports, name);
  std::size_t disconnected = 0;
  if (size < v->size) SNAPSTORE_RETURN_IF_ERROR(ensure_detached(c, name, force, disconnected));
  SNAPSTORE_RETURN_IF_ERROR(c.pool->resize_volume(name, size));
  hold.drop();
  spdlog::info("control: volume '{}' resized from {} to {} bytes", name, v->size, size);
  return with_disconnected(publish(c, name), disconnected);
}

}  // namespace

void add_volume_commands(ControlServer& control, std::shared_ptr<ControlContext> context) {
  using Fn = Result<json> (*)(ControlContext&, const json&);
  const std::pair<const char*, Fn> commands[] = {
      {"snapshot.create", snapshot_create}, {"volume.create", volume_create},
      {"volume.delete", volume_delete},     {"volume.rename", volume_rename},
      {"volume.rollback", volume_rollback}, {"volume.resize", volume_resize}};
  for (auto [name, fn] : commands)
    control.add_command(name, [context, fn](const json& args) { return fn(*context, args); });
}

}  // namespace snapstore
