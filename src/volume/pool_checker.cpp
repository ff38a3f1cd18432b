// The offline checker. See pool_checker.h for what it verifies.
#include "volume/pool_checker.h"

#include <algorithm>
#include <map>

#include "btree/data_space_map.h"
#include "store/superblock_set.h"
#include "btree/tree_walker.h"
#include "volume/intent_log.h"
#include "volume/volume_record.h"

namespace snapstore {

namespace {

void check_chunk_map(const Superblock& sb, const std::vector<BlockDevicePtr>& devices,
                     CheckReport& report) {
  std::map<std::uint32_t, std::vector<std::pair<std::uint64_t, std::uint64_t>>> used;
  std::map<space, std::vector<std::uint32_t>> indexes;
  for (const Chunk& c : sb.chunks) {
    indexes[c.kind].push_back(c.index);
    if (c.stripes.size() != stripe_count(c.layout))
      report.problems.push_back("chunk map: a chunk has the wrong number of stripes for its profile");
    for (const Stripe& s : c.stripes) {
      if (s.offset < sb.reserved_bytes || s.offset % sb.chunk_size % 4096 != 0 ||
          s.offset + sb.chunk_size > devices[s.device]->size())
        report.problems.push_back("chunk map: stripe at " + std::to_string(s.offset) +
                                  " lies outside the usable part of device " +
                                  std::to_string(s.device));
      used[s.device].emplace_back(s.offset, s.offset + sb.chunk_size);
    }
  }
  for (auto& [device, ranges] : used) {
    std::sort(ranges.begin(), ranges.end());
    for (std::size_t i = 1; i < ranges.size(); ++i)
      if (ranges[i].first < ranges[i - 1].second)
        report.problems.push_back("chunk map: stripes overlap on device " + std::to_string(device));
  }
  for (auto& [kind, list] : indexes) {
    std::sort(list.begin(), list.end());
    for (std::size_t i = 0; i < list.size(); ++i)
      if (list[i] != i) {
        report.problems.push_back("chunk map: chunk indexes of a space are not contiguous");
        break;
      }
  }
}

class Checker {
 public:
  Checker(const std::vector<BlockDevicePtr>& devices, const Superblock& sb, const CheckOptions& o,
          CheckReport& report)
      : sb_(sb),
        devices_(devices),
        options_(o),
        report_(report),
        chunks_(devices, sb.chunk_size, sb.chunks, sb.reserved_bytes),
        blocks_(chunks_, 16ull << 20),
        nr_metadata_(chunks_.space_bytes(space::metadata) / metadata_block_size),
        nr_data_(chunks_.space_bytes(space::data) / sb.data_block_size),
        walker_([this](const BlockPointer& p) { return read(p); }, metadata_refs_,
                report.problems) {
    chunks_.set_repair(false);
  }

  void run() {
    check_space_map_pages();
    check_volumes();
    check_data_space_map();
    compare_metadata_counts();
    compare_data_counts();
    report_.tree_nodes = walker_.nodes_seen();
    check_intent_log();
  }

 private:
  // Reads a metadata block the checker's way: every copy verified on its own, each bad
  // copy reported, nothing repaired (the checker never writes).
  Result<BlockRef> read(const BlockPointer& p) { return read_block({p.block, p.checksum, p.generation}); }

  Result<BlockRef> read_block(const BlockExpectation& want) {
    if (want.block >= nr_metadata_)
      return corruption("points beyond the metadata space (block " + std::to_string(want.block) + ")");
    const std::uint64_t offset = want.block * metadata_block_size;
    const std::size_t copies = chunks_.copies(space::metadata, offset);
    auto good = std::make_shared<CachedBlock>(want.block);
    auto probe = std::make_shared<CachedBlock>(want.block);
    bool found = false;
    for (std::size_t c = 0; c < copies; ++c) {
      CachedBlock& target = found ? *probe : *good;
      Status st = chunks_.read_copy(space::metadata, offset, c, target.mutable_data());
      if (st && metadata_block_valid(target.data(), want)) {
        found = true;
        continue;
      }
      report_.problems.push_back("metadata block " + std::to_string(want.block) + ", copy " +
                                 std::to_string(c) + ": " +
                                 (st ? "damaged (checksum, address or generation mismatch)" : st.message()));
    }
    if (!found)
      return corruption("metadata block " + std::to_string(want.block) + " is damaged on every copy");
    return BlockRef(good);
  }

  void check_space_map_pages() {
    for (std::size_t i = 0; i < sb_.metadata_sm_index.size(); ++i)
      ++metadata_refs_[sb_.metadata_sm_index[i].block];
    const std::size_t problems_before = report_.problems.size();
    for (const SmIndexPointer& ip : sb_.metadata_sm_index) (void)read_block({ip.block, ip.checksum, 0});
    if (report_.problems.size() != problems_before) return;  // damaged index pages: counts cannot be trusted
    auto sm = MetadataSpaceMap::load(blocks_, sb_.metadata_sm_index, nr_metadata_);
    if (!sm) {
      report_.problems.push_back("metadata space map: " + sm.status().message());
      return;
    }
    for (std::uint64_t b = 0; b < nr_metadata_; ++b) metadata_counts_.push_back(sm->count(b));
    // The refcount pages are referenced by the index pages: count those references too.
    const std::uint64_t pages = (nr_metadata_ + counts_per_refcount_page - 1) / counts_per_refcount_page;
    for (std::size_t i = 0; i < sb_.metadata_sm_index.size(); ++i) {
      const SmIndexPointer& ip = sb_.metadata_sm_index[i];
      auto page = blocks_.read({ip.block, ip.checksum, 0});
      if (page) {  // check every copy of the refcount pages it names, too
        for (std::size_t e = 0; e < entries_per_index_page; ++e) {
          if (i * entries_per_index_page + e >= pages) break;
          const std::byte* entry = (*page)->bytes + metadata_header_size + e * 24;
          (void)read_block({load_le64(entry), load_le64(entry + 8), 0});
        }
      }
      if (!page) continue;
      for (std::size_t e = 0; e < entries_per_index_page; ++e) {
        if (i * entries_per_index_page + e >= pages) break;
        ++metadata_refs_[load_le64((*page)->bytes + metadata_header_size + e * 24)];
      }
    }
  }

  void check_volumes() {
    std::map<std::string, std::uint64_t> names;
    walker_.walk(sb_.volume_table, volume_record_size, "volume table",
                 [&](std::uint64_t id, std::span<const std::byte> v) {
                   auto r = decode_volume_record(id, v);
                   if (!r) {
                     report_.problems.push_back("volume table: " + r.status().message());
                     return;
                   }
                   if (!r->deleted() && !names.emplace(r->name, id).second)
                     report_.problems.push_back("volume table: name '" + r->name + "' is used twice");
                   if (id >= sb_.next_volume_id)
                     report_.problems.push_back("volume " + std::to_string(id) +
                                                " has an id the superblock has not handed out");
                   volumes_.push_back(*r);
                 });
    report_.volumes = volumes_.size();
    for (const VolumeRecord& r : volumes_) {
      const std::uint64_t limit = (r.size + sb_.data_block_size - 1) / sb_.data_block_size;
      const std::string label = r.deleted() ? "deleted volume " + std::to_string(r.id)
                                            : "volume '" + r.name + "'";
      if (r.mapped_blocks > limit)
        report_.problems.push_back(label + ": records " + std::to_string(r.mapped_blocks) +
                                   " mapped blocks, more than its size holds");
      if (r.damaged())
        report_.notes.push_back(label + " is marked damaged: some of its blocks could not be read on any copy "
                                        "when it was served (what is still damaged is reported below)");
      if (r.parent >= sb_.next_volume_id)
        report_.problems.push_back(label + ": parent id " + std::to_string(r.parent) +
                                   " was never handed out");
      walker_.walk(r.mapping, mapping_value_size, label,
                   [&](std::uint64_t key, std::span<const std::byte> v) {
                     MappingValue m = decode_mapping(v);
                     ++report_.mapped_blocks;
                     if (key >= limit)
                       report_.problems.push_back("volume '" + r.name + "': block " + std::to_string(key) +
                                                  " mapped beyond the volume's size");
                     if (m.data_block >= nr_data_) {
                       report_.problems.push_back("volume '" + r.name + "': block " + std::to_string(key) +
                                                  " points beyond the data space");
                       return;
                     }
                     if (data_refs_[m.data_block]++ == 0 && options_.verify_data)
                       verify_data_block(r.name, key, m);
                   });
    }
  }

  void verify_data_block(const std::string& volume, std::uint64_t key, const MappingValue& m) {
    std::vector<std::byte> buf(sb_.data_block_size);
    const std::uint64_t offset = m.data_block * sb_.data_block_size;
    const std::size_t copies = chunks_.copies(space::data, offset);
    for (std::size_t c = 0; c < copies; ++c) {
      Status st = chunks_.read_copy(space::data, offset, c, buf);
      if (!st || data_checksum(buf) != m.checksum)
        report_.problems.push_back("volume '" + volume + "': block " + std::to_string(key) +
                                   " (data block " + std::to_string(m.data_block) + ", copy " +
                                   std::to_string(c) + ") " +
                                   (st ? "fails its checksum" : st.message()));
    }
  }

  void check_data_space_map() {
    data_counts_.assign(nr_data_, 0);
    walker_.walk(sb_.data_sm_index, data_sm_index_value_size, "data space map",
                 [&](std::uint64_t page_no, std::span<const std::byte> v) {
                   BlockPointer p = decode_pointer(v.data());
                   ++metadata_refs_[p.block];
                   auto page = read(p);
                   if (!page) {
                     report_.problems.push_back("data space map page " + std::to_string(page_no) +
                                                ": " + page.status().message());
                     return;
                   }
                   auto h = read_header((*page)->data());
                   if (h.type != metadata_type::refcount_page || h.extra != page_no) {
                     report_.problems.push_back("data space map page " + std::to_string(page_no) +
                                                " is misplaced");
                     return;
                   }
                   for (std::size_t k = 0; k < counts_per_refcount_page; ++k) {
                     const std::uint64_t b = page_no * counts_per_refcount_page + k;
                     if (b >= nr_data_) break;
                     data_counts_[b] = load_le32((*page)->bytes + metadata_header_size + k * 4);
                   }
                 });
  }

  void compare_metadata_counts() {
    if (metadata_counts_.empty()) return;
    std::uint64_t reported = 0;
    for (std::uint64_t b = 0; b < nr_metadata_; ++b) {
      const std::uint32_t found = metadata_refs_.count(b) ? metadata_refs_[b] : 0;
      if (metadata_counts_[b] > 0) ++report_.metadata_blocks_used;
      if (metadata_counts_[b] == found) continue;
      if (++reported > 50) continue;
      report_.problems.push_back(
          "metadata block " + std::to_string(b) + ": space map says " +
          std::to_string(metadata_counts_[b]) + " references, found " + std::to_string(found) +
          (found == 0 ? " (leaked)" : metadata_counts_[b] == 0 ? " (in use but free)" : ""));
    }
    if (reported > 50)
      report_.problems.push_back(std::to_string(reported - 50) + " more metadata count mismatches");
  }

  void compare_data_counts() {
    std::uint64_t reported = 0;
    for (std::uint64_t b = 0; b < nr_data_; ++b) {
      const std::uint32_t found = data_refs_.count(b) ? data_refs_[b] : 0;
      if (data_counts_[b] > 0) ++report_.data_blocks_used;
      if (data_counts_[b] == found) continue;
      if (++reported > 50) continue;
      report_.problems.push_back(
          "data block " + std::to_string(b) + ": space map says " + std::to_string(data_counts_[b]) +
          " references, found " + std::to_string(found) +
          (found == 0 ? " (leaked)" : data_counts_[b] == 0 ? " (in use but free)" : ""));
    }
    if (reported > 50)
      report_.problems.push_back(std::to_string(reported - 50) + " more data count mismatches");
  }

  // The records after this commit (intent_log.h): what a writable open would replay. A
  // flushed record that no copy holds is a hole (writes a flush acknowledged are lost); a
  // bad copy of a flushed record is damage; a bad copy of a record no flush covered is
  // what a crash leaves. Each record must name a live volume, stay inside it, and take
  // data blocks that are free here and not taken by another record (invariant 3). The data
  // of records no flush covered may be missing (a power cut): noted, as open drops them.
  void check_intent_log() {
    if (!(sb_.incompat_features & incompat_intent_log)) return;
    const LogLayout layout = LogLayout::for_superblock(sb_);
    auto scan = sb_.version == 1 ? read_intent_log_v1(devices_, layout, sb_.pool_uuid, sb_.generation)
                                 : read_intent_log(devices_, layout, sb_.pool_uuid, sb_.generation);
    if (!scan) {
      report_.problems.push_back("intent log: " + scan.status().message());
      return;
    }
    for (std::uint64_t s : scan->lost)
      report_.problems.push_back("intent log record " + std::to_string(s) +
                                 ", which a flush had made durable, is damaged on every copy: writes are lost");
    for (const LogCopyProblem& p : scan->bad_copies)
      (p.durable ? report_.problems : report_.crash_explainable).push_back(p.what);
    if (scan->records.empty()) return;
    // Chunks the records added come first (invariant 3); their data blocks are free here.
    // A record no flush covered may follow one a power cut took, chunk and all: its chunk
    // is left out, as open leaves it out.
    for (const LogRecord& rec : scan->records)
      for (const LogEntry& e : rec.entries)
        if (e.type == LogEntry::kind::chunk)
          if (Status st = chunks_.add_chunk(e.chunk); !st && rec.sequence < scan->durable)
            report_.problems.push_back("intent log record " + std::to_string(rec.sequence) + ": " + st.message());
    const std::uint64_t nr_data = chunks_.space_bytes(space::data) / sb_.data_block_size;
    std::map<std::uint64_t, const VolumeRecord*> live;
    for (const VolumeRecord& r : volumes_)
      if (!r.deleted()) live[r.id] = &r;
    std::vector<bool> taken(nr_data, false);
    std::uint64_t mappings = 0, missing = 0;
    for (const LogRecord& rec : scan->records) {
      const bool flushed = rec.sequence < scan->durable;
      const std::string where = "intent log record " + std::to_string(rec.sequence) + ": ";
      for (const LogEntry& e : rec.entries) {
        if (e.type == LogEntry::kind::chunk) continue;
        auto v = live.find(e.volume);
        if (v == live.end()) {
          report_.problems.push_back(where + "names volume " + std::to_string(e.volume) + ", which does not exist");
          continue;
        }
        if (e.end > (v->second->size + sb_.data_block_size - 1) / sb_.data_block_size)
          report_.problems.push_back(where + "reaches beyond the end of volume '" + v->second->name + "'");
        for (const LogMapping& m : e.mappings) {
          ++mappings;
          if (m.data_block >= nr_data) {
            if (flushed)
              report_.problems.push_back(where + "maps data block " + std::to_string(m.data_block) +
                                         ", beyond the data space");
            else
              ++missing;  // its chunk's record was lost with the power, and the write with it
            continue;
          }
          if (m.data_block < data_counts_.size() && data_counts_[m.data_block] != 0)
            report_.problems.push_back(where + "maps data block " + std::to_string(m.data_block) +
                                       ", which is in use at the commit the log follows");
          if (taken[m.data_block])
            report_.problems.push_back(where + "maps data block " + std::to_string(m.data_block) +
                                       ", which another record took");
          taken[m.data_block] = true;
          if (options_.verify_data && !data_intact(m)) {
            if (flushed)
              report_.problems.push_back(where + "data block " + std::to_string(m.data_block) +
                                         ", which a flush had made durable, fails its checksum on every copy");
            else
              ++missing;
          }
        }
      }
    }
    report_.notes.push_back("intent log: " + std::to_string(scan->records.size()) + " records (" +
                            std::to_string(mappings) + " block mappings; " + std::to_string(scan->durable) +
                            " records flushed) after generation " + std::to_string(sb_.generation) +
                            "; opening the pool writable applies them");
    if (missing > 0)
      report_.notes.push_back("intent log: the data of " + std::to_string(missing) +
                              " block mappings that no flush covered did not reach the device (a power cut); "
                              "opening the pool drops those writes");
  }

  bool data_intact(const LogMapping& m) {
    std::vector<std::byte> buf(sb_.data_block_size);
    const std::uint64_t offset = m.data_block * sb_.data_block_size;
    for (std::size_t c = 0; c < chunks_.copies(space::data, offset); ++c)
      if (chunks_.read_copy(space::data, offset, c, buf) && data_checksum(buf) == m.checksum) return true;
    return false;
  }

  const Superblock& sb_;
  const std::vector<BlockDevicePtr>& devices_;
  CheckOptions options_;
  CheckReport& report_;
  ChunkMap chunks_;
  BlockManager blocks_;
  std::uint64_t nr_metadata_, nr_data_;
  std::map<std::uint64_t, std::uint32_t> metadata_refs_;
  std::map<std::uint64_t, std::uint32_t> data_refs_;
  std::vector<std::uint32_t> metadata_counts_;
  std::vector<std::uint32_t> data_counts_;
  std::vector<VolumeRecord> volumes_;
  TreeWalker walker_;
};

// Every copy that does not hold what it should is a problem; those a crash in the middle of
// a commit also explains are kept apart (a writable open rewrites them).
void report_superblocks(const SuperblockScan& scan, CheckReport& report) {
  for (const SuperblockCopy& c : scan.copies)
    if (c.state == copy_state::valid)
      report.notes.push_back("superblock copy at " + c.describe() + ": commit " + std::to_string(c.generation) +
                             (c.version < format_version ? " (format " + std::to_string(c.version) + ")" : ""));
  for (const CopyProblem& p : scan.problems)
    (p.maybe_torn ? report.crash_explainable : report.problems).push_back(p.what);
  if (!scan.newer_commit_lost.empty()) report.problems.push_back(scan.newer_commit_lost);
}

}  // namespace

CheckReport check_pool(const std::vector<BlockDevicePtr>& devices, const CheckOptions& options) {
  CheckReport report;
  if (devices.empty()) {
    report.problems.push_back("no devices given");
    return report;
  }
  auto scan = read_superblocks(devices);
  if (!scan) {
    report.problems.push_back(scan.status().message());
    return report;
  }
  report_superblocks(*scan, report);
  const Superblock& sb = scan->newest;
  report.generation = sb.generation;
  if (sb.devices.size() != devices.size()) {
    report.problems.push_back("the pool has " + std::to_string(sb.devices.size()) +
                              " devices; " + std::to_string(devices.size()) + " were given");
    return report;
  }
  const std::size_t problems_before = report.problems.size();
  for (std::size_t i = 0; i < devices.size(); ++i)
    if (devices[i]->size() < sb.devices[i].size)
      report.problems.push_back(devices[i]->name() + " holds " + std::to_string(devices[i]->size()) +
                                " bytes; the pool expects " + std::to_string(sb.devices[i].size) +
                                " (truncated?)");
  if (report.problems.size() != problems_before) return report;
  check_chunk_map(sb, devices, report);
  if (report.problems.size() != problems_before) return report;
  Checker(devices, sb, options, report).run();
  return report;
}

}  // namespace snapstore
