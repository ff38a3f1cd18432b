// Request execution and reply encoding. See transmission.h.
#include "nbd/transmission.h"

#include <algorithm>
#include <cstring>

namespace snapstore::nbd {

namespace {

void simple_header(std::vector<std::byte>& out, std::uint32_t error, std::uint64_t cookie) {
  WireWriter(out).u32(simple_reply_magic).u32(error).u64(cookie);
}

void chunk_header(std::vector<std::byte>& out, std::uint16_t flags, std::uint16_t type,
                  std::uint64_t cookie, std::uint32_t length) {
  WireWriter(out).u32(structured_reply_magic).u16(flags).u16(type).u64(cookie).u32(length);
}

Reply ok_reply(const Request& request, bool structured) {
  Reply reply;
  if (structured)
    chunk_header(reply.head, reply_flag_done, chunk_none, request.cookie, 0);
  else
    simple_header(reply.head, err_none, request.cookie);
  return reply;
}

// The reply to a request that ran; a failure is reported at the request's offset, which
// lies inside the request (it was validated before it ran).
Reply reply_for(const Request& request, bool structured, const Status& status) {
  if (status.is_ok()) return ok_reply(request, structured);
  std::uint32_t error = nbd_error_for(status);
  // ENOTSUP is reserved for a zero request with FAST_ZERO that would be slow (proto.md).
  const bool fast_zero = request.type == cmd_write_zeroes && (request.flags & cmd_flag_fast_zero);
  if (error == err_notsup && !fast_zero) error = err_io;
  return error_reply(request, structured, error, status.message(), /*at_offset=*/true);
}

bool all_zero(const std::byte* p, std::size_t n) {
  static constexpr std::byte zero_block[4096] = {};
  while (n > 0) {
    std::size_t step = std::min(n, sizeof zero_block);
    if (std::memcmp(p, zero_block, step) != 0) return false;
    p += step;
    n -= step;
  }
  return true;
}

Reply execute_read(const TransmissionContext& ctx, const Request& request) {
  std::unique_ptr<std::byte[]> owned;
  std::byte* buffer = nullptr;
  if (ctx.read_buffer.size() >= request.length) {
    buffer = ctx.read_buffer.data();
  } else {
    owned = std::make_unique_for_overwrite<std::byte[]>(request.length);
    buffer = owned.get();
  }
  Status st = ctx.volume.read(request.offset, {buffer, request.length});
  if (!st.is_ok()) return reply_for(request, ctx.structured_replies, st);
  Reply reply;
  if (!ctx.structured_replies) {
    simple_header(reply.head, err_none, request.cookie);
  } else if (all_zero(buffer, request.length)) {
    chunk_header(reply.head, reply_flag_done, chunk_offset_hole, request.cookie, 12);
    WireWriter(reply.head).u64(request.offset).u32(request.length);
    return reply;
  } else {
    chunk_header(reply.head, reply_flag_done, chunk_offset_data, request.cookie,
                 8 + request.length);
    WireWriter(reply.head).u64(request.offset);
  }
  if (owned) {
    reply.data = std::move(owned);
    reply.data_length = request.length;
  } else {
    reply.borrowed = {buffer, request.length};
  }
  return reply;
}

Status execute_write_zeroes(Volume& volume, const Request& r) {
  const bool may_unmap = !(r.flags & cmd_flag_no_hole);
  const bool fast_only = (r.flags & cmd_flag_fast_zero) != 0;
  return volume.write_zeroes(r.offset, r.length, may_unmap, fast_only, r.flags & cmd_flag_fua);
}

// The extents of `context` over the request. A changed context whose peer volume has gone
// since SET_META_CONTEXT (deleted) is EINVAL, not EIO: nothing failed in storage and retrying
// does not help; the question the client selected no longer has an answer, while the rest of
// the connection (reads, writes, base:allocation) stays fine and EIO would make clients treat
// the disk as failing. Never answered with made-up
// flags: "all changed" or "all same" would both be wrong data.
Result<std::vector<Extent>> context_extents(Volume& volume, const MetaContext& context,
                                            const Request& r) {
  auto kind = parse_context_name(context.name);
  if (!kind) return invalid_argument("unknown metadata context '" + context.name + "'");
  if (kind->what == ContextKind::kind::allocation) return volume.block_status(r.offset, r.length);
  auto extents = volume.changed_extents(kind->peer, r.offset, r.length);
  if (!extents && extents.status().code() == errc::not_found)
    return invalid_argument("context '" + context.name +
                            "' has nothing to compare with now: " + extents.status().message());
  return extents;
}

// Appends one BLOCK_STATUS chunk body for `context` to `body`, or returns an error.
Status block_status_chunk(const TransmissionContext& ctx, const Request& r,
                          const MetaContext& context, std::vector<std::byte>& body) {
  auto extents = context_extents(ctx.volume, context, r);
  if (!extents) return extents.status();
  WireWriter w(body);
  w.u32(context.id);
  std::uint64_t covered = 0;
  std::uint32_t count = 0;
  const std::uint32_t limit = (r.flags & cmd_flag_req_one) ? 1 : ctx.max_extents;
  for (const Extent& e : *extents) {
    if (count == limit || covered >= r.length) break;
    std::uint64_t length = std::min<std::uint64_t>(e.length, r.length - covered);
    length = std::min<std::uint64_t>(length, 0xffffffffu);
    if (length == 0) break;
    w.u32(static_cast<std::uint32_t>(length)).u32(e.flags);
    covered += length;
    ++count;
  }
  if (count == 0) return io_error("backend returned no extents");
  return Status::ok();
}

Reply execute_block_status(const TransmissionContext& ctx, const Request& r) {
  Reply reply;
  for (std::size_t i = 0; i < ctx.meta_contexts.size(); ++i) {
    std::vector<std::byte> body;
    Status st = block_status_chunk(ctx, r, ctx.meta_contexts[i], body);
    if (!st.is_ok()) return reply_for(r, true, st);
    const bool last = i + 1 == ctx.meta_contexts.size();
    chunk_header(reply.head, last ? reply_flag_done : 0, chunk_block_status, r.cookie,
                 static_cast<std::uint32_t>(body.size()));
    WireWriter(reply.head).bytes(body);
  }
  return reply;
}

}  // namespace

std::uint32_t nbd_error_for(const Status& status) {
  switch (status.code()) {
    case errc::ok: return err_none;
    case errc::no_space: return err_nospc;
    case errc::read_only: return err_perm;
    case errc::invalid_argument: return err_inval;
    case errc::not_supported: return err_notsup;
    case errc::io_error:
    case errc::corruption:
    case errc::not_found:
    case errc::exists:
    case errc::busy: return err_io;
  }
  return err_io;
}

Reply error_reply(const Request& request, bool structured, std::uint32_t error,
                  std::string_view message, bool at_offset) {
  Reply reply;
  if (!structured) {
    simple_header(reply.head, error, request.cookie);
    return reply;
  }
  message = message.substr(0, 4096);
  const bool with_offset = at_offset && (request.type == cmd_read || request.type == cmd_write ||
                                         request.type == cmd_trim ||
                                         request.type == cmd_block_status);
  const std::uint32_t length = 6 + static_cast<std::uint32_t>(message.size()) + (with_offset ? 8 : 0);
  chunk_header(reply.head, reply_flag_done, with_offset ? chunk_error_offset : chunk_error,
               request.cookie, length);
  WireWriter w(reply.head);
  w.u32(error).u16(static_cast<std::uint16_t>(message.size())).text(message);
  if (with_offset) w.u64(request.offset);
  return reply;
}

Reply execute(const TransmissionContext& ctx, const Request& r,
              std::span<const std::byte> payload) {
  Volume& v = ctx.volume;
  const bool fua = (r.flags & cmd_flag_fua) != 0;
  switch (r.type) {
    case cmd_read: return execute_read(ctx, r);
    case cmd_write: return reply_for(r, ctx.structured_replies, v.write(r.offset, payload, fua));
    case cmd_flush: return reply_for(r, ctx.structured_replies, v.flush());
    case cmd_trim: return reply_for(r, ctx.structured_replies, v.trim(r.offset, r.length, fua));
    case cmd_cache: return reply_for(r, ctx.structured_replies, v.cache(r.offset, r.length));
    case cmd_write_zeroes:
      return reply_for(r, ctx.structured_replies, execute_write_zeroes(v, r));
    case cmd_block_status: return execute_block_status(ctx, r);
    default: return error_reply(r, ctx.structured_replies, err_inval, "unknown command");
  }
}

}  // namespace snapstore::nbd
