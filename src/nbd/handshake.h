// Handshake: the fixed-newstyle NBD negotiation as a pure state machine.
//
// The connection feeds it what the client sent (client flags, then option headers and
// option data) and sends whatever bytes it returns; the machine itself never touches a
// socket, so unit tests drive every path directly.
//
// Sequence:  greeting() -> on_client_flags() -> { on_option_header() -> on_option() }*
//            ... until a step says enter_transmission or close.
//
// Invariants:
//  1. Unknown client flags close the connection before any option is read.
//  2. An option whose data is longer than limits.max_option_length is never read: the
//     step says close (the client could otherwise make us read unbounded data).
//  3. An export name that is not in the ExportTable is refused (NBD_REP_ERR_UNKNOWN for
//     INFO/GO/meta-context options; a closed connection for EXPORT_NAME, which cannot
//     carry an error). There is no default export.
//  4. Unknown options get NBD_REP_ERR_UNSUP and negotiation continues.
//  5. Metadata contexts selected for one export are dropped if GO picks another one. Which
//     contexts exist and what a query finds is meta_context.h's business; a context is
//     selected only if the export's volume offers it at the time of SET_META_CONTEXT, and
//     more than limits.max_meta_contexts matches is NBD_REP_ERR_TOO_BIG (nothing selected).
//  6. Entering transmission is two steps for the connection: the step that says
//     enter_transmission carries the final reply, but the connection may still call
//     on_export_gone() instead of sending it (the export was removed from the ExportTable
//     after GO looked it up): GO is then refused with NBD_REP_ERR_UNKNOWN and negotiation
//     goes on with the earlier metadata context selection intact; EXPORT_NAME closes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "nbd/meta_context.h"
#include "nbd/wire.h"
#include "volume/export_table.h"

namespace snapstore::nbd {

struct HandshakeLimits {
  std::uint32_t max_option_length = 64 * 1024;  // bytes of option data we accept
  std::uint32_t max_name_length = 4096;         // export names and context queries
  std::uint32_t max_options = 1024;             // options per connection before we give up
  // Contexts one LIST/SET may find; each selected context costs a lookup per BLOCK_STATUS.
  std::uint32_t max_meta_contexts = 64;
};

// What negotiation settled on; valid once a step returned enter_transmission.
struct Negotiated {
  std::string export_name;
  VolumePtr volume;
  bool structured_replies = false;
  std::vector<MetaContext> meta_contexts;
  std::uint16_t transmission_flags = 0;
};

struct HandshakeStep {
  enum class next { read_option_header, read_option_data, enter_transmission, close };
  std::vector<std::byte> reply;  // send these bytes (may be empty), then do `action`
  next action = next::read_option_header;
  std::uint32_t data_length = 0;  // for read_option_data: how many bytes to read
  std::string reason;             // for close: why, for the log
};

class Handshake {
 public:
  Handshake(const ExportTable& exports, HandshakeLimits limits = {});

  std::vector<std::byte> greeting() const;
  HandshakeStep on_client_flags(std::uint32_t flags);
  HandshakeStep on_option_header(std::span<const std::byte> header);  // 16 bytes
  HandshakeStep on_option_data(std::span<const std::byte> data);
  // Instead of sending an enter_transmission step: the export it named has gone (see 6).
  HandshakeStep on_export_gone();

  const Negotiated& negotiated() const { return negotiated_; }

  // The transmission flags this server sends for `volume`.
  static std::uint16_t transmission_flags_for(const Volume& volume, bool structured);

 private:
  HandshakeStep handle_export_name(std::span<const std::byte> data);
  HandshakeStep handle_info_or_go(std::uint32_t option, std::span<const std::byte> data);
  HandshakeStep handle_list(std::span<const std::byte> data);
  HandshakeStep handle_structured_reply(std::span<const std::byte> data);
  HandshakeStep handle_meta_context(std::uint32_t option, std::span<const std::byte> data);
  HandshakeStep reply_only(std::uint32_t type, std::string_view message = {});
  void append_reply(std::vector<std::byte>& out, std::uint32_t type,
                    std::span<const std::byte> data) const;
  void append_error(std::vector<std::byte>& out, std::uint32_t type,
                    std::string_view message) const;
  HandshakeStep enter_transmission(std::vector<std::byte> reply, std::string name,
                                   VolumePtr volume);

  const ExportTable& exports_;
  HandshakeLimits limits_;
  bool no_zeroes_ = false;
  std::uint32_t option_ = 0;
  std::uint32_t options_seen_ = 0;
  std::string meta_context_export_;    // the export the last SET_META_CONTEXT named
  std::vector<MetaContext> selected_;  // what it selected there
  Negotiated negotiated_;
};

}  // namespace snapstore::nbd
