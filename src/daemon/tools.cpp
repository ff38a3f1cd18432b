// Offline tools over a pool file. See tools.h.
#include "daemon/tools.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "daemon/size_parse.h"
#include "store/file_device.h"
#include "volume/pool.h"
#include "volume/pool_checker.h"

namespace snapstore {

namespace {

using json = nlohmann::json;

std::string uuid_text(const Uuid& u) {
  char buf[40];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                u[15]);
  return buf;
}

// Parses a tool's command line; an exit code when the tool should stop right away
// (--help: 0, a usage error: 2, after CLI11 printed why).
std::optional<int> parse_or_exit(CLI::App& app, int argc, const char* const* argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return std::nullopt;
}

// True when the first bytes of an existing file hold anything but zeroes.
bool holds_data(BlockDevice& device) {
  std::vector<std::byte> head(std::min<std::uint64_t>(device.size(), 1 << 20));
  if (!device.read(0, head)) return true;
  for (std::byte b : head)
    if (b != std::byte{0}) return true;
  return false;
}

int format_command(int argc, const char* const* argv) {
  CLI::App app{"snapstored format: create a new, empty pool (one volume, 'origin')",
               "snapstored format"};
  std::string file, size_text, origin_text, block_text = "4K", mprof = "dup", dprof = "single";
  bool force = false;
  app.add_option("FILE", file, "pool file or block device")->required();
  app.add_option("--size", size_text,
                 "size of the origin volume of a new pool file, e.g. 16G (default 16G); the "
                 "file gets room for metadata on top");
  app.add_option("--origin-size", origin_text,
                 "size of the origin volume on an existing file or device (default: what fits)");
  app.add_option("--block-size", block_text, "data block size, 4K to 1M")->capture_default_str();
  app.add_option("--metadata-profile", mprof, "single or dup")->capture_default_str();
  app.add_option("--data-profile", dprof, "single or dup")->capture_default_str();
  app.add_flag("--force", force, "overwrite an existing pool or other data");
  if (auto done = parse_or_exit(app, argc, argv)) return *done;
  FormatOptions options;
  auto parse = [](const std::string& text, const char* what) -> std::optional<std::uint64_t> {
    auto v = parse_size(text);
    if (!v) {
      std::fprintf(stderr, "snapstored format: %s: %s\n", what, v.status().message().c_str());
      return std::nullopt;
    }
    return *v;
  };
  auto block = parse(block_text, "--block-size");
  if (!block || *block > (1u << 20)) return 2;
  options.data_block_size = static_cast<std::uint32_t>(*block);
  auto m = parse_profile(mprof), d = parse_profile(dprof);
  if (!m || !d) {
    std::fprintf(stderr, "snapstored format: %s\n", (!m ? m.status() : d.status()).message().c_str());
    return 2;
  }
  options.metadata_profile = *m;
  options.data_profile = *d;
  std::uint64_t size = 16ull << 30;
  if (!size_text.empty()) {
    auto s = parse(size_text, "--size");
    if (!s) return 2;
    size = *s;
  }
  if (!origin_text.empty()) {
    auto o = parse(origin_text, "--origin-size");
    if (!o) return 2;
    options.origin_size = *o;
  }
  const bool existed = std::filesystem::exists(file);
  if (!existed && options.origin_size == 0) options.origin_size = size;
  auto device = FileDevice::open(file, {true, pool_file_size_for(size), false});
  if (!device) {
    std::fprintf(stderr, "snapstored format: %s\n", device.status().message().c_str());
    return 1;
  }
  if (existed && !force && holds_data(**device)) {
    std::fprintf(stderr,
                 "snapstored format: %s already holds data (a pool or something else); "
                 "not overwriting it without --force\n",
                 file.c_str());
    return 2;
  }
  Status st = Pool::format({*device}, options);
  if (!st) {
    std::fprintf(stderr, "snapstored format: %s\n", st.message().c_str());
    return 1;
  }
  std::printf("formatted %s: %s, data blocks of %s, metadata %s, data %s\n", file.c_str(),
              format_size((*device)->size()).c_str(), format_size(options.data_block_size).c_str(),
              mprof.c_str(), dprof.c_str());
  return 0;
}

int check_command(int argc, const char* const* argv) {
  CLI::App app{"snapstored check: verify a pool offline (exit 0 only when clean)",
               "snapstored check"};
  std::string file;
  bool no_data = false, as_json = false;
  app.add_option("FILE", file, "pool file or block device")->required();
  app.add_flag("--no-data", no_data, "skip reading data blocks (metadata only)");
  app.add_flag("--json", as_json, "print the report as JSON");
  if (auto done = parse_or_exit(app, argc, argv)) return *done;
  auto device = FileDevice::open(file, {false, 0, true});
  if (!device) {
    std::fprintf(stderr, "snapstored check: %s\n", device.status().message().c_str());
    return 2;
  }
  CheckReport r = check_pool({*device}, CheckOptions{!no_data});
  if (as_json) {
    std::cout << json{{"pool", file},
                      {"clean", r.clean()},
                      {"generation", r.generation},
                      {"volumes", r.volumes},
                      {"tree_nodes", r.tree_nodes},
                      {"mapped_blocks", r.mapped_blocks},
                      {"data_blocks_used", r.data_blocks_used},
                      {"metadata_blocks_used", r.metadata_blocks_used},
                      {"notes", r.notes},
                      {"problems", r.problems},
                      {"crash_explainable_problems", r.crash_explainable}}
                     .dump(2)
              << "\n";
  } else {
    for (const auto& n : r.notes) std::printf("%s\n", n.c_str());
    std::printf("generation %llu: %llu volumes, %llu tree nodes, %llu mapped blocks, "
                "%llu data blocks and %llu metadata blocks in use\n",
                (unsigned long long)r.generation, (unsigned long long)r.volumes,
                (unsigned long long)r.tree_nodes, (unsigned long long)r.mapped_blocks,
                (unsigned long long)r.data_blocks_used, (unsigned long long)r.metadata_blocks_used);
    for (const auto& p : r.problems) std::printf("problem: %s\n", p.c_str());
    for (const auto& p : r.crash_explainable) std::printf("problem: %s\n", p.c_str());
    const std::size_t n = r.problems.size() + r.crash_explainable.size();
    std::printf("%s\n", r.clean() ? "clean" : (std::to_string(n) + " problems").c_str());
  }
  return r.clean() ? 0 : 1;
}

int dump_command(int argc, const char* const* argv) {
  CLI::App app{"snapstored dump: print a pool's superblock, volumes and space", "snapstored dump"};
  std::string file;
  bool as_json = false;
  app.add_option("FILE", file, "pool file or block device")->required();
  app.add_flag("--json", as_json, "print JSON");
  if (auto done = parse_or_exit(app, argc, argv)) return *done;
  auto device = FileDevice::open(file, {false, 0, true});
  if (!device) {
    std::fprintf(stderr, "snapstored dump: %s\n", device.status().message().c_str());
    return 1;
  }
  PoolOptions options;
  options.read_only = true;
  auto pool = Pool::open({*device}, options);
  if (!pool) {
    std::fprintf(stderr, "snapstored dump: %s\n", pool.status().message().c_str());
    return 1;
  }
  const Superblock& sb = (*pool)->superblock();
  PoolStats s = (*pool)->stats();
  json volumes = json::array();
  for (const VolumeRecord& v : (*pool)->volumes())
    volumes.push_back({{"id", v.id},
                       {"name", v.name},
                       {"size", v.size},
                       {"parent", v.parent},
                       {"read_only", v.read_only()},
                       {"created_ns", v.created_ns},
                       {"mapped_blocks", v.mapped_blocks},
                       {"mapping_root", v.mapping.block}});
  json chunks = json::array();
  for (const Chunk& c : sb.chunks) {
    json stripes = json::array();
    for (const Stripe& st : c.stripes) stripes.push_back({{"device", st.device}, {"offset", st.offset}});
    chunks.push_back({{"space", c.kind == space::metadata ? "metadata" : "data"},
                      {"index", c.index},
                      {"profile", profile_name(c.layout)},
                      {"stripes", stripes}});
  }
  json out{{"pool_uuid", uuid_text(sb.pool_uuid)},
           {"format_version", sb.version},
           {"generation", sb.generation},
           {"created", sb.created},
           {"data_block_size", sb.data_block_size},
           {"chunk_size", sb.chunk_size},
           {"metadata_profile", profile_name(sb.metadata_profile)},
           {"data_profile", profile_name(sb.data_profile)},
           {"device_bytes", s.device_bytes},
           {"unallocated_bytes", s.unallocated_bytes},
           {"data_blocks", s.data_blocks},
           {"data_blocks_free", s.data_blocks_free},
           {"metadata_blocks", s.metadata_blocks},
           {"metadata_blocks_free", s.metadata_blocks_free},
           {"volumes", volumes},
           {"reclaim_pending_volumes", s.reclaim_pending_volumes},
           {"reclaim_pending_blocks", s.reclaim_pending_blocks},
           {"intent_log_records", s.log_replayed},
           {"read_only_reason", s.read_only_reason},
           {"damage", s.damage},
           {"chunks", chunks}};
  if (as_json) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("pool %s (format %u), generation %llu\n", uuid_text(sb.pool_uuid).c_str(), sb.version,
              (unsigned long long)sb.generation);
  std::printf("devices: %s; chunks of %s (%zu allocated, %s unallocated)\n",
              format_size(s.device_bytes).c_str(), format_size(sb.chunk_size).c_str(),
              sb.chunks.size(), format_size(s.unallocated_bytes).c_str());
  std::printf("data: blocks of %s, %llu of %llu in use (%s profile)\n",
              format_size(sb.data_block_size).c_str(),
              (unsigned long long)(s.data_blocks - s.data_blocks_free), (unsigned long long)s.data_blocks,
              std::string(profile_name(sb.data_profile)).c_str());
  std::printf("metadata: %llu of %llu blocks in use (%s profile)\n",
              (unsigned long long)(s.metadata_blocks - s.metadata_blocks_free),
              (unsigned long long)s.metadata_blocks, std::string(profile_name(sb.metadata_profile)).c_str());
  if (!s.read_only_reason.empty()) std::printf("READ-ONLY: %s\n", s.read_only_reason.c_str());
  for (const auto& p : s.damage) std::printf("damage: %s\n", p.c_str());
  if (s.log_replayed > 0)
    std::printf("intent log: %llu records after generation %llu (shown applied; a writable open "
                "commits them)\n",
                (unsigned long long)s.log_replayed, (unsigned long long)sb.generation);
  if (s.reclaim_pending_volumes > 0)
    std::printf("reclaim: %llu deleted trees still to release (at most %llu blocks)\n",
                (unsigned long long)s.reclaim_pending_volumes, (unsigned long long)s.reclaim_pending_blocks);
  std::printf("%-6s %-24s %12s %12s %8s %s\n", "ID", "NAME", "SIZE", "MAPPED", "PARENT", "FLAGS");
  for (const auto& v : volumes)
    std::printf("%-6llu %-24s %12s %12s %8llu %s\n", (unsigned long long)v["id"].get<std::uint64_t>(),
                v["name"].get<std::string>().c_str(),
                format_size(v["size"].get<std::uint64_t>()).c_str(),
                format_size(v["mapped_blocks"].get<std::uint64_t>() * sb.data_block_size).c_str(),
                (unsigned long long)v["parent"].get<std::uint64_t>(), v["read_only"].get<bool>() ? "ro" : "rw");
  return 0;
}

}  // namespace

bool is_tool_command(std::string_view word) {
  return word == "format" || word == "check" || word == "dump";
}

int run_tool(int argc, const char* const* argv) {
  spdlog::set_level(spdlog::level::warn);
  const std::string_view word = argv[1];
  if (word == "format") return format_command(argc - 1, argv + 1);
  if (word == "check") return check_command(argc - 1, argv + 1);
  return dump_command(argc - 1, argv + 1);
}

}  // namespace snapstore
