// The control commands that only read: status, stats, volume.list and diff. See
// control_commands.h; volume_commands.cpp has the ones that change volumes.
#include "daemon/control_commands.h"

#include <ctime>

#include "daemon/control_args.h"

namespace snapstore {

using json = nlohmann::json;

namespace {

// Extents a diff reply carries at most, unless the request asks for fewer.
constexpr std::uint64_t diff_max_extents = 100000;

json pool_status(Pool& pool) {
  PoolStats s = pool.stats();
  return {{"generation", s.generation},
          {"read_only", pool.read_only()},
          {"data_block_size", s.data_block_size},
          {"data_blocks", s.data_blocks},
          {"data_blocks_free", s.data_blocks_free},
          {"data_blocks_available", s.data_blocks_available},
          {"metadata_blocks", s.metadata_blocks},
          {"metadata_blocks_free", s.metadata_blocks_free},
          {"device_bytes", s.device_bytes},
          {"unallocated_bytes", s.unallocated_bytes},
          {"commits", s.commits},
          {"commit_us_total", s.commit_us_total},
          {"last_commit_us", s.last_commit_us},
          {"log", {{"appends", s.log_appends},
                   {"bytes", s.log_bytes},
                   {"flushes", s.log_flushes},
                   {"replayed", s.log_replayed}}},
          {"cache", {{"hits", s.cache.hits},
                     {"misses", s.cache.misses},
                     {"cached_blocks", s.cache.cached_blocks},
                     {"dirty_blocks", s.cache.dirty_blocks},
                     {"capacity_blocks", s.cache.capacity_blocks}}},
          {"copies", {{"checksum_failures", s.copies.checksum_failures},
                      {"repairs", s.copies.repairs},
                      {"unrecoverable", s.copies.unrecoverable}}},
          {"reclaim", {{"pending_volumes", s.reclaim_pending_volumes},
                       {"pending_blocks", s.reclaim_pending_blocks},
                       {"released_blocks", s.reclaim_released_blocks}}},
          {"failure", s.failure},
          {"read_only_reason", s.read_only_reason},
          {"damage", s.damage}};
}

Result<json> status(ControlContext& c, const json& args) {
  ArgReader r(args);
  SNAPSTORE_RETURN_IF_ERROR(r.finish());
  json volumes = json::array();
  for (const ExportEntry& e : c.exports.list()) {
    VolumePtr v = c.exports.find(e.name);
    if (!v) continue;
    volumes.push_back({{"name", e.name},
                       {"description", e.description},
                       {"size", v->size()},
                       {"read_only", v->read_only()},
                       {"connections", c.server.connections().count_attached(e.name)}});
  }
  auto uptime = std::chrono::steady_clock::now() - c.started;
  json out{{"pool", c.config.pool.string()},
           {"backend", c.config.backend},
           {"uptime_seconds", std::chrono::duration_cast<std::chrono::seconds>(uptime).count()},
           {"connections", c.server.connections().count()},
           {"volumes", volumes}};
  if (c.pool) out["space"] = pool_status(*c.pool);
  return out;
}

Result<json> stats(ControlContext& c, const json& args) {
  ArgReader r(args);
  SNAPSTORE_RETURN_IF_ERROR(r.finish());
  SNAPSTORE_RETURN_IF_ERROR(require_pool(c));
  json volumes = json::array();
  for (const VolumeRecord& v : c.pool->volumes()) {
    if (v.deleted()) continue;
    VolumeIoStats s = c.pool->io_stats(v.id);
    volumes.push_back({{"name", v.name},
                       {"id", v.id},
                       {"reads", s.reads},
                       {"read_bytes", s.read_bytes},
                       {"writes", s.writes},
                       {"write_bytes", s.write_bytes},
                       {"trims", s.trims},
                       {"zeroes", s.zeroes},
                       {"flushes", s.flushes},
                       {"errors", s.errors}});
  }
  return json{{"volumes", volumes}};
}

Result<json> volume_list(ControlContext& c, const json& args) {
  ArgReader r(args);
  const bool with_usage = r.flag("usage", true);
  SNAPSTORE_RETURN_IF_ERROR(r.finish());
  SNAPSTORE_RETURN_IF_ERROR(require_pool(c));
  const std::vector<VolumeRecord> all = c.pool->volumes();
  const auto names = volume_names(*c.pool);
  json volumes = json::array();
  for (const VolumeRecord& v : all) {
    if (v.deleted()) continue;
    auto entry = volume_json(c, v, names, with_usage);
    if (!entry) return entry.status();
    volumes.push_back(std::move(entry).value());
  }
  return json{{"volumes", volumes}};
}

// Changed ranges of [0, max(size a, size b)) as coalesced [offset, length] pairs, from
// args.offset on, at most max_extents of them (then complete is false and next_offset
// says where the next page starts; its first extent may continue this page's last).
Result<json> diff(ControlContext& c, const json& args) {
  ArgReader r(args);
  const std::string a_name = r.string("a");
  const std::string b_name = r.string("b");
  std::uint64_t offset = r.number("offset", 0);
  const std::uint64_t max_extents = r.number("max_extents", diff_max_extents, diff_max_extents);
  SNAPSTORE_RETURN_IF_ERROR(r.finish());
  SNAPSTORE_RETURN_IF_ERROR(require_pool(c));
  if (max_extents == 0) return invalid_argument("\"max_extents\" must be at least 1");
  auto a = c.pool->find_volume(a_name);
  if (!a) return a.status();
  auto b = c.pool->find_volume(b_name);
  if (!b) return b.status();
  const std::uint64_t end = std::max(a->size, b->size);
  if (offset > end) return invalid_argument("\"offset\" is past the end of both volumes");

  json extents = json::array();
  std::uint64_t changed = 0, last_end = UINT64_MAX;
  bool full = false;
  while (offset < end && !full) {
    // Past a's end, the range is b's own: ask the other way round.
    auto part = offset < a->size ? c.pool->diff(a->id, b->id, offset, a->size - offset)
                                 : c.pool->diff(b->id, a->id, offset, end - offset);
    if (!part) return part.status();
    if (part->empty()) return io_error("diff made no progress at offset " + std::to_string(offset));
    for (const Extent& e : *part) {
      if (e.flags & extent_changed) {
        if (offset == last_end) {
          auto& tail = extents.back();
          tail[1] = tail[1].get<std::uint64_t>() + e.length;
        } else if (extents.size() == max_extents) {
          full = true;
          break;
        } else {
          extents.push_back(json::array({offset, e.length}));
        }
        last_end = offset + e.length;
        changed += e.length;
      }
      offset += e.length;
    }
  }
  return json{{"a", a->name},         {"b", b->name},
              {"size_a", a->size},    {"size_b", b->size},
              {"extents", extents},   {"changed_bytes", changed},
              {"complete", !full},    {"next_offset", offset}};
}

}  // namespace

Status require_pool(const ControlContext& c) {
  if (c.pool) return Status::ok();
  return not_supported("the raw backend serves one plain file and has no volumes or "
                       "snapshots; start snapstored with --backend pool");
}

std::map<std::uint64_t, std::string> volume_names(const Pool& pool) {
  std::map<std::uint64_t, std::string> names;
  for (const VolumeRecord& v : pool.volumes())
    if (!v.deleted()) names[v.id] = v.name;
  return names;
}

std::string iso_time_utc(std::uint64_t unix_ns) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ns / 1000000000u);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

Result<json> volume_json(const ControlContext& c, const VolumeRecord& v,
                         const std::map<std::uint64_t, std::string>& names, bool with_usage) {
  auto parent = names.find(v.parent);
  json out{{"name", v.name},
           {"id", v.id},
           {"parent", parent == names.end() ? json(nullptr) : json(parent->second)},
           {"parent_id", v.parent},
           {"created_ns", v.created_ns},
           {"created", iso_time_utc(v.created_ns)},
           {"size", v.size},
           {"read_only", v.read_only()},
           {"damaged", v.damaged()},
           {"connections", c.server.connections().count_attached(v.name)}};
  if (with_usage) {
    auto usage = c.pool->usage(v.id);
    if (!usage && (usage.status().code() == errc::corruption || usage.status().code() == errc::io_error)) {
      out["usage_error"] = usage.status().message();  // a damaged volume: the others are still listed
      return out;
    }
    if (!usage) return usage.status();
    out["mapped_bytes"] = usage->mapped_bytes;
    out["exclusive_bytes"] = usage->exclusive_bytes;
    out["shared_bytes"] = usage->shared_bytes;
  }
  return out;
}

void add_control_commands(ControlServer& control, std::shared_ptr<ControlContext> context) {
  using Fn = Result<json> (*)(ControlContext&, const json&);
  const std::pair<const char*, Fn> commands[] = {
      {"status", status}, {"stats", stats}, {"volume.list", volume_list}, {"diff", diff}};
  for (auto [name, fn] : commands)
    control.add_command(name, [context, fn](const json& args) { return fn(*context, args); });
  add_volume_commands(control, std::move(context));
}

}  // namespace snapstore
