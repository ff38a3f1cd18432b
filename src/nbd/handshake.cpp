// Fixed-newstyle negotiation: option parsing and replies. See handshake.h for the contract.
#include "nbd/handshake.h"

#include <algorithm>

namespace snapstore::nbd {

namespace {

HandshakeStep close_step(std::vector<std::byte> reply, std::string reason) {
  HandshakeStep s;
  s.reply = std::move(reply);
  s.action = HandshakeStep::next::close;
  s.reason = std::move(reason);
  return s;
}

}  // namespace

Handshake::Handshake(const ExportTable& exports, HandshakeLimits limits)
    : exports_(exports), limits_(limits) {}

std::vector<std::byte> Handshake::greeting() const {
  std::vector<std::byte> out;
  WireWriter(out).u64(nbd_magic).u64(ihaveopt_magic).u16(flag_fixed_newstyle | flag_no_zeroes);
  return out;
}

HandshakeStep Handshake::on_client_flags(std::uint32_t flags) {
  if (flags & ~known_client_flags) return close_step({}, "client sent unknown handshake flags");
  if (!(flags & client_flag_fixed_newstyle))
    return close_step({}, "client does not speak fixed newstyle");
  no_zeroes_ = (flags & client_flag_no_zeroes) != 0;
  return {};
}

HandshakeStep Handshake::on_option_header(std::span<const std::byte> header) {
  if (header.size() != option_header_size) return close_step({}, "short option header");
  if (load_be64(header.data()) != ihaveopt_magic) return close_step({}, "bad option magic");
  option_ = load_be32(header.data() + 8);
  std::uint32_t length = load_be32(header.data() + 12);
  if (++options_seen_ > limits_.max_options) return close_step({}, "too many options");
  if (length > limits_.max_option_length) {
    std::vector<std::byte> out;
    append_error(out, rep_err_too_big, "option data too long");
    return close_step(std::move(out), "option data longer than the limit");
  }
  HandshakeStep s;
  s.action = HandshakeStep::next::read_option_data;
  s.data_length = length;
  return s;
}

HandshakeStep Handshake::on_option_data(std::span<const std::byte> data) {
  switch (option_) {
    case opt_export_name: return handle_export_name(data);
    case opt_abort: {
      std::vector<std::byte> out;
      append_reply(out, rep_ack, {});
      return close_step(std::move(out), "client aborted negotiation");
    }
    case opt_list: return handle_list(data);
    case opt_starttls: return reply_only(rep_err_unsup, "TLS is not supported by this server");
    case opt_info:
    case opt_go: return handle_info_or_go(option_, data);
    case opt_structured_reply: return handle_structured_reply(data);
    case opt_list_meta_context:
    case opt_set_meta_context: return handle_meta_context(option_, data);
    default: return reply_only(rep_err_unsup, "option not supported");
  }
}

std::uint16_t Handshake::transmission_flags_for(const Volume& volume, bool structured) {
  std::uint16_t f = tflag_has_flags | tflag_send_flush | tflag_send_fua | tflag_send_cache;
  if (volume.read_only()) {
    f |= tflag_read_only;
  } else {
    f |= tflag_send_trim | tflag_send_write_zeroes;
    if (volume.supports_fast_zero()) f |= tflag_send_fast_zero;
  }
  if (structured) f |= tflag_send_df;
  if (volume.multi_conn_safe()) f |= tflag_can_multi_conn;
  return f;
}

HandshakeStep Handshake::handle_export_name(std::span<const std::byte> data) {
  std::string name(reinterpret_cast<const char*>(data.data()), data.size());
  VolumePtr volume = exports_.find(name);
  if (!volume) return close_step({}, "client asked for unknown export '" + name + "'");
  std::uint16_t flags = transmission_flags_for(*volume, negotiated_.structured_replies);
  std::vector<std::byte> out;
  WireWriter w(out);
  w.u64(volume->size()).u16(flags);
  if (!no_zeroes_) w.zeroes(124);
  return enter_transmission(std::move(out), std::move(name), std::move(volume));
}

HandshakeStep Handshake::handle_list(std::span<const std::byte> data) {
  if (!data.empty()) return reply_only(rep_err_invalid, "NBD_OPT_LIST takes no data");
  std::vector<std::byte> out;
  for (const ExportEntry& e : exports_.list()) {
    std::vector<std::byte> body;
    WireWriter(body).u32(static_cast<std::uint32_t>(e.name.size())).text(e.name).text(
        e.description);
    append_reply(out, rep_server, body);
  }
  append_reply(out, rep_ack, {});
  HandshakeStep s;
  s.reply = std::move(out);
  return s;
}

HandshakeStep Handshake::handle_structured_reply(std::span<const std::byte> data) {
  if (!data.empty()) return reply_only(rep_err_invalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
  negotiated_.structured_replies = true;
  return reply_only(rep_ack);
}

HandshakeStep Handshake::handle_info_or_go(std::uint32_t option,
                                          std::span<const std::byte> data) {
  WireReader r(data);
  std::uint32_t name_length = 0;
  std::string name;
  std::uint16_t request_count = 0;
  if (!r.u32(name_length) || name_length > limits_.max_name_length || !r.text(name_length, name) ||
      !r.u16(request_count) || r.remaining() != std::size_t{request_count} * 2)
    return reply_only(rep_err_invalid, "malformed NBD_OPT_INFO/GO request");
  bool want_name = false, want_description = false;
  for (std::uint16_t i = 0; i < request_count; ++i) {
    std::uint16_t type = 0;
    (void)r.u16(type);
    want_name |= type == info_name;
    want_description |= type == info_description;
  }
  VolumePtr volume = exports_.find(name);
  if (!volume) return reply_only(rep_err_unknown, "no export named '" + name + "'");

  std::vector<std::byte> out, body;
  WireWriter(body).u16(info_export).u64(volume->size()).u16(
      transmission_flags_for(*volume, negotiated_.structured_replies));
  append_reply(out, rep_info, body);
  BlockSizes sizes = volume->block_sizes();
  body.clear();
  WireWriter(body).u16(info_block_size).u32(sizes.minimum).u32(sizes.preferred).u32(sizes.maximum);
  append_reply(out, rep_info, body);
  if (want_name) {
    body.clear();
    WireWriter(body).u16(info_name).text(name);
    append_reply(out, rep_info, body);
  }
  if (want_description) {
    body.clear();
    WireWriter(body).u16(info_description).text(volume->description());
    append_reply(out, rep_info, body);
  }
  append_reply(out, rep_ack, {});
  if (option == opt_info) {
    HandshakeStep s;
    s.reply = std::move(out);
    return s;
  }
  return enter_transmission(std::move(out), std::move(name), std::move(volume));
}

HandshakeStep Handshake::handle_meta_context(std::uint32_t option,
                                            std::span<const std::byte> data) {
  const bool setting = option == opt_set_meta_context;
  // proto.md: SET_META_CONTEXT replaces the selection even when it fails.
  if (setting) {
    selected_.clear();
    meta_context_export_.clear();
  }
  if (!negotiated_.structured_replies)
    return reply_only(rep_err_invalid, "negotiate structured replies first");
  WireReader r(data);
  std::uint32_t name_length = 0, query_count = 0;
  std::string name;
  if (!r.u32(name_length) || name_length > limits_.max_name_length ||
      !r.text(name_length, name) || !r.u32(query_count))
    return reply_only(rep_err_invalid, "malformed meta context request");
  std::vector<std::string> queries;
  for (std::uint32_t i = 0; i < query_count; ++i) {
    std::uint32_t length = 0;
    std::string query;
    if (!r.u32(length) || length > limits_.max_name_length || !r.text(length, query))
      return reply_only(rep_err_invalid, "malformed meta context query");
    queries.push_back(std::move(query));
  }
  if (r.remaining() != 0) return reply_only(rep_err_invalid, "trailing bytes in meta context request");
  VolumePtr volume = exports_.find(name);
  if (!volume) return reply_only(rep_err_unknown, "no export named '" + name + "'");

  std::vector<std::string> matches;
  if (!setting && queries.empty()) matches = default_listed_contexts(*volume);
  for (const std::string& q : queries) {
    for (std::string& m : contexts_for_query(q, *volume, !setting)) {
      if (std::find(matches.begin(), matches.end(), m) != matches.end()) continue;
      if (matches.size() == limits_.max_meta_contexts)
        return reply_only(rep_err_too_big, "too many metadata contexts in one request");
      matches.push_back(std::move(m));
    }
  }
  std::vector<std::byte> out;
  for (std::size_t i = 0; i < matches.size(); ++i) {
    // Ids are 1, 2, ... in the order of the queries; 0 in LIST replies (proto.md: reserved).
    const std::uint32_t id = setting ? static_cast<std::uint32_t>(i + 1) : 0;
    if (setting) selected_.push_back({id, matches[i]});
    std::vector<std::byte> body;
    WireWriter(body).u32(id).text(matches[i]);
    append_reply(out, rep_meta_context, body);
  }
  if (setting) meta_context_export_ = name;
  append_reply(out, rep_ack, {});
  HandshakeStep s;
  s.reply = std::move(out);
  return s;
}

HandshakeStep Handshake::enter_transmission(std::vector<std::byte> reply, std::string name,
                                            VolumePtr volume) {
  negotiated_.meta_contexts = name == meta_context_export_ ? selected_ : std::vector<MetaContext>{};
  negotiated_.transmission_flags =
      transmission_flags_for(*volume, negotiated_.structured_replies);
  negotiated_.export_name = std::move(name);
  negotiated_.volume = std::move(volume);
  HandshakeStep s;
  s.reply = std::move(reply);
  s.action = HandshakeStep::next::enter_transmission;
  return s;
}

HandshakeStep Handshake::on_export_gone() {
  const std::string name = std::move(negotiated_.export_name);
  negotiated_.export_name.clear();
  negotiated_.volume.reset();
  negotiated_.meta_contexts.clear();
  negotiated_.transmission_flags = 0;
  if (option_ != opt_go) return close_step({}, "export '" + name + "' was removed");
  return reply_only(rep_err_unknown, "export '" + name + "' was removed");
}

HandshakeStep Handshake::reply_only(std::uint32_t type, std::string_view message) {
  HandshakeStep s;
  if (type & rep_error_bit)
    append_error(s.reply, type, message);
  else
    append_reply(s.reply, type, as_bytes(message));
  return s;
}

void Handshake::append_reply(std::vector<std::byte>& out, std::uint32_t type,
                             std::span<const std::byte> data) const {
  WireWriter(out)
      .u64(option_reply_magic)
      .u32(option_)
      .u32(type)
      .u32(static_cast<std::uint32_t>(data.size()))
      .bytes(data);
}

void Handshake::append_error(std::vector<std::byte>& out, std::uint32_t type,
                             std::string_view message) const {
  append_reply(out, type, as_bytes(message));
}

}  // namespace snapstore::nbd
