// Metadata context names and query matching. See meta_context.h for the rules.
#include "nbd/meta_context.h"

namespace snapstore::nbd {

std::optional<ContextKind> parse_context_name(std::string_view name) {
  if (name == base_allocation_context) return ContextKind{ContextKind::kind::allocation, {}};
  if (name.starts_with(changed_context_prefix) && name.size() > changed_context_prefix.size())
    return ContextKind{ContextKind::kind::changed,
                       std::string(name.substr(changed_context_prefix.size()))};
  return std::nullopt;
}

std::vector<std::string> contexts_for_query(std::string_view query, const Volume& volume,
                                            bool listing) {
  if (listing && query == "base:") return {std::string(base_allocation_context)};
  auto kind = parse_context_name(query);
  if (!kind) return {};  // rules 2 (SET), 3 and 5
  if (kind->what == ContextKind::kind::changed && !volume.has_peer(kind->peer)) return {};
  return {std::string(query)};
}

std::vector<std::string> default_listed_contexts(const Volume&) {
  return {std::string(base_allocation_context)};
}

}  // namespace snapstore::nbd
