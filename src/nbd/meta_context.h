// Metadata contexts: which ones this server offers, and how LIST/SET_META_CONTEXT queries
// find them (proto.md, "Metadata querying"). Pure functions of a query and a Volume.
//
// Contexts:
//   base:allocation            Volume::block_status; flags NBD_STATE_HOLE (1), NBD_STATE_ZERO (2).
//   x-snapstore:changed:NAME   Volume::changed_extents(NAME); flag 1 where this export differs
//                              from volume NAME, 0 where it is the same. Offered while
//                              Volume::has_peer(NAME) is true; NAME is everything after the
//                              second colon (it may itself contain colons) and is not empty.
//
// Queries (the same for NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT unless said):
//  1. An exact context name finds that context if the export offers it, else nothing.
//  2. "base:" finds base:allocation when listing; SET ignores it (proto.md: MUST ignore).
//  3. "x-snapstore:" and "x-snapstore:changed:" find nothing, for LIST as well as SET. Listing
//     would mean enumerating every snapshot of the pool (thousands is normal use) in every
//     handshake that asks; a client that knows the namespace asks for the name it wants
//     ("x-snapstore:changed:NAME") and LIST answers that exactly.
//  4. LIST with no query at all lists base:allocation only, for the same reason as 3.
//  5. Anything else (unknown namespaces, unknown leaf names, "x-snapstore:other") finds
//     nothing and is never an error: proto.md says unknown namespaces MUST be ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "snapstore/volume.h"

namespace snapstore::nbd {

inline constexpr std::string_view base_allocation_context = "base:allocation";
inline constexpr std::string_view snapstore_namespace = "x-snapstore:";
inline constexpr std::string_view changed_context_prefix = "x-snapstore:changed:";

// A context selected by NBD_OPT_SET_META_CONTEXT: its id on the wire and its full name.
struct MetaContext {
  std::uint32_t id = 0;
  std::string name;
  bool operator==(const MetaContext&) const = default;
};

// What a context name means; nullopt for names this server does not know.
struct ContextKind {
  enum class kind { allocation, changed };
  kind what = kind::allocation;
  std::string peer;  // for changed: the volume compared with
};
std::optional<ContextKind> parse_context_name(std::string_view name);

// The contexts `query` finds on `volume`, in a stable order, without duplicates.
// listing: NBD_OPT_LIST_META_CONTEXT (namespace wildcards allowed); else SET.
std::vector<std::string> contexts_for_query(std::string_view query, const Volume& volume,
                                            bool listing);

// The contexts LIST reports when the client sends no query (rule 4).
std::vector<std::string> default_listed_contexts(const Volume& volume);

}  // namespace snapstore::nbd
