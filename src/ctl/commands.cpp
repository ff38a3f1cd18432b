// snapshotctl's commands except prune (prune_command.cpp). See commands.h.
#include "ctl/commands.h"

#include "ctl/control_client.h"
#include "ctl/name_pattern.h"
#include "ctl/table.h"
#include "daemon/size_parse.h"

namespace snapstore::ctl {

using json = nlohmann::json;

namespace {

std::uint64_t u64(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string("-");
}

std::string size_cell(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? format_size(it->get<std::uint64_t>())
                                                   : std::string("-");
}

std::string disconnected_note(const json& result) {
  const std::uint64_t n = u64(result, "disconnected");
  return n ? " (disconnected " + std::to_string(n) + " client(s))" : "";
}

const json& volumes_of(const json& result) {
  static const json none = json::array();
  auto it = result.find("volumes");
  return it != result.end() && it->is_array() ? *it : none;
}

}  // namespace

Result<Reply> Ctl::request(const std::string& command, const json& args) {
  if (!client_) {
    auto client = ControlClient::connect(options_.socket);
    if (!client) return io_error("cannot reach the daemon: " + client.status().message());
    client_.emplace(std::move(client).value());
  }
  auto reply = client_->request(command, args, options_.timeout);
  if (!reply) client_.reset();
  return reply;
}

std::optional<json> Ctl::call(const std::string& command, const json& args, int& code) {
  auto reply = request(command, args);
  if (!reply) {
    err_ << "snapshotctl: " << command << ": " << reply.status().message() << '\n';
    code = exit_unreachable;
    return std::nullopt;
  }
  if (!reply->ok) {
    if (options_.json)
      print_json({{"error", {{"code", reply->code}, {"message", reply->message}}}});
    err_ << "snapshotctl: " << command << " refused (" << reply->code << "): " << reply->message
         << '\n';
    code = exit_refused;
    return std::nullopt;
  }
  return std::move(reply->result);
}

void Ctl::print_json(const json& j) {
  out_ << j.dump(2) << '\n';
}

std::string Ctl::when(const json& volume) const {
  auto it = volume.find("created_ns");
  if (it == volume.end() || !it->is_number_unsigned()) return "-";
  return format_time("%Y-%m-%d %H:%M:%S", unix_seconds(it->get<std::uint64_t>()), options_.zone)
      .value_or("-");
}

std::optional<json> Ctl::list_volumes(int& code) {
  return call("volume.list", json::object(), code);
}

int Ctl::snapshot_create(const std::string& source, const std::string& name_pattern,
                         bool read_only) {
  auto name = expand_name_pattern(name_pattern, std::time(nullptr), options_.zone);
  if (!name) {
    err_ << "snapshotctl: " << name.status().message() << '\n';
    return exit_usage;
  }
  int code = exit_ok;
  auto r = call("snapshot.create", {{"source", source}, {"name", *name}, {"readonly", read_only}},
                code);
  if (!r) return code;
  if (options_.json)
    print_json(*r);
  else
    out_ << "created snapshot " << str(*r, "name") << " of " << source
         << (read_only ? " (read-only)" : "") << '\n';
  return exit_ok;
}

int Ctl::snapshot_delete(const std::string& name, bool force) {
  int code = exit_ok;
  auto list = call("volume.list", {{"usage", false}}, code);
  if (!list) return code;
  for (const json& v : volumes_of(*list)) {
    if (str(v, "name") == name && u64(v, "parent_id") == 0) {
      err_ << "snapshotctl: '" << name << "' is not a snapshot (it has no parent); "
           << "use 'snapshotctl volume delete' to delete a volume\n";
      return exit_refused;
    }
  }
  return volume_delete(name, force);
}

int Ctl::snapshot_list(const std::optional<std::string>& parent) {
  int code = exit_ok;
  auto list = list_volumes(code);
  if (!list) return code;
  json selected = json::array();
  for (const json& v : volumes_of(*list)) {
    if (u64(v, "parent_id") == 0) continue;
    if (parent && str(v, "parent") != *parent) continue;
    selected.push_back(v);
  }
  std::stable_sort(selected.begin(), selected.end(), [](const json& x, const json& y) {
    return u64(x, "created_ns") < u64(y, "created_ns");
  });
  if (options_.json) {
    print_json({{"volumes", selected}});
    return exit_ok;
  }
  std::vector<Row> rows;
  for (const json& v : selected)
    rows.push_back({str(v, "name"), v.value("parent", json()).is_string() ? str(v, "parent") : "-",
                    when(v), size_cell(v, "size"), yes_no(v.value("read_only", false)),
                    size_cell(v, "exclusive_bytes"), size_cell(v, "shared_bytes"),
                    yes_no(v.value("damaged", false))});
  out_ << format_table({{"NAME"},
                        {"PARENT"},
                        {"CREATED"},
                        {"SIZE", true},
                        {"READ-ONLY"},
                        {"EXCLUSIVE", true},
                        {"SHARED", true},
                        {"DAMAGED"}},
                       rows);
  return exit_ok;
}

int Ctl::rollback(const std::string& volume, const std::string& snapshot, bool force) {
  int code = exit_ok;
  auto r = call("volume.rollback", {{"volume", volume}, {"snapshot", snapshot}, {"force", force}},
                code);
  if (!r) return code;
  if (options_.json)
    print_json(*r);
  else
    out_ << "rolled " << volume << " back to " << snapshot << disconnected_note(*r) << '\n';
  return exit_ok;
}

int Ctl::rename(const std::string& from, const std::string& to, bool force) {
  int code = exit_ok;
  auto r = call("volume.rename", {{"from", from}, {"to", to}, {"force", force}}, code);
  if (!r) return code;
  if (options_.json)
    print_json(*r);
  else
    out_ << "renamed " << from << " to " << to << disconnected_note(*r) << '\n';
  return exit_ok;
}

int Ctl::volume_create(const std::string& name, std::uint64_t size) {
  int code = exit_ok;
  auto r = call("volume.create", {{"name", name}, {"size", size}}, code);
  if (!r) return code;
  if (options_.json)
    print_json(*r);
  else
    out_ << "created volume " << name << " (" << format_size(size) << ")\n";
  return exit_ok;
}

int Ctl::volume_delete(const std::string& name, bool force) {
  int code = exit_ok;
  auto r = call("volume.delete", {{"name", name}, {"force", force}}, code);
  if (!r) return code;
  if (options_.json)
    print_json(*r);
  else
    out_ << "deleted " << name << disconnected_note(*r) << '\n';
  return exit_ok;
}

int Ctl::volume_resize(const std::string& name, std::uint64_t size, bool force) {
  int code = exit_ok;
  auto r = call("volume.resize", {{"name", name}, {"size", size}, {"force", force}}, code);
  if (!r) return code;
  if (options_.json)
    print_json(*r);
  else
    out_ << "resized " << name << " to " << format_size(size) << disconnected_note(*r) << '\n';
  return exit_ok;
}

int Ctl::volume_list() {
  int code = exit_ok;
  auto list = list_volumes(code);
  if (!list) return code;
  if (options_.json) {
    print_json(*list);
    return exit_ok;
  }
  std::vector<Row> rows;
  for (const json& v : volumes_of(*list))
    rows.push_back({str(v, "name"), std::to_string(u64(v, "id")),
                    v.value("parent", json()).is_string() ? str(v, "parent") : "-", when(v),
                    size_cell(v, "size"), yes_no(v.value("read_only", false)),
                    size_cell(v, "mapped_bytes"), size_cell(v, "exclusive_bytes"),
                    size_cell(v, "shared_bytes"), std::to_string(u64(v, "connections")),
                    yes_no(v.value("damaged", false))});
  out_ << format_table({{"NAME"},
                        {"ID", true},
                        {"PARENT"},
                        {"CREATED"},
                        {"SIZE", true},
                        {"READ-ONLY"},
                        {"MAPPED", true},
                        {"EXCLUSIVE", true},
                        {"SHARED", true},
                        {"CLIENTS", true},
                        {"DAMAGED"}},
                       rows);
  return exit_ok;
}

// Pages through the daemon's diff and joins the pages (an extent may span two).
int Ctl::diff(const std::string& a, const std::string& b) {
  json extents = json::array();
  json last;
  std::uint64_t offset = 0, changed = 0;
  for (;;) {
    int code = exit_ok;
    auto page = call("diff", {{"a", a}, {"b", b}, {"offset", offset}}, code);
    if (!page) return code;
    for (const json& e : page->value("extents", json::array())) {
      const std::uint64_t start = e.at(0).get<std::uint64_t>(), length = e.at(1).get<std::uint64_t>();
      if (!extents.empty() && extents.back()[0].get<std::uint64_t>() +
                                      extents.back()[1].get<std::uint64_t>() ==
                                  start)
        extents.back()[1] = extents.back()[1].get<std::uint64_t>() + length;
      else
        extents.push_back(json::array({start, length}));
      changed += length;
    }
    last = std::move(*page);
    if (last.value("complete", true)) break;
    const std::uint64_t next = u64(last, "next_offset");
    if (next <= offset) {
      err_ << "snapshotctl: diff: the daemon's pages do not advance\n";
      return exit_unreachable;
    }
    offset = next;
  }
  last["extents"] = extents;
  last["changed_bytes"] = changed;
  last.erase("next_offset");
  if (options_.json) {
    print_json(last);
    return exit_ok;
  }
  std::vector<Row> rows;
  for (const json& e : extents)
    rows.push_back({std::to_string(e[0].get<std::uint64_t>()),
                    std::to_string(e[1].get<std::uint64_t>())});
  out_ << format_table({{"OFFSET", true}, {"LENGTH", true}}, rows);
  out_ << extents.size() << " changed range(s), " << format_size(changed) << " (" << changed
       << " bytes) differ between " << a << " (" << size_cell(last, "size_a") << ") and " << b
       << " (" << size_cell(last, "size_b") << ")\n";
  return exit_ok;
}

int Ctl::status() {
  int code = exit_ok;
  auto r = call("status", json::object(), code);
  if (!r) return code;
  if (options_.json) {
    print_json(*r);
    return exit_ok;
  }
  out_ << "pool:         " << str(*r, "pool") << " (backend " << str(*r, "backend") << ")\n"
       << "uptime:       " << u64(*r, "uptime_seconds") << " s\n"
       << "connections:  " << u64(*r, "connections") << '\n';
  if (auto it = r->find("space"); it != r->end()) {
    const json& s = *it;
    const std::uint64_t block = u64(s, "data_block_size");
    const std::uint64_t data = u64(s, "data_blocks"), data_free = u64(s, "data_blocks_free");
    const std::uint64_t meta = u64(s, "metadata_blocks"), meta_free = u64(s, "metadata_blocks_free");
    const json& cache = s.value("cache", json::object());
    const json& reclaim = s.value("reclaim", json::object());
    const json& copies = s.value("copies", json::object());
    const json& log = s.value("log", json::object());
    const std::string failure = s.value("failure", "");
    const std::string ro_reason = s.value("read_only_reason", "");
    out_ << "data:         " << format_size((data - data_free) * block) << " used of "
         << format_size(data * block) << " (" << data - data_free << " of " << data
         << " blocks of " << block << " bytes); "
         << format_size(u64(s, "data_blocks_available") * block) << " available to writes\n"
         << "metadata:     " << meta - meta_free << " of " << meta << " blocks used\n"
         << "device:       " << format_size(u64(s, "device_bytes")) << ", "
         << format_size(u64(s, "unallocated_bytes")) << " not yet in chunks\n"
         << "commits:      " << u64(s, "commits") << " (generation " << u64(s, "generation")
         << "; last took " << u64(s, "last_commit_us") << " us, all "
         << u64(s, "commit_us_total") / 1000 << " ms)\n"
         << "intent log:   " << u64(log, "appends") << " records ("
         << format_size(u64(log, "bytes")) << "); " << u64(log, "flushes")
         << " flushes made durable without a commit; " << u64(log, "replayed")
         << " records replayed at start\n"
         << "cache:        " << u64(cache, "cached_blocks") << " of "
         << u64(cache, "capacity_blocks") << " blocks, " << u64(cache, "dirty_blocks")
         << " dirty; " << u64(cache, "hits") << " hits, " << u64(cache, "misses")
         << " misses\n"
         << "reclaim:      " << u64(reclaim, "pending_volumes") << " volume(s) pending, about "
         << u64(reclaim, "pending_blocks") << " blocks; " << u64(reclaim, "released_blocks")
         << " released\n"
         << "checksums:    " << u64(copies, "checksum_failures") << " failures, "
         << u64(copies, "repairs") << " repaired, " << u64(copies, "unrecoverable")
         << " unrecoverable\n"
         << "state:        "
         << (!failure.empty()     ? "READ-ONLY after a failure: " + failure
             : !ro_reason.empty() ? "READ-ONLY: " + ro_reason
             : s.value("read_only", false) ? "read-only"
                                           : "read-write")
         << '\n';
    for (const json& p : s.value("damage", json::array()))
      out_ << "damage:       " << p.get<std::string>() << '\n';
  }
  std::vector<Row> rows;
  for (const json& v : volumes_of(*r))
    rows.push_back({str(v, "name"), size_cell(v, "size"), yes_no(v.value("read_only", false)),
                    std::to_string(u64(v, "connections"))});
  out_ << '\n'
       << format_table({{"EXPORT"}, {"SIZE", true}, {"READ-ONLY"}, {"CLIENTS", true}}, rows);
  return exit_ok;
}

int Ctl::stats() {
  int code = exit_ok;
  auto r = call("stats", json::object(), code);
  if (!r) return code;
  if (options_.json) {
    print_json(*r);
    return exit_ok;
  }
  std::vector<Row> rows;
  for (const json& v : volumes_of(*r))
    rows.push_back({str(v, "name"), std::to_string(u64(v, "reads")), size_cell(v, "read_bytes"),
                    std::to_string(u64(v, "writes")), size_cell(v, "write_bytes"),
                    std::to_string(u64(v, "trims")), std::to_string(u64(v, "zeroes")),
                    std::to_string(u64(v, "flushes")), std::to_string(u64(v, "errors"))});
  out_ << format_table({{"NAME"},
                        {"READS", true},
                        {"READ", true},
                        {"WRITES", true},
                        {"WRITTEN", true},
                        {"TRIMS", true},
                        {"ZEROES", true},
                        {"FLUSHES", true},
                        {"ERRORS", true}},
                       rows);
  return exit_ok;
}

}  // namespace snapstore::ctl
