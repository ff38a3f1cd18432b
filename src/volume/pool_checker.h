// The offline checker (DESIGN.md, "The offline checker"): verifies a pool without the
// daemon and without writing anything.
//
// It checks, reporting every problem it finds rather than stopping at the first:
//  1. every superblock copy on every device (superblock_set.h): which commit is used,
//     every copy that does not hold what it should, a newer commit that may be lost;
//  2. the chunk map: stripes inside their devices, clear of the superblock area, not
//     overlapping, chunk indexes of each space contiguous;
//  3. every tree (volume table, every volume's mapping tree, the data space map's index):
//     node checksums against the pointers, own addresses, types, key order, balance;
//  4. every volume record; every data block's checksum on every copy (unless skipped);
//  5. reference counts: each metadata block's count equals the pointers found to it (tree
//     nodes, space-map pages), each data block's count equals the leaves that map it; so
//     no block is both free and in use, and none is leaked.
#pragma once

#include <string>
#include <vector>

#include "snapstore/block_device.h"

namespace snapstore {

struct CheckOptions {
  bool verify_data = true;  // read every mapped data block, every copy
};

struct CheckReport {
  std::vector<std::string> problems;
  // Problems that a crash in the middle of a commit or a flush explains as well as damage
  // (a torn superblock copy, an intent log record not yet flushed); a writable open
  // repairs them. They make the pool unclean too.
  std::vector<std::string> crash_explainable;
  std::vector<std::string> notes;  // facts worth printing (slots, sizes, counts)
  std::uint64_t generation = 0;
  std::uint64_t volumes = 0;
  std::uint64_t tree_nodes = 0;
  std::uint64_t mapped_blocks = 0;
  std::uint64_t data_blocks_used = 0;
  std::uint64_t metadata_blocks_used = 0;
  bool clean() const { return problems.empty() && crash_explainable.empty(); }
};

CheckReport check_pool(const std::vector<BlockDevicePtr>& devices, const CheckOptions& options = {});

}  // namespace snapstore
